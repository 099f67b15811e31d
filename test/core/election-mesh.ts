// A deterministic harness for election cores: peers wired by an undirected
// topology of links with per-link latency (FIFO), one event queue ordered by
// (time, sequence), fake time. Frames go through the real codec and
// FrameReader when `wire` is set. Crashes, restarts, links up and down,
// partitions and merges are methods; every role event is logged.
import { Election, FrameReader, checksumAuthenticator, decodeFrame, encodeFrame } from '../../src/core/election/index.ts'
import type { Capability, ElectionConfig, ElectionInput, ElectionMessage, ElectionOutput, RoleState } from '../../src/core/election/index.ts'
import { rng } from './mesh.ts'
import { EventQueue } from './event-queue.ts'

export { rng }

export interface Peer {
  id: string
  core: Election | undefined
  capability: Capability
  incarnation: number
  /** Bumped at every (re)start and crash: stale timer events are skipped. */
  life: number
  timerAt: number | undefined
  readonly roles: Array<{ t: number, state: RoleState, previous: RoleState }>
  readonly bans: Array<{ t: number, peer: string, reason: string }>
}

interface Link { latency: number, up: boolean, epoch: number, readers: Map<string, FrameReader> }

export interface ElectionMeshOptions {
  seed?: number
  config?: Partial<ElectionConfig>
  /** One-way latency of a new link is uniform in [min, max] ms. */
  latency?: [number, number]
  /** Encode and decode every frame with the real codec (default true). */
  wire?: boolean
  /** Probability that a crash is seen at once by a neighbour (its TCP connection resets); else the link just goes silent. */
  crashNoticed?: number
}

export class ElectionMesh {
  now = 0
  readonly random: () => number
  readonly peers = new Map<string, Peer>()
  private readonly links = new Map<string, Link>()
  private readonly queue = new EventQueue()
  private epoch = 0
  readonly opts: Required<ElectionMeshOptions>
  /** Frames delivered. */
  frames = 0

  constructor (opts: ElectionMeshOptions = {}) {
    this.opts = { seed: 1, config: {}, latency: [1, 20], wire: true, crashNoticed: 0.5, ...opts }
    this.random = rng(this.opts.seed)
  }

  static key (a: string, b: string): string { return a < b ? `${a}|${b}` : `${b}|${a}` }

  peer (id: string): Peer {
    const p = this.peers.get(id)
    if (p === undefined) throw new Error(`no peer ${id}`)
    return p
  }

  alive (id: string): boolean { return this.peers.get(id)?.core !== undefined }

  /** Starts a peer now (its links come up if the other end is alive). */
  add (id: string, capability: Capability): Peer {
    const p: Peer = { id, core: undefined, capability: { ...capability }, incarnation: 0, life: 0, timerAt: undefined, roles: [], bans: [] }
    this.peers.set(id, p)
    this.start(p)
    return p
  }

  private start (p: Peer): void {
    p.incarnation++
    p.life++
    p.core = new Election({
      self: p.id,
      capability: p.capability,
      authenticator: checksumAuthenticator(p.id),
      random: rng(Math.floor(this.random() * 2 ** 32)),
      incarnation: p.incarnation,
      config: this.opts.config,
      now: this.now
    })
    for (const [k, l] of this.links) {
      const [a, b] = k.split('|') as [string, string]
      if (!l.up || (a !== p.id && b !== p.id)) continue
      const other = a === p.id ? b : a
      if (this.alive(other)) this.open(a, b, l)
    }
    this.schedule(p)
  }

  /** The link's streams open: both ends learn of each other after one latency. */
  private open (a: string, b: string, l: Link): void {
    const epoch = l.epoch = ++this.epoch
    l.readers = new Map([[a, new FrameReader()], [b, new FrameReader()]])
    this.at(this.now + l.latency, () => {
      if (l.epoch !== epoch || !l.up || !this.alive(a) || !this.alive(b)) return
      this.feed(a, { type: 'neighbour-up', peer: b })
      this.feed(b, { type: 'neighbour-up', peer: a })
    })
  }

