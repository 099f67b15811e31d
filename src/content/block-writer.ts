// Writing the many new blocks of one producer (add) as fast as the store
// allows.
//
// A new block costs the kernel an open, a write, a close and a rename; a
// block the store holds costs one stat. No stat per new block: the first time
// a block falls in a shard directory, one readdir notes a small key (nameKey)
// of every block there. A key not noted means the block is absent, and it is
// written at once; a noted key (the block is there, or two names share a key)
// is confirmed by a stat. A block another process adds after that readdir is
// written a second time: a rename of the same bytes over it, harmless.
// Memory: about 20 bytes per block in the store (30 MB for a 100 GB store),
// not per byte added.
//
// With a second core, the file operations run on a writer thread while the
// producer reads, chunks and hashes the next blocks: put() copies the block
// into a shared ring (8 MiB, plus the thread's own memory) and returns; the
// thread writes from the ring and frees the space. When the ring is full,
// put() writes that block itself instead of waiting, so neither side idles
// whichever is slower. On one core (an XO) the thread would only add
// switches, so put() writes inline; so does a small add (the first 16 MiB),
// which would spend more starting the thread than it saves.
//
// Durability: commit() waits for every write, then flushes the filesystem
// once (BlockStore.flush); the caller writes what points at the blocks (the
// build's entry) only after it resolves. No block is fsynced on its own; on
// the way, every 128 MiB starts a flush in the background so that the disk
// writes while the add goes on and the final flush has little left.
import { mkdirSync, readdirSync, statSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { CID } from './cid.ts'
import { NoSpaceError } from './errors.ts'
import { shardOf, type BlockStore } from './blockstore.ts'

/**
 * Every this many bytes written, the disk is set to work on them in the
 * background (BlockStore.flushSoon): the kernel would otherwise hold a 1 GiB
 * add in the page cache and write it all during commit()'s flush.
 */
const FLUSH_AHEAD_BYTES = 128 << 20
/** The writer thread starts once this much is written: a small add would spend more starting it (~50–150 ms) than it saves. */
const THREAD_AFTER_BYTES = 16 << 20
/** Bytes of the ring between the producer and the writer thread. */
const RING_BYTES = 8 << 20
/** Record header: int32 record length (-1: wrap to the ring's start), int32 data length, int32 name length, int32 unused. */
const HEADER = 16
// the control words (Int32Array over a SharedArrayBuffer)
const USED = 0 // bytes of the ring holding records not yet written
const STATE = 1 // 0 running, 1 the producer is done, 2 the writer failed
const WRITER_WAITS = 2 // 1 while the writer sleeps on an empty ring: the producer must wake it
const PRODUCER_WAITS = 3 // 1 while the producer sleeps on a full ring: the writer must wake it
// (a wake-up is a futex call: only made when someone sleeps, not per block)
const DONE = 4 // records the writer has finished with (written, or skipped after a failure), modulo 2^32
const FAILED_AT = 5 // after a failure: the number of the record that failed (records before it are written)
const WATCHER_WAITS = 6 // 1 while the producer's thread awaits DONE (Atomics.waitAsync): the writer must wake it
const CONTROL_WORDS = 8
const ERROR_BYTES = 1024 // after the control words: the writer's error, as JSON

/** A 30-bit key of a block file's name, from its last characters (the tail of the sha-256 digest): a small integer, cheap to keep. */
function nameKey (name: string): number {
  let h = 0x811c9dc5
  for (let i = Math.max(0, name.length - 14); i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193)
  return h & 0x3fffffff
}

// The writer thread, as CommonJS source: a worker file of its own would need
// the TypeScript loader (or a bundler's help) in the thread. It loops over
// the ring: each record is a block's path (relative to the store) and bytes,
// written through a temp file and a rename exactly as BlockStore.writeFile
// does. After a failure it records the error, keeps consuming (so the
// producer never waits forever) and writes nothing more.
const WRITER_SOURCE = `
const { workerData } = require('node:worker_threads')
const fs = require('node:fs')
const path = require('node:path')
const { ring, control, dir, tmp, prefix } = workerData
const R = ring.byteLength
const bytes = new Uint8Array(ring)
const ints = new Int32Array(ring)
const c = new Int32Array(control, 0, 8)
const errorBytes = new Uint8Array(control, 32)
let tail = 0
let counter = 0
let failed = false
function fail (err) {
  failed = true
  Atomics.store(c, 5, Atomics.load(c, 4))
  const text = Buffer.from(JSON.stringify({ code: err && err.code, message: String(err && err.message) })).subarray(0, errorBytes.length)
  errorBytes.set(text)
  Atomics.store(c, 1, 2)
}
function write (dest, data) {
  const t = path.join(tmp, prefix + '.w' + (counter++))
  let fd
  try {
    fd = fs.openSync(t, 'wx', 0o644)
  } catch (err) {
    if (err.code !== 'ENOENT') throw err
    fs.mkdirSync(tmp, { recursive: true })
    fd = fs.openSync(t, 'wx', 0o644)
  }
  try {
    try {
      for (let off = 0; off < data.length;) off += fs.writeSync(fd, data, off)
    } finally {
      fs.closeSync(fd)
    }
    try {
      fs.renameSync(t, dest)
    } catch (err) {
      if (err.code !== 'ENOENT') throw err
      fs.mkdirSync(path.dirname(dest), { recursive: true }) // a shard directory not made yet
      fs.renameSync(t, dest)
    }
  } catch (err) {
    try { fs.unlinkSync(t) } catch {}
    throw err
  }
}
function consumed (k) {
  Atomics.sub(c, 0, k)
  if (Atomics.load(c, 3) === 1) Atomics.notify(c, 0)
  if (Atomics.load(c, 6) === 1) Atomics.notify(c, 4)
}
try {
  for (;;) {
    if (Atomics.load(c, 0) === 0) {
      if (Atomics.load(c, 1) !== 0) break
      Atomics.store(c, 2, 1)
      Atomics.wait(c, 0, 0) // returns at once if a record came after the check
      Atomics.store(c, 2, 0)
      continue
    }
    const len = ints[tail >> 2]
    if (len === -1) {
      const k = R - tail
      tail = 0
      consumed(k)
      continue
    }
    if (!failed) {
      const dataLen = ints[(tail >> 2) + 1]
      const nameLen = ints[(tail >> 2) + 2]
      const name = Buffer.from(ring, tail + 16, nameLen).toString('latin1')
      try {
        write(path.join(dir, name), bytes.subarray(tail + 16 + nameLen, tail + 16 + nameLen + dataLen))
      } catch (err) {
        fail(err)
      }
    }
    tail += len
    if (tail === R) tail = 0
    Atomics.add(c, 4, 1)
    consumed(len)
  }
} catch (err) {
  fail(err)
  Atomics.notify(c, 0)
}
`

/** Rings started by this process: part of their threads' temp names, which must not clash when two write to one store at once. */
let rings = 0

/** The producer's side of the ring. */
class Ring {
  private readonly size: number
  private readonly ring: SharedArrayBuffer
  private readonly bytes: Uint8Array
  private readonly ints: Int32Array
  private readonly control = new SharedArrayBuffer(CONTROL_WORDS * 4 + ERROR_BYTES)
  private readonly c = new Int32Array(this.control, 0, CONTROL_WORDS)
  private readonly worker: Worker
  private readonly storeDir: string
  private head = 0
  /** Records pushed so far, modulo 2^32 (the writer's DONE counts up to it). */
  pushed = 0
  /** Bytes of records (and wrap markers) pushed but not yet handed to the writer (push's defer). */
  private unpublished = 0

  constructor (store: BlockStore, size = RING_BYTES) {
    this.size = size
    this.ring = new SharedArrayBuffer(size)
    this.bytes = new Uint8Array(this.ring)
    this.ints = new Int32Array(this.ring)
    this.storeDir = store.dir
    this.worker = new Worker(WRITER_SOURCE, {
      eval: true,
      workerData: { ring: this.ring, control: this.control, dir: store.dir, tmp: store.tmp, prefix: `${store.tmpPrefix}.r${rings++}` },
      // the thread allocates little (a path per block): a small heap keeps its memory to a few MB
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 }
    })
    this.worker.unref()
  }

  /** Throws the writer thread's error, if it failed. */
  check (): void {
    if (Atomics.load(this.c, STATE) !== 2) return
    const raw = Buffer.from(this.control, CONTROL_WORDS * 4, ERROR_BYTES)
    const end = raw.indexOf(0)
    let info: { code?: string, message?: string } = {}
    try {
      info = JSON.parse(raw.subarray(0, end < 0 ? raw.length : end).toString()) as typeof info
    } catch {
      // cut short: keep the generic message
    }
    const err = Object.assign(new Error(`writing a block failed: ${info.message ?? 'unknown error'}`), { code: info.code })
    if (info.code === 'ENOSPC' || info.code === 'EDQUOT') throw new NoSpaceError(this.storeDir, { cause: err })
    throw err
  }

  /** Waits until at least need bytes of the ring are free. */
  private waitFor (need: number): void {
    for (;;) {
      const used = Atomics.load(this.c, USED)
      if (this.size - used >= need) return
      this.check()
      Atomics.store(this.c, PRODUCER_WAITS, 1)
      Atomics.wait(this.c, USED, used, 1000) // returns at once if the writer freed space after the load
      Atomics.store(this.c, PRODUCER_WAITS, 0)
    }
  }

  /**
   * Queues a block for the writer thread and returns true once its bytes
   * are copied into the ring; returns false, queueing nothing, when the
   * ring has no room for it now (or ever): the caller then writes the block
   * itself rather than wait, which keeps both threads busy.
   */
  push (name: string, bytes: Uint8Array, defer = false): boolean {
    this.check()
    const len = (HEADER + name.length + bytes.length + 7) & ~7
    if (len > this.size >> 2) return false
    const room = this.size - this.head
    const need = room < len ? room + len : len // no room before the ring's end: a wrap marker takes the rest
    if (this.size - Atomics.load(this.c, USED) - this.unpublished < need) {
      this.publish()
      return false
    }
    if (room < len) {
      this.ints[this.head >> 2] = -1
      this.head = 0
      this.unpublished += room
    }
    const h = this.head
    this.ints[(h >> 2) + 1] = bytes.length
    this.ints[(h >> 2) + 2] = name.length
    for (let i = 0; i < name.length; i++) this.bytes[h + HEADER + i] = name.charCodeAt(i)
    this.bytes.set(bytes, h + HEADER + name.length)
    this.ints[h >> 2] = len
    this.head = h + len === this.size ? 0 : h + len
    this.pushed = (this.pushed + 1) | 0
    this.unpublished += len
    if (!defer) this.publish()
    return true
  }

  /**
   * Hands the records pushed since the last call to the writer (a
   * sequentially consistent write publishes them); wakes it if it sleeps.
   * A producer pushing several blocks at once defers this to the last: one
   * wake-up (a futex call and a thread switch) for them all.
   */
  publish (): void {
    if (this.unpublished === 0) return
    Atomics.add(this.c, USED, this.unpublished)
    this.unpublished = 0
    if (Atomics.load(this.c, WRITER_WAITS) === 1) Atomics.notify(this.c, USED)
  }

  /** Waits until every queued block is written; throws the writer's error. */
  drain (): void {
    this.publish()
    this.waitFor(this.size)
    this.check()
  }

  /** Records the writer has finished with (modulo 2^32). */
  get done (): number {
    return Atomics.load(this.c, DONE)
  }

  /** True once the writer failed; failedAt is then the number of the record that failed. */
  get failed (): boolean {
    return Atomics.load(this.c, STATE) === 2
  }

  get failedAt (): number {
    return Atomics.load(this.c, FAILED_AT)
  }

  /** Resolves when the writer has finished with more records than done (or after ms). */
  async progress (done: number, ms: number): Promise<void> {
    Atomics.store(this.c, WATCHER_WAITS, 1)
    try {
      const r = (Atomics as unknown as { waitAsync: (a: Int32Array, i: number, v: number, t: number) => { async: boolean, value: Promise<string> | string } }).waitAsync(this.c, DONE, done, ms)
      if (r.async) await r.value
    } finally {
      Atomics.store(this.c, WATCHER_WAITS, 0)
    }
  }

  /** Lets the thread finish and exit. */
  async close (): Promise<void> {
    this.publish()
    Atomics.store(this.c, STATE, Atomics.load(this.c, STATE) === 2 ? 2 : 1)
    Atomics.notify(this.c, USED)
    await this.worker.terminate()
  }
}

