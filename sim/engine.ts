// The simulation engine: one event queue in (time, sequence) order, one
// exchange core per node (the agent's own, src/core/exchange), connections
// between nodes in radio range carried over the shared-channel model
// (radio.ts) or a wired uplink, and a synthetic store per node. It reads no
// clock and draws no randomness but the run's seeded streams: the same
// scenario and seed give the same event trace, which a TraceSink may hash.
import { Exchange, cidKey } from '../src/core/exchange/index.ts'
import type { Blocks, ControlMessage, ExchangeInput, ExchangeOutput, Message } from '../src/core/exchange/index.ts'
import { EventQueue, type SimEvent } from './queue.ts'
import { Random } from './random.ts'
import { Radio, type Domain, type Flow } from './radio.ts'
import { phyFor } from './phy.ts'
import { HeldBuild, makeBuild, type SimBuild } from './builds.ts'
import type { Scenario } from './scenario.ts'
import type { ElectionModel } from './election.ts'

export const EV = { TIMER: 0, DELIVER: 1, DOMAIN: 2, WIRE: 3, CONNECT: 4, HOLD: 5, WORLD: 6, SAMPLE: 7, ELECTION: 8, CLAIMS: 9 } as const

/** Receives every event the engine runs, in order (for the trace hash). */
export interface TraceSink {
  event (time: number, seq: number, kind: number, node: number, a: number): void
}

/** Bytes of a data frame's head besides 6 per entry (length prefix, root, field tags). */
const FRAME_HEAD = 48
/** How long after coming up a node finds a neighbour (mDNS), ms: a base and a random spread. */
const DISCOVERY_BASE = 200
const DISCOVERY_SPREAD = 3000
/** A connection the core refused is tried again after this long, ms (plus up to as much again). */
const REDIAL = 10_000
/** One-way delay of an uplink to the mothership, ms. */
const UPLINK_LATENCY = 40
const EMPTY = new Uint8Array(0)
/** The engine's own world event: look for neighbours again (world.ts's kinds are below 100). */
const REDISCOVER = 100

/** What a stream carries, with the stream it goes on: the event that delivers it needs nothing else (one object per message). */
type Item = { stream: Stream, data: false, proto: 0 | 1, message: unknown, bytes: number } | { stream: Stream, data: true, frame: Blocks, bytes: number, root: Uint8Array, indices: Uint32Array, missing: number[], cids: Uint8Array[] }

/** One direction of a connection: a FIFO stream. */
class Stream {
  readonly from: number
  readonly to: number
  readonly conn: Conn
  readonly queue: Item[] = []
  head = 0
  busy: Flow | SimEvent | undefined
  current: Item | undefined
  constructor (from: number, to: number, conn: Conn) { this.from = from; this.to = to; this.conn = conn }
}

/** A connection between two nodes: over the radio, or a wired uplink (bytes per ms each way). */
export class Conn {
  readonly a: number
  readonly b: number
  readonly epoch: number
  open = true
  readonly ab: Stream
  readonly ba: Stream
  readonly wire: { rateAB: number, rateBA: number } | undefined
  constructor (a: number, b: number, epoch: number, wire?: { rateAB: number, rateBA: number }) {
    this.a = a
    this.b = b
    this.epoch = epoch
    this.ab = new Stream(a, b, this)
    this.ba = new Stream(b, a, this)
    this.wire = wire
  }

  from (n: number): Stream { return n === this.a ? this.ab : this.ba }
}

/**
 * One election frame from a node to some of its neighbours, all delivered by
 * one event after the latency: its own stream of the connection (as the
 * agent's election protocol is), not queued behind the exchange's frames.
 * Each receiver gets it if the connection it was sent on is still open.
 */
interface ClaimsDelivery { from: number, message: unknown, to: number[], epochs: number[] }

export class SimNode {
  /** Index in this engine's arrays. */
  readonly id: number
  /** Its number in the whole scenario (node-K): the id, unless the run is in parts (sim/parts.ts). */
  readonly index: number
  readonly name: string
  readonly group: number
  core: Exchange
  readonly held: Array<HeldBuild | undefined>
  readonly conns = new Map<number, Conn>()
  readonly random: Random
  /** Up: awake and present (false while asleep, away or out of battery). */
  on = false
  timerAt: number | undefined
  readonly pending: ExchangeInput[] = []
  readonly completeAt: Float64Array
  /** Leaf bytes sent and received in data frames. */
  bytesUp = 0
  bytesDown = 0
  manifestDown = 0
  /** Time spent up, ms, and since when it is up. */
  upTime = 0
  upSince = 0
  /** 0–1, or NaN on AC power. */
  battery: number
  readonly virtual: boolean
  /** Peers refused until then (bans). */
  readonly refused = new Map<number, number>()

