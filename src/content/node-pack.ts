// The node pack of an update bundle: the new build's metadata (its record,
// directory, file and symlink nodes) and the patch record, as one zstd
// stream whose dictionary is the old builds' metadata.
//
// Why: in an update where many small files change, the bytes are not in the
// patches but in the nodes around them. Every changed file has a new file
// node, every directory above it a new node listing all its entries (names,
// CIDs, sizes), and sent raw each costs its whole size plus ~40 bytes of CAR
// framing. Against the old nodes, laid out in the same walk order, a new
// directory node costs little more than its changed CIDs, a new file node
// little more than its new leaf CIDs, and the patch record's target CIDs
// repeat CIDs the directory nodes just carried.
//
// Format. The pack decodes to items, each a LEB128 length and that many
// bytes (one block); the frame is stored as raw blocks of at most 1 MiB
// named by the pack manifest (delta-record.ts), which also gives `size`
// (bytes the pack decodes to), `trees` and `dict`: the dictionary is the
// first `dict` bytes of the dag-pb nodes of the old builds' trees, tree by
// tree in the manifest's order, each depth first (each parent before its
// children, children in link order, each node once), raw leaves left out.
// Sender and receiver make it from their own stores, so only its length
// travels; trees rather than build records, because a laptop that added
// the same tree itself holds the same nodes under another record.
//
// Trust: an item carries no CID. The receiver hashes it and stores it only
// when the digest is one it expects: the bundle's root (the build record)
// or the manifest's patch record, then the dag-pb children of every item
// already accepted. Items come parents first (the sender packs them in
// walk order), so an honest pack's items are all expected when they
// arrive; anything else (a tampered item, an extra block, a repeat) fails
// the import. Output beyond the manifest's `size` is refused as it is
// decoded, and `size` itself is capped at MAX_PACK_SIZE.
//
// Memory: the dictionary (at most PACK_DICT_MAX bytes, and zstd's copy),
// zstd's window (at most 2^27) and one item (at most MAX_PACK_ITEM bytes).
import { createHash } from 'node:crypto'
import { CID, DAG_CBOR, DAG_PB, checkCid } from './cid.ts'
import { BlockNotFoundError, InvalidInputError } from './errors.ts'
import { decodeRecord, readRecord } from './build.ts'
import { decodeNode } from './unixfs.ts'
import { canonicalFrom, type PackManifest } from './delta-record.ts'
import { decodeBlocks, encodeToBlocks, frameParams, usableAsDictionary } from './zstd.ts'
import type { BlockStore } from './blockstore.ts'

/** Largest dictionary of a pack, in bytes: the old builds' nodes past this are left out of it. */
export const PACK_DICT_MAX = 1 << 26

/** Largest `size` a manifest may declare: a pack decoding to more is refused outright. */
export const MAX_PACK_SIZE = 1 << 30

/** Largest item of a pack (one block: a directory node of a huge flat directory can be a few MiB). */
export const MAX_PACK_ITEM = 16 << 20

/** Stores an item the pack's reader has accepted: the importer's put, which verifies and remembers what it wrote. */
export type PutItem = (cid: CID, bytes: Uint8Array, where: string) => Promise<void>

/** The non-raw children of a node: what a pack may carry below it. */
function nodeChildren (cid: CID, bytes: Uint8Array): CID[] {
  if (cid.code === DAG_CBOR) return [decodeRecord(cid, bytes).tree]
  const node = decodeNode(cid, bytes)
  switch (node.type) {
    case 'directory': return node.links.map(l => l.cid).filter(c => c.code === DAG_PB)
    case 'file': return node.children.map(c => c.cid).filter(c => c.code === DAG_PB)
    case 'symlink': return []
  }
}

/**
 * The dictionary of a pack: the first `limit` bytes of the nodes of `trees`
 * in walk order (see the top of this file), every block verified as it is
 * read. Throws BlockNotFoundError when one of those nodes is missing before
 * `limit` bytes are reached.
 */
