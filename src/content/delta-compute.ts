// Computing a static delta (see delta.ts for the whole design): the patches
// that rebuild the new leaves of changed and new files, the patch record
// that lists them, the node pack of the new build's metadata and the
// manifest naming it all, stored as blocks and found again through the
// index (delta-index.ts).
//
// Patches. Every file of the new build whose leaves a holder of the old
// builds lacks is a target; its base is an old file at the same path, else
// one with the same name (the closest in size), else one that shares a
// chunk with it, else none. Targets are taken in walk (path) order and
// grouped while a group's bases plus targets stay within GROUP_SPAN; each
// group is one zstd frame with the concatenated bases as dictionary (zstd's
// --patch-from over just the changed files), so a file costs no frame or
// record entry of its own and the same edit made to several files (a
// library shipped as cjs, esm and a bundle) is paid for once. New files
// without a base ride in the same frames. A target whose base and itself
// together pass GROUP_SPAN gets a frame of its own; files over
// MAX_DELTA_FILE travel as raw leaves. A frame is kept only when it is
// smaller than the raw leaves it replaces.
import { CID, DAG_PB, RAW } from './cid.ts'
import { IncompleteBuildError, InvalidInputError } from './errors.ts'
import { buildCids, readRecord, walkTree } from './build.ts'
import { fileLayout, type PlacedLeaf } from './unixfs.ts'
import { DELTA_TYPE, PACK_TYPE, canonicalFrom, encodeDelta, encodeManifest, keyOf, type DeltaPatch, type PackManifest } from './delta-record.ts'
import { rememberDelta, storedDelta } from './delta-index.ts'
import { MAX_DELTA_FILE, readFileBytes } from './delta-apply.ts'
import { writePack } from './node-pack.ts'
import { MAX_DICTIONARY, checkZstd, encodeToBlocks, frameParams, usableAsDictionary } from './zstd.ts'
import type { BlockStore } from './blockstore.ts'

/**
 * Bytes of bases plus targets in one patch frame. The frame's window spans
 * them all (zstd's largest portable window, 2^27), and a decoder holds the
 * dictionary and at most the output: ~128 MiB.
 */
export const GROUP_SPAN = MAX_DICTIONARY

/** What a raw leaf costs in a bundle besides its bytes: its CAR section header (length and CID). */
const LEAF_OVERHEAD = 40

/** What a frame costs besides its bytes: its blocks' CIDs in the record and CAR framing, the entry. */
const PATCH_OVERHEAD = 100

/** Progress of computeDelta: files considered so far and how many there are. */
export type DeltaProgress = (p: { files: number, total: number }) => void

/** Every block of a build, parents first; throws IncompleteBuildError when any is missing. */
export async function completeBlocks (store: BlockStore, root: CID): Promise<CID[]> {
  const { present, missing } = await buildCids(store, root)
  if (missing.length > 0) throw new IncompleteBuildError(root.toString(), missing.length)
  return present
}

/** The keys of every block of some builds, which must all be complete. */
export async function blockSet (store: BlockStore, builds: CID[]): Promise<Set<string>> {
  const set = new Set<string>()
  for (const b of builds) for (const c of await completeBlocks(store, b)) set.add(keyOf(c))
  return set
}

/**
 * Computes the delta that turns holders of the `from` builds into holders of
 * `to`, or returns the one computed before. Resolves to the CID of its pack
 * manifest; the manifest, the pack, the patch record and the patches are in
 * the store and the index entry in <data dir>/deltas points at it.
 *
 * Throws IncompleteBuildError when `to` or a `from` build is not complete in
 * the store, InvalidInputError when `from` is empty.
 */
