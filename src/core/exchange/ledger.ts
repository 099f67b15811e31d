// The upload side: what each peer asked us for, who is being served, and
// when. A few peers hold upload slots (the rest are choked and told so, so
// they fetch elsewhere instead of waiting); slot holders are served round-robin
// one frame at a time, each frame sized to ~50 ms of that peer's link; a
// global token bucket caps the upload rate; while peers wait, the
// longest-served holder is choked every rotateTime so every peer gets a turn.
import { MAX_CIDS, MAX_INDICES, MAX_QUEUED_REQUESTS, type Tuning } from './constants.ts'
import { TokenBucket } from './token-bucket.ts'
import { cidKey } from './cid-bytes.ts'

/** One requested block: a leaf (index ≥ 0) or a manifest block (cid), of a build named by key. */
export interface ServeItem {
  key: string
  index: number
  cid: Uint8Array | undefined
  /** Its size, or an estimate for a manifest block. */
  bytes: number
}

/** One frame's worth of blocks to send to one peer: all leaves (ascending) or all CIDs of one build. */
export interface ServeBatch {
  peer: string
  key: string
  indices: number[]
  cids: Uint8Array[]
  bytes: number
}

export interface LedgerNotice { peer: string, type: 'choke' | 'unchoke' }

/** A frame should take about this long to write to the peer, ms: small frames on slow links keep each block's delay short. */
const FRAME_TIME = 50
/** Frame size before a peer's drain rate is known, bytes (less when the other peers drain slower: see Ledger.typicalDrain). */
const FIRST_FRAME = 256 * 1024
/**
 * A peer that queued more than 50 ms of its link with us gets frames of half
 * what it queued (the pipeline's two frames), up to this many bytes: it asked
 * for that much on purpose (a fetcher asks a slow peer for much only when its
 * other sources are no faster: a crowded channel, protocols/blocks.md 7.3),
 * and there a frame per leaf costs a request, a serve and an announcement
 * per leaf for the same airtime. A peer's frames grow to it by doubling
 * (FRAME_GROWTH), so the fetcher's delay estimate, and with it its stall
 * timeout, follows.
 */
const MIN_FRAME = 512 * 1024
/** A frame is at most this many times the peer's previous one (when 50 ms of its link is less). */
const FRAME_GROWTH = 2
/**
 * A slot holder is rotated out only after this many frames of its turn were
 * written, however long they took: when every peer is slow (a crowded
 * channel), a time-only turn ends mid-frame and chokes peers that were
 * served nothing, for nothing.
 */
const TURN_FRAMES = 4

class Uploader {
  readonly id: string
  queue: ServeItem[] = []
  head = 0
  /** Serve batches handed to the driver and not yet reported served: when, and how many bytes. */
  readonly sent: Array<{ at: number, bytes: number }> = []
  /** How fast the driver writes to this peer, bytes per ms (0 until measured). */
  drainRate = 0
  /** Bytes of the last frame handed over for it (0: none yet). */
  lastFrame = 0
  /** Bytes of the requests queued. */
  queuedBytes = 0
  lastServedAt = 0
  slot = false
  slotSince = 0
  /** Frames written to it since it got its slot. */
  turnFrames = 0
  lastActive = 0
  /** We sent Choke and no Unchoke since. */
  choked = false

  constructor (id: string) { this.id = id }

  get queued (): number { return this.queue.length - this.head }
  get inFlight (): number { return this.sent.length }
}

export interface LedgerInit {
  /** Peers served at once. */
  slots: number
  /** Upload cap, bytes per second; 0 for none. */
  rate: number
  tuning: Tuning
}

export class Ledger {
  private readonly peers = new Map<string, Uploader>()
  private holders: Uploader[] = []
  private waiters: Uploader[] = []
  private cursor = 0
  /**
   * How fast frames drain to our peers, bytes per ms (a moving average over
   * every peer; 0 until measured): a new peer's first frame is ~FRAME_TIME of
   * it, so on a crowded channel a first frame is not seconds of airtime
   * behind which its requests time out.
   */
  private typicalDrain = 0
  private readonly slots: number
  private readonly bucket: TokenBucket | undefined
  private readonly tuning: Tuning
  /** Choke and Unchoke messages to send, drained by the exchange. */
  readonly notices: LedgerNotice[] = []

  constructor (init: LedgerInit, now: number) {
    this.slots = Math.max(1, init.slots)
    this.tuning = init.tuning
    if (init.rate > 0) {
      const perMs = init.rate / 1000
      // a quarter second of burst, and never less than one frame
      this.bucket = new TokenBucket(perMs, Math.max(init.tuning.serveBatchBytes, perMs * 250), now)
    }
  }

