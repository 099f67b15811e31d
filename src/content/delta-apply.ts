// Applying a patch record (delta-record.ts): rebuilding the leaves of changed
// and new files from zstd frames and the old files this store holds.
//
// The receiver never trusts a patch: it reads the target files' layouts
// (their nodes came through the node pack, each one hashed and reachable
// from the build), decodes the frame with the verified bytes of the bases as
// dictionary, cuts the output at the leaf sizes and hands each slice to a
// put that checks it against its leaf CID. A patch can make an import fail,
// never make it store a wrong block.
//
// Memory, one patch at a time: the dictionary (at most MAX_DICTIONARY
// bytes, and zstd's copy of it), the decoder's window (at most
// 2^MAX_WINDOW_LOG) and one leaf.
import { CID } from './cid.ts'
import { BlockNotFoundError, InvalidInputError } from './errors.ts'
import { fileLayout, type PlacedLeaf } from './unixfs.ts'
import { deltaFileCount, type DeltaPatch, type DeltaRecord } from './delta-record.ts'
import { MAX_DICTIONARY, checkZstd, decodeBlocks, usableAsDictionary } from './zstd.ts'
import type { BlockStore } from './blockstore.ts'

/**
 * Largest file, in bytes, whose bytes a delta holds in memory: a base (a
 * dictionary) or a target of a patch. Larger files travel as raw leaves.
 */
export const MAX_DELTA_FILE = MAX_DICTIONARY

/** A file's bytes from the store, every leaf verified. Refuses files over `max` bytes. */
export async function readFileBytes (store: BlockStore, file: CID, max = MAX_DELTA_FILE): Promise<Buffer> {
  const { leaves, inline } = await fileLayout(store, file)
  const size = leaves.reduce((n, l) => n + l.size, 0) + inline.reduce((n, i) => n + i.bytes.length, 0)
  if (size > max) throw new InvalidInputError(`file ${file} is ${size} bytes, over the ${max} bytes a delta may hold in memory`)
  const out = Buffer.alloc(size)
  for (const i of inline) out.set(i.bytes, i.offset)
  for (const l of leaves) {
    const bytes = await store.get(l.cid)
    if (bytes.length !== l.size) throw new InvalidInputError(`leaf ${l.cid} of ${file} is ${bytes.length} bytes, its parent says ${l.size}`)
    out.set(bytes, l.offset)
  }
  return out
}

/** How rebuilt leaves are stored: the importer's put, which verifies and remembers what it wrote. */
export type PutBlock = (cid: CID, bytes: Uint8Array, where: string) => Promise<void>

/**
 * Rebuilds the leaves a patch record stands for, one patch at a time, and
 * hands each to `put`, which must verify it against its leaf CID
 * (BlockStore.put does). The target file nodes and the patch blocks must be
 * in the store already, and the bases too (the receiver's old builds).
 *
 * Resolves to the number of files rebuilt. Throws CorruptBlockError when a
 * slice does not hash to its leaf (a wrong patch), InvalidInputError when a
 * patch is not valid zstd, decodes to more or fewer bytes than its targets
 * hold, its dictionary is too large, or a target, base or patch block is
 * missing.
 */
export async function applyDelta (store: BlockStore, record: DeltaRecord, put: PutBlock, onFile?: (done: number, total: number) => void): Promise<number> {
  checkZstd()
  const total = deltaFileCount(record)
  let done = 0
  for (const p of record.patches) {
    await rebuild(store, record, p, put)
    done += p.targets.length
    onFile?.(done, total)
  }
  return done
}

/** The bases' bytes one after the other, verified: a patch's dictionary. */
async function readDictionary (store: BlockStore, record: DeltaRecord, bases: CID[], what: string): Promise<Buffer> {
  const parts: Buffer[] = []
  let length = 0
  for (const base of bases) {
    try {
      // a dictionary over MAX_DICTIONARY fails here, naming the base that passed it
      const bytes = await readFileBytes(store, base, MAX_DICTIONARY - length)
      parts.push(bytes)
      length += bytes.length
    } catch (err) {
      if (err instanceof BlockNotFoundError) {
        throw new InvalidInputError(`this bundle updates build(s) ${record.from.join(', ')}; the store lacks file ${base} that ${what} starts from (import a full bundle instead)`, { cause: err })
      }
      throw err
    }
  }
  const dictionary = Buffer.concat(parts, length)
  if (!usableAsDictionary(dictionary)) throw new InvalidInputError(`${what} starts from bytes zstd would read as a formatted dictionary`)
  return dictionary
}

async function rebuild (store: BlockStore, record: DeltaRecord, p: DeltaPatch, put: PutBlock): Promise<void> {
  const what = p.targets.length === 1 ? `the patch of file ${p.targets[0]}` : `the patch of ${p.targets.length} files from ${p.targets[0]}`
  const leaves: PlacedLeaf[] = []
  for (const t of p.targets) {
    let layout
    try {
      layout = await fileLayout(store, t)
    } catch (err) {
      if (err instanceof BlockNotFoundError) throw new InvalidInputError(`${what} targets file ${t}, whose nodes are neither in the bundle nor in the store`, { cause: err })
      throw err
    }
    if (layout.inline.length > 0) throw new InvalidInputError(`${what} targets file ${t}, which has inline data (deltas never do)`)
    leaves.push(...layout.leaves)
  }
  if (leaves.length !== p.leaves) throw new InvalidInputError(`${what} says ${p.leaves} leaves, its targets have ${leaves.length}`)
  const size = leaves.reduce((n, l) => n + l.size, 0)

  for (const b of p.patch) {
    if (!await store.has(b)) throw new InvalidInputError(`patch block ${b} of ${what} is neither in the bundle nor in the store`)
  }

  let i = 0
  let fill = 0
  let produced = 0
  let current = Buffer.alloc(0)
  // leaves of zero bytes need no output: store them as soon as they come up
  const next = async (): Promise<void> => {
    while (i < leaves.length && leaves[i]!.size === 0) await put(leaves[i++]!.cid, new Uint8Array(0), what)
    if (i < leaves.length) current = Buffer.allocUnsafe(leaves[i]!.size)
    fill = 0
  }
  await next()
  // the dictionary is held by zstd alone while the files are rebuilt (decodeBlocks lets go of ours)
  const dict = p.bases.length > 0 ? { dictionary: await readDictionary(store, record, p.bases, what) } : {}
  await decodeBlocks(store, p.patch, dict, what, async chunk => {
    let off = 0
    while (off < chunk.length) {
      if (i >= leaves.length) throw new InvalidInputError(`${what} decodes to more than the ${size} bytes its target(s) hold`)
      const n = Math.min(chunk.length - off, current.length - fill)
      chunk.copy(current, fill, off, off + n)
      fill += n
      off += n
      produced += n
      if (fill === current.length) {
        await put(leaves[i]!.cid, current, what)
        i++
        await next()
      }
    }
  })
  if (i < leaves.length) {
    throw new InvalidInputError(`${what} decodes to ${produced} bytes, short of the ${size} its target(s) hold`)
  }
}
