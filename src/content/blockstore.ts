// The on-disk block store: one file per block under blocks/<shard>/<cid>.
//
// Why files and not a pack: the store is read and written by the agent, the
// CLI and apply at once, possibly killed at any moment, on a slow flash disk.
// A block is written to blocks/.tmp and renamed into place, so a reader never
// sees half a block; a crash leaves at most a stray temp file, cleared by a
// later open (only if its writer is gone: see clearStaleTemps). Every read
// re-hashes the bytes: flash rots, and a bad block must never be installed
// or passed to a peer.
//
// The per-block file operations are synchronous on purpose: a block is small
// and lands in the page cache, and a round trip through libuv's thread pool
// per open/write/close/rename cost ~8x the syscalls themselves here (833 µs
// against 105 µs a block, measured). The methods stay async so a store in a
// worker thread can replace this one without touching callers.
//
// Durability: no block is fsynced on its own (an fsync per 64 KiB block would
// cost more than the write). Whoever is about to write something that points
// at blocks (a build's entry in builds/, `current` after apply) first calls
// flush(), one syncfs of the store's filesystem; until then a power cut may
// lose blocks, never a pointer's target.
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { mkdir, readdir } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { CID, RAW, checkCid, matches } from './cid.ts'
import { BlockNotFoundError, CorruptBlockError, NoSpaceError } from './errors.ts'
import { startSyncFs, syncFs } from './sync-fs.ts'

const TMP = '.tmp'
/** The characters of a CIDv1's base32 name, of which shardOf takes two. */
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'
/** Budget of the interior-node cache: a 1 GiB build's nodes are a few MB. */
const NODE_CACHE_BYTES = 16 << 20
/** A temp file older than this is a leftover even if a process with its writer's pid still runs (a block write takes milliseconds). */
const STALE_TMP_MS = 60 * 60 * 1000

/** The directory holding a block's file: two characters next to the last of its name (as blockstore-fs' NextToLast). */
export function shardOf (name: string): string {
  return name.slice(-3, -1)
}

export function isNoSpace (err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  return code === 'ENOSPC' || code === 'EDQUOT'
}

function processAlive (pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' // there, but not ours
  }
}

/** A content-addressed store of blocks in a directory. */
export class BlockStore {
  readonly dir: string
  /** The directory of temp files (blocks being written). */
  readonly tmp: string
  private readonly shards = new Set<string>()
  private opened = false
  /**
   * Temp names: `<pid>.<random>.<counter>`, unique per store object and per
   * block ('wx' catches the impossible clash). The pid tells a later open
   * whether the writer may still be at work.
   */
  readonly tmpPrefix = `${process.pid}.${randomBytes(4).toString('hex')}`
  private tmpCounter = 0
  /**
   * Verified interior nodes (dag-pb, dag-cbor), most recently used last: a
   * tree walk, a completeness check and apply each read every node of a build,
   * and nodes are ~1% of its bytes. Leaves are never cached.
   */
  private readonly nodeCache = new Map<string, Uint8Array>()
  private nodeCacheBytes = 0

  constructor (dir: string) {
    this.dir = dir
    this.tmp = join(dir, TMP)
  }

  /** Creates the directory if needed and removes temp files a crash left behind. Idempotent. */
  async open (): Promise<this> {
    if (this.opened) return this
    await mkdir(this.tmp, { recursive: true })
    await this.clearStaleTemps()
    this.opened = true
    return this
  }

  /**
   * Removes the temp files whose writer is gone: its pid (the name's first
   * field) runs no process, or the file is over an hour old. Others may be
   * a write in flight by another process on the same store (the agent while
   * the CLI opens it) and are left alone. A name without a pid (an older
   * version's) goes by age alone.
   */
  async clearStaleTemps (now = Date.now()): Promise<number> {
    let removed = 0
    for (const name of await readdir(this.tmp)) {
      const path = join(this.tmp, name)
      const pid = /^\d+(?=\.)/.exec(name)?.[0]
      const stale = (pid !== undefined && !processAlive(Number(pid))) ||
        now - (statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? now) > STALE_TMP_MS
      if (!stale) continue
      try {
        unlinkSync(path)
        removed++
      } catch {
        // renamed into place or removed by someone else meanwhile
      }
    }
    return removed
  }

  /**
   * Creates every shard directory the store lacks (1,024: two base32
   * characters), so that writing a build's blocks makes none: a mkdir on a
   * busy disk waits on the journal like the block's own file does. Safe to
   * call again and from several processes.
   */
  async makeShards (): Promise<void> {
    const have = new Set(await readdir(this.dir))
    for (const a of BASE32) {
      for (const b of BASE32) {
        const shard = a + b
        if (!have.has(shard)) await mkdir(join(this.dir, shard), { recursive: true })
        this.shards.add(shard)
      }
    }
  }

  /** Path of the file that holds (or would hold) a block. */
  path (cid: CID): string {
    const name = cid.toV1().toString()
    return join(this.dir, shardOf(name), name)
  }

  /** True when the store holds the block (its bytes are not checked here). */
  async has (cid: CID): Promise<boolean> {
    return statSync(this.path(cid), { throwIfNoEntry: false }) !== undefined
  }

