// Backing up a directory (the Sugar journal's datastore) as encrypted,
// deduplicated blobs (docs/upstream.md, "Backups").
//
// The tree becomes a UnixFS DAG exactly as a build does (FastCDC leaves,
// dag-pb file and directory nodes with mode and mtime), but its blocks never
// touch a block store: each is sealed for the owner (crypto.ts) and packed
// (pack.ts) into outbox items as it is made. What was sent before is not sent
// again: an index (BackupIndex) remembers the ids of the blobs already
// handed to the outbox, and the stat of each file whose node was sent, so an
// unchanged file is not even read. Small files (Sugar keeps each metadata
// property in a file of a few bytes) are inlined into their directory's node
// with identity CIDs: the node is the CID, no blob of its own.
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, readdirSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'
import type { BigIntStats } from 'node:fs'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { identity } from 'multiformats/hashes/identity'
import { CID, DAG_PB, RAW, cidOf } from '../cid.ts'
import { InvalidInputError } from '../errors.ts'
import { Chunker, DEFAULT_CHUNKER } from '../fastcdc.ts'
import { dirNode, fileNodes, symlinkNode, type Built, type EncodedBlock, type Leaf, type Mtime } from '../unixfs.ts'
import { blobId, sealBlob, sealSnapshot, type BackupKeys, type Snapshot } from './crypto.ts'
import { MAX_RECORD_BYTES, PackBuilder, type PackRecord } from './pack.ts'

/** Files up to this many bytes live inside their directory's node. */
export const INLINE_FILE_BYTES = 256
/** A node up to this many bytes is its own CID (identity multihash): no blob is sent for it. */
const IDENTITY_NODE_BYTES = 320
const READ_BUFFER = 4 << 20

/** What a backup remembers between runs (src/store/backup-index.ts keeps it in SQLite). */
export interface BackupIndex {
  /** Whether the blob of this id was handed to the outbox (and, by construction, every blob below it). */
  has: (id: Uint8Array) => boolean
  /** Notes blobs as handed to the outbox (called after their pack was enqueued). */
  add: (ids: Uint8Array[]) => void
  /** The node of a file from an earlier backup, kept with the stat it had then. */
  file: (path: string) => { stamp: string, cid: Uint8Array, size: number, tsize: number } | undefined
  /** Remembers files' nodes (called once every blob of this backup is enqueued). */
  setFiles: (files: Array<{ path: string, stamp: string, cid: Uint8Array, size: number, tsize: number }>) => void
}

export interface BackupOptions {
  /** Names at the top of the tree left out (Sugar's `index`, which it rebuilds). */
  exclude?: string[]
  /** Ignore the index: send every blob again (a new server, a lost copy). */
  full?: boolean
  /** When the backup is made (ms since the epoch); default now. */
  created?: number
  /** Bytes of file content read so far. */
  onProgress?: (bytes: number) => void
}

export interface BackupResult {
  /** The snapshot's id, hex. */
  snapshot: string
  root: string
  created: number
  files: number
  /** Bytes of file content in the tree. */
  bytes: number
  /** Blocks of the DAG, and how many were sent this time (the rest were sent before). */
  blobs: number
  newBlobs: number
  /** Bytes of blobs sent this time (encrypted, before packing). */
  newBytes: number
  /** Items (packs) enqueued. */
  packs: number
  /** Files whose node was reused from the index without reading them. */
  unchangedFiles: number
  /** Entries that are neither files, directories nor symlinks (sockets, fifos): not backed up. */
  skipped: number
}

/**
 * The mtime to the microsecond: what a restore can set (utimes takes a
 * double, ~0.2 µs fine today; restore.ts aims at the middle of the
 * microsecond), so that a restored journal backs up to the very same nodes
 * and nothing is sent again.
 */
function mtimeOf (st: BigIntStats): Mtime {
  const us = st.mtimeNs / 1000n
  return { secs: us / 1_000_000n, nsecs: Number(us % 1_000_000n) * 1000 }
}

