// The election core (src/core/election, the agent's own) on every laptop of
// a run: the ElectionModel the engine drives. Claims travel over the same
// connections as the exchange (a broadcast is one frame per neighbour, its
// bytes counted once on the air: one transmission on a radio). Capabilities
// come from the world: pinned for role: server, upstream while the uplink is
// connected, AC power, battery level, uptime. No keys: the checksum
// authenticator (simulators only).
import { checksumAuthenticator, createElection, type Capability, type Election, type ElectionMessage, type ElectionOutput, type RoleState } from '../src/core/election/index.ts'
import type { Engine } from './engine.ts'
import type { ElectionModel } from './election.ts'

/** The agent re-reads its facts (battery, uptime) this often, ms. */
const CAPABILITY_EVERY = 60_000

function claimsBytes (m: ElectionMessage): number {
  let n = 8
  for (const c of m.claims) n += c.bytes.length + c.signature.length + 12
  return n
}

export class CoreElection implements ElectionModel {
  readonly name = 'xo-mesh/election/1.0.0'
  private readonly engine: Engine
  private readonly cores: Array<Election | undefined>
  private readonly states: Array<RoleState | undefined>
  private readonly factsAt: number[] = []
  private readonly startedAt: number[] = []
  private readonly pinned: (i: number) => boolean
  private readonly freeDisk: number[] = []
  /** Role changes seen, for the summary. */
  roleEvents = 0

  /** pinned(i): whether node i is configured as the school's server (role: server). */
  constructor (engine: Engine, pinned: (i: number) => boolean) {
    this.engine = engine
    this.pinned = pinned
    this.cores = []
    this.states = []
  }

  private ensure (i: number): Election | undefined {
    const n = this.engine.nodes[i]
    if (n === undefined || n.virtual) return undefined
    let core = this.cores[i]
    if (core === undefined) {
      this.freeDisk[i] = 2000 + Math.floor(n.random.next() * 8000)
      this.startedAt[i] = this.engine.now
      core = createElection({ self: String(i), capability: this.facts(i), authenticator: checksumAuthenticator(String(i)), random: n.random.fork(7).fn, now: this.engine.now })
      this.cores[i] = core
      this.states[i] = core.state()
      this.factsAt[i] = this.engine.now
    }
    return core
  }

  private facts (i: number): Capability {
    const e = this.engine
    const n = e.nodes[i]!
    const ac = Number.isNaN(n.battery)
    return {
      pinned: this.pinned(i),
      upstream: e.mothership >= 0 && n.conns.has(e.mothership),
      ac,
      battery: ac ? 100 : Math.round(n.battery * 100),
      freeDiskMiB: this.freeDisk[i]!,
      uptimeS: Math.floor((e.now - this.startedAt[i]!) / 1000)
    }
  }

  private feed (i: number, input: Parameters<Election['handle']>[0]): void {
    const core = this.ensure(i)
    if (core === undefined || !this.engine.nodes[i]!.on) return
    const e = this.engine
    if (input.type !== 'capability' && e.now - this.factsAt[i]! >= CAPABILITY_EVERY) {
      this.factsAt[i] = e.now
      this.act(i, core.handle({ type: 'capability', capability: this.facts(i) }, e.now))
    }
    this.act(i, core.handle(input, e.now))
  }

  private act (i: number, outs: ElectionOutput[]): void {
    const e = this.engine
    const n = e.nodes[i]!
    for (const o of outs) {
      switch (o.type) {
        case 'send':
          e.sendElection(i, Number(o.peer), o.message, claimsBytes(o.message))
          break
        case 'broadcast':
          e.broadcastElection(i, o.except === undefined ? -1 : Number(o.except), o.message, claimsBytes(o.message))
          break
        case 'role':
          this.states[i] = o.state
          this.roleEvents++
          break
        case 'ban': {
          const peer = Number(o.peer)
          n.refused.set(peer, o.until)
          e.close(i, peer)
          break
        }
      }
    }
  }

  up (node: number): void {
    if (this.ensure(node) === undefined) return
    this.feed(node, { type: 'capability', capability: this.facts(node) })
    this.factsAt[node] = this.engine.now
  }

  down (_node: number): void {
    // a sleeping or departed laptop's agent keeps its state; its links closed already
  }

  connected (a: number, b: number): void {
    if (this.engine.nodes[a]!.virtual || this.engine.nodes[b]!.virtual) {
      // the uplink changes a laptop's facts, not its neighbours
      const x = this.engine.nodes[a]!.virtual ? b : a
      if (this.ensure(x) !== undefined) this.feed(x, { type: 'capability', capability: this.facts(x) })
      return
    }
    this.feed(a, { type: 'neighbour-up', peer: String(b) })
    this.feed(b, { type: 'neighbour-up', peer: String(a) })
  }

  disconnected (a: number, b: number): void {
    if (this.engine.nodes[a]!.virtual || this.engine.nodes[b]!.virtual) {
      const x = this.engine.nodes[a]!.virtual ? b : a
      if (this.ensure(x) !== undefined) this.feed(x, { type: 'capability', capability: this.facts(x) })
      return
    }
    this.feed(a, { type: 'neighbour-down', peer: String(b) })
    this.feed(b, { type: 'neighbour-down', peer: String(a) })
  }

  message (to: number, from: number, message: unknown): void {
    this.feed(to, { type: 'message', peer: String(from), message: message as ElectionMessage })
  }

  timer (node: number): void {
    this.feed(node, { type: 'timer' })
  }

  nextDeadline (node: number): number | undefined {
    return this.cores[node]?.nextDeadline()
  }

  serverOf (node: number): number | undefined {
    const s = this.states[node]
    return s === undefined || s.server === null ? undefined : Number(s.server)
  }

  /** Whether the node holds the server role now. */
  serving (node: number): boolean {
    return this.states[node]?.role === 'server'
  }
}
