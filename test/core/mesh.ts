// A deterministic harness for exchange cores: several Exchange values wired
// by a fake network (per-link latency and bandwidth, optional per-node uplink,
// FIFO per link, one event queue ordered by (time, sequence)) over fake stores
// that hold leaves as bits and sizes. Frames go through the real codec and
// FrameReader unless `wire: false`. No sockets, no sleeps, no Math.random.
import { Exchange, FrameReader, InvalidMessageError, MAX_FRAME_SIZE, bitfieldLength, cidKey, countBits, decodeFrame, encodeBlocksHead, encodeFrame, hasBit, setBit } from '../../src/core/exchange/index.ts'
import type { Blocks, ControlMessage, ExchangeInit, ExchangeInput, ExchangeOutput, LoadResult, Message } from '../../src/core/exchange/index.ts'
import { EventQueue } from './event-queue.ts'

/** mulberry32: a small seeded generator of uniform numbers in [0, 1). */
export function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A fake CID: CIDv1, sha2-256 shape, random digest. */
export function fakeCid (random: () => number, codec: number): Uint8Array {
  const c = new Uint8Array(36)
  c.set([1, codec, 0x12, 0x20])
  for (let i = 4; i < 36; i++) c[i] = Math.floor(random() * 256)
  return c
}

/** A build as the harness sees it: a manifest tree of fake CIDs and leaf sizes. */
export interface FakeBuild {
  root: Uint8Array
  key: string
  sizes: Uint32Array
  total: number
  /** Record first, then interior nodes; parent[i] is the index of i's parent (-1 for the record). */
  manifest: Uint8Array[]
  parent: number[]
  manifestSizes: number[]
}

export interface BuildSpec {
  leaves: number
  /** Leaf sizes are uniform in [minSize, maxSize] (bytes). */
  minSize?: number
  maxSize?: number
  /** Interior nodes besides the record (default: one per 174 leaves, plus a directory). */
  interior?: number
}

export function makeBuild (random: () => number, spec: BuildSpec): FakeBuild {
  const min = spec.minSize ?? 32 * 1024
  const max = spec.maxSize ?? 96 * 1024
  const sizes = new Uint32Array(spec.leaves)
  let total = 0
  for (let i = 0; i < spec.leaves; i++) {
    sizes[i] = min + Math.floor(random() * (max - min + 1))
    total += sizes[i]!
  }
  const interior = spec.interior ?? Math.ceil(spec.leaves / 174) + 1
  const manifest = [fakeCid(random, 0x71)]
  const parent = [-1]
  const manifestSizes = [300]
  for (let i = 1; i <= interior; i++) {
    manifest.push(fakeCid(random, 0x70))
    parent.push(i === 1 ? 0 : 1 + Math.floor(random() * (i - 1)))
    manifestSizes.push(200 + Math.floor(random() * 8000))
  }
  return { root: manifest[0]!, key: cidKey(manifest[0]!), sizes, total, manifest, parent, manifestSizes }
}

interface Held { manifest: Uint8Array, have: Uint8Array }

/** A node's store: which manifest blocks and leaves it holds. */
export class FakeStore {
  readonly held = new Map<string, Held>()

  entry (b: FakeBuild): Held {
    let h = this.held.get(b.key)
    if (h === undefined) {
      h = { manifest: new Uint8Array(b.manifest.length), have: new Uint8Array(bitfieldLength(b.sizes.length)) }
      this.held.set(b.key, h)
    }
    return h
  }

  load (b: FakeBuild): LoadResult {
    const h = this.entry(b)
    const missing: Uint8Array[] = []
    for (let i = 0; i < b.manifest.length; i++) {
      if (h.manifest[i] === 1) continue
      const p = b.parent[i]!
      if (p < 0 || h.manifest[p] === 1) missing.push(b.manifest[i]!)
    }
    if (missing.length > 0) return { status: 'manifest-missing', missing }
    return { status: 'ready', manifest: b.manifest, sizes: b.sizes, have: h.have.slice() }
  }

  leafCount (b: FakeBuild): number {
    const h = this.held.get(b.key)
    return h === undefined ? 0 : countBits(h.have)
  }
}

/** How a node misbehaves (for robustness tests). */
export interface Evil {
  /** Every block it sends fails verification. */
  corrupt?: boolean
  /** It takes requests and never answers. */
  silent?: boolean
  /** It announces leaves it then does not send (answers with nothing). */
  wrongSize?: boolean
}