  constructor (id: number, index: number, name: string, group: number, builds: number, random: Random, core: Exchange, battery: number, virtual: boolean) {
    this.id = id
    this.index = index
    this.name = name
    this.group = group
    this.held = new Array<HeldBuild | undefined>(builds).fill(undefined)
    this.completeAt = new Float64Array(builds).fill(NaN)
    this.random = random
    this.core = core
    this.battery = battery
    this.virtual = virtual
  }
}

export interface EngineHooks {
  /** Called about every `progressEvery` events with the simulated time. */
  progress?: (now: number, events: number) => void
  progressEvery?: number
  trace?: TraceSink
  election?: ElectionModel
  /** Called at every sample tick (metrics). */
  sample?: (engine: Engine, now: number) => void
  /** Called for world events the engine does not handle itself. */
  world?: (engine: Engine, e: SimEvent) => void
}

export class Engine {
  readonly scenario: Scenario
  readonly queue = new EventQueue()
  readonly random: Random
  readonly radio: Radio
  readonly nodes: SimNode[] = []
  readonly builds: SimBuild[] = []
  readonly buildByKey = new Map<string, SimBuild>()
  /** The mothership's index (a virtual node off the radio), or -1. */
  mothership = -1
  now = 0
  events = 0
  private epoch = 0
  readonly hooks: EngineHooks
  /** Control bytes sent over the radio (counted in radio.bytesOnAir as well). */
  controlBytes = 0
  /** Bytes over uplinks. */
  uplinkBytes = 0
  /** Per event kind, how many ran. */
  readonly counts = new Float64Array(16)
  /** Exchange messages delivered, by type ('blocks': data frames). */
  readonly delivered = new Map<string, number>()
  /** Maximum connections per node. */
  readonly maxPeers: number
  private readonly latency: number
  /** Times a core asked for a timer at or before the time of the timer it was just given (a spin the engine breaks). */
  timerSpins = 0
  firstTimerSpin: { node: number, t: number } | undefined
  /** Per node: the election deadline scheduled (NaN: none). */
  private electionAt = new Float64Array(0)
  /** Per node: when its set of radio connections last changed, ms. */
  lastChange = new Float64Array(0)
  /**
   * Per node: its peer id as the cores see it. One string per node for the
   * whole run, so the cores' maps hash it once, not a new string per input.
   */
  private readonly peerNames: string[] = []

  /** The builds' leaf sizes are drawn from it: in a run in parts, a stream of the seed alone, so every part has the same builds. */
  private readonly buildRandom: Random | undefined

  /** part: the group this engine simulates alone (parts: groups), with streams of its own; undefined: the whole scenario. */
  constructor (scenario: Scenario, hooks: EngineHooks = {}, part?: number) {
    this.scenario = scenario
    this.hooks = hooks
    this.random = new Random(part === undefined ? [scenario.seed, 0x5eed] : [scenario.seed, 0x5eed, 0x9a47, part])
    this.buildRandom = part === undefined ? undefined : new Random([scenario.seed, 0x5eed, 0xb11d])
    const phy = phyFor(scenario.radio.standard, scenario.radio.rateMbps, scenario.radio.loss)
    this.latency = scenario.radio.latencyMs
    this.maxPeers = scenario.exchange.maxPeers
    // the node count is known once the world has placed them: the radio is sized by addNode's caller (world.ts) through init
    this.radio = undefined as unknown as Radio
    void phy
  }

  /** Sizes the radio and creates builds; world.ts calls it once it knows the node count. */
  init (nodeCount: number): void {
    const s = this.scenario
    const phy = phyFor(s.radio.standard, s.radio.rateMbps, s.radio.loss)
    ;(this as { radio: Radio }).radio = new Radio(phy, s.radio.rangeM, nodeCount, (time, d, gen) => { this.queue.push(time, EV.DOMAIN, -1, gen, d) })
    const buildRandom = this.buildRandom ?? this.random.fork(1)
    for (const [i, c] of s.content.entries()) {
      const b = makeBuild(buildRandom, i, c.name, c.bytes)
      this.builds.push(b)
      this.buildByKey.set(b.key, b)
    }
  }

