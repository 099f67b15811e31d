// UnixFS nodes of a build: dag-pb directories, files and symlinks over raw
// leaves, so that any IPFS tool can list and read a build. Mode and mtime
// live in the UnixFS data (v1.5 fields); what UnixFS cannot carry (owners,
// device nodes) lives in the build record's meta.
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { CID, DAG_PB, RAW, cidOf } from './cid.ts'
import { InvalidInputError } from './errors.ts'
import type { BlockStore } from './blockstore.ts'

/** Links per file node, as ipfs-unixfs-importer's balanced layout. */
export const MAX_LINKS = 174

/** A modification time: whole seconds and nanoseconds, as stat gives it. */
export interface Mtime { secs: bigint, nsecs: number }

/** A leaf (raw block) of a file and its size in bytes. */
export interface Leaf { cid: CID, size: number }

/** An encoded block ready for the store. */
export interface EncodedBlock { cid: CID, bytes: Uint8Array }

/** A node just built: its CID, its size as content, and Tsize (bytes of the whole sub-DAG). */
export interface Built { cid: CID, size: number, tsize: number }

function pbBlock (node: dagPb.PBNode): EncodedBlock {
  const bytes = dagPb.encode(dagPb.prepare(node))
  return { cid: cidOf(DAG_PB, bytes), bytes }
}

function unixfsData (type: 'file' | 'directory' | 'symlink', mode: number | undefined, mtime: Mtime | undefined, extra: { blockSizes?: bigint[], data?: Uint8Array } = {}): Uint8Array {
  const u = new UnixFS({ type, ...extra })
  if (mode !== undefined) u.mode = mode
  if (mtime !== undefined) u.mtime = { secs: mtime.secs, nsecs: mtime.nsecs }
  return u.marshal()
}

/**
 * The dag-pb nodes of a file made of leaves: one node when it has at most
 * MAX_LINKS leaves, else a balanced tree. Mode and mtime go on the root only.
 * Returns the blocks to store (children before parents) and the root.
 */
export function fileNodes (leaves: Leaf[], mode: number | undefined, mtime: Mtime | undefined): { blocks: EncodedBlock[], root: Built } {
  const blocks: EncodedBlock[] = []
  let level: Built[] = leaves.map(l => ({ cid: l.cid, size: l.size, tsize: l.size }))
  if (level.length === 0) {
    const b = pbBlock({ Data: unixfsData('file', mode, mtime), Links: [] })
    blocks.push(b)
    return { blocks, root: { cid: b.cid, size: 0, tsize: b.bytes.length } }
  }
  for (;;) {
    const isRoot = level.length <= MAX_LINKS
    const next: Built[] = []
    for (let i = 0; i < level.length; i += MAX_LINKS) {
      const group = level.slice(i, i + MAX_LINKS)
      const data = unixfsData('file', isRoot ? mode : undefined, isRoot ? mtime : undefined, { blockSizes: group.map(g => BigInt(g.size)) })
      const b = pbBlock({ Data: data, Links: group.map(g => ({ Hash: g.cid, Tsize: g.tsize })) })
      blocks.push(b)
      next.push({ cid: b.cid, size: group.reduce((n, g) => n + g.size, 0), tsize: b.bytes.length + group.reduce((n, g) => n + g.tsize, 0) })
    }
    if (isRoot) return { blocks, root: next[0]! }
    level = next
  }
}

/** A directory entry as a link: its name and the child node. */
export interface DirLink { name: string, node: Built }

/** The dag-pb node of a directory (links sorted by name bytes, as dag-pb requires). */
export function dirNode (links: DirLink[], mode: number | undefined, mtime: Mtime | undefined): { block: EncodedBlock, root: Built } {
  const block = pbBlock({
    Data: unixfsData('directory', mode, mtime),
    Links: links.map(l => ({ Name: l.name, Hash: l.node.cid, Tsize: l.node.tsize }))
  })
  return { block, root: { cid: block.cid, size: 0, tsize: block.bytes.length + links.reduce((n, l) => n + l.node.tsize, 0) } }
}