export interface NodeOptions {
  init?: Partial<ExchangeInit>
  /** Uplink shared by all its links, bytes per ms. */
  up?: number
  evil?: Evil
  /** Delay between a `store` output and the `stored` input, ms. */
  diskDelay?: number
  /** While true, every write fails (a full disk). */
  diskFull?: boolean
}

export class Node {
  readonly id: string
  core: Exchange | undefined
  readonly store = new FakeStore()
  readonly opts: NodeOptions
  upFreeAt = 0
  timerAt: number | undefined
  /** Leaf bytes this node served / received in data frames. */
  uploaded = 0
  received = 0
  manifestReceived = 0
  uploadLog: Array<{ t: number, bytes: number }> = []
  readonly completeAt = new Map<string, number>()
  readonly firstLeafAt = new Map<string, number>()
  /** Every leaf index this node requested, per build. */
  readonly requested = new Map<string, number[]>()
  readonly bans: Array<{ t: number, peer: string, reason: string }> = []
  readonly outputs: Array<{ t: number, o: ExchangeOutput }> = []
  /** Messages received (raw nodes keep all; core nodes none). */
  readonly inbox: Array<{ t: number, from: string, m: Message }> = []
  /** Requests for a leaf already outstanding at another peer, and those made while some missing leaf was not requested at all (outside end-game). */
  dupRequests = 0
  dupOutsideEndgame = 0
  /** Outstanding requests as seen on the wire: build key → leaf → peers. */
  readonly outstanding = new Map<string, Map<number, Set<string>>>()

  constructor (id: string, core: Exchange | undefined, opts: NodeOptions) {
    this.id = id
    this.core = core
    this.opts = opts
  }
}

interface Link {
  latency: number
  /** bytes per ms */
  bandwidth: number
  freeAt: number
  epoch: number
  up: boolean
  reader: FrameReader
}

export interface LinkSpec {
  /** One-way delay, ms. */
  latency?: number
  /** bytes per ms (1000 = 1 MB/s). */
  bandwidth?: number
}

export interface MeshOptions {
  seed?: number
  /** Encode and decode every frame with the real codec (default true). */
  wire?: boolean
}

export class Mesh {
  now = 0
  readonly random: () => number
  readonly nodes = new Map<string, Node>()
  readonly builds = new Map<string, FakeBuild>()
  private readonly links = new Map<string, Link>()
  private readonly specs = new Map<string, LinkSpec>()
  private readonly queue = new EventQueue()
  private epoch = 0
  private readonly wire: boolean
  private readonly corruptFrames = new WeakSet<Blocks>()
  /** Where data frames are decoded, one at a time. */
  private readonly scratch = new Uint8Array(MAX_FRAME_SIZE)
  events = 0

  constructor (opts: MeshOptions = {}) {
    this.random = rng(opts.seed ?? 1)
    this.wire = opts.wire ?? true
  }

  node (id: string): Node {
    const n = this.nodes.get(id)
    if (n === undefined) throw new Error(`no node ${id}`)
    return n
  }

  /** A node running an exchange core (its random seeded from the mesh's). */
  add (id: string, opts: NodeOptions = {}): Node {
    const core = new Exchange({ random: rng(Math.floor(this.random() * 2 ** 32)), now: this.now, ...opts.init })
    const n = new Node(id, core, opts)
    this.nodes.set(id, n)
    return n
  }

  /** A scripted peer with no core: what it receives lands in its inbox; it sends with inject(). */
  addRaw (id: string): Node {
    const n = new Node(id, undefined, {})
    this.nodes.set(id, n)
    return n
  }

  build (spec: BuildSpec): FakeBuild {
    const b = makeBuild(this.random, spec)
    this.builds.set(b.key, b)
    return b
  }

  /** Puts a build's manifest and the chosen leaves into a node's store. */
  give (id: string, b: FakeBuild, leaves: 'all' | 'none' | ((i: number) => boolean) = 'all'): void {
    const h = this.node(id).store.entry(b)
    h.manifest.fill(1)
    for (let i = 0; i < b.sizes.length; i++) {
      if (leaves === 'all' || (leaves !== 'none' && leaves(i))) setBit(h.have, i)
    }
  }

