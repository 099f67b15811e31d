// What the block exchange needs to know of a build in the store
// (protocols/blocks.md, sections 3 and 6.6):
//
// - the manifest: the record and every dag-pb node, in first-visit order;
// - the index space: the build's distinct raw leaves in the order of a depth
//   first, pre-order walk from the record (a CID met again is skipped with its
//   subtree), each with the size its parent states (a file node's
//   blocksizes[k], a directory link's Tsize) — the order buildCids yields;
// - when the manifest is incomplete, its frontier: the dag-pb/dag-cbor CIDs
//   the store lacks whose parents it holds (the record when it has nothing);
// - the bitfield of leaves on disk, which is what a fetch resumes from after a
//   drop, a crash or a reboot.
//
// Leaves are checked with one statSync each (a 256 MiB build has ~4,000): a
// file whose size is not the size the manifest states (a block torn by a power
// cut) counts as missing, so it is fetched again. Bytes are not hashed here;
// every read of a block for a peer re-hashes it (blockstore.ts).
import { statSync } from 'node:fs'
import * as dagPb from '@ipld/dag-pb'
import { CID, DAG_CBOR, DAG_PB, RAW, checkCid } from './cid.ts'
import { decodeRecord, type BuildRecord } from './build.ts'
import { decodeNode } from './unixfs.ts'
import type { BlockStore } from './blockstore.ts'

/** Bytes of a binary raw CIDv1 with a sha2-256 digest: 01 55 12 20 <32 bytes>. */
export const LEAF_CID_LENGTH = 36
/** Leaves of a build at most (the exchange's MAX_LEAVES, 64 GiB at 64 KiB each). */
export const DEFAULT_MAX_LEAVES = 1 << 20

/** A build's manifest and index space, as read from the store. */
export interface IndexSpace {
  root: CID
  record: BuildRecord
  /** The record and every dag-pb node, first-visit order. */
  manifest: CID[]
  /** Number of leaves (the index space's size). */
  leaves: number
  /** Binary CIDs of the leaves, LEAF_CID_LENGTH bytes each, in index order. */
  leafCids: Uint8Array
  /** Size of each leaf as its parent states it, in index order. */
  sizes: Uint32Array
  /** Sum of sizes. */
  totalBytes: number
}

export type IndexSpaceResult =
  /** Manifest blocks are missing: the frontier (each one's parent is held), first-visit order. */
  | { status: 'manifest-missing', missing: CID[] }
  | { status: 'ready', space: IndexSpace }
  /** Not a build this version can exchange (not a record, a HAMT directory, a foreign hash, too many leaves…). */
  | { status: 'failed', reason: string }

export interface IndexSpaceOptions {
  /** Fail beyond this many leaves (DEFAULT_MAX_LEAVES): a manifest from a peer must not make us allocate without bound. */
  maxLeaves?: number
}

/** A child link of a manifest node: its CID and, for a raw leaf, the size the parent states. */
interface Child { cid: CID, size: number | undefined }

/** The children of a manifest block, in link order. Throws on a block that is not part of a build. */
function childrenOf (cid: CID, bytes: Uint8Array): Child[] {
  if (cid.code === DAG_CBOR) return [{ cid: decodeRecord(cid, bytes).tree, size: undefined }]
  const node = decodeNode(cid, bytes)
  switch (node.type) {
    case 'file': return node.children.map(c => ({ cid: c.cid, size: c.size }))
    case 'symlink': return []
    case 'directory': {
      // decodeNode drops Tsize, which is a raw child's size in a directory
      const links = dagPb.decode(bytes).Links
      return links.map(l => ({ cid: l.Hash, size: l.Tsize }))
    }
  }
}

/** A map key for a CID: its bytes, one char each. */
function keyOf (cid: CID): string {
  return String.fromCharCode.apply(null, cid.bytes as unknown as number[])
}

/**
 * Reads the manifest of a build from the store and derives its index space,
 * or names the frontier of missing manifest blocks. Never throws for what the
 * store holds: a block that is not what a build may contain makes the result
 * 'failed'; a manifest block that is unreadable or rotted counts as missing.
 */