  /** Requests queued for a peer. */
  queued (peer: string): number {
    return this.peers.get(peer)?.queued ?? 0
  }

  /** True when the peer holds an upload slot. */
  serving (peer: string): boolean {
    return this.peers.get(peer)?.slot ?? false
  }

  /** True when the peer holds an upload slot and has nothing queued: it waits for something new to ask for. */
  waiting (peer: string): boolean {
    const u = this.peers.get(peer)
    return u !== undefined && u.slot && u.queued === 0
  }

  /**
   * Queues a peer's requests. 'choked': no slot is free (the peer has been
   * told, or is told now; the items are dropped). 'overflow': more than
   * MAX_QUEUED_REQUESTS would be queued (the caller bans the peer).
   */
  enqueue (peer: string, items: ServeItem[], now: number): 'queued' | 'choked' | 'overflow' {
    let u = this.peers.get(peer)
    if (u === undefined) {
      u = new Uploader(peer)
      this.peers.set(peer, u)
    }
    if (!u.slot) {
      if (this.holders.length < this.slots) this.grant(u, now)
      else {
        if (!u.choked) {
          u.choked = true
          this.notices.push({ peer, type: 'choke' })
          this.waiters.push(u)
        }
        return 'choked'
      }
    }
    if (u.queued + items.length > MAX_QUEUED_REQUESTS) return 'overflow'
    if (u.head > 1024 && u.head * 2 > u.queue.length) {
      u.queue = u.queue.slice(u.head)
      u.head = 0
    }
    for (const item of items) {
      u.queue.push(item)
      u.queuedBytes += item.bytes
    }
    u.lastActive = now
    return 'queued'
  }

  /** Forgets queued requests of a peer for a build (leaves by index, manifest blocks by CID key). */
  cancel (peer: string, key: string, indices: ArrayLike<number>, cids: readonly Uint8Array[]): void {
    const u = this.peers.get(peer)
    if (u === undefined || u.queued === 0) return
    const idx = new Set<number>(Array.from(indices))
    const ck = new Set(cids.map(cidKey))
    this.filter(u, it => !(it.key === key && (it.cid === undefined ? idx.has(it.index) : ck.has(cidKey(it.cid)))))
  }

  /** Forgets every queued request for a build (it was dropped). */
  dropBuild (key: string): void {
    for (const u of this.peers.values()) this.filter(u, it => it.key !== key)
  }

  /** Forgets a peer (disconnected or banned); its slot goes to the next waiter. */
  remove (peer: string, now: number): void {
    const u = this.peers.get(peer)
    if (u === undefined) return
    this.peers.delete(peer)
    this.waiters = this.waiters.filter(w => w !== u)
    if (u.slot) this.release(u, now)
  }

  /** The driver finished writing a serve batch to the peer. */
  served (peer: string, now: number): void {
    const u = this.peers.get(peer)
    if (u === undefined) return
    const batch = u.sent.shift()
    if (batch !== undefined) {
      // the frame was written from when it was handed over or the previous one finished, whichever is later
      const start = Math.max(batch.at, u.lastServedAt)
      if (now > start && batch.bytes > 0) {
        const sample = batch.bytes / (now - start)
        u.drainRate = u.drainRate === 0 ? sample : 0.7 * u.drainRate + 0.3 * sample
        this.typicalDrain = this.typicalDrain === 0 ? sample : 0.9 * this.typicalDrain + 0.1 * sample
      }
      if (u.slot) u.turnFrames++
    }
    u.lastServedAt = now
    u.lastActive = now
  }

  /** The next frame to send, if a slot holder has work, the pipeline has room and the cap allows. */
  next (now: number): ServeBatch | undefined {
    if (this.bucket !== undefined && this.bucket.available(now) <= 0) return undefined
    const n = this.holders.length
    for (let k = 0; k < n; k++) {
      const u = this.holders[(this.cursor + k) % n]!
      if (u.queued === 0 || u.inFlight >= this.tuning.servePipeline) continue
      this.cursor = (this.cursor + k + 1) % n
      const batch = this.batch(u)
      u.sent.push({ at: now, bytes: batch.bytes })
      u.lastActive = now
      this.bucket?.take(batch.bytes, now)
      return batch
    }
    return undefined
  }