export interface BlockWriterOptions {
  /** Write on a thread of its own (default: when the machine has more than one core)... */
  thread?: boolean
  /** ...once this many bytes are written (default 16 MiB). */
  threadAfterBytes?: number
}

export class BlockWriter {
  readonly store: BlockStore
  /** Names (CIDs) of the blocks this writer added to the store (it did not hold them): what abort() removes. */
  readonly written: string[] = []
  private readonly keys = new Set<number>()
  private readonly shards = new Set<string>()
  private ring: Ring | undefined
  private readonly thread: boolean
  private readonly threadAfter: number
  private unflushed = 0
  private total = 0

  constructor (store: BlockStore, options: BlockWriterOptions = {}) {
    this.store = store
    this.thread = options.thread ?? availableParallelism() > 1
    this.threadAfter = options.threadAfterBytes ?? THREAD_AFTER_BYTES
  }

  private loadShard (shard: string): void {
    const dir = join(this.store.dir, shard)
    let names: string[]
    try {
      names = readdirSync(dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      mkdirSync(dir, { recursive: true })
      names = []
    }
    for (const name of names) this.keys.add(nameKey(name))
    this.shards.add(shard)
  }

  /**
   * Stores a block whose CID the caller computed from these very bytes.
   * Synchronous: the bytes are copied or written before it returns, so the
   * caller may reuse their buffer. Returns true when the block is new to the
   * store (written, or queued for the writer thread), false when the store
   * held it. Throws NoSpaceError or the filesystem's error, possibly for an
   * earlier block of this writer; abort() then removes them all.
   */
  put (cid: CID, bytes: Uint8Array): boolean {
    const name = cid.toV1().toString()
    const shard = shardOf(name)
    if (!this.shards.has(shard)) this.loadShard(shard)
    const key = nameKey(name)
    const rel = `${shard}/${name}`
    if (this.keys.has(key) && statSync(join(this.store.dir, rel), { throwIfNoEntry: false }) !== undefined) return false
    if (this.thread && this.total >= this.threadAfter) this.ring ??= new Ring(this.store)
    if (this.ring?.push(rel, bytes) !== true) this.store.writeFile(join(this.store.dir, rel), bytes)
    this.keys.add(key)
    this.written.push(name)
    this.unflushed += bytes.length
    this.total += bytes.length
    if (this.unflushed >= FLUSH_AHEAD_BYTES) {
      this.unflushed = 0
      this.store.flushSoon()
    }
    return true
  }

  /** Waits for every write, then makes them durable: call before writing anything that points at the blocks. */
  async commit (): Promise<void> {
    await this.stop(true)
    await this.store.flush()
  }

  /** Removes the blocks this writer added, after a failure: the store is left as it was. */
  async abort (): Promise<void> {
    await this.stop(false)
    for (const name of this.written) await this.store.delete(CID.parse(name))
    this.written.length = 0
  }

  /** Waits for the writer thread's queue to empty (its error thrown only when check) and ends the thread. */
  private async stop (check: boolean): Promise<void> {
    const ring = this.ring
    if (ring === undefined) return
    this.ring = undefined
    try {
      ring.drain()
    } catch (err) {
      if (check) throw err
    } finally {
      await ring.close()
    }
  }
}

export interface BackgroundWriterOptions {
  /** Write on a thread of its own (default: when the machine has more than one core); without, queue() always declines. */
  thread?: boolean
  /** Bytes of the ring (default 4 MiB): what a process killed mid-write loses at most, beside what it holds unread. */
  ringBytes?: number
  /** The thread ends after this long with nothing to write, ms (default 5000); the next block starts another. */
  idleMs?: number
}

/** Bytes of a receiver's ring: small, since what it holds is fetched again after a crash. */
const RECEIVE_RING_BYTES = 4 << 20

interface Waiter {
  ring: Ring
  /** Settled once the writer has finished with this many records of the ring. */
  upTo: number
  resolve: () => void
  reject: (err: unknown) => void
}

/**
 * Writing the blocks a long-lived receiver (the agent's exchange) has
 * verified, off its event loop: each costs the filesystem an open, a write,
 * a close and a rename, and on a busy ext4 disk an open waits on the journal
 * for a millisecond or more, time the event loop would not read the network.
 * queue() copies a block into the ring of a writer thread (as BlockWriter
 * does for add) and settled() tells when the blocks queued so far are in
 * the store, so that a caller notes a block as held only once it is there
 * (a peer asking for it finds it; a crash loses only what was not noted).
 * The thread starts with the first block and ends when idle.
 */
export class BackgroundWriter {
  readonly store: BlockStore
  private ring: Ring | undefined
  private readonly thread: boolean
  private readonly ringBytes: number
  private readonly idleMs: number
  private readonly waiters: Waiter[] = []
  private watching = false
  private idleTimer: NodeJS.Timeout | undefined
  private closed = false

