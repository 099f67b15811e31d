// What an update carries: the blocks of a bundle for holders of some builds,
// with or without a delta, and what `xo-mesh diff` reports about an update.
import { CID, RAW } from './cid.ts'
import { readRecord, walkTree } from './build.ts'
import { decodeNode, fileLayout } from './unixfs.ts'
import { deltaTargets, keyOf, patchBlocks } from './delta-record.ts'
import { storedDelta, type StoredDelta } from './delta-index.ts'
import { blockSet, completeBlocks, computeDelta } from './delta-compute.ts'
import type { BlockStore } from './blockstore.ts'

/** What a bundle of a build for holders of some builds carries, in order. */
export interface BundlePlan {
  /** The CAR's roots: the build record, then the pack manifest when the bundle carries a delta. */
  roots: CID[]
  /**
   * The blocks, in the order a streaming reader wants them: without a delta
   * the build's blocks parents first; with one the manifest, the pack's
   * blocks, the raw leaves no patch rebuilds, then the patches.
   */
  blocks: CID[]
  delta?: StoredDelta
}

/**
 * The raw blocks reachable from a tree without passing through a held block
 * or a delta target: leaves a bundle must carry raw even when a delta target
 * shares them.
 */
async function rawNeeded (store: BlockStore, tree: CID, held: Set<string>, targets: Set<string>): Promise<Set<string>> {
  const out = new Set<string>()
  const seen = new Set<string>()
  const stack: CID[] = [tree]
  while (stack.length > 0) {
    const cid = stack.pop()!
    const key = keyOf(cid)
    if (seen.has(key) || held.has(key) || targets.has(key)) continue
    seen.add(key)
    if (cid.code === RAW) {
      out.add(key)
      continue
    }
    const node = decodeNode(cid, await store.get(cid))
    if (node.type === 'directory') for (const l of node.links) stack.push(l.cid)
    else if (node.type === 'file') for (const c of node.children) stack.push(c.cid)
  }
  return out
}

/**
 * What a bundle of build `root` carries for holders of the `have` builds:
 * without `have`, every block of the build in buildCids order; with it, the
 * blocks they lack, in the same order, and with a delta (`compute`: compute
 * or reuse one; `stored`: only one computed before; `off`: none) the
 * manifest, the node pack in place of every non-raw block, the raw leaves
 * no patch rebuilds and the patch blocks. A delta whose pack is empty (the
 * holders have every node) is left out. Throws IncompleteBuildError when
 * `root` or a `have` build is not complete in the store.
 */
export async function planBundle (store: BlockStore, root: CID, have: CID[], delta: 'compute' | 'stored' | 'off'): Promise<BundlePlan> {
  const present = await completeBlocks(store, root)
  if (have.length === 0) return { roots: [root], blocks: present }
  const held = await blockSet(store, have)
  const needed = present.filter(c => !held.has(keyOf(c)))

  let d: StoredDelta | undefined
  if (delta === 'compute') {
    await computeDelta(store, have, root)
    d = await storedDelta(store, have, root)
  } else if (delta === 'stored') {
    d = await storedDelta(store, have, root)
  }
  if (d === undefined || d.manifest.size === 0) return { roots: [root], blocks: needed }

  const record = d.patches?.record
  const targets = new Set((record === undefined ? [] : deltaTargets(record)).map(keyOf))
  const covered = new Set<string>()
  for (const t of record === undefined ? [] : deltaTargets(record)) for (const l of (await fileLayout(store, t)).leaves) covered.add(keyOf(l.cid))
  const raw = targets.size === 0 ? undefined : await rawNeeded(store, (await readRecord(store, root)).tree, held, targets)
  const blocks: CID[] = []
  const included = new Set<string>()
  const add = (c: CID): void => {
    const k = keyOf(c)
    if (!included.has(k) && !held.has(k)) {
      included.add(k)
      blocks.push(c)
    }
  }
  add(d.cid)
  for (const c of d.manifest.pack) add(c)
  for (const c of needed) if (c.code === RAW && (!covered.has(keyOf(c)) || raw?.has(keyOf(c)) === true)) add(c)
  if (record !== undefined) for (const c of patchBlocks(record)) add(c)
  return { roots: [root, d.cid], blocks, delta: d }
}

/** What `xo-mesh diff` shows: the files that differ between two builds and what the update costs. */
export interface UpdatePlan {
  /** Paths of files in both builds whose content differs, sorted. */
  filesChanged: string[]
  /** Paths of files in both builds with the same content but another mode or mtime (no leaves to send), sorted. */
  filesTouched: string[]
  /** Paths of files only in the new build, sorted. */
  filesAdded: string[]
  /** Paths of files only in the old build, sorted. */
  filesRemoved: string[]
  /** Blocks of the new build the old one lacks: what a bundle for holders of the old build carries without a delta. */
  blocks: number
  /** Bytes of those blocks (CAR framing, ~40 bytes a block, not counted). */
  rawBytes: number
  /** Bytes such a bundle carries with the delta stored for old -> new (manifest, pack and patches included); absent when none is stored or it carries nothing. */
  deltaBytes?: number
}

/**
 * What updating from build `old` to `updated` costs: files changed, added
 * and removed (by path; a path that is a file in one build and not in the
 * other counts as added or removed), and the blocks and bytes a bundle for
 * holders of `old` carries, raw and, when a delta for the pair was computed
 * before, with it (this never computes one: that takes minutes on an OS
 * build). Both builds must be complete in the store (IncompleteBuildError
 * otherwise).
 */
export async function planUpdate (store: BlockStore, old: CID, updated: CID): Promise<UpdatePlan> {
  // a file by its node (content and metadata) and by its content alone (its children)
  const filesOf = async (build: CID): Promise<Map<string, { node: string, content: string }>> => {
    const files = new Map<string, { node: string, content: string }>()
    for await (const e of walkTree(store, (await readRecord(store, build)).tree)) {
      if (e.node.type === 'file') files.set(e.path, { node: keyOf(e.cid), content: e.node.children.map(c => keyOf(c.cid)).join(',') + (e.node.inline !== undefined ? `+${Buffer.from(e.node.inline).toString('base64')}` : '') })
    }
    return files
  }
  const raw = await planBundle(store, updated, [old], 'off')
  const before = await filesOf(old)
  const after = await filesOf(updated)
  const filesChanged: string[] = []
  const filesTouched: string[] = []
  const filesAdded: string[] = []
  for (const [path, now] of after) {
    const was = before.get(path)
    if (was === undefined) filesAdded.push(path)
    else if (was.content !== now.content) filesChanged.push(path)
    else if (was.node !== now.node) filesTouched.push(path)
  }
  const filesRemoved = [...before.keys()].filter(p => !after.has(p))
  const sizeOf = async (blocks: CID[]): Promise<number> => {
    let n = 0
    for (const c of blocks) n += await store.size(c) ?? 0
    return n
  }
  const byName = (a: string, b: string): number => a < b ? -1 : a > b ? 1 : 0
  const plan: UpdatePlan = {
    filesChanged: filesChanged.sort(byName),
    filesTouched: filesTouched.sort(byName),
    filesAdded: filesAdded.sort(byName),
    filesRemoved: filesRemoved.sort(byName),
    blocks: raw.blocks.length,
    rawBytes: await sizeOf(raw.blocks)
  }
  const withDelta = await planBundle(store, updated, [old], 'stored')
  if (withDelta.delta !== undefined) plan.deltaBytes = await sizeOf(withDelta.blocks)
  return plan
}