  /** Creates a node (not yet up); index: its number in the whole scenario. */
  addNode (name: string, group: number, battery: number, virtual = false, index = this.nodes.length): SimNode {
    const id = this.nodes.length
    const random = this.random.fork(100 + id)
    const core = this.newCore(random, virtual)
    this.peerNames.push(String(id))
    const n = new SimNode(id, index, name, group, this.builds.length, random, core, battery, virtual)
    this.nodes.push(n)
    if (this.electionAt.length < this.nodes.length) {
      const size = Math.max(16, this.nodes.length * 2)
      const ea = new Float64Array(size).fill(NaN)
      ea.set(this.electionAt)
      this.electionAt = ea
      const lc = new Float64Array(size)
      lc.set(this.lastChange)
      this.lastChange = lc
    }
    return n
  }

  /** A laptop's exchange core; the mothership's (virtual) serves every school's uplink at once. */
  private newCore (random: Random, mothership: boolean): Exchange {
    const x = this.scenario.exchange
    const many = 1_000_000
    return new Exchange({
      random: random.fn,
      now: this.now,
      maxPeers: mothership ? many : x.maxPeers + 1, // the mothership's connection on top of the radio peers
      ...(mothership ? { uploadSlots: many, newPeersPerSecond: many } : x.uploadSlots !== undefined ? { uploadSlots: x.uploadSlots } : {}),
      ...(x.announceDelayMs !== undefined ? { tuning: { announceDelay: x.announceDelayMs } } : {})
    })
  }

  private peerName (i: number): string { return this.peerNames[i]! }

  /** The build a root names: by identity first (the cores pass the build's own root along), else by its key. */
  private buildOf (root: Uint8Array): SimBuild | undefined {
    for (const b of this.builds) if (b.root === root) return b
    return this.buildByKey.get(cidKey(root))
  }

  /** Gives a node a complete copy of a build (on its disk from the start). */
  give (node: number, build: number): void {
    this.nodes[node]!.held[build] = new HeldBuild(this.builds[build]!, true)
  }

  // ---- the loop ---------------------------------------------------------------

  /** Runs every event up to `until` ms. */
  run (until: number): void {
    const every = this.hooks.progressEvery ?? 200_000
    const trace = this.hooks.trace
    for (;;) {
      if (this.queue.peekTime() > until) break
      const e = this.queue.pop()!
      this.now = e.time
      this.events++
      this.counts[e.kind]!++
      trace?.event(e.time, e.seq, e.kind, e.node, e.a)
      this.dispatch(e)
      if (this.events % every === 0) this.hooks.progress?.(this.now, this.events)
    }
    this.now = until
  }

  private dispatch (e: SimEvent): void {
    switch (e.kind) {
      case EV.TIMER: {
        const n = this.nodes[e.node]!
        if (n.timerAt !== e.a) return
        n.timerAt = undefined
        this.feed(n, { type: 'timer' })
        return
      }
      case EV.DELIVER: return this.deliver(e.ref as Item)
      case EV.CLAIMS: return this.deliverClaims(e.ref as ClaimsDelivery)
      case EV.DOMAIN: {
        for (const f of this.radio.onDomainEnd(e.ref as Domain, e.a, this.now)) this.sent(f.token as Stream)
        return
      }
      case EV.WIRE: {
        const s = e.ref as Stream
        if (s.busy !== e || !s.conn.open) return
        this.sent(s)
        return
      }
      case EV.CONNECT: return this.tryConnect(e.node, e.a)
      case EV.HOLD: {
        const n = this.nodes[e.node]!
        this.feed(n, { type: 'hold', root: this.builds[e.a]!.root })
        return
      }
      case EV.SAMPLE:
        this.hooks.sample?.(this, this.now)
        return
      case EV.ELECTION: {
        const el = this.hooks.election
        const n = this.nodes[e.node]!
        if (el === undefined || this.electionAt[e.node] !== e.a) return
        this.electionAt[e.node] = NaN
        if (!n.on) return
        el.timer(e.node, this.now)
        this.scheduleElection(e.node)
        return
      }
      case EV.WORLD:
        if (e.a === REDISCOVER) {
          if (this.nodes[e.node]!.on) this.discover(e.node)
          return
        }
        this.hooks.world?.(this, e)
        return
      default:
        this.hooks.world?.(this, e)
    }
  }