  constructor (store: BlockStore, options: BackgroundWriterOptions = {}) {
    this.store = store
    this.thread = options.thread ?? availableParallelism() > 1
    this.ringBytes = options.ringBytes ?? RECEIVE_RING_BYTES
    this.idleMs = options.idleMs ?? 5000
  }

  /**
   * Queues a block whose bytes were checked against its CID, to be written
   * (replacing any copy the store holds). Returns false, queueing nothing,
   * when there is no thread or no room in its ring now: the caller then
   * writes the block itself. The thread is handed the blocks queued so far
   * by settled() (one wake-up for a frame's blocks, not one each). Throws
   * the error of a failed earlier write not yet reported by settled().
   */
  queue (cid: CID, bytes: Uint8Array): boolean {
    if (!this.thread || this.closed) return false
    if (this.ring === undefined) this.ring = new Ring(this.store, this.ringBytes)
    this.ring.check()
    clearTimeout(this.idleTimer)
    const name = cid.toV1().toString()
    return this.ring.push(`${shardOf(name)}/${name}`, bytes, true)
  }

  /** Resolves when every block queued so far is in the store; rejects if any of them could not be written. */
  async settled (): Promise<void> {
    const ring = this.ring
    if (ring === undefined) return
    ring.publish()
    await new Promise<void>((resolve, reject) => {
      this.waiters.push({ ring, upTo: ring.pushed, resolve, reject })
      void this.watch()
    })
  }

