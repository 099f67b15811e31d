// Writing a build's entries to disk and checking them against the build: the
// pieces apply and verify share. Every byte written comes from a block the
// store has just verified; every file is checked leaf by leaf against the
// build before a version is switched to.
// File operations are synchronous, as in blockstore.ts: per-call thread-pool
// round trips cost more than the calls on a tree of many small files.
import { chmodSync, chownSync, closeSync, fstatSync, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, openSync, readSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeSync } from 'node:fs'
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

function tryUnlink (path: string): void {
  try { unlinkSync(path) } catch { /* not there */ }
}

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
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch {
    return 'missing'
  }
  // synchronous reads: one thread-pool round trip per leaf cost more than the read (see blockstore.ts)
  try {
    const st = fstatSync(fd)
    if (!st.isFile()) return 'not a regular file'
    if (st.size !== size) return `size ${st.size}, expected ${size}`
    let buf = Buffer.allocUnsafe(1 << 18)
    for (const l of leaves) {
      if (buf.length < l.size) buf = Buffer.allocUnsafe(l.size)
      if (readSync(fd, buf, 0, l.size, l.offset) !== l.size) return 'short read'
      const got = createHash('sha256').update(buf.subarray(0, l.size)).digest()
      if (!got.equals(l.cid.multihash.digest)) return `content differs at byte ${l.offset}`
    }
    for (const i of inline) {
      const b = Buffer.allocUnsafe(i.bytes.length)
      readSync(fd, b, 0, b.length, i.offset)
      if (!b.equals(i.bytes)) return `content differs at byte ${i.offset}`
    }
    return undefined
  } finally {
    closeSync(fd)
  }
}

/** Writes a file's bytes from the store to path (through a partial file renamed into place). */
export async function writeFileFromStore (store: BlockStore, file: CID, path: string, onBytes?: (n: number) => void): Promise<void> {
  const { leaves, inline } = await fileLayout(store, file)
  const tmp = path + PARTIAL
  try {
    const fd = openSync(tmp, 'w', 0o600)
    try {
      for (const i of inline) writeAll(fd, i.bytes, i.offset)
      for (const l of leaves) {
        const bytes = await store.get(l.cid)
        writeAll(fd, bytes, l.offset)
        onBytes?.(bytes.length)
      }
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, path)
  } catch (err) {
    tryUnlink(tmp)
    rethrow(err, path)
  }
}

function writeAll (fd: number, bytes: Uint8Array, position: number): void {
  for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off, bytes.length - off, position + off)
}

/** Replaces path by a hard link to source (same filesystem), atomically. */
export async function linkInto (source: string, path: string): Promise<void> {
  const tmp = path + PARTIAL
  tryUnlink(tmp)
  try {
    linkSync(source, tmp)
    renameSync(tmp, path)
  } catch (err) {
    tryUnlink(tmp)
    rethrow(err, path)
  }
}

/** Sets mode, mtime and (as root) owner of a file or directory. */
export async function setMeta (path: string, mode: number | undefined, mtime: Mtime | undefined, owner: [number, number] | undefined): Promise<void> {
  if (owner !== undefined && isRoot()) chownSync(path, owner[0], owner[1])
  if (mode !== undefined) chmodSync(path, mode)
  if (mtime !== undefined) {
    const t = mtimeSeconds(mtime)
    utimesSync(path, t, t)
  }
}

/** Makes (or remakes) a symlink with its mtime and, as root, its owner. */
export async function writeSymlink (path: string, target: string, mtime: Mtime | undefined, owner: [number, number] | undefined): Promise<void> {
  try {
    if (readlinkSync(path) !== target) throw new Error('differs')
  } catch {
    rmSync(path, { force: true, recursive: true })
    try {
      symlinkSync(target, path)
    } catch (err) {
      rethrow(err, path)
    }
  }
  if (owner !== undefined && isRoot()) lchownSync(path, owner[0], owner[1])
  if (mtime !== undefined) {
    const t = mtimeSeconds(mtime)
    lutimesSync(path, t, t)
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
    const st = lstatSync(path)
    const same = (s.type === 'fifo' && st.isFIFO()) || (s.type === 'chr' && st.isCharacterDevice()) || (s.type === 'blk' && st.isBlockDevice())
    if (!same) rmSync(path, { force: true, recursive: true })
    else return true
  } catch {
    // absent: make it
  }
  mkdirSync(dirname(path), { recursive: true })
  const args = s.type === 'fifo' ? [path, 'p'] : [path, s.type === 'chr' ? 'c' : 'b', String(s.major), String(s.minor)]
  await run('mknod', ['-m', (s.mode & 0o7777).toString(8), ...args])
  if (owner !== undefined && isRoot()) chownSync(path, owner[0], owner[1])
  const t = mtimeSeconds({ secs: BigInt(s.mtime[0]), nsecs: s.mtime[1] })
  utimesSync(path, t, t)
  return true
}

// apply flushes before it switches `current`, so a switch never points at data still in the page cache
export { syncFs } from './sync-fs.ts'