export async function computeDelta (store: BlockStore, from: CID[], to: CID, options: { onProgress?: DeltaProgress } = {}): Promise<CID> {
  if (from.length === 0) throw new InvalidInputError('a delta needs at least one build to start from')
  const cached = await storedDelta(store, from, to)
  if (cached !== undefined) return cached.cid
  checkZstd()
  const fromBuilds = canonicalFrom(from)
  const present = await completeBlocks(store, to)
  const held = await blockSet(store, fromBuilds)
  // blocks this computation added: removed again if it fails, so no orphans are left
  const written: CID[] = []
  try {
    const patches = await computePatches(store, fromBuilds, to, held, written, options.onProgress)
    let delta: CID | undefined
    if (patches.length > 0) {
      const enc = encodeDelta({ type: DELTA_TYPE, from: fromBuilds, to: to.toV1(), patches })
      if (await store.putHashed(enc.cid, enc.bytes)) written.push(enc.cid)
      delta = enc.cid
    }
    // every node of the new build the holders lack, parents first, then the record that refers to them
    const items = present.filter(c => c.code !== RAW && !held.has(keyOf(c)))
    if (delta !== undefined) items.push(delta)
    const pack = await writePack(store, fromBuilds, items, written)
    const manifest: PackManifest = { type: PACK_TYPE, from: fromBuilds, to: to.toV1(), ...pack, ...(delta !== undefined ? { delta } : {}) }
    const enc = encodeManifest(manifest)
    if (await store.putHashed(enc.cid, enc.bytes)) written.push(enc.cid)
    await rememberDelta(store, manifest, enc.cid)
    return enc.cid
  } catch (err) {
    for (const cid of written) await store.delete(cid).catch(() => {})
    throw err
  }
}

interface OldFile { cid: CID, size: number }

interface Target { cid: CID, path: string, size: number, leaves: PlacedLeaf[], needed: number, neededLeaves: number, base?: OldFile }

/** The old files: by path (the first build listed wins), by name, and by the chunks and interior nodes they hold. */
async function oldFiles (store: BlockStore, from: CID[]): Promise<{ byPath: Map<string, OldFile>, byName: Map<string, OldFile[]>, byChild: Map<string, OldFile> }> {
  const byPath = new Map<string, OldFile>()
  const byName = new Map<string, OldFile[]>()
  const byChild = new Map<string, OldFile>()
  for (const b of from) {
    for await (const e of walkTree(store, (await readRecord(store, b)).tree)) {
      if (e.node.type !== 'file' || e.cid.code !== DAG_PB) continue
      const old = { cid: e.cid, size: e.node.size }
      if (old.size === 0 || old.size > MAX_DELTA_FILE) continue
      if (!byPath.has(e.path)) byPath.set(e.path, old)
      const name = e.path.slice(e.path.lastIndexOf('/') + 1)
      const list = byName.get(name) ?? []
      list.push(old)
      byName.set(name, list)
      for (const c of e.node.children) if (!byChild.has(keyOf(c.cid))) byChild.set(keyOf(c.cid), old)
    }
  }
  return { byPath, byName, byChild }
}

/**
 * The patches of a delta (see the top of this file). Patch blocks go into
 * the store, the new ones noted in `written`.
 */
async function computePatches (store: BlockStore, from: CID[], to: CID, held: Set<string>, written: CID[], onProgress?: DeltaProgress): Promise<DeltaPatch[]> {
  const { byPath, byName, byChild } = await oldFiles(store, from)

  // the files of the new build whose leaves the holder lacks, in walk order
  const targets: Target[] = []
  const seen = new Set<string>()
  for await (const e of walkTree(store, (await readRecord(store, to)).tree)) {
    const key = keyOf(e.cid)
    if (e.node.type !== 'file' || e.cid.code !== DAG_PB || held.has(key) || seen.has(key)) continue
    seen.add(key)
    if (e.node.inline !== undefined || e.node.size > MAX_DELTA_FILE) continue
    const { leaves, inline } = await fileLayout(store, e.cid)
    if (inline.length > 0) continue
    const missing = leaves.filter(l => !held.has(keyOf(l.cid)))
    const needed = missing.reduce((n, l) => n + l.size, 0)
    if (needed === 0) continue
    const t: Target = { cid: e.cid, path: e.path, size: e.node.size, leaves, needed, neededLeaves: missing.length }
    const base = chooseBase(t, e.node.children.map(c => keyOf(c.cid)), byPath, byName, byChild)
    // a new file made mostly of chunks the holder has: its few new chunks cost less than the whole file compressed
    if (base === undefined && needed * 2 < t.size) continue
    if (base !== undefined) t.base = base
    targets.push(t)
  }

  const patches: DeltaPatch[] = []
  let done = 0
  let group: Target[] = []
  let span = 0
  const bases = new Set<string>()
  const flush = async (): Promise<void> => {
    if (group.length === 0) return
    const patch = await groupPatch(store, group, written)
    if (patch !== undefined) patches.push(patch)
    // else: the frame would not beat the raw leaves, which the bundle then carries
    done += group.length
    onProgress?.({ files: done, total: targets.length })
    group = []
    span = 0
    bases.clear()
  }
  onProgress?.({ files: 0, total: targets.length })
  for (const t of targets) {
    const baseSize = t.base === undefined ? 0 : t.base.size
    if (t.size + baseSize > GROUP_SPAN) {
      // too large to share a frame: one of its own, whose window reaches as far as zstd's goes
      await flush()
      group = [t]
      await flush()
      continue
    }
    const adds = t.size + (t.base !== undefined && !bases.has(keyOf(t.base.cid)) ? baseSize : 0)
    if (span + adds > GROUP_SPAN) await flush()
    group.push(t)
    span += t.size
    if (t.base !== undefined && !bases.has(keyOf(t.base.cid))) {
      bases.add(keyOf(t.base.cid))
      span += baseSize
    }
  }
  await flush()
  return patches
}