  /** Settles waiters as the thread writes; after a failure, rejects those past it and lets the next queue() start a fresh thread. */
  private async watch (): Promise<void> {
    if (this.watching) return
    this.watching = true
    try {
      while (this.waiters.length > 0) {
        const w = this.waiters[0]!
        const ring = w.ring
        const done = ring.done // read before `failed`: the writer marks a failure before counting the record done
        if (ring.failed) {
          let err: unknown
          try { ring.check() } catch (e) { err = e }
          const at = ring.failedAt
          for (const x of this.waiters.filter(y => y.ring === ring)) {
            this.waiters.splice(this.waiters.indexOf(x), 1)
            if (((x.upTo - at) | 0) <= 0) x.resolve()
            else x.reject(err)
          }
          if (this.ring === ring) this.ring = undefined
          await ring.close()
          continue
        }
        if (((done - w.upTo) | 0) >= 0) {
          this.waiters.shift()
          w.resolve()
          continue
        }
        await ring.progress(done, 1000)
      }
    } finally {
      this.watching = false
    }
    this.armIdle()
  }

  private armIdle (): void {
    clearTimeout(this.idleTimer)
    if (this.ring === undefined || this.closed) return
    this.idleTimer = setTimeout(() => {
      const ring = this.ring
      if (ring === undefined || this.waiters.length > 0 || ring.done !== ring.pushed) return
      this.ring = undefined
      void ring.close()
    }, this.idleMs)
    this.idleTimer.unref()
  }

  /** Waits (at most timeoutMs) for what is queued, then ends the thread; queue() declines from then on. */
  async close (timeoutMs = 10_000): Promise<void> {
    this.closed = true
    clearTimeout(this.idleTimer)
    const ring = this.ring
    if (ring === undefined) return
    await Promise.race([this.settled().catch(() => {}), new Promise(resolve => setTimeout(resolve, timeoutMs).unref())])
    this.ring = undefined
    await ring.close()
  }
}
