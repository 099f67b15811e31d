// The two dag-cbor records of a static delta (see delta.ts for the whole
// design) and how they are checked:
//
//   pack manifest  {type: 'xo-mesh/pack', from, to, trees, dict, size, pack, delta?}
//       the second root of an update bundle: names the raw blocks of the node
//       pack (the new build's dag-pb nodes, zstd with the old builds' trees'
//       nodes as dictionary: node-pack.ts), how many bytes it decodes to,
//       which trees and how many of their bytes make the dictionary, and the
//       CID of the patch record carried in it;
//   patch record   {type: 'xo-mesh/delta', from, to, patches: [{targets, bases, patch, leaves}]}
//       how to rebuild the new leaves of changed and new files: each patch is
//       one zstd frame that decodes, with the concatenated bytes of `bases` as
//       dictionary, to the concatenated bytes of `targets`.
//
// Decoders refuse anything else: a record comes from a stick or a peer, and
// every field is checked before it is used.
import * as dagCbor from '@ipld/dag-cbor'
import { CID, DAG_CBOR, DAG_PB, RAW, checkCid, cidOf } from './cid.ts'
import { InvalidInputError } from './errors.ts'

/** The `type` of a patch record, so nothing else is mistaken for one. */
export const DELTA_TYPE = 'xo-mesh/delta'

/** The `type` of a pack manifest. */
export const PACK_TYPE = 'xo-mesh/pack'

/** One zstd frame rebuilding the leaves of one or more files. */
export interface DeltaPatch {
  /** File nodes (dag-pb) whose leaves the frame rebuilds; it decodes to their bytes one after the other. */
  targets: CID[]
  /** Old file nodes whose bytes, concatenated in this order, are the frame's dictionary (none: no dictionary). */
  bases: CID[]
  /** Raw blocks, each at most PATCH_BLOCK_SIZE bytes, whose concatenation is the zstd frame. */
  patch: CID[]
  /** Leaves of all targets together (a check on the layout the receiver reads). */
  leaves: number
}

/** A patch record: how to rebuild the leaves a bundle leaves out. */
export interface DeltaRecord {
  type: typeof DELTA_TYPE
  /** The builds the receiver must hold (sorted by CID string). */
  from: CID[]
  /** The build the delta completes. */
  to: CID
  patches: DeltaPatch[]
}

/** A bundle's second root: where the node pack and the patch record are. */
export interface PackManifest {
  type: typeof PACK_TYPE
  /** The builds the delta starts from (sorted by CID string). */
  from: CID[]
  /** The build the pack's nodes belong to (the bundle's first root). */
  to: CID
  /**
   * The trees (dag-pb) of the `from` builds, in their order: their nodes
   * make the pack's dictionary. Trees, not records: a laptop that added the
   * same tree itself holds another record of it, and the same nodes.
   */
  trees: CID[]
  /** Bytes of the dictionary: the first `dict` bytes of the trees' nodes in walk order (node-pack.ts). */
  dict: number
  /** Bytes the pack decodes to: its length-prefixed items. A pack that decodes to more is refused. */
  size: number
  /** Raw blocks whose concatenation is the pack's zstd frame (none when size is 0). */
  pack: CID[]
  /** The patch record, an item of the pack; absent when no file is rebuilt from patches. */
  delta?: CID
}

/** Number of files a patch record rebuilds. */
export function deltaFileCount (record: DeltaRecord): number {
  return record.patches.reduce((n, p) => n + p.targets.length, 0)
}

/** Every patch block of a record, in order. */
export function patchBlocks (record: DeltaRecord): CID[] {
  return record.patches.flatMap(p => p.patch)
}

/** Every target file node of a record. */
export function deltaTargets (record: DeltaRecord): CID[] {
  return record.patches.flatMap(p => p.targets)
}

/** Key of a CID in sets and maps: one spelling for v0 and v1 of the same block. */
export function keyOf (cid: CID): string {
  return cid.toV1().toString()
}

/** The builds a delta starts from, sorted and without repeats: the same set always names the same delta. */
export function canonicalFrom (from: CID[]): CID[] {
  const byKey = new Map(from.map(c => [keyOf(c), c.toV1()]))
  return [...byKey.keys()].sort().map(k => byKey.get(k)!)
}