  /** Brings a link up (a no-op when it is). */
  link (a: string, b: string, latency?: number): void {
    const k = ElectionMesh.key(a, b)
    let l = this.links.get(k)
    if (l?.up === true) return
    if (l === undefined) {
      const [min, max] = this.opts.latency
      l = { latency: latency ?? min + Math.floor(this.random() * (max - min + 1)), up: true, epoch: 0, readers: new Map() }
      this.links.set(k, l)
    }
    l.up = true
    if (this.alive(a) && this.alive(b)) this.open(a, b, l)
  }

  /** Takes a link down: frames in flight are lost, both ends see neighbour-down. */
  unlink (a: string, b: string): void {
    const l = this.links.get(ElectionMesh.key(a, b))
    if (l === undefined || !l.up) return
    l.up = false
    l.epoch = ++this.epoch
    for (const [x, y] of [[a, b], [b, a]] as const) if (this.alive(x)) this.feed(x, { type: 'neighbour-down', peer: y })
  }

  isLinked (a: string, b: string): boolean { return this.links.get(ElectionMesh.key(a, b))?.up === true }

  /** Kills a peer: nothing of it survives but its incarnation counter (the driver persists it). */
  crash (id: string): void {
    const p = this.peer(id)
    if (p.core === undefined) return
    p.core = undefined
    p.life++
    for (const [k, l] of this.links) {
      const [a, b] = k.split('|') as [string, string]
      if (!l.up || (a !== id && b !== id)) continue
      const other = a === id ? b : a
      l.epoch = ++this.epoch
      if (this.alive(other) && this.random() < this.opts.crashNoticed) this.feed(other, { type: 'neighbour-down', peer: id })
    }
  }

  restart (id: string): void {
    const p = this.peer(id)
    if (p.core !== undefined) return
    this.start(p)
  }

  setCapability (id: string, capability: Capability): void {
    const p = this.peer(id)
    p.capability = { ...capability }
    if (p.core !== undefined) this.feed(id, { type: 'capability', capability })
  }

  /** Groups of alive peers connected by up links. */
  components (): string[][] {
    const seen = new Set<string>()
    const out: string[][] = []
    const ids = [...this.peers.keys()].filter(id => this.alive(id)).sort()
    const adj = new Map<string, string[]>(ids.map(id => [id, []]))
    for (const [k, l] of this.links) {
      if (!l.up) continue
      const [a, b] = k.split('|') as [string, string]
      if (!this.alive(a) || !this.alive(b)) continue
      adj.get(a)!.push(b)
      adj.get(b)!.push(a)
    }
    for (const id of ids) {
      if (seen.has(id)) continue
      const comp: string[] = []
      const stack = [id]
      seen.add(id)
      while (stack.length > 0) {
        const x = stack.pop()!
        comp.push(x)
        for (const y of adj.get(x)!) if (!seen.has(y)) { seen.add(y); stack.push(y) }
      }
      out.push(comp.sort())
    }
    return out
  }

  /** Longest shortest path (hops) within any component. */
  diameter (): number {
    let d = 0
    for (const comp of this.components()) {
      for (const s of comp) {
        const dist = new Map([[s, 0]])
        const q = [s]
        while (q.length > 0) {
          const x = q.shift()!
          for (const y of comp) {
            if (!dist.has(y) && this.isLinked(x, y)) { dist.set(y, dist.get(x)! + 1); q.push(y) }
          }
        }
        for (const v of dist.values()) d = Math.max(d, v)
      }
    }
    return d
  }

  state (id: string): RoleState | undefined { return this.peer(id).core?.state() }

  // ---- running ------------------------------------------------------------------

  private at (time: number, run: () => void): void {
    this.queue.at(time, run)
  }

  private schedule (p: Peer): void {
    const core = p.core
    if (core === undefined) return
    const t = core.nextDeadline()
    if (t === undefined || t === p.timerAt) return
    p.timerAt = t
    const life = p.life
    this.at(Math.max(t, this.now), () => {
      if (p.life !== life || p.timerAt !== t) return
      p.timerAt = undefined
      this.feed(p.id, { type: 'timer' })
    })
  }

