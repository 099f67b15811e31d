// `add <dir>`: a directory tree from the filesystem into the store as a build.
import { createReadStream } from 'node:fs'
import { lstat, opendir, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { BigIntStats } from 'node:fs'
import { InvalidInputError } from './errors.ts'
import { TreeBuilder, type AddProgress, type EntryStat } from './tree-builder.ts'
import type { BlockStore } from './blockstore.ts'
import type { BuildRecord, Kind, SpecialFile } from './build.ts'
import type { CID } from './cid.ts'
import type { ChunkerOptions } from './fastcdc.ts'

/** Large reads: fewer syscalls and fewer chunks spanning two buffers. */
const READ_SIZE = 1 << 20

export interface AddOptions {
  name: string
  kind: Kind
  created?: Date
  chunker?: ChunkerOptions
  onProgress?: AddProgress
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

/** Total bytes of regular files under dir, for a progress bar's denominator. */
export async function treeBytes (dir: string): Promise<number> {
  let total = 0
  const walk = async (d: string): Promise<void> => {
    for await (const e of await opendir(d)) {
      const p = join(d, e.name)
      if (e.isDirectory()) await walk(p)
      else if (e.isFile()) total += (await lstat(p)).size
    }
  }
  await walk(dir)
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
    const walk = async (abs: string, rel: string, st: BigIntStats): Promise<void> => {
      builder.addDirectory(rel, entryStat(st))
      const names: string[] = []
      for await (const e of await opendir(abs)) names.push(e.name)
      names.sort()
      for (const name of names) {
        const childAbs = join(abs, name)
        const childRel = rel === '' ? name : `${rel}/${name}`
        const cst = await lstat(childAbs, { bigint: true })
        if (cst.isDirectory()) await walk(childAbs, childRel, cst)
        else if (cst.isFile()) await builder.addFile(childRel, entryStat(cst), createReadStream(childAbs, { highWaterMark: READ_SIZE }))
        else if (cst.isSymbolicLink()) await builder.addSymlink(childRel, await readlink(childAbs), entryStat(cst))
        else {
          const special = specialOf(cst)
          if (special !== undefined) builder.addSpecial(childRel, special, entryStat(cst))
        }
      }
    }
    await walk(dir, '', top)
    return await builder.finish({ name: options.name, kind: options.kind, created: options.created ?? new Date() })
  } catch (err) {
    await builder.abort()
    if ((err as NodeJS.ErrnoException).code === 'EACCES' || (err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new InvalidInputError(`cannot read ${(err as NodeJS.ErrnoException).path ?? dir}: ${(err as Error).message}`, { cause: err })
    }
    throw err
  }
}