/** True when two lists name the same set of builds. */
export function sameBuilds (a: CID[], b: CID[]): boolean {
  const x = canonicalFrom(a).map(keyOf)
  const y = canonicalFrom(b).map(keyOf)
  return x.length === y.length && x.every((k, i) => k === y[i])
}

function isCidOf (v: unknown, codec: number): v is CID {
  const cid = CID.asCID(v)
  if (cid === null || cid.code !== codec) return false
  try {
    checkCid(cid)
    return true
  } catch {
    return false
  }
}

function isCidList (v: unknown, codec: number, min: number): v is CID[] {
  return Array.isArray(v) && v.length >= min && v.every(c => isCidOf(c, codec))
}

function isCount (v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0
}

function decodeCbor (cid: CID, bytes: Uint8Array, what: string): unknown {
  if (cid.code !== DAG_CBOR) throw new InvalidInputError(`${cid} is not a ${what} (not dag-cbor)`)
  try {
    return dagCbor.decode(bytes)
  } catch (err) {
    throw new InvalidInputError(`${cid} is not valid dag-cbor`, { cause: err })
  }
}

/** Encodes a patch record as a dag-cbor block. */
export function encodeDelta (record: DeltaRecord): { cid: CID, bytes: Uint8Array } {
  const value = {
    type: record.type,
    from: record.from,
    to: record.to,
    patches: record.patches.map(p => ({ targets: p.targets, bases: p.bases, patch: p.patch, leaves: p.leaves }))
  }
  const bytes = dagCbor.encode(value)
  return { cid: cidOf(DAG_CBOR, bytes), bytes }
}

/** Parses and checks a patch record block. Throws InvalidInputError on anything else. */
export function decodeDelta (cid: CID, bytes: Uint8Array): DeltaRecord {
  const r = decodeCbor(cid, bytes, 'delta record') as Partial<DeltaRecord> | null
  const patchOk = (p: Partial<DeltaPatch> | null): boolean => p !== null && typeof p === 'object' &&
    isCidList(p.targets, DAG_PB, 1) && isCidList(p.bases, DAG_PB, 0) && isCidList(p.patch, RAW, 1) && isCount(p.leaves)
  const ok = r !== null && typeof r === 'object' && r.type === DELTA_TYPE &&
    isCidList(r.from, DAG_CBOR, 1) && isCidOf(r.to, DAG_CBOR) &&
    Array.isArray(r.patches) && r.patches.every(p => patchOk(p as Partial<DeltaPatch> | null))
  if (!ok) throw new InvalidInputError(`${cid} is not a delta record`)
  return r as DeltaRecord
}

/** Encodes a pack manifest as a dag-cbor block. */
export function encodeManifest (manifest: PackManifest): { cid: CID, bytes: Uint8Array } {
  // dag-cbor has no undefined: leave absent keys out
  const value = {
    type: manifest.type,
    from: manifest.from,
    to: manifest.to,
    trees: manifest.trees,
    dict: manifest.dict,
    size: manifest.size,
    pack: manifest.pack,
    ...(manifest.delta !== undefined ? { delta: manifest.delta } : {})
  }
  const bytes = dagCbor.encode(value)
  return { cid: cidOf(DAG_CBOR, bytes), bytes }
}

/** Parses and checks a pack manifest block. Throws InvalidInputError on anything else. */
export function decodeManifest (cid: CID, bytes: Uint8Array): PackManifest {
  const m = decodeCbor(cid, bytes, 'pack manifest') as Partial<PackManifest> | null
  const ok = m !== null && typeof m === 'object' && m.type === PACK_TYPE &&
    isCidList(m.from, DAG_CBOR, 1) && isCidOf(m.to, DAG_CBOR) && isCidList(m.trees, DAG_PB, 0) &&
    isCount(m.dict) && isCount(m.size) && isCidList(m.pack, RAW, 0) && (m.pack.length > 0) === (m.size > 0) &&
    (m.delta === undefined || isCidOf(m.delta, DAG_CBOR))
  if (!ok) throw new InvalidInputError(`${cid} is not a pack manifest`)
  return m as PackManifest
}
