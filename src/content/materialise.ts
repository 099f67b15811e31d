// Writing a build's entries to disk and checking them against the build: the
// pieces apply and verify share. Every byte written comes from a block the
// store has just verified; every file is checked leaf by leaf against the
// build before a version is switched to.
import { chmod, chown, lchown, link, lstat, lutimes, mkdir, open, readlink, rename, rm, symlink, unlink, utimes } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { dirname } from 'node:path'
import { createHash } from 'node:crypto'
import { NoSpaceError } from './errors.ts'
import { fileLayout, type Mtime } from './unixfs.ts'
import type { BlockStore } from './blockstore.ts'
import type { BuildMeta, SpecialFile } from './build.ts'
import type { CID } from './cid.ts'

const run = promisify(execFile)

/** Suffix of a file being written; never part of a finished version. */
export const PARTIAL = '.xo-mesh-partial'

/**
 * mtime as fractional seconds for utimes. libuv truncates to microseconds and
 * a double near 2^31 s resolves ~0.24 µs, so aim at the middle of the
 * microsecond: truncation then lands on the right one.
 */
export function mtimeSeconds (m: Mtime): number {
  return Number(m.secs) + (Math.floor(m.nsecs / 1000) * 1000 + 500) / 1e9
}

/** True when a stat's mtime is the build's, to the microsecond. */
export function sameMtime (mtimeNs: bigint, m: Mtime | undefined): boolean {
  if (m === undefined) return true
  const want = m.secs * 1_000_000_000n + BigInt(m.nsecs)
  const d = mtimeNs - want
  return d > -2000n && d < 2000n
}

/** The owner a path should have under a build's meta. */
export function ownerOf (meta: BuildMeta, path: string): [number, number] {
  return meta.owners[path] ?? meta.owner
}

export const isRoot = (): boolean => process.getuid?.() === 0

function rethrow (err: unknown, where: string): never {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOSPC' || code === 'EDQUOT') throw new NoSpaceError(where, { cause: err })
  throw err
}

/**
 * Checks a regular file's bytes against a file node's leaves. Resolves to
 * undefined when it matches, else a short reason. Reads the file once.
 */
export async function checkFileContent (store: BlockStore, file: CID, path: string): Promise<string | undefined> {
  const { leaves, inline } = await fileLayout(store, file)
  const size = leaves.reduce((n, l) => n + l.size, 0) + inline.reduce((n, i) => n + i.bytes.length, 0)
  let fh
  try {
    fh = await open(path, 'r')
  } catch {
    return 'missing'
  }
  try {
    const st = await fh.stat()
    if (!st.isFile()) return 'not a regular file'
    if (st.size !== size) return `size ${st.size}, expected ${size}`
    let buf = Buffer.allocUnsafe(1 << 18)
    for (const l of leaves) {
      if (buf.length < l.size) buf = Buffer.allocUnsafe(l.size)
      const { bytesRead } = await fh.read(buf, 0, l.size, l.offset)
      if (bytesRead !== l.size) return 'short read'
      const got = createHash('sha256').update(buf.subarray(0, l.size)).digest()
      if (!got.equals(l.cid.multihash.digest)) return `content differs at byte ${l.offset}`
    }
    for (const i of inline) {
      const b = Buffer.allocUnsafe(i.bytes.length)
      await fh.read(b, 0, b.length, i.offset)
      if (!b.equals(i.bytes)) return `content differs at byte ${i.offset}`
    }
    return undefined
  } finally {
    await fh.close()
  }
}

/** Writes a file's bytes from the store to path (through a partial file renamed into place). */
export async function writeFileFromStore (store: BlockStore, file: CID, path: string, onBytes?: (n: number) => void): Promise<void> {
  const { leaves, inline } = await fileLayout(store, file)
  const tmp = path + PARTIAL
  try {
    const fh = await open(tmp, 'w', 0o600)
    try {
      for (const i of inline) await fh.write(i.bytes, 0, i.bytes.length, i.offset)
      for (const l of leaves) {
        const bytes = await store.get(l.cid)
        await fh.write(bytes, 0, bytes.length, l.offset)
        onBytes?.(bytes.length)
      }
    } finally {
      await fh.close()
    }
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    rethrow(err, path)
  }
}

/** Replaces path by a hard link to source (same filesystem), atomically. */
export async function linkInto (source: string, path: string): Promise<void> {
  const tmp = path + PARTIAL
  await unlink(tmp).catch(() => {})
  try {
    await link(source, tmp)
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    rethrow(err, path)
  }
}

/** Sets mode, mtime and (as root) owner of a file or directory. */
export async function setMeta (path: string, mode: number | undefined, mtime: Mtime | undefined, owner: [number, number] | undefined): Promise<void> {
  if (owner !== undefined && isRoot()) await chown(path, owner[0], owner[1])
  if (mode !== undefined) await chmod(path, mode)
  if (mtime !== undefined) {
    const t = mtimeSeconds(mtime)
    await utimes(path, t, t)
  }
}

/** Makes (or remakes) a symlink with its mtime and, as root, its owner. */
export async function writeSymlink (path: string, target: string, mtime: Mtime | undefined, owner: [number, number] | undefined): Promise<void> {
  try {
    if (await readlink(path) !== target) throw new Error('differs')
  } catch {
    await rm(path, { force: true, recursive: true })
    try {
      await symlink(target, path)
    } catch (err) {
      rethrow(err, path)
    }
  }
  if (owner !== undefined && isRoot()) await lchown(path, owner[0], owner[1])
  if (mtime !== undefined) {
    const t = mtimeSeconds(mtime)
    await lutimes(path, t, t)
  }
}

/**
 * Makes a fifo or (as root) a device node with mknod(1): Node has no mknod.
 * Sockets are not recreated: they only mean something to a running process.
 * Resolves false when the entry could not be made (devices without root).
 */
export async function writeSpecial (path: string, s: SpecialFile, owner: [number, number] | undefined): Promise<boolean> {
  if (s.type === 'sock') return false
  if ((s.type === 'chr' || s.type === 'blk') && !isRoot()) return false
  try {
    const st = await lstat(path)
    const same = (s.type === 'fifo' && st.isFIFO()) || (s.type === 'chr' && st.isCharacterDevice()) || (s.type === 'blk' && st.isBlockDevice())
    if (!same) await rm(path, { force: true, recursive: true })
    else return true
  } catch {
    // absent: make it
  }
  await mkdir(dirname(path), { recursive: true })
  const args = s.type === 'fifo' ? [path, 'p'] : [path, s.type === 'chr' ? 'c' : 'b', String(s.major), String(s.minor)]
  await run('mknod', ['-m', (s.mode & 0o7777).toString(8), ...args])
  if (owner !== undefined && isRoot()) await chown(path, owner[0], owner[1])
  const t = mtimeSeconds({ secs: BigInt(s.mtime[0]), nsecs: s.mtime[1] })
  await utimes(path, t, t)
  return true
}

/** Flushes the filesystem holding path to disk (syncfs), so a switch never points at data still in the page cache. */
export async function syncFs (path: string): Promise<void> {
  await run('sync', ['-f', path]).catch(async () => { await run('sync') })
}