function stampOf (st: BigIntStats): string {
  return `${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.ino}:${st.mode}`
}

function identityCid (bytes: Uint8Array): CID {
  return CID.createV1(DAG_PB, identity.digest(bytes))
}

/** The node of a small file, its content inside. */
function inlineFileNode (bytes: Uint8Array, mode: number, mtime: Mtime): EncodedBlock {
  const u = new UnixFS({ type: 'file', data: bytes })
  u.mode = mode
  u.mtime = { secs: mtime.secs, nsecs: mtime.nsecs }
  const encoded = dagPb.encode(dagPb.prepare({ Data: u.marshal(), Links: [] }))
  return { cid: cidOf(DAG_PB, encoded), bytes: encoded }
}

/**
 * Backs up the tree under dir: every block not sent before is sealed and
 * packed, each full pack handed to `enqueue` (an outbox item of kind
 * backup-chunk), then the snapshot naming the root. Throws what enqueue
 * throws (an outbox that is full): blobs enqueued until then are in the
 * index, so the next backup resumes where this one stopped.
 */
export async function backupDirectory (dir: string, keys: BackupKeys, index: BackupIndex, enqueue: (body: Uint8Array) => Promise<void>, options: BackupOptions = {}): Promise<BackupResult> {
  let top: BigIntStats
  try {
    top = lstatSync(dir, { bigint: true })
  } catch (err) {
    throw new InvalidInputError(`cannot read the journal ${dir}: ${(err as Error).message}`, { cause: err })
  }
  if (!top.isDirectory()) throw new InvalidInputError(`the journal ${dir} is not a directory`)
  const exclude = new Set(options.exclude ?? [])
  const full = options.full === true
  const created = options.created ?? Date.now()
  const result: BackupResult = { snapshot: '', root: '', created, files: 0, bytes: 0, blobs: 0, newBlobs: 0, newBytes: 0, packs: 0, unchangedFiles: 0, skipped: 0 }
  const sentNow = new Set<string>()
  const files: Array<{ path: string, stamp: string, cid: Uint8Array, size: number, tsize: number }> = []
  const packs = new PackBuilder(keys.bucket, async (body, records: PackRecord[]) => {
    await enqueue(body)
    result.packs++
    index.add(records.filter(r => r.type === 'blob').map(r => r.id))
  })
  const chunker = new Chunker(DEFAULT_CHUNKER)
  const buf = new Uint8Array(Math.max(READ_BUFFER, 2 * DEFAULT_CHUNKER.maxSize))

  const known = (id: Uint8Array): boolean => sentNow.has(Buffer.from(id).toString('hex')) || (!full && index.has(id))

  /** Sends one block unless it was sent before; identity CIDs are never sent. */
  const put = async (cid: CID, bytes: Uint8Array): Promise<void> => {
    if (cid.multihash.code === identity.code) return
    result.blobs++
    const id = blobId(keys, cid)
    if (known(id)) return
    const sealed = sealBlob(keys, cid, bytes)
    if (sealed.blob.length > MAX_RECORD_BYTES) throw new InvalidInputError(`a block of ${bytes.length} bytes is too large to back up (a directory with too many entries?)`)
    sentNow.add(Buffer.from(id).toString('hex'))
    result.newBlobs++
    result.newBytes += sealed.blob.length
    await packs.add({ type: 'blob', id: sealed.id, bytes: sealed.blob })
  }

  const putNode = async (block: EncodedBlock, size: number, tsize: number): Promise<Built> => {
    if (block.bytes.length <= IDENTITY_NODE_BYTES) return { cid: identityCid(block.bytes), size, tsize: block.bytes.length }
    await put(block.cid, block.bytes)
    return { cid: block.cid, size, tsize }
  }

  const backupFile = async (abs: string, rel: string): Promise<Built | undefined> => {
    let fd: number
    try {
      fd = openSync(abs, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOOP' || (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined // replaced or gone since readdir
      throw err
    }
    try {
      const st = fstatSync(fd, { bigint: true })
      if (!st.isFile()) return undefined
      const mode = Number(st.mode & 0o7777n)
      const mtime = mtimeOf(st)
      const stamp = stampOf(st)
      result.files++
      result.bytes += Number(st.size)
      const before = full ? undefined : index.file(rel)
      if (before !== undefined && before.stamp === stamp) {
        const cid = CID.decode(before.cid)
        if (cid.multihash.code === identity.code || index.has(blobId(keys, cid))) {
          result.unchangedFiles++
          result.blobs++
          files.push({ path: rel, ...before })
          return { cid, size: before.size, tsize: before.tsize }
        }
      }
      // Read in large pieces into one buffer; each leaf is a view of it, sealed (copied) before the next read.
      const leaves: Leaf[] = []
      let start = 0
      let end = 0
      let small: Uint8Array | undefined
      for (;;) {
        if (end === buf.length) {
          buf.copyWithin(0, start, end)
          end -= start
          start = 0
        }
        const n = readSync(fd, buf, end, buf.length - end, null)
        if (n === 0) break
        const cuts = chunker.push(buf.subarray(end, end + n))
        end += n
        for (const len of cuts) {
          const bytes = buf.subarray(start, start + len)
          const cid = cidOf(RAW, bytes)
          await put(cid, bytes)
          leaves.push({ cid, size: len })
          start += len
        }
        options.onProgress?.(result.bytes)
      }
      for (const len of chunker.finish()) {
        const bytes = buf.subarray(start, start + len)
        if (leaves.length === 0 && len <= INLINE_FILE_BYTES) { small = new Uint8Array(bytes); break }
        const cid = cidOf(RAW, bytes)
        await put(cid, bytes)
        leaves.push({ cid, size: len })
      }
      let built: Built
      if (small !== undefined) {
        built = await putNode(inlineFileNode(small, mode, mtime), small.length, 0)
      } else {
        const { blocks, root } = fileNodes(leaves, mode, mtime)
        for (const b of blocks.slice(0, -1)) await put(b.cid, b.bytes)
        built = await putNode(blocks[blocks.length - 1]!, root.size, root.tsize)
      }
      files.push({ path: rel, stamp, cid: built.cid.bytes, size: built.size, tsize: built.tsize })
      return built
    } finally {
      closeSync(fd)
    }
  }

  const backupDir = async (abs: string, rel: string, st: BigIntStats): Promise<Built> => {
    const links: Array<{ name: string, node: Built }> = []
    const names = readdirSync(abs).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    for (const name of names) {
      if (rel === '' && exclude.has(name)) continue
      const childAbs = join(abs, name)
      const childRel = rel === '' ? name : `${rel}/${name}`
      let cst: BigIntStats
      try {
        cst = lstatSync(childAbs, { bigint: true })
      } catch {
        continue // gone since readdir
      }
      let node: Built | undefined
      if (cst.isFile()) node = await backupFile(childAbs, childRel)
      else if (cst.isDirectory()) node = await backupDir(childAbs, childRel, cst)
      else if (cst.isSymbolicLink()) {
        const { block } = symlinkNode(readlinkSync(childAbs), Number(cst.mode & 0o7777n), mtimeOf(cst))
        node = await putNode(block, 0, block.bytes.length)
      } else result.skipped++
      if (node !== undefined) links.push({ name, node })
    }
    const { block, root } = dirNode(links, Number(st.mode & 0o7777n), mtimeOf(st))
    return await putNode(block, 0, root.tsize)
  }

  const root = await backupDir(dir, '', top)
  const snapshot: Snapshot = { created, root: root.cid.toString(), files: result.files, bytes: result.bytes }
  const sealed = sealSnapshot(keys, snapshot)
  await packs.add({ type: 'snapshot', id: sealed.id, bytes: sealed.bytes })
  await packs.flush()
  index.setFiles(files)
  result.snapshot = Buffer.from(sealed.id).toString('hex')
  result.root = snapshot.root
  return result
}