  // ---- cores ----------------------------------------------------------------

  /** Feeds one input to a node's core and carries out what it asks, then its follow-up inputs. */
  feed (n: SimNode, input: ExchangeInput): void {
    if (!n.on) return
    let next: ExchangeInput | undefined = input
    while (next !== undefined) {
      const outs = n.core.handle(next, this.now)
      for (let k = 0; k < outs.length; k++) this.act(n, outs[k]!)
      next = n.pending.shift()
    }
    let d = n.core.nextDeadline()
    if (d !== undefined && input.type === 'timer' && d <= this.now) {
      // the core wants a timer at once right after one: it would spin at this instant for ever.
      // Count it (the summary reports it) and give it the next millisecond instead.
      this.timerSpins++
      this.firstTimerSpin ??= { node: n.id, t: this.now }
      d = this.now + 1
    }
    if (d !== undefined && (n.timerAt === undefined || d < n.timerAt)) {
      n.timerAt = d
      this.queue.push(Math.max(d, this.now), EV.TIMER, n.id, d)
    }
  }

  private act (n: SimNode, o: ExchangeOutput): void {
    switch (o.type) {
      case 'send': return this.sendControl(n, o.peer, o.message)
      case 'serve': return this.serve(n, o.peer, o.root, o.indices, o.cids)
      case 'store': return this.store(n, o.peer, o.root, o.blocks, o.entries)
      case 'load': {
        const b = this.buildOf(o.root)
        if (b === undefined) {
          n.pending.push({ type: 'loaded', root: o.root, result: { status: 'failed', reason: 'unknown build' } })
          return
        }
        let h = n.held[b.index]
        if (h === undefined) h = n.held[b.index] = new HeldBuild(b, false)
        n.pending.push({ type: 'loaded', root: o.root, result: h.load() })
        return
      }
      case 'ban': {
        const peer = Number(o.peer)
        n.refused.set(peer, o.until)
        this.close(n.id, peer)
        return
      }
      case 'disconnect': {
        const peer = Number(o.peer)
        this.close(n.id, peer)
        // the dialer tries again later (a limit, not misbehaviour)
        this.queue.push(this.now + REDIAL + n.random.next() * REDIAL, EV.CONNECT, n.id, peer)
        return
      }
      case 'complete': {
        const b = this.buildOf(o.root)
        if (b !== undefined && Number.isNaN(n.completeAt[b.index]!)) n.completeAt[b.index] = this.now
        return
      }
      case 'failed':
      case 'available':
        return
    }
  }

  private store (n: SimNode, peer: string, root: Uint8Array, m: Blocks, entries: Uint32Array): void {
    const b = this.buildOf(root)
    if (b === undefined) return
    const h = n.held[b.index] ?? (n.held[b.index] = new HeldBuild(b, false))
    if (m.cids.length > 0) {
      const cids: Uint8Array[] = []
      for (const e of entries) {
        const c = m.cids[e]!
        const at = b.manifestIndex.get(cidKey(c))
        if (at !== undefined) h.manifest[at] = 1
        cids.push(c)
      }
      n.pending.push({ type: 'stored', peer, root: b.root, indices: [], cids, result: 'ok' })
      return
    }
    const indices = new Uint32Array(entries.length)
    for (let k = 0; k < entries.length; k++) {
      const i = m.indices[entries[k]!]!
      indices[k] = i
      h.addLeaf(i)
    }
    n.pending.push({ type: 'stored', peer, root: b.root, indices, cids: [], result: 'ok' })
  }