  connect (a: string, b: string, spec: LinkSpec = {}): void {
    this.specs.set(`${a}>${b}`, spec)
    const epoch = ++this.epoch
    for (const [x, y] of [[a, b], [b, a]] as const) {
      this.links.set(`${x}>${y}`, { latency: spec.latency ?? 2, bandwidth: spec.bandwidth ?? 10_000, freeAt: this.now, epoch, up: true, reader: new FrameReader() })
    }
    this.feed(a, { type: 'connected', peer: b })
    this.feed(b, { type: 'connected', peer: a })
  }

  /** Closes the link both ways; both ends see `disconnected` at once. */
  disconnect (a: string, b: string): void {
    for (const [x, y] of [[a, b], [b, a]] as const) {
      const l = this.links.get(`${x}>${y}`)
      if (l === undefined || !l.up) continue
      l.up = false
      // a driver learns at once that its own stream closed
      this.at(this.now, () => {
        const ny = this.node(y)
        for (const key of ny.outstanding.keys()) this.clearOutstanding(ny, x, key)
        this.feed(y, { type: 'disconnected', peer: x })
      })
    }
  }

  /**
   * Kills a node's agent and starts a new one on the same store (what is on
   * disk survives, nothing in memory does), then reconnects its links.
   */
  restart (id: string, init: Partial<ExchangeInit> = {}): void {
    const n = this.node(id)
    const peers: Array<[string, string, LinkSpec]> = []
    for (const [k, spec] of this.specs) {
      const [a, b] = k.split('>') as [string, string]
      if ((a === id || b === id) && this.links.get(k)?.up === true) peers.push([a, b, spec])
    }
    for (const [k, l] of this.links) if (k.startsWith(`${id}>`) || k.endsWith(`>${id}`)) l.up = false
    for (const [a, b] of peers) {
      const other = this.node(a === id ? b : a)
      for (const key of other.outstanding.keys()) this.clearOutstanding(other, id, key)
    }
    for (const [a, b] of peers) this.feed(a === id ? b : a, { type: 'disconnected', peer: id })
    n.core = new Exchange({ random: rng(Math.floor(this.random() * 2 ** 32)), now: this.now, ...n.opts.init, ...init })
    n.timerAt = undefined
    n.requested.clear()
    n.outstanding.clear()
    for (const [a, b, spec] of peers) this.connect(a, b, spec)
  }

  hold (id: string, b: FakeBuild, priority?: number): void {
    this.feed(id, { type: 'hold', root: b.root, ...(priority !== undefined ? { priority } : {}) })
  }

  /** Sends a message or raw bytes from one node to another over their link. */
  inject (from: string, to: string, what: ControlMessage | Uint8Array | { blocks: Omit<Blocks, 'type' | 'offsets' | 'payload'> }): void {
    if (what instanceof Uint8Array) return this.transmitBytes(from, to, what)
    if ('blocks' in what) {
      const sizes = Array.from(what.blocks.sizes)
      const payload = sizes.reduce((s, x) => s + x, 0)
      this.transmitBlocks(from, to, { ...what.blocks, sizes: Uint32Array.from(sizes) }, payload, false)
      return
    }
    this.transmitControl(from, to, what)
  }

  /** Runs events up to simulated time `until` (ms), which the clock then reads. Returns the time. */
  drive (until: number, maxEvents = 5_000_000): number {
    while (this.queue.size > 0 && this.events < maxEvents) {
      const e = this.queue.pop()!
      if (e.time > until) {
        this.queue.push(e)
        break
      }
      this.now = e.time
      this.events++
      e.run()
    }
    this.now = Math.max(this.now, until)
    return this.now
  }

  /** Drives until every listed node holds the build complete, or time runs out. Returns the time. */
  driveUntilComplete (b: FakeBuild, ids: string[], until = 3_600_000): number {
    while (this.queue.size > 0 && this.now <= until) {
      if (ids.every(id => this.node(id).completeAt.has(b.key))) break
      const e = this.queue.pop()!
      this.now = e.time
      this.events++
      e.run()
    }
    return this.now
  }

  private at (time: number, run: () => void): void {
    this.queue.at(Math.max(time, this.now), run)
  }

