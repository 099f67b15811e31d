// The advisory core (src/core/advisory, the agent's own) on every laptop of a
// run, driven as the agent's advisory driver drives it: a State to each peer
// on connecting, Trickle's timer, pulls and snapshots over the connections,
// every snapshot verified by the trust layer against the laptop's own trust
// state (provisioned with the root key alone). Messages are encoded with the
// protocol's codec and travel as small frames on the engine's control
// streams. When a laptop adopts a snapshot, its exchange core is told to
// hold (fetch) each build it advises; "installed" is that build complete,
// plus the scenario's apply time.
import { Advisory, DEFAULT_IMAX_DOUBLINGS, DEFAULT_IMIN_MS, decodeMessage, encodeMessage, type AdvisoryInput, type AdvisoryMessage } from '../../src/core/advisory/index.ts'
import { cidKey } from '../../src/core/exchange/index.ts'
import { EV, type Engine } from '../engine.ts'
import type { AdvisorySpec } from '../scenario.ts'
import { LaptopTrust, makeDeployment, type SimDeployment } from './deployment.ts'

/** An advisory message on the engine's control streams (the election's slot carries both: protocols.ts). */
export class AdvisoryFrame {
  readonly message: AdvisoryMessage
  constructor (message: AdvisoryMessage) { this.message = message }
}

const MINUTE = 60_000

export interface AdvisorySummary {
  build: string
  /** When it was offered on its first laptops, s. */
  at_s: number
  laptops: number
  /** Laptops that adopted the snapshot; seconds after at_s for the first, half and last of all laptops (null: not all). */
  reached: number
  first_s: number | null
  p50_s: number | null
  last_s: number | null
  /** Laptops with the build complete and applied after adopting the advisory; seconds after at_s. */
  installed: number
  install_first_s: number | null
  install_p50_s: number | null
  install_last_s: number | null
  /** The window (s of the run) the rates below are measured over: from Imax after the last laptop adopted to the end. */
  steady_from_s: number | null
  steady_to_s: number | null
  /** Trickle transmissions (a State to every peer at once) per laptop per hour in that window. */
  adverts_per_laptop_hour: number | null
  /** Every advisory message sent (States to each peer, on connect and by Trickle; requests; snapshots) per laptop per hour in that window. */
  messages_per_laptop_hour: number | null
  /** Of those, States sent because a connection opened (laptops waking, returning, meeting). */
  connect_states_per_laptop_hour: number | null
  messages: number
  bytes: number
  refused: number
}

export class SimAdvisory {
  private readonly engine: Engine
  readonly spec: AdvisorySpec
  private deployment: SimDeployment | undefined
  private readonly cores: Array<Advisory | undefined> = []
  private readonly trust: Array<LaptopTrust | undefined> = []
  /** Per node: when it adopted the snapshot (NaN: not yet) and when its offer is due (NaN: none or done). */
  private readonly adoptedAt: number[] = []
  private readonly offerAt: number[] = []
  private readonly offerOn: Set<number>
  /** Per minute of the run: Trickle transmissions, States sent on connect, all messages. */
  private readonly firings: Float64Array
  private readonly connectStates: Float64Array
  private readonly sent: Float64Array
  messages = 0
  bytes = 0
  refused = 0

  constructor (engine: Engine, spec: AdvisorySpec) {
    this.engine = engine
    this.spec = spec
    this.offerOn = new Set(spec.on.map(o => Number(o.slice(5))))
    const minutes = Math.ceil(engine.scenario.duration / MINUTE) + 1
    this.firings = new Float64Array(minutes)
    this.connectStates = new Float64Array(minutes)
    this.sent = new Float64Array(minutes)
  }

  private ensure (i: number): Advisory | undefined {
    const e = this.engine
    const n = e.nodes[i]
    if (n === undefined || n.virtual) return undefined
    let core = this.cores[i]
    if (core !== undefined) return core
    this.adoptedAt[i] = NaN
    this.offerAt[i] = NaN
    this.deployment ??= makeDeployment(e.random.fork(0xad), e.builds[this.spec.build]!)
    const trust = new LaptopTrust(this.deployment.rootKey, () => this.engine.now)
    core = new Advisory({
      verify: trust.verify,
      random: n.random.fork(11).fn,
      ...(this.spec.iminMs !== undefined ? { iminMs: this.spec.iminMs } : {}),
      ...(this.spec.doublings !== undefined ? { imaxDoublings: this.spec.doublings } : {}),
      ...(this.spec.k !== undefined ? { k: this.spec.k } : {})
    })
    this.cores[i] = core
    this.trust[i] = trust
    if (this.offerOn.has(i)) this.offerAt[i] = this.spec.at
    return core
  }

  private feed (i: number, input: AdvisoryInput): void {
    const core = this.ensure(i)
    const e = this.engine
    if (core === undefined || !e.nodes[i]!.on) return
    const outs = core.handle(input, e.now)
    const minute = Math.min(this.sent.length - 1, Math.floor(e.now / MINUTE))
    let states = 0
    for (const o of outs) {
      if (o.type === 'refuse') this.refused++
      else if (o.type === 'adopt') this.adopt(i)
      else if (o.type === 'send') {
        if (o.message.type === 'state') states++
        const bytes = encodeMessage(o.message)
        // a frame is its uvarint length and the message
        const size = bytes.length + (bytes.length < 128 ? 1 : bytes.length < 16384 ? 2 : 3)
        this.messages++
        this.bytes += size
        this.sent[minute]!++
        e.sendElection(i, Number(o.peer), new AdvisoryFrame(decodeMessage(bytes)), size)
      }
    }
    // a connection brings exactly one State (to the new peer); any other State is Trickle's, to every peer at once
    const onConnect = input.type === 'connected' && states > 0 ? 1 : 0
    this.connectStates[minute]! += onConnect
    if (states - onConnect > 0) this.firings[minute]!++
  }