function chooseBase (t: Target, children: string[], byPath: Map<string, OldFile>, byName: Map<string, OldFile[]>, byChild: Map<string, OldFile>): OldFile | undefined {
  const same = byPath.get(t.path)
  if (same !== undefined) return same
  const name = t.path.slice(t.path.lastIndexOf('/') + 1)
  let best: OldFile | undefined
  for (const f of byName.get(name) ?? []) {
    if (best === undefined || Math.abs(f.size - t.size) < Math.abs(best.size - t.size)) best = f
  }
  if (best !== undefined) return best
  // a renamed or copied file: the old file that holds one of its chunks
  for (const k of [...children, ...t.leaves.map(l => keyOf(l.cid))]) {
    const f = byChild.get(k)
    if (f !== undefined) return f
  }
  return undefined
}

/**
 * The frame of a group of targets: their bytes, one after the other,
 * compressed with their bases' bytes as dictionary. Undefined when it would
 * not be smaller than the raw leaves it replaces.
 */
async function groupPatch (store: BlockStore, targets: Target[], written: CID[]): Promise<DeltaPatch | undefined> {
  const rawCost = targets.reduce((n, t) => n + t.needed + LEAF_OVERHEAD * t.neededLeaves, 0)
  const limit = rawCost - PATCH_OVERHEAD
  if (limit <= 0) return undefined

  // the bases, each once, in the order of their targets; zstd would read a dictionary that starts with its magic as a formatted one, so such a base may not come first
  const baseList: OldFile[] = []
  const seen = new Set<string>()
  for (const t of targets) {
    if (t.base !== undefined && !seen.has(keyOf(t.base.cid))) {
      seen.add(keyOf(t.base.cid))
      baseList.push(t.base)
    }
  }
  let parts: Array<{ base: OldFile, bytes: Buffer }> = []
  for (const base of baseList) parts.push({ base, bytes: await readFileBytes(store, base.cid) })
  const first = parts.findIndex(p => usableAsDictionary(p.bytes))
  parts = first < 0 ? [] : [parts[first]!, ...parts.filter((_, i) => i !== first)]
  let dictionary: Buffer | undefined = Buffer.concat(parts.map(p => p.bytes))
  const usedBases = parts.map(p => p.base.cid)
  parts = []

  const size = targets.reduce((n, t) => n + t.size, 0)
  async function * source (): AsyncGenerator<Uint8Array> {
    for (const t of targets) {
      for (const l of t.leaves) {
        const bytes = await store.get(l.cid)
        // zstd insists on the pledged size; a build whose block sizes lie is refused here, clearly
        if (bytes.length !== l.size) throw new InvalidInputError(`leaf ${l.cid} of ${t.cid} is ${bytes.length} bytes, its parent says ${l.size}`)
        yield bytes
      }
    }
  }
  const params = frameParams(dictionary.length, size)
  const encoded = await encodeToBlocks(store, source(), { dictionary, params, size, limit }, written)
  dictionary = undefined
  if (encoded === undefined) return undefined
  return { targets: targets.map(t => t.cid), bases: usedBases, patch: encoded.blocks, leaves: targets.reduce((n, t) => n + t.leaves.length, 0) }
}