  private serve (n: SimNode, peerText: string, root: Uint8Array, indices: Uint32Array, cids: Uint8Array[]): void {
    const peer = Number(peerText)
    const conn = n.conns.get(peer)
    const b = this.buildOf(root)
    const h = b === undefined ? undefined : n.held[b.index]
    const present: number[] = []
    const missing: number[] = []
    for (const i of indices) (h !== undefined && h.hasLeaf(i) ? present : missing).push(i)
    const presentCids: Uint8Array[] = []
    const sizes: number[] = []
    for (const c of cids) {
      const at = b?.manifestIndex.get(cidKey(c))
      if (b !== undefined && h !== undefined && at !== undefined && h.manifest[at] === 1) {
        presentCids.push(c)
        sizes.push(b.manifestSizes[at]!)
      }
    }
    if (cids.length === 0) for (const i of present) sizes.push(b!.sizes[i]!)
    if (conn === undefined || sizes.length === 0) {
      // nothing to write (or no stream left): served at once
      n.pending.push({ type: 'served', peer: peerText, root, missingIndices: missing, missingCids: cids.length > 0 ? cids.filter(c => !presentCids.includes(c)) : [] })
      return
    }
    const sz = Uint32Array.from(sizes)
    const offsets = new Uint32Array(sz.length + 1)
    for (let k = 0; k < sz.length; k++) offsets[k + 1] = offsets[k]! + sz[k]!
    const payload = offsets[sz.length]!
    const frame: Blocks = { type: 'blocks', root, indices: cids.length > 0 ? new Uint32Array(0) : Uint32Array.from(present), cids: presentCids, sizes: sz, offsets, payload: EMPTY }
    if (cids.length === 0) n.bytesUp += payload
    const stream = conn.from(n.id)
    this.enqueue(stream, { stream, data: true, frame, bytes: payload + FRAME_HEAD + 6 * sz.length, root, indices, missing, cids: cids.filter(c => !presentCids.includes(c)) })
  }

  // ---- streams --------------------------------------------------------------

  private sendControl (n: SimNode, peerText: string, m: ControlMessage): void {
    const conn = n.conns.get(Number(peerText))
    if (conn === undefined) return
    const stream = conn.from(n.id)
    this.enqueue(stream, { stream, data: false, proto: 0, message: m, bytes: controlSize(m) })
  }

  /** Sends an election message from one node to a connected peer (dropped when not connected). */
  sendElection (from: number, to: number, message: unknown, bytes: number): void {
    const conn = this.nodes[from]!.conns.get(to)
    if (conn === undefined) return
    this.controlBytes += bytes
    this.radio.bytesOnAir += bytes
    this.queue.push(this.now + this.latency, EV.CLAIMS, to, 0, { from, message, to: [to], epochs: [conn.epoch] } satisfies ClaimsDelivery)
  }

  /**
   * Sends an election message from one node to every radio neighbour but
   * `except` (-1: none): one transmission on the air, its bytes counted once.
   */
  broadcastElection (from: number, except: number, message: unknown, bytes: number): void {
    const to: number[] = []
    const epochs: number[] = []
    for (const [peer, conn] of this.nodes[from]!.conns) {
      if (peer === except || conn.wire !== undefined) continue
      to.push(peer)
      epochs.push(conn.epoch)
    }
    if (to.length === 0) return
    this.controlBytes += bytes
    this.radio.bytesOnAir += bytes
    this.queue.push(this.now + this.latency, EV.CLAIMS, from, 0, { from, message, to, epochs } satisfies ClaimsDelivery)
  }

  private deliverClaims (d: ClaimsDelivery): void {
    const el = this.hooks.election
    if (el === undefined) return
    const sender = this.nodes[d.from]!
    for (let k = 0; k < d.to.length; k++) {
      const to = d.to[k]!
      const conn = sender.conns.get(to)
      if (conn === undefined || conn.epoch !== d.epochs[k] || !this.nodes[to]!.on) continue
      el.message(to, d.from, d.message, this.now)
      this.scheduleElection(to)
    }
  }

  private enqueue (s: Stream, item: Item): void {
    s.queue.push(item)
    if (s.busy === undefined) this.pump(s)
  }

