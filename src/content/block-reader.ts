// Reading the blocks a peer asked for, off the event loop.
//
// A seed serving a build reads every block from the disk and hashes it
// (BlockStore's verified reads: flash rots, and a rotten block must not reach
// a peer, who would ban us for it). The store's reads are synchronous, which
// is cheapest when the block is in the page cache; but a seed serving a build
// larger than its spare memory (an XO has 512 MB–1 GB) reads from flash, and
// a synchronous read then stops the event loop for the disk: no encryption,
// no sending, no reading of requests meanwhile. Measured on the exchange bench
// (256 MiB, page cache dropped): the sender's event loop spent 0.9 s of a
// 3.5 s fetch inside readSync.
//
// So with a second core the reads and the hashing run on a reader thread:
// read() posts the paths, sizes and digests of a frame's blocks; the thread
// reads each into memory of its own, checks its length and sha-256, and posts
// the buffers back by transfer (no copy). The driver starts a frame's read
// when the core asks for the frame, so it overlaps the sending of the frame
// before. On one core (an XO) the thread would only add switches: read()
// reads inline, as the store does. The thread ends after a few idle seconds.
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import type { CID } from './cid.ts'
import type { BlockStore } from './blockstore.ts'

/** A block to read: its CID (the digest it must hash to) and its length. */
export interface BlockToRead {
  cid: CID
  size: number
}

export interface BackgroundReaderOptions {
  /** Read on a thread of its own (default: when the machine has more than one core). */
  thread?: boolean
  /** The thread ends after this long without a read, ms (default 5 s). */
  idleMs?: number
}

// The reader thread, as CommonJS source (as the writer's, block-writer.ts: a
// worker file of its own would need the TypeScript loader in the thread).
// A request is { id, paths, sizes, digests } (digests: 32 bytes a block, in
// one buffer); the answer is { id, blocks }, each an ArrayBuffer or null
// (missing, another length, or bytes that do not hash to the digest).
const READER_SOURCE = `
const { parentPort } = require('node:worker_threads')
const fs = require('node:fs')
const { createHash } = require('node:crypto')
function readOne (path, size, digest) {
  let fd
  try {
    fd = fs.openSync(path, 'r')
  } catch {
    return null
  }
  try {
    if (fs.fstatSync(fd).size !== size) return null
    const buf = Buffer.allocUnsafeSlow(size)
    for (let off = 0; off < size;) {
      const n = fs.readSync(fd, buf, off, size - off, off)
      if (n === 0) return null
      off += n
    }
    if (!createHash('sha256').update(buf).digest().equals(digest)) return null
    return buf.buffer
  } catch {
    return null
  } finally {
    fs.closeSync(fd)
  }
}
parentPort.on('message', m => {
  const blocks = []
  const transfer = []
  for (let k = 0; k < m.paths.length; k++) {
    const b = readOne(m.paths[k], m.sizes[k], Buffer.from(m.digests.buffer, m.digests.byteOffset + 32 * k, 32))
    blocks.push(b)
    if (b !== null) transfer.push(b)
  }
  parentPort.postMessage({ id: m.id, blocks }, transfer)
})
`

interface Pending {
  resolve: (blocks: Array<Uint8Array | undefined>) => void
  items: readonly BlockToRead[]
}

export class BackgroundReader {
  readonly store: BlockStore
  /** False on one core, and once the thread died: reads are then done on the event loop. */
  private thread: boolean
  private readonly idleMs: number
  private worker: Worker | undefined
  private readonly pending = new Map<number, Pending>()
  private nextId = 0
  private idleTimer: NodeJS.Timeout | undefined
  private closed = false

  constructor (store: BlockStore, options: BackgroundReaderOptions = {}) {
    this.store = store
    this.thread = options.thread ?? availableParallelism() > 1
    this.idleMs = options.idleMs ?? 5000
  }

  /**
   * Reads and verifies blocks of the store. Each comes back as its bytes, or
   * undefined when the store lacks it, holds another length, or holds bytes
   * that do not hash to its CID. Never rejects.
   */
  async read (items: readonly BlockToRead[]): Promise<Array<Uint8Array | undefined>> {
    if (items.length === 0) return []
    const worker = this.workerNow()
    if (worker === undefined) return await this.readHere(items)
    clearTimeout(this.idleTimer)
    this.idleTimer = undefined
    const id = this.nextId++
    const digests = new Uint8Array(32 * items.length)
    let digestsOk = true
    items.forEach((it, k) => {
      const d = it.cid.multihash.digest
      if (d.length !== 32) digestsOk = false
      else digests.set(d, 32 * k)
    })
    if (!digestsOk) return await this.readHere(items) // not a sha-256 CID: the store's own check says what it is
    return await new Promise(resolve => {
      this.pending.set(id, { resolve, items })
      worker.postMessage({ id, paths: items.map(it => this.store.path(it.cid)), sizes: items.map(it => it.size), digests })
    })
  }

  /** Ends the thread (reads still pending are done on the event loop). */
  async close (): Promise<void> {
    this.closed = true
    await this.stopWorker()
  }

  private async readHere (items: readonly BlockToRead[]): Promise<Array<Uint8Array | undefined>> {
    const out: Array<Uint8Array | undefined> = []
    for (const it of items) {
      try {
        const b = await this.store.get(it.cid)
        out.push(b.length === it.size ? b : undefined)
      } catch {
        out.push(undefined)
      }
    }
    return out
  }

  private workerNow (): Worker | undefined {
    if (!this.thread || this.closed) return undefined
    if (this.worker !== undefined) return this.worker
    const w = new Worker(READER_SOURCE, {
      eval: true,
      // the thread holds only the blocks of the frames in flight, handed over at once
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 }
    })
    w.unref()
    w.on('message', (m: { id: number, blocks: Array<ArrayBuffer | null> }) => {
      const p = this.pending.get(m.id)
      if (p === undefined) return
      this.pending.delete(m.id)
      p.resolve(m.blocks.map(b => b === null ? undefined : new Uint8Array(b)))
      if (this.pending.size === 0) this.armIdle()
    })
    // a thread that died (out of memory, a bug): what it was asked is read here, and so is what follows
    const failed = (): void => {
      if (this.worker !== w) return
      this.worker = undefined
      this.thread = false
      this.readPendingHere()
    }
    w.on('error', failed)
    w.on('exit', failed)
    this.worker = w
    return w
  }

  private armIdle (): void {
    clearTimeout(this.idleTimer)
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined
      if (this.pending.size === 0) void this.stopWorker()
    }, this.idleMs)
    this.idleTimer.unref()
  }

  private async stopWorker (): Promise<void> {
    clearTimeout(this.idleTimer)
    const w = this.worker
    if (w === undefined) return
    this.worker = undefined
    this.readPendingHere()
    await w.terminate()
  }

  /** The reads the thread was asked and will not answer, done on the event loop. */
  private readPendingHere (): void {
    for (const p of this.pending.values()) void this.readHere(p.items).then(p.resolve)
    this.pending.clear()
  }
}
