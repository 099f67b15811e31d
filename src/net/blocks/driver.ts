// The libp2p driver of /xo-mesh/blocks/1.0.0 (protocols/blocks.md, section 9):
// feeds the sans-IO exchange core (src/core/exchange) with what happens on
// streams, on the clock and in the store, and carries out what it decides.
//
//   peers       one Session per peer (session.ts): our stream out, theirs in
//   the clock   performance.now(); one timer at core.nextDeadline()
//   the store   `load` → index-space.ts; `store` → hash, then the block store;
//               `serve` → verified reads, written as data frames
//   the agent   builds held (the build index, `xo-mesh fetch`), progress, bans,
//               per-peer counters, routes (api.ts)
//
// Inputs are queued and fed to the core one at a time (the core is not
// re-entrant): an output whose answer is ready at once (a store, a stream
// event raised while we write) queues its input behind the current one.
// Nothing a peer sends can throw out of here: a frame that does not decode is
// `malformed` (a ban); a failure carrying out an output is logged.
import { hash } from 'node:crypto'
import { mkdir, readdir, rename, unlink, writeFile, readFile } from 'node:fs/promises'
import { mkdirSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { Uint8ArrayList } from 'uint8arraylist'
import type { Connection, Stream } from '@libp2p/interface'
import { Exchange, MAX_FRAME_SIZE, PROTOCOL, cidKey, encodeBlocksHead, encodeFrame } from '../../core/exchange/index.ts'
import type { BuildStatus as CoreBuildStatus, ExchangeInput, ExchangeOutput, ExchangeStats, Message, Tuning } from '../../core/exchange/index.ts'
import { CID, DAG_CBOR, matches, parseCid } from '../../content/cid.ts'
import { readRecord } from '../../content/build.ts'
import { leafCid, leafDigest, leavesHeld, readIndexSpace, type IndexSpace } from '../../content/index-space.ts'
import type { BlockStore } from '../../content/blockstore.ts'
import { BackgroundWriter } from '../../content/block-writer.ts'
import { BackgroundReader } from '../../content/block-reader.ts'
import { CoreRunner } from '../core-runner.ts'
import { ApiError, type BuildStatus, type MeshComponent, type MeshComponents, type StatusPart } from '../component.ts'
import type { Logger } from '../logger.ts'
import { DEFAULT_RECEIVE_WINDOW, Session, trimFrameScratch, type Writer } from './session.ts'
import { copyOf } from './scratch.ts'

export interface BlocksInit {
  /** Peers served at once (the core's default: 4). */
  uploadSlots?: number
  /** Upload cap, bytes per second, all peers together; 0 or absent: none. */
  uploadRate?: number
  /** How long a misbehaving peer is refused, ms (the core's default: 10 min). */
  banTimeMs?: number
  /** Peers exchanged with at once (the core's default: 64). */
  maxPeers?: number
  /** How often DATA/builds is read for builds added while the agent runs, ms (default 5000). */
  indexPollMs?: number
  /** Opening our stream to a peer may take this long, ms (default 10 000). */
  openTimeoutMs?: number
  /** A peer that does not read for this long while we write is dropped, ms (default 30 000). */
  writeTimeoutMs?: number
  /** Reopening the exchange with a still-connected peer after it ended: first delay and most, ms (1000, 30 000). */
  reopenMinMs?: number
  reopenMaxMs?: number
  /** How far (bytes) a peer may write ahead of what we have read: the muxer's receive window, capped (default 1 MiB). */
  receiveWindow?: number
  /** Scheduler tuning (tests, benchmarks). */
  tuning?: Partial<Tuning>
}

/** Block traffic with one peer, kept across reconnections (for `xo-mesh peers`). */
export interface PeerCounters {
  bytes_received: number
  blocks_received: number
  bytes_sent: number
  blocks_sent: number
  /** Data frames from it whose blocks did not hash to their CIDs. */
  corrupt_blocks: number
}

/** A build this agent holds or fetches, beside what the core knows. */
interface Held {
  cid: CID
  text: string
  key: string
  priority: number
  /** Asked for with `fetch` (persisted in DATA/fetching until complete). */
  wanted: boolean
  space: IndexSpace | undefined
  name: string | undefined
  startedAt: number
  completedAt: number | undefined
  failed: string | undefined
  /** Leaf and manifest bytes stored from each peer. */
  sources: Map<string, { bytes: number, blocks: number }>
  /** [Date.now(), haveBytes], one a second while fetching. */
  samples: Array<[number, number]>
  /** The size an advisory signs for it: a build whose leaves take more is not fetched (TUF's endless data). */
  maxBytes: number | undefined
}

/** GET /api/v1/builds/:cid and POST /api/v1/fetch reply. */
export interface BuildProgress {
  cid: string
  name: string | null
  /** 'loading' | 'manifest' | 'ready' while held; 'complete'; 'failed'. */
  phase: string
  complete: boolean
  priority: number
  leaves: number
  have_leaves: number
  bytes: number
  have_bytes: number
  /** Connected peers known to hold some or all of it. */
  holders: number
  sources: Array<{ peerId: string, bytes: number, blocks: number }>
  /** Bytes per second stored over the last few seconds. */
  rate: number
  started: string | null
  completed: string | null
  error: string | null
}

const FETCHING_DIR = 'fetching'
const MAX_COUNTERS = 1024
const MAX_AVAILABLE = 256
const RATE_SAMPLES = 6
/** A frame still incomplete this long after its first byte ends the session (a frame is sized to ~50 ms of the link), ms. */
const PARTIAL_FRAME_MS = 120_000
/** Room kept for a data frame's header when packing blocks into MAX_FRAME_SIZE. */
const HEAD_ROOM = 64 * 1024

function errorName (err: unknown): string {
  return (err as Error | undefined)?.name ?? ''
}

function sameBytes (a: Buffer, b: Uint8Array): boolean {
  return a.equals(b)
}

export class BlocksDriver implements MeshComponent {
  readonly name = 'blocks'
  readonly core: Exchange
  private readonly c: MeshComponents
  private readonly log: Logger
  private readonly store: BlockStore
  /** Writes verified blocks off the event loop (a thread, with a second core). */
  private readonly writer: BackgroundWriter
  private readonly reader: BackgroundReader
  private readonly init: Required<Omit<BlocksInit, 'tuning' | 'uploadSlots' | 'uploadRate' | 'banTimeMs' | 'maxPeers'>>
  private readonly sessions = new Map<string, Session>()
  private readonly reopen = new Map<string, { timer: NodeJS.Timeout | undefined, delay: number }>()
  private readonly bans = new Map<string, { until: number, untilWall: number, reason: string, at: number }>()
  private readonly counters = new Map<string, PeerCounters>()
  private readonly held = new Map<string, Held>()
  private readonly available = new Map<string, { cid: string, leaves: number, complete: boolean, peers: Set<string> }>()
  private readonly indexSeen = new Set<string>()
  private readonly runner: CoreRunner<ExchangeInput, ExchangeOutput>
  private readonly intervals: NodeJS.Timeout[] = []
  private readonly unsubscribe: Array<() => void> = []
  private started = false
  private stopped = false
  private readonly hasher = (bytes: Uint8Array): Buffer => hash('sha256', bytes, 'buffer')

  constructor (components: MeshComponents, init: BlocksInit = {}) {
    this.c = components
    this.log = components.logger.child('blocks')
    this.store = components.repo.store
    this.writer = new BackgroundWriter(this.store)
    this.reader = new BackgroundReader(this.store)
    this.init = {
      indexPollMs: init.indexPollMs ?? 5000,
      openTimeoutMs: init.openTimeoutMs ?? 10_000,
      writeTimeoutMs: init.writeTimeoutMs ?? 30_000,
      reopenMinMs: init.reopenMinMs ?? 1000,
      reopenMaxMs: init.reopenMaxMs ?? 30_000,
      receiveWindow: init.receiveWindow ?? DEFAULT_RECEIVE_WINDOW
    }
    this.core = new Exchange({
      random: Math.random,
      now: this.now(),
      ...(init.uploadSlots !== undefined ? { uploadSlots: init.uploadSlots } : {}),
      ...(init.uploadRate !== undefined ? { uploadRate: init.uploadRate } : {}),
      ...(init.banTimeMs !== undefined ? { banTime: init.banTimeMs } : {}),
      ...(init.maxPeers !== undefined ? { maxPeers: init.maxPeers } : {}),
      ...(init.tuning !== undefined ? { tuning: init.tuning } : {})
    })
    this.runner = new CoreRunner({ name: 'exchange', core: this.core, act: o => { this.act(o) }, now: () => this.now(), timer: { type: 'timer' }, log: this.log })
  }

  /** The core's clock: monotonic milliseconds. */
  private now (): number {
    return performance.now()
  }

  // ---- lifecycle --------------------------------------------------------------

  async beforeStart (): Promise<void> {
    await this.c.node.handle(PROTOCOL, (stream, connection) => { this.onInboundStream(stream, connection) }, {
      // one stream each way per peer; a replacement may overlap the one it replaces
      maxInboundStreams: 4,
      maxOutboundStreams: 4
    })
  }

  async start (): Promise<void> {
    this.started = true
    const { events } = this.c
    this.unsubscribe.push(events.on('peer:connect', ({ peerId }) => { void this.openSession(peerId) }))
    this.unsubscribe.push(events.on('peer:disconnect', ({ peerId }) => { this.sessions.get(peerId)?.end('disconnected') }))
    this.unsubscribe.push(events.on('build:added', ({ cid }) => { this.noteIndexed(cid) }))
    // an advisory for this laptop (src/net/advisory): fetch the build like `xo-mesh fetch` would
    this.unsubscribe.push(events.on('build:want', ({ cid, priority, maxBytes }) => { this.hold(cid, priority, true, maxBytes) }))
    // builds already complete here are announced; fetches a restart interrupted resume
    for (const b of await this.c.repo.builds()) this.noteIndexed(b.cid)
    for (const { cid, priority } of await this.readFetching()) {
      try { this.hold(cid, priority, true) } catch (err) { this.log.warn('ignoring a fetch record', { cid, error: err }) }
    }
    for (const c of this.c.node.getConnections()) void this.openSession(c.remotePeer.toString())
    const poll = setInterval(() => { void this.pollIndex() }, this.init.indexPollMs)
    const sample = setInterval(() => { this.sampleRates() }, 1000)
    poll.unref()
    sample.unref()
    this.intervals.push(poll, sample)
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    for (const u of this.unsubscribe.splice(0)) u()
    for (const t of this.intervals.splice(0)) clearInterval(t)
    for (const r of this.reopen.values()) clearTimeout(r.timer)
    this.reopen.clear()
    this.runner.stop()
    try {
      await this.c.node.unhandle(PROTOCOL)
    } catch (err) {
      this.log.debug('unhandle failed', { error: err })
    }
    for (const s of [...this.sessions.values()]) s.end('the agent stops')
    // what is queued is verified: let it reach the disk (a kill loses it, to be fetched again)
    await this.writer.close()
    await this.reader.close()
  }

  // ---- the core ---------------------------------------------------------------

  /** Feeds an input (queued behind the one being handled, if any), carries out the outputs, re-arms the timer. */
  input (input: ExchangeInput): void {
    if (this.stopped && input.type !== 'disconnected') return
    this.runner.input(input)
  }

  private act (o: ExchangeOutput): void {
    switch (o.type) {
      case 'send': {
        const s = this.sessions.get(o.peer)
        if (s !== undefined && s.coreConnected) s.sendFrame(encodeFrame(o.message))
        return
      }
      case 'serve': {
        const s = this.sessions.get(o.peer)
        // a peer gone since: the core forgot it (and its pipeline) with `disconnected`
        if (s === undefined || !s.coreConnected) return
        // the leaves are read now (on the reader thread), while the frames queued before go out
        const leaves = this.readLeaves(o)
        s.sendJob(async w => { await this.serve(s, o, w, leaves) })
        return
      }
      case 'store': return this.storeBlocks(o)
      case 'load': {
        void this.load(o.root)
        return
      }
      case 'ban': return this.onBan(o.peer, o.reason, o.until)
      case 'disconnect': {
        this.log.info('dropping a peer', { peerId: o.peer, reason: o.reason })
        this.sessions.get(o.peer)?.end(o.reason)
        return
      }
      case 'complete': {
        void this.onComplete(o.root)
        return
      }
      case 'failed': {
        const h = this.held.get(cidKey(o.root))
        if (h !== undefined) h.failed = o.reason
        this.log.warn('cannot exchange a build', { cid: h?.text ?? String(CID.decode(o.root)), reason: o.reason })
        this.c.events.emit('build:failed', { cid: h?.text ?? String(CID.decode(o.root)), reason: o.reason })
        return
      }
      case 'available': {
        const key = cidKey(o.root)
        let a = this.available.get(key)
        if (a === undefined) {
          if (this.available.size >= MAX_AVAILABLE) this.available.delete(this.available.keys().next().value!)
          a = { cid: CID.decode(o.root).toString(), leaves: o.leaves, complete: o.complete, peers: new Set() }
          this.available.set(key, a)
        }
        a.complete ||= o.complete
        if (a.peers.size < 64) a.peers.add(o.peer)
      }
    }
  }

  // ---- sessions ---------------------------------------------------------------

  private isBanned (peer: string): boolean {
    const b = this.bans.get(peer)
    if (b === undefined) return false
    if (b.until > this.now()) return true
    this.bans.delete(peer)
    return false
  }

  private newSession (peer: string): Session {
    const s = new Session(peer, {
      frame: (s, m) => { this.onFrame(s, m) },
      malformed: (s, reason) => { this.onMalformed(s, reason) },
      ended: (s, why) => { this.onSessionEnded(s, why) },
      wire: (s, sent, received) => { this.c.traffic.add(s.peer, sent, received) }
    }, { writeTimeoutMs: this.init.writeTimeoutMs, receiveWindow: this.init.receiveWindow })
    this.sessions.set(peer, s)
    return s
  }

  private connectionTo (peer: string): Connection | undefined {
    try {
      return this.c.node.getConnections(peerIdFromString(peer)).find(c => c.status === 'open')
    } catch {
      return undefined
    }
  }

  /** Starts the exchange with a connected peer: opens our stream and tells the core. */
  private async openSession (peer: string, connection?: Connection): Promise<void> {
    if (this.stopped || !this.started || this.isBanned(peer)) return
    let s = this.sessions.get(peer)
    if (s !== undefined && (s.open || s.outbound !== undefined || s.opening)) return
    const conn = connection ?? this.connectionTo(peer)
    if (conn === undefined) return
    s ??= this.newSession(peer)
    s.opening = true
    let stream: Stream
    try {
      stream = await conn.newStream(PROTOCOL, { signal: AbortSignal.timeout(this.init.openTimeoutMs) })
    } catch (err) {
      s.opening = false
      if (errorName(err) === 'UnsupportedProtocolError') {
        s.noReopen = true
        this.log.debug('the peer does not speak the block exchange', { peerId: peer })
      }
      s.end(`cannot open a stream: ${(err as Error).message}`)
      return
    }
    s.opening = false
    if (s.ended || this.stopped) {
      try { stream.abort(new Error('the exchange ended meanwhile')) } catch { /* closed */ }
      return
    }
    s.attachOutbound(stream)
    s.coreConnected = true
    this.input({ type: 'connected', peer })
    if (!s.ended) {
      s.markOpen()
      this.log.debug('exchange open', { peerId: peer })
    }
  }

  private onInboundStream (stream: Stream, connection: Connection): void {
    const peer = connection.remotePeer.toString()
    if (this.stopped || this.isBanned(peer)) {
      try { stream.abort(new Error('refused')) } catch { /* closed */ }
      return
    }
    const s = this.sessions.get(peer) ?? this.newSession(peer)
    s.attachInbound(stream)
    if (!s.open && !s.opening && s.outbound === undefined) void this.openSession(peer, connection)
  }

  private onSessionEnded (s: Session, why: string): void {
    if (this.sessions.get(s.peer) === s) this.sessions.delete(s.peer)
    if (s.coreConnected) this.input({ type: 'disconnected', peer: s.peer })
    this.log.debug('exchange ended', { peerId: s.peer, why })
    if (this.stopped || s.noReopen || this.isBanned(s.peer)) return
    // the connection may outlive the exchange (a stream reset, a limit): try again, backing off
    const r = this.reopen.get(s.peer) ?? { timer: undefined, delay: 0 }
    const lasted = Date.now() - s.startedAt
    r.delay = lasted > 60_000 ? this.init.reopenMinMs : Math.min(this.init.reopenMaxMs, Math.max(this.init.reopenMinMs, r.delay * 2))
    clearTimeout(r.timer)
    r.timer = setTimeout(() => {
      r.timer = undefined
      if (this.connectionTo(s.peer) !== undefined) void this.openSession(s.peer)
      else this.reopen.delete(s.peer)
    }, Math.round(r.delay * (0.8 + 0.4 * Math.random())))
    r.timer.unref()
    this.reopen.set(s.peer, r)
  }

  private onFrame (s: Session, m: Message): void {
    if (m.type === 'blocks') {
      const c = this.countersOf(s.peer)
      c.bytes_received += m.payload.length
      c.blocks_received += m.sizes.length
      // handled later, behind the input being handled: the payload's memory is reused once we return
      if (this.runner.pumping) m = { ...m, payload: copyOf(m.payload) }
    }
    this.input({ type: 'message', peer: s.peer, message: m })
  }

  private onMalformed (s: Session, reason: string): void {
    if (s.coreConnected) this.input({ type: 'malformed', peer: s.peer, reason })
    else s.end(`malformed: ${reason}`, { reset: true })
  }

  private onBan (peer: string, reason: string, until: number): void {
    const now = this.now()
    this.bans.set(peer, { until, untilWall: Date.now() + (until - now), reason, at: Date.now() })
    if (this.bans.size > 4096) {
      for (const [k, b] of this.bans) if (b.until <= now) this.bans.delete(k)
      while (this.bans.size > 4096) this.bans.delete(this.bans.keys().next().value!)
    }
    this.log.warn('peer banned', { peerId: peer, reason, until: new Date(Date.now() + (until - now)).toISOString() })
    const r = this.reopen.get(peer)
    if (r !== undefined) clearTimeout(r.timer)
    this.sessions.get(peer)?.end(`banned: ${reason}`, { reset: true })
    // if the connection outlives the ban, the exchange may start again then
    const t = setTimeout(() => { if (!this.isBanned(peer)) void this.openSession(peer) }, Math.max(0, until - now) + 1000)
    t.unref()
  }

  countersOf (peer: string): PeerCounters {
    let c = this.counters.get(peer)
    if (c === undefined) {
      if (this.counters.size >= MAX_COUNTERS) {
        for (const k of this.counters.keys()) {
          if (!this.sessions.has(k)) { this.counters.delete(k); break }
        }
      }
      c = { bytes_received: 0, blocks_received: 0, bytes_sent: 0, blocks_sent: 0, corrupt_blocks: 0 }
      this.counters.set(peer, c)
    }
    return c
  }

  // ---- the store --------------------------------------------------------------

  private async load (root: Uint8Array): Promise<void> {
    const key = cidKey(root)
    let result: ExchangeInput & { type: 'loaded' }
    try {
      const cid = CID.decode(root)
      const r = await readIndexSpace(this.store, cid)
      if (r.status === 'failed') result = { type: 'loaded', root, result: { status: 'failed', reason: r.reason } }
      else if (r.status === 'manifest-missing') result = { type: 'loaded', root, result: { status: 'manifest-missing', missing: r.missing.map(c => c.bytes) } }
      else {
        const h = this.held.get(key)
        if (h !== undefined) {
          h.space = r.space
          h.name = r.space.record.name
        }
        if (h?.maxBytes !== undefined && r.space.totalBytes > h.maxBytes) {
          const reason = `its leaves take ${r.space.totalBytes} bytes, more than the ${h.maxBytes} its advisory signs (endless data): not fetched`
          this.log.warn('advised build refused', { cid: h.text, reason })
          result = { type: 'loaded', root, result: { status: 'failed', reason } }
        } else {
          const have = await leavesHeld(this.store, r.space)
          // leaves to fetch: make the store's shard directories first (once), so that no block waits on a mkdir
          if (have.count < r.space.leaves) await this.shardsMade()
          result = { type: 'loaded', root, result: { status: 'ready', manifest: r.space.manifest.map(c => c.bytes), sizes: r.space.sizes, have: have.bitfield } }
        }
      }
    } catch (err) {
      result = { type: 'loaded', root, result: { status: 'failed', reason: `reading the store failed: ${(err as Error).message}` } }
    }
    this.input(result)
  }

  private shards: Promise<void> | undefined
  private async shardsMade (): Promise<void> {
    this.shards ??= this.store.makeShards().catch(err => { this.log.warn('cannot create the store\'s shard directories', { error: err }) })
    await this.shards
  }

  /**
   * Writes a block whose bytes were just checked against cid, replacing any
   * copy on disk (a rotted one, or the same bytes: a rename either way).
   * Synchronous, as the store's writes are (blockstore.ts).
   */
  private putVerified (cid: CID, bytes: Uint8Array): void {
    const dest = this.store.path(cid)
    try {
      this.store.writeFile(dest, bytes)
    } catch (err) {
      // no shard directory yet (makeShards still at work, or removed since)
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      mkdirSync(dirname(dest), { recursive: true })
      this.store.writeFile(dest, bytes)
    }
  }

  /**
   * Hashes each accepted entry of a received data frame against its CID and
   * hands the good ones to the writer thread (or writes them here when it
   * has no room); the core hears `stored` once they are in the store.
   */
  private storeBlocks (o: ExchangeOutput & { type: 'store' }): void {
    const m = o.blocks
    const h = this.held.get(cidKey(o.root))
    const ok: number[] = []
    const okCids: Uint8Array[] = []
    const bad: number[] = []
    const badCids: Uint8Array[] = []
    const failed: number[] = []
    const failedCids: Uint8Array[] = []
    const queued: number[] = []
    const queuedCids: Uint8Array[] = []
    let okBytes = 0
    let queuedBytes = 0
    const leaves = m.cids.length === 0
    /** Stores a verified block: true when queued for the thread, false when written here; throws what writing threw. */
    const put = (cid: CID, bytes: Uint8Array): boolean => {
      if (this.writer.queue(cid, bytes)) return true
      this.putVerified(cid, bytes)
      return false
    }
    for (const e of o.entries) {
      const bytes = m.payload.subarray(m.offsets[e]!, m.offsets[e + 1]!)
      if (leaves) {
        const i = m.indices[e]!
        const space = h?.space
        if (space === undefined || i >= space.leaves) {
          failed.push(i)
          continue
        }
        if (!sameBytes(this.hasher(bytes), leafDigest(space, i))) {
          bad.push(i)
          continue
        }
        try {
          if (put(leafCid(space, i), bytes)) {
            queued.push(i)
            queuedBytes += bytes.length
          } else {
            ok.push(i)
            okBytes += bytes.length
          }
        } catch (err) {
          failed.push(i)
          this.storeFailed(err)
        }
      } else {
        const c = m.cids[e]!
        let cid: CID
        try {
          cid = CID.decode(c)
        } catch {
          badCids.push(c.slice())
          continue
        }
        if (!matches(cid, bytes)) {
          badCids.push(c.slice())
          continue
        }
        try {
          if (put(cid, bytes)) {
            queuedCids.push(c.slice())
            queuedBytes += bytes.length
          } else {
            okCids.push(c.slice())
            okBytes += bytes.length
          }
        } catch (err) {
          failedCids.push(c.slice())
          this.storeFailed(err)
        }
      }
    }
    const root = o.root.slice()
    const peer = o.peer
    if (bad.length + badCids.length > 0) {
      this.countersOf(peer).corrupt_blocks += bad.length + badCids.length
      this.input({ type: 'stored', peer, root, indices: bad, cids: badCids, result: 'corrupt' })
    }
    const stored = (indices: number[], cids: Uint8Array[], bytes: number): void => {
      if (indices.length + cids.length === 0) return
      if (h !== undefined) {
        let src = h.sources.get(peer)
        if (src === undefined) h.sources.set(peer, src = { bytes: 0, blocks: 0 })
        src.bytes += bytes
        src.blocks += indices.length + cids.length
      }
      this.input({ type: 'stored', peer, root, indices, cids, result: 'ok' })
    }
    stored(ok, okCids, okBytes)
    if (failed.length + failedCids.length > 0) this.input({ type: 'stored', peer, root, indices: failed, cids: failedCids, result: 'failed' })
    if (queued.length + queuedCids.length === 0) return
    this.writer.settled().then(
      () => { stored(queued, queuedCids, queuedBytes) },
      err => {
        this.storeFailed(err)
        this.input({ type: 'stored', peer, root, indices: queued, cids: queuedCids, result: 'failed' })
      }
    )
  }

  private lastStoreError = 0
  private storeFailed (err: unknown): void {
    if (Date.now() - this.lastStoreError < 10_000) return
    this.lastStoreError = Date.now()
    this.log.error('cannot write blocks to the store', { error: err })
  }

  /** Reads (and verifies) the leaves a serve asks for: each one's bytes, or undefined when we cannot serve it. */
  private async readLeaves (o: ExchangeOutput & { type: 'serve' }): Promise<Array<Uint8Array | undefined>> {
    const space = this.held.get(cidKey(o.root))?.space
    const wanted: number[] = []
    for (const i of o.indices) if (space !== undefined && i < space.leaves) wanted.push(i)
    if (space === undefined || wanted.length === 0) return Array.from(o.indices, () => undefined)
    const got = await this.reader.read(wanted.map(i => ({ cid: leafCid(space, i), size: space.sizes[i]! })))
    const out: Array<Uint8Array | undefined> = []
    let k = 0
    for (const i of o.indices) out.push(i < space.leaves ? got[k++] : undefined)
    return out
  }

  /** Writes the read leaves and the asked manifest blocks (verified reads) as data frames of at most MAX_FRAME_SIZE; then `served`. */
  private async serve (s: Session, o: ExchangeOutput & { type: 'serve' }, w: Writer, leaves: Promise<Array<Uint8Array | undefined>>): Promise<void> {
    const h = this.held.get(cidKey(o.root))
    const missingIndices: number[] = []
    const missingCids: Uint8Array[] = []
    const counters = this.countersOf(s.peer)
    let blocks: Uint8Array[] = []
    let idx: number[] = []
    let cids: Uint8Array[] = []
    let bytes = 0
    const flush = async (): Promise<void> => {
      if (blocks.length === 0) return
      const head = encodeBlocksHead({ root: o.root, indices: idx, cids, sizes: blocks.map(b => b.length) })
      w.send(new Uint8ArrayList(head, ...blocks))
      const n = blocks.length
      const sent = bytes
      blocks = []
      idx = []
      cids = []
      bytes = 0
      // counted once handed on: what waits in libp2p's buffer when the peer vanishes was not sent
      await w.drain()
      counters.bytes_sent += sent
      counters.blocks_sent += n
    }
    const add = async (b: Uint8Array): Promise<void> => {
      if (bytes > 0 && bytes + b.length > MAX_FRAME_SIZE - HEAD_ROOM) await flush()
      blocks.push(b)
      bytes += b.length
    }
    const read = await leaves
    for (let k = 0; k < o.indices.length; k++) {
      if (w.ended) return
      const i = o.indices[k]!
      const b = read[k]
      if (b === undefined) {
        missingIndices.push(i)
        continue
      }
      await add(b)
      idx.push(i)
    }
    for (const c of o.cids) {
      if (w.ended) return
      let b: Uint8Array
      try {
        b = await this.store.get(CID.decode(c))
      } catch {
        missingCids.push(c)
        continue
      }
      await add(b)
      cids.push(c)
    }
    await flush()
    if (w.ended) return
    if (missingIndices.length + missingCids.length > 0) this.log.warn('the store lacks blocks it announced', { cid: h?.text, leaves: missingIndices.length, manifest: missingCids.length })
    this.input({ type: 'served', peer: s.peer, root: o.root, missingIndices, missingCids })
  }

  // ---- builds -----------------------------------------------------------------

  /** Holds a build: announce it if complete, fetch what is missing. With `wanted`, remembered across restarts until complete. */
  hold (cidText: string, priority = 0, wanted = false, maxBytes?: number): void {
    const cid = parseCid(cidText)
    if (cid.code !== DAG_CBOR || cid.version !== 1) throw new ApiError(400, `${cidText} is not a build (a build is named by the CIDv1 of its dag-cbor record)`)
    const key = cidKey(cid.bytes)
    let h = this.held.get(key)
    if (h === undefined) {
      h = { cid, text: cid.toString(), key, priority, wanted: false, space: undefined, name: undefined, startedAt: Date.now(), completedAt: undefined, failed: undefined, sources: new Map(), samples: [], maxBytes: undefined }
      this.held.set(key, h)
    } else if (h.failed !== undefined) {
      // asked again after a failure: start over
      h.failed = undefined
      h.startedAt = Date.now()
    }
    h.priority = priority
    if (maxBytes !== undefined) h.maxBytes = Math.min(maxBytes, h.maxBytes ?? Infinity)
    if (wanted && !h.wanted) {
      h.wanted = true
      if (h.completedAt === undefined) {
        void this.writeFetching(h)
        this.c.events.emit('build:fetch', { cid: h.text, priority })
      }
    }
    this.input({ type: 'hold', root: cid.bytes, priority })
  }

  /** A build noted complete in DATA/builds (at start, by `xo-mesh add`/`import`, by us). */
  private noteIndexed (cidText: string): void {
    if (this.indexSeen.has(cidText)) return
    this.indexSeen.add(cidText)
    try {
      const h = this.held.get(cidKey(parseCid(cidText).bytes))
      if (h !== undefined && h.failed === undefined) return
      this.hold(cidText, 0, false)
      this.log.debug('holding a build of the index', { cid: cidText })
    } catch (err) {
      this.log.warn('the build index names something that is not a build', { cid: cidText, error: err })
    }
  }

  private async pollIndex (): Promise<void> {
    let names: string[]
    try {
      names = await readdir(join(this.c.repo.dir, 'builds'))
    } catch {
      return
    }
    for (const n of names) if (!n.endsWith('.tmp') && !this.indexSeen.has(n)) this.noteIndexed(n)
  }

  private async onComplete (root: Uint8Array): Promise<void> {
    const key = cidKey(root)
    const h = this.held.get(key)
    if (h === undefined) return
    const fresh = h.completedAt === undefined
    h.completedAt = Date.now()
    if (fresh && h.sources.size > 0) {
      const secs = Math.max(0.001, (h.completedAt - h.startedAt) / 1000)
      const bytes = h.space?.totalBytes ?? 0
      this.log.info('build complete', {
        cid: h.text,
        name: h.name,
        bytes,
        seconds: Math.round(secs * 1000) / 1000,
        mb_per_s: Math.round(bytes / 1e6 / secs * 10) / 10,
        sources: Object.fromEntries([...h.sources].map(([p, x]) => [p, x.bytes]))
      })
    }
    try {
      if (statSync(join(this.c.repo.dir, 'builds', h.text), { throwIfNoEntry: false }) === undefined) {
        // the blocks reach the disk before the build's entry points at them (docs/content.md)
        await this.store.flush()
        await this.c.repo.noteBuild(h.cid, h.space?.record ?? await readRecord(this.store, h.cid))
        this.indexSeen.add(h.text)
      }
    } catch (err) {
      this.log.error('cannot note a complete build in the build index', { cid: h.text, error: err })
    }
    if (h.wanted) await this.removeFetching(h)
  }

  private fetchingPath (h: Held): string {
    return join(this.c.dataDir, FETCHING_DIR, h.text)
  }

  private async writeFetching (h: Held): Promise<void> {
    try {
      await mkdir(join(this.c.dataDir, FETCHING_DIR), { recursive: true })
      const path = this.fetchingPath(h)
      await writeFile(path + '.tmp', JSON.stringify({ cid: h.text, priority: h.priority, requested: new Date(h.startedAt).toISOString() }) + '\n')
      await rename(path + '.tmp', path)
    } catch (err) {
      this.log.warn('cannot remember a fetch across restarts', { cid: h.text, error: err })
    }
  }

  private async removeFetching (h: Held): Promise<void> {
    await unlink(this.fetchingPath(h)).catch(() => {})
  }

  private async readFetching (): Promise<Array<{ cid: string, priority: number }>> {
    const dir = join(this.c.dataDir, FETCHING_DIR)
    let names: string[]
    try {
      names = await readdir(dir)
    } catch {
      return []
    }
    const out: Array<{ cid: string, priority: number }> = []
    for (const n of names) {
      if (n.endsWith('.tmp')) continue
      let priority = 0
      try {
        const rec = JSON.parse(await readFile(join(dir, n), 'utf8')) as { priority?: unknown }
        if (Number.isSafeInteger(rec.priority)) priority = rec.priority as number
      } catch {
        // a torn record: the name is enough
      }
      out.push({ cid: n, priority })
    }
    return out
  }

  /** Ends sessions whose peer began a frame long ago and has not finished it: it holds up to MAX_FRAME_SIZE of our memory. */
  private dropStalledFrames (): void {
    const now = Date.now()
    for (const s of this.sessions.values()) {
      if (s.partialSince !== undefined && now - s.partialSince > PARTIAL_FRAME_MS) {
        this.log.info('dropping a peer whose frame stalled half-way', { peerId: s.peer, pending: s.pendingBytes })
        s.end('a frame stalled half-way', { reset: true })
      }
    }
  }

  private sampleRates (): void {
    this.dropStalledFrames()
    trimFrameScratch()
    const now = Date.now()
    for (const h of this.held.values()) {
      if (h.completedAt !== undefined || h.failed !== undefined) {
        h.samples.length = 0
        continue
      }
      const st = this.core.status(h.cid.bytes)
      if (st === undefined) continue
      h.samples.push([now, st.haveBytes])
      if (h.samples.length > RATE_SAMPLES) h.samples.shift()
    }
  }

  // ---- what the API shows -----------------------------------------------------

  /** Progress of a build held here, or undefined. */
  progress (cidText: string): BuildProgress | undefined {
    const cid = parseCid(cidText)
    const h = this.held.get(cidKey(cid.bytes))
    if (h === undefined) return undefined
    const st: CoreBuildStatus | undefined = this.core.status(h.cid.bytes)
    const complete = h.completedAt !== undefined && (st === undefined || st.complete)
    let rate = 0
    if (!complete && h.samples.length >= 2) {
      const [t0, b0] = h.samples[0]!
      const [t1, b1] = h.samples[h.samples.length - 1]!
      if (t1 > t0) rate = Math.max(0, (b1 - b0) / ((t1 - t0) / 1000))
    }
    return {
      cid: h.text,
      name: h.name ?? null,
      phase: h.failed !== undefined ? 'failed' : complete ? 'complete' : st?.phase ?? 'loading',
      complete,
      priority: h.priority,
      leaves: st?.leaves ?? h.space?.leaves ?? 0,
      have_leaves: st?.haveLeaves ?? 0,
      bytes: st?.bytes ?? h.space?.totalBytes ?? 0,
      have_bytes: st?.haveBytes ?? 0,
      holders: st?.holders ?? 0,
      sources: [...h.sources].map(([peerId, x]) => ({ peerId, bytes: x.bytes, blocks: x.blocks })),
      rate: Math.round(rate),
      started: new Date(h.startedAt).toISOString(),
      completed: h.completedAt !== undefined ? new Date(h.completedAt).toISOString() : null,
      error: h.failed ?? null
    }
  }

  /** Progress of every build held here (fetching first, then by name). */
  progressAll (): BuildProgress[] {
    const all = [...this.held.values()].map(h => this.progress(h.text)!)
    return all.sort((a, b) => Number(a.complete) - Number(b.complete) || (a.name ?? '').localeCompare(b.name ?? '') || a.cid.localeCompare(b.cid))
  }

  /** Block counters and exchange state of a peer, for GET /api/v1/peers. */
  peerInfo (peerId: string): Record<string, unknown> | undefined {
    const c = this.counters.get(peerId)
    const s = this.sessions.get(peerId)
    if (c === undefined && s === undefined) return undefined
    const p = this.core.peerList().find(x => x.peer === peerId)
    return {
      ...(c ?? this.countersOf(peerId)),
      open: s?.open ?? false,
      choked_us: p?.chokedUs ?? false,
      serving: p?.serving ?? false
    }
  }

  /** Bans in force. */
  banList (): Array<{ peerId: string, reason: string, since: string, until: string }> {
    const now = this.now()
    return [...this.bans].filter(([, b]) => b.until > now).map(([peerId, b]) => ({ peerId, reason: b.reason, since: new Date(b.at).toISOString(), until: new Date(b.untilWall).toISOString() }))
  }

  get stats (): ExchangeStats {
    return this.core.stats
  }

  status (): StatusPart {
    const builds: BuildStatus[] = []
    for (const h of this.held.values()) {
      if (h.completedAt !== undefined || h.failed !== undefined) continue
      const st = this.core.status(h.cid.bytes)
      // a build of the index is complete unless the store turned out to lack some of it
      if (this.indexSeen.has(h.text) && (st === undefined || st.phase !== 'ready' || st.complete)) continue
      builds.push({ cid: h.text, name: h.name ?? '', bytes: st?.bytes ?? 0, have_bytes: st?.haveBytes ?? 0, complete: false })
    }
    return {
      builds,
      extra: {
        exchanging_with: [...this.sessions.values()].filter(s => s.open).length,
        bans: this.banList(),
        stats: { ...this.core.stats },
        available: [...this.available.values()].filter(a => !this.held.has(cidKey(parseCid(a.cid).bytes))).map(a => ({ cid: a.cid, leaves: a.leaves, complete: a.complete, peers: a.peers.size }))
      }
    }
  }
}