  /** Moves a stream's queue onto the air: control messages go at once (small), a data frame is one transfer. */
  private pump (s: Stream): void {
    const wire = s.conn.wire
    while (s.busy === undefined && s.head < s.queue.length) {
      const item = s.queue[s.head]!
      s.queue[s.head++] = undefined as unknown as Item
      if (!item.data) {
        if (wire !== undefined) this.uplinkBytes += item.bytes
        else {
          this.controlBytes += item.bytes
          this.radio.bytesOnAir += item.bytes
        }
        this.queue.push(this.now + (wire !== undefined ? UPLINK_LATENCY : this.latency), EV.DELIVER, s.to, 0, item)
        continue
      }
      s.current = item
      if (wire !== undefined) {
        const rate = s.from === s.conn.a ? wire.rateAB : wire.rateBA
        this.uplinkBytes += item.bytes
        s.busy = this.queue.push(this.now + item.bytes / rate, EV.WIRE, s.from, 0, s)
      } else {
        const f = this.radio.start(s.from, s.to, item.bytes, s, this.now)
        if (f === undefined) {
          s.current = undefined
          continue
        }
        s.busy = f
      }
    }
    if (s.head === s.queue.length) {
      s.queue.length = 0
      s.head = 0
    } else if (s.head >= 64 && s.head * 2 >= s.queue.length) {
      // a stream that never runs dry (a frame always queued behind the one on the air) would keep every slot it ever used
      s.queue.splice(0, s.head)
      s.head = 0
    }
  }

  /** A stream's current data frame has left the sender: deliver it after the latency, report it served, go on. */
  private sent (s: Stream): void {
    const item = s.current
    s.busy = undefined
    s.current = undefined
    if (item === undefined || !item.data || !s.conn.open) return
    this.queue.push(this.now + (s.conn.wire !== undefined ? UPLINK_LATENCY : this.latency), EV.DELIVER, s.to, 0, item)
    const n = this.nodes[s.from]!
    n.pending.push({ type: 'served', peer: this.peerName(s.to), root: item.root, missingIndices: item.missing, missingCids: item.cids })
    this.pump(s)
    this.feed(n, n.pending.shift()!)
  }

  private deliver (item: Item): void {
    // a stream belongs to one connection: once it closed, what was in flight is lost
    const s = item.stream
    if (!s.conn.open) return
    const n = this.nodes[s.to]!
    if (!item.data && item.proto === 1) {
      this.hooks.election?.message(s.to, s.from, item.message, this.now)
      this.scheduleElection(s.to)
      return
    }
    const type = item.data ? 'blocks' : (item.message as ControlMessage).type
    this.delivered.set(type, (this.delivered.get(type) ?? 0) + 1)
    if (item.data) {
      const bytes = item.frame.offsets[item.frame.sizes.length]!
      if (item.frame.cids.length > 0) n.manifestDown += bytes
      else n.bytesDown += bytes
    }
    this.feed(n, { type: 'message', peer: this.peerName(s.from), message: (item.data ? item.frame : item.message) as Message })
  }

  // ---- connections ------------------------------------------------------------

  /** Connects two nodes if both are up, in range (or a is the mothership's uplink), under their limits and not banned. */
  tryConnect (a: number, b: number, wire?: { rateAB: number, rateBA: number }): void {
    const na = this.nodes[a]!
    const nb = this.nodes[b]!
    if (!na.on || !nb.on || na.conns.has(b) || a === b) return
    if (wire === undefined) {
      if (!this.radio.inRange(a, b) || na.virtual || nb.virtual) return
      if (this.radioPeers(na) >= this.maxPeers || this.radioPeers(nb) >= this.maxPeers) return
    }
    if ((na.refused.get(b) ?? 0) > this.now || (nb.refused.get(a) ?? 0) > this.now) return
    const conn = new Conn(a, b, ++this.epoch, wire)
    na.conns.set(b, conn)
    nb.conns.set(a, conn)
    if (wire === undefined) this.lastChange[a] = this.lastChange[b] = this.now
    this.hooks.election?.connected(a, b, this.now)
    this.feed(na, { type: 'connected', peer: this.peerName(b) })
    // a refused it at once (a limit): b never learns of a connection that is gone
    if (conn.open) this.feed(nb, { type: 'connected', peer: this.peerName(a) })
    this.scheduleElection(a)
    this.scheduleElection(b)
  }

  private radioPeers (n: SimNode): number {
    let k = n.conns.size
    if (this.mothership >= 0 && n.conns.has(this.mothership)) k--
    return k
  }