  /** Size in bytes of a stored block, or undefined. */
  async size (cid: CID): Promise<number | undefined> {
    return statSync(this.path(cid), { throwIfNoEntry: false })?.size
  }

  /**
   * Stores a block after checking that bytes hash to cid.
   * Resolves true when the block was written, false when it was already held.
   * Throws CorruptBlockError (nothing written) or NoSpaceError (nothing left behind).
   */
  async put (cid: CID, bytes: Uint8Array, where = 'input'): Promise<boolean> {
    checkCid(cid)
    if (!matches(cid, bytes)) throw new CorruptBlockError(cid.toString(), where)
    // a copy already here may have rotted: good bytes in hand replace a bad copy
    if (await this.has(cid) && !await this.intact(cid)) await this.delete(cid)
    return this.putHashed(cid, bytes)
  }

  /** True when the stored copy of a block hashes to its CID. */
  async intact (cid: CID): Promise<boolean> {
    try {
      this.read(cid) // the disk's copy, not the cache's
      return true
    } catch {
      return false
    }
  }

  /**
   * put() for a block whose CID the caller has just computed from these very
   * bytes (add, rebuilding a delta): skips hashing them a second time.
   */
  async putHashed (cid: CID, bytes: Uint8Array): Promise<boolean> {
    const name = cid.toV1().toString()
    const shard = shardOf(name)
    const dest = join(this.dir, shard, name)
    if (statSync(dest, { throwIfNoEntry: false }) !== undefined) return false
    if (!this.shards.has(shard)) {
      mkdirSync(join(this.dir, shard), { recursive: true })
      this.shards.add(shard)
    }
    this.writeFile(dest, bytes)
    return true
  }

  /**
   * Writes bytes to dest through a temp file and a rename: open, write,
   * close, rename, no more. dest's directory must exist. A write caught by
   * another process's open of this store (an older version emptied .tmp)
   * recreates the temp directory once.
   */
  writeFile (dest: string, bytes: Uint8Array): void {
    const tmp = join(this.tmp, `${this.tmpPrefix}.${this.tmpCounter++}`)
    let fd: number
    try {
      fd = openSync(tmp, 'wx', 0o644)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw this.writeError(err)
      mkdirSync(this.tmp, { recursive: true })
      try {
        fd = openSync(tmp, 'wx', 0o644)
      } catch (err2) {
        throw this.writeError(err2)
      }
    }
    try {
      try {
        // one call for the whole block, unless the kernel takes less (it does not for a regular file, short of a full disk)
        for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off)
      } finally {
        closeSync(fd)
      }
      renameSync(tmp, dest)
    } catch (err) {
      try { unlinkSync(tmp) } catch { /* already gone */ }
      throw this.writeError(err)
    }
  }

  private writeError (err: unknown): unknown {
    return isNoSpace(err) ? new NoSpaceError(this.dir, { cause: err }) : err
  }

  /** Makes every block written so far durable (one syncfs of the store's filesystem). */
  async flush (): Promise<void> {
    await syncFs(this.dir)
  }

  /** Starts writing what is in the page cache to disk, without waiting (see startSyncFs). */
  flushSoon (): void {
    startSyncFs(this.dir)
  }

  /** Reads and verifies a block. Throws BlockNotFoundError or CorruptBlockError. */
  async get (cid: CID): Promise<Uint8Array> {
    if (cid.code === RAW) return this.read(cid)
    const key = cid.toString()
    const hit = this.nodeCache.get(key)
    if (hit !== undefined) {
      this.nodeCache.delete(key)
      this.nodeCache.set(key, hit)
      return hit
    }
    const bytes = this.read(cid)
    this.nodeCache.set(key, bytes)
    this.nodeCacheBytes += bytes.length
    for (const [k, v] of this.nodeCache) {
      if (this.nodeCacheBytes <= NODE_CACHE_BYTES) break
      this.nodeCache.delete(k)
      this.nodeCacheBytes -= v.length
    }
    return bytes
  }

  private read (cid: CID): Uint8Array {
    let bytes: Buffer
    try {
      bytes = readFileSync(this.path(cid))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BlockNotFoundError(cid.toString())
      throw err
    }
    if (!matches(cid, bytes)) throw new CorruptBlockError(cid.toString(), `the store (${this.path(cid)})`)
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  /** Removes a block; a missing block is not an error. */
  async delete (cid: CID): Promise<void> {
    const cached = this.nodeCache.get(cid.toString())
    if (cached !== undefined) {
      this.nodeCache.delete(cid.toString())
      this.nodeCacheBytes -= cached.length
    }
    try {
      unlinkSync(this.path(cid))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }

  /** Every CID in the store (order unspecified). Files that are not blocks are skipped. */
  async * cids (): AsyncGenerator<CID> {
    for (const shard of await readdir(this.dir)) {
      if (shard === TMP) continue
      let names: string[]
      try {
        names = await readdir(join(this.dir, shard))
      } catch {
        continue
      }
      for (const name of names) {
        try {
          yield CID.parse(name)
        } catch {
          // not a block file
        }
      }
    }
  }
}
