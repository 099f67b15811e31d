// Restoring a backed-up journal onto a laptop that holds only the owner's
// key (docs/upstream.md, "Backups").
//
// Blobs come from a BlobSource: the school server over the mesh, or a
// server's backups.db in a directory (a stick). Every blob is opened with
// the owner's key and checked against the CID its parent names, so a blob
// that was changed, truncated or swapped is found, and named with the path
// it belongs to. The tree is written into a staging directory beside the
// target and moved into place only when every file is complete: a failed
// restore leaves no half tree, and whatever was at the target stays.
import { closeSync, existsSync, mkdirSync, openSync, renameSync, rmSync, symlinkSync, writeSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { identity } from 'multiformats/hashes/identity'
import { CID, RAW } from '../cid.ts'
import { ContentError, InvalidInputError } from '../errors.ts'
import { isSafeName, joinPath } from '../build.ts'
import { decodeNode, type Mtime, type Node } from '../unixfs.ts'
import { setMeta, syncFs } from '../materialise.ts'
import { lutimesSync } from 'node:fs'
import { blobId, openBlob, openSnapshot, type BackupKeys, type Snapshot } from './crypto.ts'

/** Where encrypted backups are read from. Ids and blobs are opaque bytes; the owner's bucket is the source's business. */
export interface BlobSource {
  /** Every snapshot of the owner's bucket the source holds. */
  snapshots: () => Promise<Array<{ id: Uint8Array, bytes: Uint8Array }>>
  /** The blobs of these ids that the source holds, by id in hex. */
  blobs: (ids: Uint8Array[]) => Promise<Map<string, Uint8Array>>
}

/** The source lacks blobs of the snapshot (not all of it has arrived there yet, or it was lost). */
export class BackupIncompleteError extends ContentError {
  constructor (message: string) { super('ERR_BACKUP_INCOMPLETE', message) }
}

/** A snapshot that opened under the owner's key. */
export interface SnapshotEntry { id: string, snapshot: Snapshot }

/**
 * The owner's snapshots at the source, oldest first; those that do not open
 * under the key (another owner's, or damaged) are counted in `unreadable`.
 */
export async function listSnapshots (source: BlobSource, keys: BackupKeys): Promise<{ snapshots: SnapshotEntry[], unreadable: number }> {
  const out: SnapshotEntry[] = []
  let unreadable = 0
  for (const s of await source.snapshots()) {
    try {
      out.push({ id: Buffer.from(s.id).toString('hex'), snapshot: openSnapshot(keys, s.id, s.bytes) })
    } catch {
      unreadable++
    }
  }
  out.sort((a, b) => a.snapshot.created - b.snapshot.created)
  return { snapshots: out, unreadable }
}

/** The newest snapshot made at or before `before` (ms), or the newest of all. */
export function chooseSnapshot (snapshots: SnapshotEntry[], before?: number): SnapshotEntry | undefined {
  const eligible = before === undefined ? snapshots : snapshots.filter(s => s.snapshot.created <= before)
  return eligible[eligible.length - 1]
}

export interface RestoreOptions {
  /** Blobs asked for in one request at most. */
  batch?: number
  /** Bytes of file content written so far, of the total. */
  onProgress?: (done: number, total: number) => void
  /** Called once the restore is in place, with the ids of every blob it read (the source holds them all). */
  onDone?: (ids: Uint8Array[]) => void
}

export interface RestoreResult { files: number, dirs: number, symlinks: number, bytes: number, blobs: number, target: string, movedAside?: string }

interface FileEntry { path: string, node: Extract<Node, { type: 'file' }>, leaves: Array<{ cid: CID, size: number }> }
interface DirEntry { path: string, mode?: number, mtime?: Mtime }

const STAGING = '.xo-mesh-restore'

/**
 * Restores a snapshot into target: written into `<target>.xo-mesh-restore`,
 * flushed, then renamed into place; an existing target is first moved to
 * `<target>.before-restore-<time>` (never deleted). Throws
 * BackupCorruptError naming the blob and its path, BackupIncompleteError when
 * the source lacks blobs; in both cases nothing is left at the target that
 * was not there before.
 */
export async function restoreSnapshot (source: BlobSource, keys: BackupKeys, entry: SnapshotEntry, target: string, options: RestoreOptions = {}): Promise<RestoreResult> {
  const batch = options.batch ?? 256
  const staging = target + STAGING
  rmSync(staging, { recursive: true, force: true })
  let blobsRead = 0
  const idsRead: Uint8Array[] = []

  /** The plaintext of the blocks of these CIDs (with what each is, for messages), fetched in batches. */
  const fetch = async (want: Array<{ cid: CID, what: string }>): Promise<Uint8Array[]> => {
    const out: Uint8Array[] = new Array(want.length)
    const remote: number[] = []
    want.forEach((w, i) => {
      if (w.cid.multihash.code === identity.code) out[i] = w.cid.multihash.digest
      else remote.push(i)
    })
    for (let k = 0; k < remote.length; k += batch) {
      const slice = remote.slice(k, k + batch)
      const ids = slice.map(i => blobId(keys, want[i]!.cid))
      const got = await source.blobs(ids)
      const missing = ids.filter(id => !got.has(Buffer.from(id).toString('hex')))
      if (missing.length > 0) {
        const first = slice[ids.indexOf(missing[0]!)]!
        throw new BackupIncompleteError(`the backup source lacks ${missing.length} blob(s) of this backup (first: ${Buffer.from(missing[0]!).toString('hex').slice(0, 16)}…, ${want[first]!.what}); it may not have arrived there yet`)
      }
      slice.forEach((i, j) => {
        out[i] = openBlob(keys, want[i]!.cid, got.get(Buffer.from(ids[j]!).toString('hex'))!, want[i]!.what)
        blobsRead++
        if (options.onDone !== undefined) idsRead.push(ids[j]!)
      })
    }
    return out
  }

  const decode = (cid: CID, bytes: Uint8Array, what: string): Node => {
    if (cid.code === RAW) throw new InvalidInputError(`${what}: a raw block where a node belongs`)
    return decodeNode(cid, bytes)
  }

  try {
    // 1. The tree's shape, level by level: directories, file nodes, symlinks.
    const dirs: DirEntry[] = []
    const files: FileEntry[] = []
    const symlinks: Array<{ path: string, target: string, mtime?: Mtime }> = []
    let level: Array<{ path: string, cid: CID }> = [{ path: '', cid: CID.parse(entry.snapshot.root) }]
    while (level.length > 0) {
      const blocks = await fetch(level.map(l => ({ cid: l.cid, what: l.path === '' ? 'the journal\'s root directory' : l.path })))
      const next: Array<{ path: string, cid: CID }> = []
      for (let i = 0; i < level.length; i++) {
        const { path, cid } = level[i]!
        const node = decode(cid, blocks[i]!, path)
        if (node.type === 'directory') {
          dirs.push({ path, ...(node.mode !== undefined ? { mode: node.mode } : {}), ...(node.mtime !== undefined ? { mtime: node.mtime } : {}) })
          for (const l of node.links) {
            if (!isSafeName(l.name)) throw new InvalidInputError(`unsafe name ${JSON.stringify(l.name)} in ${path === '' ? 'the root' : path}`)
            next.push({ path: joinPath(path, l.name), cid: l.cid })
          }
        } else if (node.type === 'symlink') {
          symlinks.push({ path, target: node.target, ...(node.mtime !== undefined ? { mtime: node.mtime } : {}) })
        } else {
          files.push({ path, node, leaves: await fileLeaves(node, path) })
        }
      }
      level = next
    }

    // 2. The files, leaf by leaf, in batches of about 4 MiB.
    mkdirSync(staging, { recursive: true, mode: 0o700 })
    for (const d of dirs) if (d.path !== '') mkdirSync(join(staging, d.path), { recursive: true, mode: 0o700 })
    const total = files.reduce((n, f) => n + f.node.size, 0)
    let done = 0
    for (const f of files) {
      const path = join(staging, f.path)
      const fd = openSync(path, 'w', 0o600)
      try {
        if (f.node.inline !== undefined) writeAllSync(fd, f.node.inline)
        for (let i = 0; i < f.leaves.length;) {
          let bytes = 0
          let j = i
          while (j < f.leaves.length && (j === i || bytes + f.leaves[j]!.size <= 4 << 20)) bytes += f.leaves[j++]!.size
          const group = f.leaves.slice(i, j)
          const plain = await fetch(group.map((l, k) => ({ cid: l.cid, what: `chunk ${i + k + 1} of ${f.leaves.length} of ${f.path}` })))
          for (const p of plain) writeAllSync(fd, p)
          done += bytes
          options.onProgress?.(done, total)
          i = j
        }
      } finally {
        closeSync(fd)
      }
      await setMeta(path, f.node.mode, midMicrosecond(f.node.mtime), undefined)
    }
    for (const s of symlinks) {
      const path = join(staging, s.path)
      symlinkSync(s.target, path)
      const m = midMicrosecond(s.mtime)
      if (m !== undefined) { const t = Number(m.secs) + m.nsecs / 1e9; lutimesSync(path, t, t) }
    }
    // deepest first, so that making a child does not move its parent's mtime afterwards
    for (const d of [...dirs].sort((a, b) => b.path.split('/').length - a.path.split('/').length || (b.path.length - a.path.length))) {
      await setMeta(d.path === '' ? staging : join(staging, d.path), d.mode, midMicrosecond(d.mtime), undefined)
    }
    await syncFs(staging)

    // 3. Into place.
    let movedAside: string | undefined
    mkdirSync(dirname(target), { recursive: true })
    if (existsSync(target)) {
      movedAside = `${target}.before-restore-${new Date().toISOString().replace(/[:.]/g, '-')}`
      renameSync(target, movedAside)
    }
    renameSync(staging, target)
    options.onDone?.(idsRead)
    return { files: files.length, dirs: dirs.length, symlinks: symlinks.length, bytes: total, blobs: blobsRead, target, ...(movedAside !== undefined ? { movedAside } : {}) }
  } catch (err) {
    rmSync(staging, { recursive: true, force: true })
    throw err
  }

  /** A file's leaves in order, fetching interior nodes of a large file. */
  async function fileLeaves (node: Extract<Node, { type: 'file' }>, path: string): Promise<Array<{ cid: CID, size: number }>> {
    const out: Array<{ cid: CID, size: number }> = []
    let pending = node.children
    // interior nodes are expanded in order, one level at a time
    while (pending.some(c => c.cid.code !== RAW)) {
      const interior = pending.filter(c => c.cid.code !== RAW)
      const blocks = await fetch(interior.map(c => ({ cid: c.cid, what: `a node of ${path}` })))
      const expanded: Array<{ cid: CID, size: number }> = []
      let k = 0
      for (const c of pending) {
        if (c.cid.code === RAW) { expanded.push(c); continue }
        const n = decode(c.cid, blocks[k++]!, path)
        if (n.type !== 'file' || n.inline !== undefined) throw new InvalidInputError(`${path}: a file node holds something other than chunks`)
        expanded.push(...n.children)
      }
      pending = expanded
    }
    out.push(...pending)
    return out
  }
}

/**
 * Backups keep mtimes to the microsecond (write.ts); utimes takes a double
 * whose error is a fraction of one, so aim at its middle: the file then
 * reads back as that very microsecond.
 */
function midMicrosecond (m: Mtime | undefined): Mtime | undefined {
  return m === undefined ? undefined : { secs: m.secs, nsecs: m.nsecs - (m.nsecs % 1000) + 500 }
}

function writeAllSync (fd: number, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off, bytes.length - off)
}