  /** Closes a connection: transfers in flight are lost, both cores learn of it. */
  close (a: number, b: number): void {
    const na = this.nodes[a]!
    const conn = na.conns.get(b)
    if (conn === undefined) return
    conn.open = false
    na.conns.delete(b)
    this.nodes[b]!.conns.delete(a)
    if (conn.wire === undefined) this.lastChange[a] = this.lastChange[b] = this.now
    for (const s of [conn.ab, conn.ba]) {
      if (s.busy !== undefined && 'finishV' in s.busy) this.radio.cancel(s.busy, this.now)
      s.busy = undefined
      s.current = undefined
      s.queue.length = 0
      s.head = 0
    }
    this.hooks.election?.disconnected(a, b, this.now)
    for (const [x, y] of [[a, b], [b, a]] as const) {
      const n = this.nodes[x]!
      if (n.on) this.feed(n, { type: 'disconnected', peer: this.peerName(y) })
      this.scheduleElection(x)
      // a node left with few links looks for more (mDNS keeps answering)
      if (n.on && !n.virtual && conn.wire === undefined && this.radioPeers(n) < this.maxPeers / 2) this.queue.push(this.now + REDIAL * (1 + n.random.next()), EV.WORLD, x, REDISCOVER)
    }
  }

  /**
   * Schedules discovery of every neighbour in range, with mDNS-like delays
   * (a connection is one for both ends). With `onlyHigher`, only neighbours
   * with a higher number (at the start, where every node discovers at once).
   */
  discover (i: number, onlyHigher = false): void {
    const n = this.nodes[i]!
    const nbrs = [...this.radio.neighbours(i)]
    // a random order, so nodes with low ids are not everyone's first choice
    for (let k = nbrs.length - 1; k > 0; k--) {
      const j = n.random.int(k + 1)
      const t = nbrs[k]!
      nbrs[k] = nbrs[j]!
      nbrs[j] = t
    }
    // a dialer stops at its connection limit: a few more candidates than it can take, in random order
    let budget = 2 * this.maxPeers - this.radioPeers(n)
    for (const j of nbrs) {
      if (budget <= 0) break
      if (n.conns.has(j) || (onlyHigher && j < i)) continue
      budget--
      this.queue.push(this.now + DISCOVERY_BASE + n.random.next() * DISCOVERY_SPREAD, EV.CONNECT, i, j)
    }
  }

  /** Brings a node up: on the radio, its core running, its neighbours found. Call radio.topology after a batch. */
  up (i: number): void {
    const n = this.nodes[i]!
    if (n.on) return
    n.on = true
    n.upSince = this.now
    if (!n.virtual) this.radio.setOn(i, true)
    this.hooks.election?.up(i, this.now)
    this.scheduleElection(i)
    // a wake-up: let the core see the time (its timers may be long due)
    n.timerAt = undefined
    this.feed(n, { type: 'timer' })
  }

  /** Takes a node down: its connections close (its agent sleeps or is carried away). */
  down (i: number): void {
    const n = this.nodes[i]!
    if (!n.on) return
    for (const peer of [...n.conns.keys()]) this.close(i, peer)
    n.on = false
    n.upTime += this.now - n.upSince
    this.radio.setOn(i, false)
    this.hooks.election?.down(i, this.now)
  }

  /** After radio.topology(): closes radio connections between nodes no longer in range. */
  dropOutOfRange (): void {
    for (const n of this.nodes) {
      for (const [peer, conn] of [...n.conns]) {
        if (conn.wire === undefined && peer > n.id && !this.radio.inRange(n.id, peer)) this.close(n.id, peer)
      }
    }
  }

  private scheduleElection (i: number): void {
    const el = this.hooks.election
    if (el === undefined) return
    const d = el.nextDeadline(i)
    const at = this.electionAt[i]!
    if (d !== undefined && (Number.isNaN(at) || d < at)) {
      this.electionAt[i] = d
      this.queue.push(Math.max(d, this.now), EV.ELECTION, i, d)
    }
  }
}

/** The encoded size of a control message, bytes (protobuf fields, close to codec.ts's). */
function controlSize (m: ControlMessage): number {
  switch (m.type) {
    case 'have': return 44 + (m.bitfield?.length ?? 0)
    case 'have-update': return 42 + 2 * m.indices.length
    case 'interest': return 42
    case 'request':
    case 'cancel':
    case 'dont-have': return 42 + 2 * m.indices.length + 38 * m.cids.length
    default: return 4
  }
}
