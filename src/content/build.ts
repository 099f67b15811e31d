// A build: a UnixFS tree under a small dag-cbor record, the root the mesh
// talks about: {name, kind, created, tree, meta}. `meta` carries what UnixFS
// cannot, so an OS tree round-trips: owners and special files.
import * as dagCbor from '@ipld/dag-cbor'
import { CID, DAG_CBOR, DAG_PB, RAW, cidOf } from './cid.ts'
import { BlockNotFoundError, BuildNotFoundError, InvalidInputError } from './errors.ts'
import { decodeNode, type Node } from './unixfs.ts'
import type { BlockStore } from './blockstore.ts'

export const KINDS = ['os', 'activity', 'content'] as const
export type Kind = typeof KINDS[number]

/** A device node, fifo or socket: recreated by apply (devices only as root). */
export interface SpecialFile {
  type: 'fifo' | 'chr' | 'blk' | 'sock'
  mode: number
  major: number
  minor: number
  /** [seconds, nanoseconds] */
  mtime: [number, number]
}

/** What UnixFS cannot hold. Paths are relative, '/'-separated. */
export interface BuildMeta {
  /** Bytes of file content in the tree. */
  bytes: number
  /** Regular files in the tree. */
  files: number
  /** The owner of most entries, [uid, gid]. */
  owner: [number, number]
  /** Entries owned by someone else. */
  owners: Record<string, [number, number]>
  /** Special files, which UnixFS cannot represent. */
  special: Record<string, SpecialFile>
}

export interface BuildRecord {
  name: string
  kind: Kind
  /** ISO 8601, UTC. */
  created: string
  tree: CID
  meta: BuildMeta
}

/** Encodes a record as a dag-cbor block. */
export function encodeRecord (record: BuildRecord): { cid: CID, bytes: Uint8Array } {
  const bytes = dagCbor.encode(record)
  return { cid: cidOf(DAG_CBOR, bytes), bytes }
}

function isPair (v: unknown): v is [number, number] {
  return Array.isArray(v) && v.length === 2 && Number.isInteger(v[0]) && Number.isInteger(v[1])
}

/** Parses and checks a record block. Throws InvalidInputError on anything else. */
export function decodeRecord (cid: CID, bytes: Uint8Array): BuildRecord {
  if (cid.code !== DAG_CBOR) throw new InvalidInputError(`${cid} is not a build record (not dag-cbor)`)
  let v: unknown
  try {
    v = dagCbor.decode(bytes)
  } catch (err) {
    throw new InvalidInputError(`${cid} is not valid dag-cbor`, { cause: err })
  }
  const r = v as Partial<BuildRecord> | null
  const m = r?.meta as Partial<BuildMeta> | undefined
  const ok = r !== null && typeof r === 'object' &&
    typeof r.name === 'string' && KINDS.includes(r.kind as Kind) && typeof r.created === 'string' &&
    CID.asCID(r.tree) !== null && (r.tree as CID).code === DAG_PB &&
    m !== undefined && typeof m === 'object' && Number.isSafeInteger(m.bytes) && Number.isSafeInteger(m.files) &&
    isPair(m.owner) && typeof m.owners === 'object' && m.owners !== null && Object.values(m.owners).every(isPair) &&
    typeof m.special === 'object' && m.special !== null
  if (!ok) throw new InvalidInputError(`${cid} is not a build record`)
  return r as BuildRecord
}

/** Reads a build's record from the store. */
export async function readRecord (store: BlockStore, cid: CID): Promise<BuildRecord> {
  let bytes: Uint8Array
  try {
    bytes = await store.get(cid)
  } catch (err) {
    if (err instanceof BlockNotFoundError) throw new BuildNotFoundError(cid.toString())
    throw err
  }
  return decodeRecord(cid, bytes)
}

/** An entry of a tree walk: its path ('' for the root) and parsed node. */
export interface WalkEntry { path: string, cid: CID, node: Node }

/** Joins a directory path and a name. */
export function joinPath (dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`
}

/** A name a build may contain: no separators, no '.' or '..'. */
export function isSafeName (name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0')
}

/**
 * Walks a tree depth first, each directory before its children, in link
 * order. Names that could escape the tree are refused: a build comes from
 * peers and must never write outside its root.
 */
export async function * walkTree (store: BlockStore, tree: CID): AsyncGenerator<WalkEntry> {
  const stack: Array<{ path: string, cid: CID }> = [{ path: '', cid: tree }]
  while (stack.length > 0) {
    const { path, cid } = stack.pop()!
    const node: Node = cid.code === RAW
      ? { type: 'file', size: (await store.get(cid)).length, children: [{ cid, size: -1 }] }
      : decodeNode(cid, await store.get(cid))
    yield { path, cid, node }
    if (node.type === 'directory') {
      for (let i = node.links.length - 1; i >= 0; i--) {
        const l = node.links[i]!
        if (!isSafeName(l.name)) throw new InvalidInputError(`${cid}: unsafe name ${JSON.stringify(l.name)} in directory ${JSON.stringify(path)}`)
        stack.push({ path: joinPath(path, l.name), cid: l.cid })
      }
    }
  }
}

/**
 * Every CID a complete build consists of, record first, each parent before
 * its children, plus the ones that are missing from the store (whose
 * children cannot be known until they arrive).
 */
export async function buildCids (store: BlockStore, root: CID): Promise<{ present: CID[], missing: CID[] }> {
  const present: CID[] = []
  const missing: CID[] = []
  const seen = new Set<string>()
  const stack: CID[] = [root]
  while (stack.length > 0) {
    const cid = stack.pop()!
    const key = cid.toString()
    if (seen.has(key)) continue
    seen.add(key)
    if (cid.code === RAW) {
      if (await store.has(cid)) present.push(cid)
      else missing.push(cid)
      continue
    }
    let bytes: Uint8Array
    try {
      bytes = await store.get(cid)
    } catch {
      missing.push(cid)
      continue
    }
    present.push(cid)
    const children: CID[] = cid.code === DAG_CBOR
      ? [decodeRecord(cid, bytes).tree]
      : childrenOf(decodeNode(cid, bytes))
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!)
  }
  return { present, missing }
}

function childrenOf (node: Node): CID[] {
  switch (node.type) {
    case 'directory': return node.links.map(l => l.cid)
    case 'file': return node.children.map(c => c.cid)
    case 'symlink': return []
  }
}