export async function nodeDictionary (store: BlockStore, trees: CID[], limit: number): Promise<Buffer> {
  const parts: Uint8Array[] = []
  let length = 0
  const seen = new Set<string>()
  for (const tree of trees) {
    const stack: CID[] = [tree]
    while (stack.length > 0 && length < limit) {
      const cid = stack.pop()!
      const key = cid.toString()
      if (seen.has(key)) continue
      seen.add(key)
      const bytes = await store.get(cid)
      parts.push(bytes.length <= limit - length ? bytes : bytes.subarray(0, limit - length))
      length += parts[parts.length - 1]!.length
      const children = nodeChildren(cid, bytes)
      for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!)
    }
  }
  return Buffer.concat(parts, length)
}

function varint (n: number): Buffer {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return Buffer.from(out)
}

/**
 * Packs blocks of the store (`items`, parents before children) against the
 * nodes of the trees of the `from` builds; the frame's blocks go into the
 * store (the new ones noted in `written`). Resolves to what the manifest
 * records.
 */
export async function writePack (store: BlockStore, from: CID[], items: CID[], written: CID[]): Promise<{ trees: CID[], dict: number, size: number, pack: CID[] }> {
  const trees: CID[] = []
  for (const b of canonicalFrom(from)) {
    const tree = (await readRecord(store, b)).tree
    if (!trees.some(t => t.equals(tree))) trees.push(tree)
  }
  if (items.length === 0) return { trees, dict: 0, size: 0, pack: [] }
  let dictionary: Buffer | undefined = await nodeDictionary(store, trees, PACK_DICT_MAX)
  // a dag-pb node never starts with zstd's dictionary magic (0x37 is no protobuf field of it), but a dictionary that did would be misread: go without one
  if (!usableAsDictionary(dictionary)) dictionary = Buffer.alloc(0)
  const dict = dictionary.length
  const sizes: number[] = []
  let size = 0
  for (const c of items) {
    const n = await store.size(c)
    if (n === undefined) throw new BlockNotFoundError(c.toString())
    if (n > MAX_PACK_ITEM) throw new InvalidInputError(`block ${c} is ${n} bytes, over the ${MAX_PACK_ITEM} a pack item may hold`)
    sizes.push(n)
    size += varint(n).length + n
  }
  async function * source (): AsyncGenerator<Uint8Array> {
    for (const [i, c] of items.entries()) {
      const bytes = await store.get(c)
      if (bytes.length !== sizes[i]) throw new InvalidInputError(`block ${c} changed size while it was packed`)
      yield varint(bytes.length)
      yield bytes
    }
  }
  const params = frameParams(dict, size)
  const encoded = await encodeToBlocks(store, source(), { dictionary, params, size }, written)
  dictionary = undefined
  return { trees, dict, size, pack: encoded!.blocks }
}

/** What the reader expects next: CIDs by sha2-256 digest (hex), with what they must be. */
type Expected = Map<string, { cid: CID, kind: 'record' | 'node' | 'delta' }>

function expect (expected: Expected, cid: CID, kind: 'record' | 'node' | 'delta'): void {
  try {
    checkCid(cid) // sha2-256 only: an item's digest must mean exactly one thing
  } catch {
    return
  }
  if (cid.code !== (kind === 'node' ? DAG_PB : DAG_CBOR)) return
  const key = Buffer.from(cid.multihash.digest).toString('hex')
  if (!expected.has(key)) expected.set(key, { cid, kind })
}

/**
 * Reads the node pack a manifest names (its blocks already in the store)
 * and stores every item through `put`, each one only if the bundle's root
 * `root`, the manifest's patch record or an item accepted before refers to
 * it. Resolves to the number of items.
 *
 * Throws InvalidInputError when the store lacks the from builds' nodes (an
 * update for builds it does not hold), a pack block is missing, the pack is
 * not valid zstd, decodes to more or fewer bytes than the manifest
 * declares, ends inside an item, or holds an item nothing refers to (a
 * tampered byte, an extra block, a repeated one).
 */
