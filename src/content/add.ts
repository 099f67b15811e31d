// `add <dir>`: a directory tree from the filesystem into the store as a build.
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, readdirSync, readlinkSync } from 'node:fs'
import { lstat } from 'node:fs/promises'
import { join } from 'node:path'
import type { BigIntStats } from 'node:fs'
import { InvalidInputError } from './errors.ts'
import { TreeBuilder, type AddProgress, type EntryStat } from './tree-builder.ts'
import type { BlockStore } from './blockstore.ts'
import type { BuildRecord, Kind, SpecialFile } from './build.ts'
import type { CID } from './cid.ts'
import type { ChunkerOptions } from './fastcdc.ts'

export interface AddOptions {
  name: string
  kind: Kind
  created?: Date
  chunker?: ChunkerOptions
  onProgress?: AddProgress
  /** Write blocks on a thread of their own (default: with more than one core); see block-writer.ts. */
  writerThread?: boolean
}

export function entryStat (st: BigIntStats): EntryStat {
  return {
    mode: Number(st.mode & 0o7777n),
    mtime: { secs: st.mtimeNs / 1_000_000_000n, nsecs: Number(st.mtimeNs % 1_000_000_000n) },
    uid: Number(st.uid),
    gid: Number(st.gid)
  }
}

function specialOf (st: BigIntStats): SpecialFile | undefined {
  const type = st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'chr' : st.isBlockDevice() ? 'blk' : st.isSocket() ? 'sock' : undefined
  if (type === undefined) return undefined
  const rdev = Number(st.rdev)
  // Linux dev_t: major in bits 8-19 (and 32+), minor in bits 0-7 and 20-31
  const major = ((rdev >>> 8) & 0xfff)
  const minor = (rdev & 0xff) | ((rdev >>> 12) & 0xfff00)
  return { type, mode: Number(st.mode & 0o7777n), major, minor, mtime: [Number(st.mtimeNs / 1_000_000_000n), Number(st.mtimeNs % 1_000_000_000n)] }
}

/**
 * When a build says it was made: SOURCE_DATE_EPOCH when set (reproducible
 * builds: the same tree then gives the same CID), else now.
 */
export function defaultCreated (): Date {
  const epoch = process.env.SOURCE_DATE_EPOCH
  if (epoch !== undefined && /^\d+$/.test(epoch)) return new Date(Number(epoch) * 1000)
  return new Date()
}

/** Total bytes of regular files under dir, for a progress bar's denominator. */
export function treeBytes (dir: string): number {
  let total = 0
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.isFile()) total += lstatSync(p).size
    }
  }
  walk(dir)
  return total
}

/**
 * Adds the tree under dir as a build and returns its root CID. On any error
 * the blocks it wrote are removed again, so a failed add leaves the store as
 * it found it.
 */
export async function addDirectory (store: BlockStore, dir: string, options: AddOptions): Promise<{ cid: CID, record: BuildRecord }> {
  let top: BigIntStats
  try {
    top = await lstat(dir, { bigint: true })
  } catch (err) {
    throw new InvalidInputError(`cannot read ${dir}: ${(err as Error).message}`, { cause: err })
  }
  if (!top.isDirectory()) throw new InvalidInputError(`${dir} is not a directory`)
  const builder = new TreeBuilder(store, options)
  try {
    // Synchronous calls throughout: a thread-pool round trip per lstat cost
    // ~100 µs here, the call itself ~5; files are read with readSync into
    // the builder's reused buffer, chunked, hashed and stored before the
    // next read, one file after another.
    const walk = (abs: string, rel: string, st: BigIntStats): void => {
      builder.addDirectory(rel, entryStat(st))
      const entries = readdirSync(abs, { withFileTypes: true }).sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
      for (const entry of entries) {
        const name = entry.name
        const childAbs = join(abs, name)
        const childRel = rel === '' ? name : `${rel}/${name}`
        if (entry.isFile() && addRegular(childAbs, childRel)) continue
        const cst = lstatSync(childAbs, { bigint: true })
        if (cst.isDirectory()) walk(childAbs, childRel, cst)
        else if (cst.isFile()) {
          if (!addRegular(childAbs, childRel)) throw new InvalidInputError(`${childAbs} changed while it was added`)
        } else if (cst.isSymbolicLink()) builder.addSymlink(childRel, readlinkSync(childAbs), entryStat(cst))
        else {
          const special = specialOf(cst)
          if (special !== undefined) builder.addSpecial(childRel, special, entryStat(cst))
        }
      }
    }
    // A regular file (as readdir said): opened without following or blocking
    // on whatever replaced it since, its metadata from the open file (one path
    // lookup, not two). False, nothing added, when it is not a regular file now.
    const addRegular = (abs: string, rel: string): boolean => {
      let fd: number
      try {
        fd = openSync(abs, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ELOOP') return false // a symlink now
        throw err
      }
      try {
        const st = fstatSync(fd, { bigint: true })
        if (!st.isFile()) return false
        builder.addFileSync(rel, entryStat(st), (buf, offset, length) => readSync(fd, buf, offset, length, null))
        return true
      } finally {
        closeSync(fd)
      }
    }
    walk(dir, '', top)
    return await builder.finish({ name: options.name, kind: options.kind, created: options.created ?? defaultCreated() })
  } catch (err) {
    await builder.abort()
    if ((err as NodeJS.ErrnoException).code === 'EACCES' || (err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new InvalidInputError(`cannot read ${(err as NodeJS.ErrnoException).path ?? dir}: ${(err as Error).message}`, { cause: err })
    }
    throw err
  }
}