  /** Takes back idle slots and rotates slots among waiting peers. */
  tick (now: number): void {
    for (const u of [...this.holders]) {
      if (u.queued === 0 && u.inFlight === 0 && now >= u.lastActive + this.tuning.slotIdleTime) this.release(u, now)
    }
    // every holder whose turn is over gives way (each rotation seats a waiter from now on)
    while (this.waiters.length > 0) {
      let longest: Uploader | undefined
      for (const u of this.holders) if (this.turnOver(u, now) && (longest === undefined || u.slotSince < longest.slotSince)) longest = u
      if (longest === undefined) return
      longest.queue = []
      longest.head = 0
      longest.queuedBytes = 0
      longest.choked = true
      this.notices.push({ peer: longest.id, type: 'choke' })
      this.release(longest, now)
      this.waiters.push(longest)
    }
  }

  /** When tick() or next() may have something to do, or undefined. */
  deadline (now: number): number | undefined {
    let d = Infinity
    let work = false
    for (const u of this.holders) {
      if (u.queued > 0 && u.inFlight < this.tuning.servePipeline) work = true
      if (u.queued === 0 && u.inFlight === 0) d = Math.min(d, u.lastActive + this.tuning.slotIdleTime)
      // a turn short of its frames ends after a frame is served, whose input recomputes this
      if (this.waiters.length > 0 && (u.turnFrames >= TURN_FRAMES || (u.queued === 0 && u.inFlight === 0))) d = Math.min(d, u.slotSince + this.tuning.rotateTime)
    }
    if (work && this.bucket !== undefined) {
      const at = this.bucket.positiveAt(now)
      if (at > now) d = Math.min(d, at)
    }
    return d === Infinity ? undefined : d
  }

  /** Its turn is over: rotateTime has passed and it was served TURN_FRAMES frames (or wants no more). */
  private turnOver (u: Uploader, now: number): boolean {
    return now >= u.slotSince + this.tuning.rotateTime && (u.turnFrames >= TURN_FRAMES || (u.queued === 0 && u.inFlight === 0))
  }

  private grant (u: Uploader, now: number): void {
    u.slot = true
    u.slotSince = now
    u.turnFrames = 0
    u.lastActive = now
    this.holders.push(u)
    if (u.choked) {
      u.choked = false
      this.notices.push({ peer: u.id, type: 'unchoke' })
    }
  }

  private release (u: Uploader, now: number): void {
    u.slot = false
    const i = this.holders.indexOf(u)
    if (i >= 0) {
      this.holders.splice(i, 1)
      if (this.cursor > i) this.cursor--
      if (this.cursor >= this.holders.length) this.cursor = 0
    }
    while (this.holders.length < this.slots && this.waiters.length > 0) this.grant(this.waiters.shift()!, now)
  }

  private filter (u: Uploader, keep: (it: ServeItem) => boolean): void {
    u.queue = u.queue.slice(u.head).filter(keep)
    u.head = 0
    u.queuedBytes = 0
    for (const it of u.queue) u.queuedBytes += it.bytes
  }

  /** Takes a frame's worth from the head of the queue: one build, one kind (leaves or CIDs), no duplicates. */
  private batch (u: Uploader): ServeBatch {
    const first = u.queue[u.head]!
    const max = this.tuning.serveBatchBytes
    const firstFrame = this.typicalDrain === 0 ? FIRST_FRAME : Math.min(FIRST_FRAME, this.typicalDrain * FRAME_TIME)
    const floor = Math.min(MIN_FRAME, FRAME_GROWTH * u.lastFrame, u.queuedBytes / 2)
    const limit = Math.min(max, u.drainRate === 0 ? firstFrame : Math.max(floor, u.drainRate * FRAME_TIME))
    const leaves = first.cid === undefined
    const indices = new Set<number>()
    const cids = new Map<string, Uint8Array>()
    let bytes = 0
    while (u.head < u.queue.length) {
      const it = u.queue[u.head]!
      if (it.key !== first.key || (it.cid === undefined) !== leaves) break
      if (bytes > 0 && bytes + it.bytes > limit) break
      if (indices.size >= MAX_INDICES || cids.size >= MAX_CIDS) break
      u.head++
      u.queuedBytes -= it.bytes
      if (it.cid === undefined) {
        if (indices.has(it.index)) continue
        indices.add(it.index)
      } else {
        const k = cidKey(it.cid)
        if (cids.has(k)) continue
        cids.set(k, it.cid)
      }
      bytes += it.bytes
    }
    if (u.head === u.queue.length) {
      u.queue = []
      u.head = 0
      u.queuedBytes = 0
    }
    u.lastFrame = bytes
    return { peer: u.id, key: first.key, indices: [...indices].sort((a, b) => a - b), cids: [...cids.values()], bytes }
  }
}