export async function readIndexSpace (store: BlockStore, root: CID, options: IndexSpaceOptions = {}): Promise<IndexSpaceResult> {
  const maxLeaves = options.maxLeaves ?? DEFAULT_MAX_LEAVES
  if (root.code !== DAG_CBOR) return { status: 'failed', reason: `${root} is not a build record (not dag-cbor)` }
  const manifest: CID[] = []
  const missing: CID[] = []
  let record: BuildRecord | undefined
  const seen = new Set<string>()
  let leafCids = new Uint8Array(LEAF_CID_LENGTH * 1024)
  let sizes = new Uint32Array(1024)
  let leaves = 0
  let totalBytes = 0
  const stack: Child[] = [{ cid: root, size: undefined }]
  try {
    while (stack.length > 0) {
      const { cid, size } = stack.pop()!
      const key = keyOf(cid)
      if (seen.has(key)) continue
      seen.add(key)
      checkCid(cid)
      if (cid.code === RAW) {
        if (cid.bytes.length !== LEAF_CID_LENGTH) return { status: 'failed', reason: `leaf ${cid} is not a CIDv1 with a sha2-256 digest` }
        if (size === undefined) return { status: 'failed', reason: `leaf ${cid} has no size in its parent` }
        if (leaves >= maxLeaves) return { status: 'failed', reason: `more than ${maxLeaves} leaves` }
        if (leaves === sizes.length) {
          const s = new Uint32Array(sizes.length * 2)
          s.set(sizes)
          sizes = s
          const c = new Uint8Array(leafCids.length * 2)
          c.set(leafCids)
          leafCids = c
        }
        if (!Number.isSafeInteger(size) || size < 0 || size > 0xffffffff) return { status: 'failed', reason: `leaf ${cid} has a size of ${size}` }
        leafCids.set(cid.bytes, leaves * LEAF_CID_LENGTH)
        sizes[leaves++] = size
        totalBytes += size
        continue
      }
      if (cid.code !== DAG_PB && cid.code !== DAG_CBOR) return { status: 'failed', reason: `${cid} is neither a raw leaf nor a manifest block` }
      if (cid.code === DAG_CBOR && cid !== root) return { status: 'failed', reason: `${cid}: a dag-cbor block inside the tree` }
      let bytes: Uint8Array
      try {
        bytes = await store.get(cid)
      } catch {
        // absent, or rotted on disk: fetch it (again); put() replaces a bad copy
        missing.push(cid)
        continue
      }
      const children = childrenOf(cid, bytes)
      if (cid.code === DAG_CBOR) record = decodeRecord(cid, bytes)
      manifest.push(cid)
      for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!)
    }
  } catch (err) {
    return { status: 'failed', reason: (err as Error).message }
  }
  if (missing.length > 0) return { status: 'manifest-missing', missing }
  return {
    status: 'ready',
    space: {
      root,
      record: record!,
      manifest,
      leaves,
      leafCids: leafCids.slice(0, leaves * LEAF_CID_LENGTH),
      sizes: sizes.slice(0, leaves),
      totalBytes
    }
  }
}

/** Leaf i's binary CID (a view into the index space: copy what you keep). */
export function leafCidBytes (space: IndexSpace, i: number): Uint8Array {
  return space.leafCids.subarray(i * LEAF_CID_LENGTH, (i + 1) * LEAF_CID_LENGTH)
}

/** Leaf i's sha2-256 digest (a view). */
export function leafDigest (space: IndexSpace, i: number): Uint8Array {
  return space.leafCids.subarray(i * LEAF_CID_LENGTH + 4, (i + 1) * LEAF_CID_LENGTH)
}

/** Leaf i's CID. */
export function leafCid (space: IndexSpace, i: number): CID {
  return CID.decode(leafCidBytes(space, i))
}

/** What the store holds of a build's leaves. */
export interface LeavesHeld {
  /** ceil(leaves / 8) bytes; bit i (most significant bit of byte 0 first) set when leaf i is on disk. */
  bitfield: Uint8Array
  count: number
  bytes: number
}

/** Leaves checked between two turns of the event loop (~20 ms of stat calls). */
const STATS_PER_TURN = 2048

/**
 * The bitfield of the leaves on disk: one statSync per leaf, a leaf counting
 * as held when its file has the size the manifest states. Yields to the event
 * loop every STATS_PER_TURN leaves, so a large build does not stall an agent.
 */
export async function leavesHeld (store: BlockStore, space: IndexSpace): Promise<LeavesHeld> {
  const bitfield = new Uint8Array((space.leaves + 7) >>> 3)
  let count = 0
  let bytes = 0
  for (let i = 0; i < space.leaves; i++) {
    if (i > 0 && i % STATS_PER_TURN === 0) await new Promise(resolve => setImmediate(resolve))
    const st = statSync(store.path(leafCid(space, i)), { throwIfNoEntry: false })
    if (st === undefined || st.size !== space.sizes[i]) continue
    bitfield[i >>> 3] = bitfield[i >>> 3]! | (0x80 >>> (i & 7))
    count++
    bytes += space.sizes[i]!
  }
  return { bitfield, count, bytes }
}