  /** The laptop trusts a new snapshot: its exchange core fetches every build it advises (targets: everyone here). */
  private adopt (i: number): void {
    const e = this.engine
    if (!Number.isNaN(this.adoptedAt[i] ?? NaN)) return
    this.adoptedAt[i] = e.now
    for (const cid of this.trust[i]!.advised) {
      const b = e.buildByKey.get(cidKey(cid))
      if (b !== undefined) e.queue.push(e.now, EV.HOLD, i, b.index)
    }
  }

  up (node: number): void { this.feed(node, { type: 'timer' }) }
  down (): void {}
  connected (a: number, b: number): void {
    if (this.engine.nodes[a]!.virtual || this.engine.nodes[b]!.virtual) return
    this.feed(a, { type: 'connected', peer: String(b) })
    this.feed(b, { type: 'connected', peer: String(a) })
  }

  disconnected (a: number, b: number): void {
    if (this.engine.nodes[a]!.virtual || this.engine.nodes[b]!.virtual) return
    this.feed(a, { type: 'disconnected', peer: String(b) })
    this.feed(b, { type: 'disconnected', peer: String(a) })
  }

  message (to: number, from: number, frame: AdvisoryFrame): void {
    this.feed(to, { type: 'message', peer: String(from), message: frame.message })
  }

  timer (node: number): void {
    const e = this.engine
    if ((this.offerAt[node] ?? NaN) <= e.now) {
      // the stick is plugged in (or the staging agent hands it over): the laptop verifies it like any other
      this.offerAt[node] = NaN
      const d = this.deployment!
      this.feed(node, { type: 'offer', snapshot: d.snapshot, roots: d.roots })
    }
    this.feed(node, { type: 'timer' })
  }

  nextDeadline (node: number): number | undefined {
    const d = this.cores[node]?.nextDeadline()
    const offer = this.offerAt[node]
    if (offer === undefined || Number.isNaN(offer)) return d
    return d === undefined ? offer : Math.min(d, offer)
  }

  summary (): AdvisorySummary {
    const e = this.engine
    const s = this.spec
    const duration = e.scenario.duration
    const laptops = e.nodes.filter(n => !n.virtual)
    const b = s.build
    const adopted = laptops.map(n => this.adoptedAt[n.id] ?? NaN)
    const installed = laptops.map((n, k) => {
      const a = adopted[k]!
      if (Number.isNaN(a) || n.held[b]?.complete !== true) return NaN
      const done = Number.isNaN(n.completeAt[b]!) ? 0 : n.completeAt[b]!
      return Math.max(a, done) + s.applyMs
    })
    const q = (times: number[], f: number): number | null => {
      const t = times.map(x => Number.isNaN(x) || x > duration ? Infinity : x).sort((x, y) => x - y)
      const v = t[Math.max(0, Math.ceil(f * t.length) - 1)]!
      return Number.isFinite(v) ? round((v - s.at) / 1000) : null
    }
    const first = (times: number[]): number | null => {
      const ok = times.filter(x => !Number.isNaN(x) && x <= duration)
      return ok.length === 0 ? null : round((Math.min(...ok) - s.at) / 1000)
    }
    const last = q(adopted, 1)
    const imax = (s.iminMs ?? DEFAULT_IMIN_MS) * 2 ** (s.doublings ?? DEFAULT_IMAX_DOUBLINGS)
    // rates once converged: from Imax after the last adoption (Trickle's intervals have grown to Imax) to the end, in whole minutes
    const from = last === null ? undefined : Math.ceil((s.at + last * 1000 + imax) / MINUTE)
    const to = Math.floor(duration / MINUTE)
    const rate = (per: Float64Array): number | null => {
      if (from === undefined || to - from < 1) return null
      let sum = 0
      for (let m = from; m < to; m++) sum += per[m]!
      return round(sum / laptops.length / ((to - from) / 60), 2)
    }
    return {
      build: e.builds[b]!.name,
      at_s: s.at / 1000,
      laptops: laptops.length,
      reached: adopted.filter(x => !Number.isNaN(x)).length,
      first_s: first(adopted),
      p50_s: q(adopted, 0.5),
      last_s: last,
      installed: installed.filter(x => !Number.isNaN(x) && x <= duration).length,
      install_first_s: first(installed),
      install_p50_s: q(installed, 0.5),
      install_last_s: q(installed, 1),
      steady_from_s: from === undefined || to - from < 1 ? null : from * 60,
      steady_to_s: from === undefined || to - from < 1 ? null : to * 60,
      adverts_per_laptop_hour: rate(this.firings),
      messages_per_laptop_hour: rate(this.sent),
      connect_states_per_laptop_hour: rate(this.connectStates),
      messages: this.messages,
      bytes: this.bytes,
      refused: this.refused
    }
  }
}

function round (x: number, digits = 3): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}
