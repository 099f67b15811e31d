// A deterministic room for advisory cores: N Advisory values, every pair
// connected, messages through the real codec with a seeded delay per message,
// one event queue ordered by (time, sequence), and each agent verifying with
// the real trust layer against its own TrustState. No sockets, no sleeps.
import { Advisory, decodeMessage, encodeMessage, type AdvisoryInit, type AdvisoryOutput, type VerifyResult } from '../../src/core/advisory/index.ts'
import { acceptSnapshot, anchorRoot, initialState, type TrustState } from '../../src/trust/index.ts'
import { rng } from './mesh.ts'
import { T0 } from '../trust/support.ts'

export interface Agent {
  id: string
  core: Advisory
  trust: TrustState
  /** Versions adopted, in order. */
  adopted: number[]
  refusals: string[]
  /** Install results learned (new to this agent). */
  resultsLearned: number
  sent: number
  received: number
  /** Messages counted only after `countFrom`. */
  sentCounted: number
  receivedCounted: number
}

interface Event { at: number, seq: number, run: () => void }

export interface RoomOptions {
  n: number
  seed: number
  rootKey: Uint8Array
  /** Delay of each message: uniform in [minDelayMs, maxDelayMs]. */
  minDelayMs?: number
  maxDelayMs?: number
  /** Probability a message is lost. */
  loss?: number
  core?: Partial<AdvisoryInit>
  /** Peers of node i (default: everyone else). */
  neighbours?: (i: number, n: number) => number[]
}

export class Room {
  readonly agents: Agent[] = []
  now = 0
  countFrom = Infinity
  private seq = 0
  private readonly queue: Event[] = []
  private readonly random: () => number
  private readonly opts: RoomOptions

  constructor (opts: RoomOptions) {
    this.opts = opts
    this.random = rng(opts.seed)
    for (let i = 0; i < opts.n; i++) {
      const agent: Agent = { id: `p${i}`, core: undefined as unknown as Advisory, trust: initialState(anchorRoot(opts.rootKey)), adopted: [], refusals: [], resultsLearned: 0, sent: 0, received: 0, sentCounted: 0, receivedCounted: 0 }
      const verify = (snapshot: Uint8Array, roots: Uint8Array[]): VerifyResult => {
        const r = acceptSnapshot(agent.trust, snapshot, roots, T0 + this.now)
        agent.trust = r.state
        if (!r.ok) return { ok: false, code: r.code, reason: r.reason, retry: r.code === 'root-expired', ...(r.roots.adopted.length > 0 ? { rootVersion: r.state.root.doc.version, roots: r.state.chain } : {}) }
        return { ok: true, version: r.snapshot.doc.version, hash: r.snapshot.cid.bytes, rootVersion: r.state.root.doc.version, roots: r.state.chain }
      }
      agent.core = new Advisory({ verify, random: rng(opts.seed * 1000 + i + 1), ...opts.core })
      this.agents.push(agent)
    }
  }

  private schedule (at: number, run: () => void): void {
    const e = { at, seq: this.seq++, run }
    // binary insertion keeps the queue ordered by (at, seq)
    let lo = 0
    let hi = this.queue.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      const m = this.queue[mid]!
      if (m.at < at || (m.at === at && m.seq < e.seq)) lo = mid + 1
      else hi = mid
    }
    this.queue.splice(lo, 0, e)
  }

  private index (id: string): number { return Number(id.slice(1)) }

  private apply (i: number, outs: AdvisoryOutput[]): void {
    const a = this.agents[i]!
    for (const o of outs) {
      if (o.type === 'adopt') a.adopted.push(o.held.version)
      else if (o.type === 'refuse') a.refusals.push(`${o.code}: ${o.reason}`)
      else if (o.type === 'results') a.resultsLearned += o.added.length
      else {
        const bytes = encodeMessage(o.message)
        a.sent++
        if (this.now >= this.countFrom) a.sentCounted++
        if (this.random() < (this.opts.loss ?? 0)) continue
        const delay = (this.opts.minDelayMs ?? 2) + this.random() * ((this.opts.maxDelayMs ?? 20) - (this.opts.minDelayMs ?? 2))
        const j = this.index(o.peer)
        const from = a.id
        this.schedule(this.now + delay, () => {
          const b = this.agents[j]!
          b.received++
          if (this.now >= this.countFrom) b.receivedCounted++
          this.feed(j, { type: 'message', peer: from, message: decodeMessage(bytes) })
        })
      }
    }
    this.arm(i)
  }

  private readonly armed = new Map<number, number>()

  /** Keeps one pending timer event per agent at its core's deadline. */
  private arm (i: number): void {
    const d = this.agents[i]!.core.nextDeadline()
    if (d === undefined || this.armed.get(i) === d) return
    this.armed.set(i, d)
    this.schedule(Math.max(d, this.now), () => {
      if (this.armed.get(i) !== d) return
      this.armed.delete(i)
      this.feed(i, { type: 'timer' })
    })
  }

  feed (i: number, input: Parameters<Advisory['handle']>[0]): void {
    this.apply(i, this.agents[i]!.core.handle(input, this.now))
  }

  /** Connects every pair (or the neighbours given), at the current time. */
  connectAll (): void {
    const n = this.agents.length
    for (let i = 0; i < n; i++) {
      const near = this.opts.neighbours?.(i, n) ?? Array.from({ length: n }, (_, j) => j).filter(j => j !== i)
      for (const j of near) this.feed(i, { type: 'connected', peer: `p${j}` })
    }
  }

  offer (i: number, snapshot: Uint8Array, roots: Uint8Array[]): void {
    this.feed(i, { type: 'offer', snapshot, roots })
  }

  /** Runs events up to time `until` (ms), or until `stop` holds (checked after each event). Bounded in events. */
  run (until: number, stop?: () => boolean, maxEvents = 5_000_000): void {
    let events = 0
    while (this.queue.length > 0 && this.queue[0]!.at <= until) {
      const e = this.queue.shift()!
      this.now = e.at
      e.run()
      if (++events > maxEvents) throw new Error('too many events')
      if (stop?.() === true) return
    }
    this.now = Math.max(this.now, until)
  }

  versions (): number[] {
    return this.agents.map(a => a.core.current?.version ?? 0)
  }
}