/** The dag-pb node of a symlink. */
export function symlinkNode (target: string, mode: number | undefined, mtime: Mtime | undefined): { block: EncodedBlock, root: Built } {
  const block = pbBlock({ Data: unixfsData('symlink', mode, mtime, { data: new TextEncoder().encode(target) }), Links: [] })
  return { block, root: { cid: block.cid, size: 0, tsize: block.bytes.length } }
}

/** What a dag-pb node of a build says, parsed and checked. */
export type Node =
  | { type: 'directory', mode?: number, mtime?: Mtime, links: Array<{ name: string, cid: CID }> }
  | { type: 'file', mode?: number, mtime?: Mtime, size: number, children: Array<{ cid: CID, size: number }>, inline?: Uint8Array }
  | { type: 'symlink', mode?: number, mtime?: Mtime, target: string }

/** Parses a dag-pb UnixFS node. Throws InvalidInputError on anything a build cannot hold (HAMT shards included, for now). */
export function decodeNode (cid: CID, bytes: Uint8Array): Node {
  if (cid.code !== DAG_PB) throw new InvalidInputError(`${cid} is not a dag-pb node`)
  let pb: dagPb.PBNode
  let fs: UnixFS
  try {
    pb = dagPb.decode(bytes)
    if (pb.Data === undefined) throw new Error('no UnixFS data')
    fs = UnixFS.unmarshal(pb.Data)
  } catch (err) {
    throw new InvalidInputError(`${cid} is not a UnixFS node`, { cause: err })
  }
  const meta = { mode: fs.mode, mtime: fs.mtime === undefined ? undefined : { secs: fs.mtime.secs, nsecs: fs.mtime.nsecs ?? 0 } }
  switch (fs.type) {
    case 'directory':
      return { type: 'directory', ...meta, links: pb.Links.map(l => ({ name: l.Name ?? '', cid: l.Hash })) }
    case 'symlink':
      return { type: 'symlink', ...meta, target: new TextDecoder().decode(fs.data ?? new Uint8Array()) }
    case 'file':
    case 'raw': {
      if (fs.blockSizes.length !== pb.Links.length) throw new InvalidInputError(`${cid}: ${pb.Links.length} links but ${fs.blockSizes.length} block sizes`)
      const children = pb.Links.map((l, i) => ({ cid: l.Hash, size: Number(fs.blockSizes[i]) }))
      const inline = fs.data !== undefined && fs.data.length > 0 ? fs.data : undefined
      const size = children.reduce((n, c) => n + c.size, inline?.length ?? 0)
      return { type: 'file', ...meta, size, children, ...(inline !== undefined ? { inline } : {}) }
    }
    default:
      throw new InvalidInputError(`${cid}: UnixFS type ${fs.type} is not supported in a build`)
  }
}

/** A leaf of a file with its offset in the file. */
export interface PlacedLeaf { cid: CID, offset: number, size: number }

/**
 * Every leaf of a file in order, with offsets, reading the file's interior
 * nodes from the store. A raw CID is a one-leaf file. Interior nodes are
 * returned in `nodes` (parents first), for export and completeness checks.
 */
export async function fileLayout (store: BlockStore, file: CID): Promise<{ leaves: PlacedLeaf[], nodes: CID[], inline: Array<{ offset: number, bytes: Uint8Array }> }> {
  const leaves: PlacedLeaf[] = []
  const nodes: CID[] = []
  const inline: Array<{ offset: number, bytes: Uint8Array }> = []
  let offset = 0
  const visit = async (cid: CID, size: number | undefined): Promise<void> => {
    if (cid.code === RAW) {
      const s = size ?? (await store.get(cid)).length
      leaves.push({ cid, offset, size: s })
      offset += s
      return
    }
    nodes.push(cid)
    const node = decodeNode(cid, await store.get(cid))
    if (node.type !== 'file') throw new InvalidInputError(`${cid} is a ${node.type}, not a file`)
    if (node.inline !== undefined) {
      inline.push({ offset, bytes: node.inline })
      offset += node.inline.length
    }
    for (const c of node.children) await visit(c.cid, c.size)
  }
  await visit(file, undefined)
  return { leaves, nodes, inline }
}