  /** Feeds one input to a peer's core now and carries out its outputs. */
  feed (id: string, input: ElectionInput): ElectionOutput[] {
    const p = this.peer(id)
    const core = p.core
    if (core === undefined) return []
    const outs = core.handle(input, this.now)
    for (const o of outs) this.act(p, o)
    this.schedule(p)
    return outs
  }

  private act (p: Peer, o: ElectionOutput): void {
    switch (o.type) {
      case 'send': this.transmit(p.id, o.peer, o.message); break
      case 'broadcast':
        for (const n of p.core!.neighbourIds()) if (n !== o.except) this.transmit(p.id, n, o.message)
        break
      case 'role': p.roles.push({ t: this.now, state: o.state, previous: o.previous }); break
      case 'ban': p.bans.push({ t: this.now, peer: o.peer, reason: o.reason }); this.unlink(p.id, o.peer); break
    }
  }

  /** Sends a message from a to b over their link (lost if the link is down). */
  transmit (from: string, to: string, message: ElectionMessage): void {
    const l = this.links.get(ElectionMesh.key(from, to))
    if (l === undefined || !l.up) return
    const epoch = l.epoch
    const bytes = this.opts.wire ? encodeFrame(message) : undefined
    this.at(this.now + l.latency, () => {
      if (l.epoch !== epoch || !l.up || !this.alive(to)) return
      this.frames++
      if (bytes === undefined) {
        this.feed(to, { type: 'message', peer: from, message })
        return
      }
      const bodies = l.readers.get(to)!.push(bytes)
      for (const b of bodies) this.feed(to, { type: 'message', peer: from, message: decodeFrame(b) })
    })
  }

  /** Sends raw bytes from a (scripted) peer to b, as a hostile peer would. */
  inject (from: string, to: string, bytes: Uint8Array): void {
    const l = this.links.get(ElectionMesh.key(from, to))
    if (l === undefined || !l.up) return
    const epoch = l.epoch
    this.at(this.now + l.latency, () => {
      if (l.epoch !== epoch || !l.up || !this.alive(to)) return
      let bodies: Uint8Array[]
      try {
        bodies = l.readers.get(to)!.push(bytes)
      } catch (err) {
        this.feed(to, { type: 'malformed', peer: from, reason: (err as Error).message })
        return
      }
      for (const b of bodies) {
        let m: ElectionMessage
        try {
          m = decodeFrame(b)
        } catch (err) {
          this.feed(to, { type: 'malformed', peer: from, reason: (err as Error).message })
          continue
        }
        this.feed(to, { type: 'message', peer: from, message: m })
      }
    })
  }

  /** Runs every event up to and including time t; then now = t. Bounded by maxEvents. */
  runUntil (t: number, maxEvents = 5_000_000): void {
    let n = 0
    for (;;) {
      const e = this.queue.peek()
      if (e === undefined || e.time > t) break
      this.queue.pop()
      this.now = e.time
      e.run()
      if (++n > maxEvents) throw new Error(`more than ${maxEvents} events before ${t}`)
    }
    this.now = t
  }

  /** The last role event of any peer at or before now, or -Infinity. */
  lastRoleEvent (): number {
    let t = -Infinity
    for (const p of this.peers.values()) {
      const r = p.roles[p.roles.length - 1]
      if (r !== undefined) t = Math.max(t, r.t)
    }
    return t
  }

  /**
   * Checks that every component has exactly one server and every member
   * follows it with the same term; returns what is wrong, or undefined.
   */
  checkOneServer (): string | undefined {
    for (const comp of this.components()) {
      const states = comp.map(id => [id, this.state(id)!] as const)
      const servers = states.filter(([, s]) => s.role === 'server').map(([id]) => id)
      if (servers.length !== 1) return `component ${comp.join(',')} has ${servers.length} servers (${servers.join(',')}) at ${this.now}`
      const server = servers[0]!
      const term = this.state(server)!.term
      for (const [id, s] of states) {
        if (s.server !== server || s.term !== term) return `${id} follows ${s.server} term ${s.term}, not ${server} term ${term} at ${this.now} (component ${comp.join(',')})`
      }
    }
    return undefined
  }
}