  feed (id: string, input: ExchangeInput): void {
    const n = this.node(id)
    if (n.core === undefined) return
    const outs = n.core.handle(input, this.now)
    for (const o of outs) this.act(n, o)
    const d = n.core.nextDeadline()
    if (input.type === 'timer' && d !== undefined && d <= this.now) throw new Error(`${id} asks for a timer at ${d} right after one at ${this.now}: it would spin`)
    if (d !== undefined && (n.timerAt === undefined || d < n.timerAt || n.timerAt < this.now)) {
      n.timerAt = d
      this.at(d, () => {
        if (n.timerAt !== d) return
        n.timerAt = undefined
        this.feed(id, { type: 'timer' })
      })
    }
  }

  private act (n: Node, o: ExchangeOutput): void {
    n.outputs.push({ t: this.now, o })
    switch (o.type) {
      case 'send': {
        if (o.message.type === 'request') this.auditRequest(n, o.peer, o.message.root, o.message.indices)
        if (o.message.type === 'cancel') this.clearOutstanding(n, o.peer, cidKey(o.message.root), o.message.indices)
        return this.transmitControl(n.id, o.peer, o.message)
      }
      case 'load': {
        const b = this.builds.get(cidKey(o.root))
        const result: LoadResult = b === undefined ? { status: 'failed', reason: 'unknown build' } : n.store.load(b)
        this.at(this.now, () => this.feed(n.id, { type: 'loaded', root: o.root, result }))
        return
      }
      case 'serve': return this.serve(n, o.peer, o.root, o.indices, o.cids)
      case 'store': return this.storeBlocks(n, o.peer, o.blocks, o.entries)
      case 'ban':
        n.bans.push({ t: this.now, peer: o.peer, reason: o.reason })
        this.disconnect(n.id, o.peer)
        return
      case 'disconnect':
        this.disconnect(n.id, o.peer)
        return
      case 'complete':
        if (!n.completeAt.has(cidKey(o.root))) n.completeAt.set(cidKey(o.root), this.now)
        return
      case 'failed':
      case 'available':
        return
    }
  }

