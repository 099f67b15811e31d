// The on-disk block store: one file per block under blocks/<shard>/<cid>.
//
// Why files and not a pack: the store is read and written by the agent, the
// CLI and apply at once, possibly killed at any moment, on a slow flash disk.
// A block is written to blocks/.tmp and renamed into place, so a reader never
// sees half a block; a crash leaves at most a stray temp file, cleared on open.
// Every read re-hashes the bytes: flash rots, and a bad block must never be
// installed or passed to a peer.
import { mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { CID, checkCid, matches } from './cid.ts'
import { BlockNotFoundError, CorruptBlockError, NoSpaceError } from './errors.ts'

const TMP = '.tmp'

/** The directory holding a block's file: two characters next to the last of its name (as blockstore-fs' NextToLast). */
function shardOf (name: string): string {
  return name.slice(-3, -1)
}

function isNoSpace (err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  return code === 'ENOSPC' || code === 'EDQUOT'
}

/** A content-addressed store of blocks in a directory. */
export class BlockStore {
  readonly dir: string
  private readonly tmp: string
  private readonly shards = new Set<string>()
  private opened = false

  constructor (dir: string) {
    this.dir = dir
    this.tmp = join(dir, TMP)
  }

  /** Creates the directory if needed and removes temp files a crash left behind. Idempotent. */
  async open (): Promise<this> {
    if (this.opened) return this
    await mkdir(this.dir, { recursive: true })
    await rm(this.tmp, { recursive: true, force: true })
    await mkdir(this.tmp, { recursive: true })
    this.opened = true
    return this
  }

  /** Path of the file that holds (or would hold) a block. */
  path (cid: CID): string {
    const name = cid.toV1().toString()
    return join(this.dir, shardOf(name), name)
  }

  /** True when the store holds the block (its bytes are not checked here). */
  async has (cid: CID): Promise<boolean> {
    try {
      await stat(this.path(cid))
      return true
    } catch {
      return false
    }
  }

  /** Size in bytes of a stored block, or undefined. */
  async size (cid: CID): Promise<number | undefined> {
    try {
      return (await stat(this.path(cid))).size
    } catch {
      return undefined
    }
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
      await this.get(cid)
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
    const dest = this.path(cid)
    if (await this.has(cid)) return false
    const shard = shardOf(cid.toV1().toString())
    if (!this.shards.has(shard)) {
      await mkdir(join(this.dir, shard), { recursive: true })
      this.shards.add(shard)
    }
    const tmp = join(this.tmp, randomBytes(8).toString('hex'))
    try {
      const fh = await open(tmp, 'wx')
      try {
        await fh.writeFile(bytes)
      } finally {
        await fh.close()
      }
      await rename(tmp, dest)
    } catch (err) {
      await unlink(tmp).catch(() => {})
      if (isNoSpace(err)) throw new NoSpaceError(this.dir, { cause: err })
      throw err
    }
    return true
  }

  /** Reads and verifies a block. Throws BlockNotFoundError or CorruptBlockError. */
  async get (cid: CID): Promise<Uint8Array> {
    let bytes: Buffer
    try {
      const fh = await open(this.path(cid), 'r')
      try {
        bytes = await fh.readFile()
      } finally {
        await fh.close()
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BlockNotFoundError(cid.toString())
      throw err
    }
    if (!matches(cid, bytes)) throw new CorruptBlockError(cid.toString(), `the store (${this.path(cid)})`)
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  /** Removes a block; a missing block is not an error. */
  async delete (cid: CID): Promise<void> {
    await unlink(this.path(cid)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err
    })
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