export async function readPack (store: BlockStore, manifest: PackManifest, root: CID, put: PutItem): Promise<number> {
  const what = 'the node pack'
  if (manifest.size > MAX_PACK_SIZE) throw new InvalidInputError(`${what} declares ${manifest.size} bytes, over the ${MAX_PACK_SIZE} a pack may hold`)
  if (manifest.dict > PACK_DICT_MAX) throw new InvalidInputError(`${what} declares a dictionary of ${manifest.dict} bytes, over the ${PACK_DICT_MAX} a pack may use`)
  if (manifest.size === 0) return 0
  for (const b of manifest.pack) {
    if (!await store.has(b)) throw new InvalidInputError(`block ${b} of ${what} is neither in the bundle nor in the store`)
  }
  const lacks = `this bundle updates build(s) ${manifest.from.join(', ')}; the store lacks their tree(s) ${manifest.trees.join(', ')} or part of them (import a full bundle instead)`
  let dictionary: Buffer
  try {
    dictionary = await nodeDictionary(store, manifest.trees, manifest.dict)
  } catch (err) {
    if (err instanceof BlockNotFoundError) throw new InvalidInputError(lacks, { cause: err })
    throw err
  }
  if (dictionary.length < manifest.dict) throw new InvalidInputError(lacks)
  if (!usableAsDictionary(dictionary)) throw new InvalidInputError(`${what} starts from bytes zstd would read as a formatted dictionary`)

  const expected: Expected = new Map()
  expect(expected, root, 'record')
  if (manifest.delta !== undefined) expect(expected, manifest.delta, 'delta')

  let produced = 0
  let items = 0
  // the item being read: its length as it is parsed (LEB128), then its bytes
  let lengthSoFar = 0
  let shift = 0
  let item: Buffer | undefined
  let fill = 0
  const accept = async (bytes: Buffer): Promise<void> => {
    items++
    const digest = createHash('sha256').update(bytes).digest('hex')
    const e = expected.get(digest)
    if (e === undefined) throw new InvalidInputError(`item ${items} of ${what} (sha2-256 ${digest}) is not a block the build or the manifest refers to`)
    expected.delete(digest)
    await put(e.cid, bytes, what)
    if (e.kind !== 'delta') for (const c of nodeChildren(e.cid, bytes)) expect(expected, c, 'node')
  }
  const dict = { dictionary }
  dictionary = Buffer.alloc(0) // zstd takes its own copy (decodeBlocks lets go of dict's)
  await decodeBlocks(store, manifest.pack, dict, what, async chunk => {
    produced += chunk.length
    if (produced > manifest.size) throw new InvalidInputError(`${what} decodes to more than the ${manifest.size} bytes its manifest declares`)
    let off = 0
    while (off < chunk.length) {
      if (item === undefined) {
        const b = chunk[off++]!
        lengthSoFar += (b & 0x7f) * 2 ** shift
        shift += 7
        if ((b & 0x80) !== 0) {
          if (shift >= 28) throw new InvalidInputError(`${what} has an item length over ${MAX_PACK_ITEM} bytes`)
          continue
        }
        if (lengthSoFar > MAX_PACK_ITEM) throw new InvalidInputError(`${what} has an item of ${lengthSoFar} bytes, over the ${MAX_PACK_ITEM} allowed`)
        const length = lengthSoFar
        lengthSoFar = 0
        shift = 0
        if (length === 0) {
          await accept(Buffer.alloc(0))
          continue
        }
        item = Buffer.allocUnsafe(length)
        fill = 0
      }
      const n = Math.min(chunk.length - off, item.length - fill)
      chunk.copy(item, fill, off, off + n)
      fill += n
      off += n
      if (fill === item.length) {
        const done = item
        item = undefined
        await accept(done)
      }
    }
  })
  if (produced < manifest.size) throw new InvalidInputError(`${what} decodes to ${produced} bytes, short of the ${manifest.size} its manifest declares`)
  if (item !== undefined || shift > 0) throw new InvalidInputError(`${what} ends inside an item`)
  return items
}