  private auditRequest (n: Node, peer: string, root: Uint8Array, indices: ArrayLike<number>): void {
    const key = cidKey(root)
    let list = n.requested.get(key)
    if (list === undefined) n.requested.set(key, list = [])
    let out = n.outstanding.get(key)
    if (out === undefined) n.outstanding.set(key, out = new Map())
    const b = this.builds.get(key)
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k]!
      list.push(i)
      let at = out.get(i)
      if (at === undefined) out.set(i, at = new Set())
      if ([...at].some(p => p !== peer)) {
        n.dupRequests++
        if (b === undefined || this.unrequested(n, b) > 0) {
          n.dupOutsideEndgame++
        }
      }
      at.add(peer)
    }
  }

  /** Missing leaves of a build that no peer has been asked for (as the wire shows it). */
  private unrequested (n: Node, b: FakeBuild): number {
    const have = n.store.held.get(b.key)?.have
    const out = n.outstanding.get(b.key)
    let k = 0
    for (let i = 0; i < b.sizes.length; i++) {
      if (have !== undefined && hasBit(have, i)) continue
      if ((out?.get(i)?.size ?? 0) === 0) k++
    }
    return k
  }

  private clearOutstanding (n: Node, peer: string, key: string, indices?: ArrayLike<number>): void {
    const out = n.outstanding.get(key)
    if (out === undefined) return
    if (indices === undefined) {
      for (const s of out.values()) s.delete(peer)
      return
    }
    for (let k = 0; k < indices.length; k++) out.get(indices[k]!)?.delete(peer)
  }

  private link (from: string, to: string): Link | undefined {
    const l = this.links.get(`${from}>${to}`)
    return l !== undefined && l.up ? l : undefined
  }

  /** Puts size bytes on the link; returns when they have left the sender and when they arrive. */
  private transmit (from: string, to: string, size: number): { done: number, arrive: number, epoch: number } | undefined {
    const l = this.link(from, to)
    if (l === undefined) return undefined
    const n = this.node(from)
    const up = n.opts.up
    const depart = Math.max(this.now, l.freeAt, up !== undefined ? n.upFreeAt : 0)
    const done = depart + size / Math.min(l.bandwidth, up ?? Infinity)
    l.freeAt = done
    if (up !== undefined) n.upFreeAt = done
    return { done, arrive: done + l.latency, epoch: l.epoch }
  }

  private transmitControl (from: string, to: string, m: ControlMessage): void {
    if (this.wire) return this.transmitBytes(from, to, encodeFrame(m))
    const t = this.transmit(from, to, 16 + ('indices' in m ? m.indices.length * 3 : 0) + ('bitfield' in m ? m.bitfield?.length ?? 0 : 0))
    if (t !== undefined) this.at(t.arrive, () => this.deliver(from, to, t.epoch, structuredCloneMessage(m)))
  }

  private transmitBytes (from: string, to: string, bytes: Uint8Array): void {
    const t = this.transmit(from, to, bytes.length)
    if (t !== undefined) this.transmitAt(from, to, t, bytes)
  }

  private transmitBlocks (from: string, to: string, head: Omit<Blocks, 'type' | 'offsets' | 'payload'>, payload: number, corrupt: boolean): number | undefined {
    if (this.wire) {
      // the head goes through the real encoder and decoder; the payload is
      // zeros in a reused buffer (a block whose first byte is 1 is corrupt)
      const h = encodeBlocksHead(head)
      const t = this.transmit(from, to, h.length + payload)
      if (t === undefined) return undefined
      this.at(t.arrive, () => {
        let pos = 0
        while (h[pos]! >= 0x80) pos++
        const body = h.subarray(pos + 1)
        const scratch = this.scratch
        scratch.set(body)
        const marks: number[] = []
        if (corrupt) {
          let off = body.length
          for (const size of Array.from(head.sizes)) {
            if (size > 0) { scratch[off] = 1; marks.push(off) }
            off += size
          }
        }
        let m: Message | undefined
        try {
          m = decodeFrame(scratch.subarray(0, body.length + payload))
        } catch (err) {
          if (!(err instanceof InvalidMessageError)) throw err
          this.feed(to, { type: 'malformed', peer: from, reason: err.message })
        }
        if (m !== undefined) this.deliver(from, to, t.epoch, m)
        for (const off of marks) scratch[off] = 0
        scratch.fill(0, 0, body.length)
      })
      return t.done
    }
    const t = this.transmit(from, to, payload + 32 + head.sizes.length * 6)
    if (t === undefined) return undefined
    const offsets = new Uint32Array(head.sizes.length + 1)
    for (let i = 0; i < head.sizes.length; i++) offsets[i + 1] = offsets[i]! + head.sizes[i]!
    const m: Blocks = { type: 'blocks', ...head, offsets, payload: new Uint8Array(0) }
    if (corrupt) this.corruptFrames.add(m)
    this.at(t.arrive, () => this.deliver(from, to, t.epoch, m))
    return t.done
  }

  private transmitAt (from: string, to: string, t: { arrive: number, epoch: number }, bytes: Uint8Array): void {
    this.at(t.arrive, () => {
      const l = this.link(from, to)
      if (l === undefined || l.epoch !== t.epoch) return
      let bodies: Uint8Array[]
      try {
        bodies = l.reader.push(bytes)
      } catch (err) {
        if (!(err instanceof InvalidMessageError)) throw err
        return this.feed(to, { type: 'malformed', peer: from, reason: err.message })
      }
      for (const body of bodies) {
        let m: Message
        try {
          m = decodeFrame(body)
        } catch (err) {
          if (!(err instanceof InvalidMessageError)) throw err
          return this.feed(to, { type: 'malformed', peer: from, reason: err.message })
        }
        this.deliver(from, to, t.epoch, m)
      }
    })
  }

  private deliver (from: string, to: string, epoch: number, m: Message): void {
    const l = this.link(from, to)
    if (l === undefined || l.epoch !== epoch) return
    const n = this.node(to)
    if (n.core === undefined) {
      n.inbox.push({ t: this.now, from, m })
      return
    }
    if (m.type === 'blocks') {
      const bytes = m.offsets[m.offsets.length - 1]!
      if (m.cids.length > 0) n.manifestReceived += bytes
      else {
        n.received += bytes
        if (!n.firstLeafAt.has(cidKey(m.root))) n.firstLeafAt.set(cidKey(m.root), this.now)
      }
      this.clearOutstanding(n, from, cidKey(m.root), m.indices)
    } else if (m.type === 'dont-have') {
      this.clearOutstanding(n, from, cidKey(m.root), m.indices.length > 0 ? m.indices : undefined)
    } else if (m.type === 'choke') {
      for (const key of n.outstanding.keys()) this.clearOutstanding(n, from, key)
    }
    this.feed(to, { type: 'message', peer: from, message: m })
  }

  private serve (n: Node, peer: string, root: Uint8Array, indices: Uint32Array, cids: Uint8Array[]): void {
    const b = this.builds.get(cidKey(root))
    if (n.opts.evil?.silent === true) return
    const h = b === undefined ? undefined : n.store.held.get(b.key)
    const present: number[] = []
    const missing: number[] = []
    for (const i of indices) (h !== undefined && hasBit(h.have, i) ? present : missing).push(i)
    const presentCids: Uint8Array[] = []
    const missingCids: Uint8Array[] = []
    const cidSizes: number[] = []
    for (const c of cids) {
      const k = cidKey(c)
      const at = b?.manifest.findIndex(x => cidKey(x) === k) ?? -1
      if (b !== undefined && h !== undefined && at >= 0 && h.manifest[at] === 1) {
        presentCids.push(c)
        cidSizes.push(b.manifestSizes[at]!)
      } else missingCids.push(c)
    }
    const sizes = cids.length > 0 ? cidSizes : present.map(i => b!.sizes[i]! + (n.opts.evil?.wrongSize === true ? 1 : 0))
    const payload = sizes.reduce((s, x) => s + x, 0)
    let done = this.now
    if (sizes.length > 0) {
      const head = { root, indices: Uint32Array.from(cids.length > 0 ? [] : present), cids: presentCids, sizes: Uint32Array.from(sizes) }
      const d = this.transmitBlocks(n.id, peer, head, payload, n.opts.evil?.corrupt === true)
      if (d !== undefined) done = d
      if (cids.length === 0) {
        n.uploaded += payload
        n.uploadLog.push({ t: this.now, bytes: payload })
      }
    }
    this.at(done, () => this.feed(n.id, { type: 'served', peer, root, missingIndices: missing, missingCids }))
  }

  private storeBlocks (n: Node, peer: string, m: Blocks, entries: Uint32Array): void {
    const b = this.builds.get(cidKey(m.root))
    if (b === undefined) return
    if (n.opts.diskFull === true) {
      const root = m.root.slice()
      const indices = m.cids.length > 0 ? [] : Array.from(entries, e => m.indices[e]!)
      const cids = m.cids.length > 0 ? Array.from(entries, e => m.cids[e]!.slice()) : []
      this.at(this.now, () => this.feed(n.id, { type: 'stored', peer, root, indices, cids, result: 'failed' }))
      return
    }
    const h = n.store.entry(b)
    const okIdx: number[] = []
    const badIdx: number[] = []
    const okCids: Uint8Array[] = []
    const badCids: Uint8Array[] = []
    for (const e of entries) {
      const bad = this.wire ? m.payload[m.offsets[e]!] === 1 : this.corruptFrames.has(m)
      if (m.cids.length > 0) {
        const c = m.cids[e]!.slice()
        ;(bad ? badCids : okCids).push(c)
        if (!bad) {
          const at = b.manifest.findIndex(x => cidKey(x) === cidKey(c))
          if (at >= 0) h.manifest[at] = 1
        }
      } else {
        const i = m.indices[e]!
        ;(bad ? badIdx : okIdx).push(i)
        if (!bad) setBit(h.have, i)
      }
    }
    const root = m.root.slice()
    const delay = n.opts.diskDelay ?? 0
    if (okIdx.length + okCids.length > 0) this.at(this.now + delay, () => this.feed(n.id, { type: 'stored', peer, root, indices: okIdx, cids: okCids, result: 'ok' }))
    if (badIdx.length + badCids.length > 0) this.at(this.now + delay, () => this.feed(n.id, { type: 'stored', peer, root, indices: badIdx, cids: badCids, result: 'corrupt' }))
  }
}

/** Copies a control message's arrays (as the wire would), so sender and receiver share nothing. */
function structuredCloneMessage (m: ControlMessage): ControlMessage {
  switch (m.type) {
    case 'have': return { ...m, root: m.root.slice(), ...(m.bitfield !== undefined ? { bitfield: m.bitfield.slice() } : {}) }
    case 'have-update': return { ...m, root: m.root.slice(), indices: m.indices.slice() }
    case 'interest': return { ...m, root: m.root.slice() }
    case 'request':
    case 'cancel':
    case 'dont-have': return { ...m, root: m.root.slice(), indices: m.indices.slice(), cids: m.cids.map(c => c.slice()) }
    default: return { ...m }
  }
}
