// Static deltas: how a build travels as an update to builds a laptop already
// holds. Content-defined chunking already means an update only ships the
// chunks that changed, but a few bytes inserted into a file still cost a
// whole ~64 KiB chunk or two, and a new file costs all of its bytes. A delta
// replaces those new leaves by zstd patches:
//
//  - a changed file: zstd(new bytes) with the old file's bytes as the
//    dictionary (zstd's "patch-from"), usually a few hundred bytes;
//  - new files with no old file to start from: all of them as one solid zstd
//    stream, since small files compress far better together than apart.
//
// The delta record (dag-cbor) lists, per patch, which file nodes of the new
// build it rebuilds; the patches are raw blocks of at most 1 MiB. The record
// and its patch blocks are computed once, kept in the block store like any
// other block (so a peer can fetch them) and found again through
// <data dir>/deltas/<from>-<to>, a file holding the record's CID.
//
// The receiver never trusts a patch: it decodes it, cuts the output at the
// target file's leaf sizes and checks each slice against its leaf CID before
// storing it. A patch can make an import fail, never make it store a wrong
// block.
import zlib from 'node:zlib'
import { pipeline } from 'node:stream/promises'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import * as dagCbor from '@ipld/dag-cbor'
import { CID, DAG_CBOR, DAG_PB, RAW, checkCid, cidOf } from './cid.ts'
import { BlockNotFoundError, ContentError, IncompleteBuildError, InvalidInputError } from './errors.ts'
import { buildCids, readRecord, walkTree } from './build.ts'
import { decodeNode, fileLayout, type PlacedLeaf } from './unixfs.ts'
import type { BlockStore } from './blockstore.ts'

/** The `type` field every delta record carries, so nothing else is mistaken for one. */
export const DELTA_TYPE = 'xo-mesh/delta'

/** Largest patch block, in bytes: a patch longer than this is split over several raw blocks. */
export const PATCH_BLOCK_SIZE = 1 << 20

/**
 * Largest file, in bytes, that gets a patch against an old file (base or
 * target). Both are held in memory while encoding and decoding, and zstd's
 * largest portable window (2^27) must span the base for matches into it to
 * be found. Larger files travel as raw leaves.
 */
export const MAX_DELTA_FILE = 1 << 27

/** zstd level of every patch: slow to encode, but encoding happens once per update and decoding stays fast. */
const LEVEL = 19

/** Largest window a file patch may use (decoder memory: ~ this many bytes). */
const MAX_WINDOW_LOG = 27

/**
 * Largest window of the solid stream of new files. Far matches between
 * different new files are rare (identical files are already one CID), and a
 * smaller window keeps the decoder small on a 256 MB XO.
 */
const SOLID_WINDOW_LOG = 24

/** Above this size a file patch turns on long-distance matching and enlarges zstd's hash table so the whole base is indexed. */
const LONG_FILE = 16 << 20

/**
 * What a patch must save before it is worth shipping instead of raw leaves:
 * the record entry and the CAR framing of its blocks (~ a CID each).
 */
const ENTRY_OVERHEAD = 100
const BLOCK_OVERHEAD = 80

/** Magic number of a formatted zstd dictionary (little-endian 0xEC30A437): a base starting with it would be parsed as one. */
const ZSTD_DICT_MAGIC = [0x37, 0xa4, 0x30, 0xec]

/** A changed file rebuilt from a patch against an old file. */
export interface DeltaFile {
  /** The new file node (dag-pb), shipped raw in the bundle; its leaves are what the patch rebuilds. */
  target: CID
  /** The old file node whose bytes are the zstd dictionary; absent means no dictionary (never written by this version, accepted). */
  base?: CID
  /** Raw blocks, each at most PATCH_BLOCK_SIZE bytes, whose concatenation is one zstd frame. */
  patch: CID[]
  /** Leaves of the target (all of them: the patch decodes to the whole file). */
  leaves: number
}

/** New files with no old counterpart, compressed together: the stream decodes to the targets' bytes one after the other. */
export interface DeltaSolid {
  targets: CID[]
  patch: CID[]
  /** Leaves of all targets together. */
  leaves: number
}

/** A delta record: how to rebuild the leaves a bundle leaves out. */
export interface DeltaRecord {
  type: typeof DELTA_TYPE
  /** The builds the receiver must hold (sorted by CID string). */
  from: CID[]
  /** The build the delta completes. */
  to: CID
  files: DeltaFile[]
  solid?: DeltaSolid
}

/** Number of files a delta rebuilds. */
export function deltaFileCount (record: DeltaRecord): number {
  return record.files.length + (record.solid?.targets.length ?? 0)
}

/** Every patch block of a record, in order. */
export function patchBlocks (record: DeltaRecord): CID[] {
  return [...record.files.flatMap(f => f.patch), ...(record.solid?.patch ?? [])]
}

/** Every target file node of a record. */
export function deltaTargets (record: DeltaRecord): CID[] {
  return [...record.files.map(f => f.target), ...(record.solid?.targets ?? [])]
}

/** Key of a CID in sets and maps: one spelling for v0 and v1 of the same block. */
export function keyOf (cid: CID): string {
  return cid.toV1().toString()
}

/**
 * True when this Node can make and apply deltas: zstd with dictionaries
 * needs Node >= 22.19 (zstd itself arrived in 22.15), and older ones would
 * silently ignore the dictionary option rather than fail.
 */
export function deltasSupported (): boolean {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
  return typeof zlib.createZstdDecompress === 'function' && (major > 22 || (major === 22 && minor >= 19))
}

function checkZstd (): void {
  if (!deltasSupported()) throw new ContentError('ERR_UNSUPPORTED', `deltas need Node >= 22.19 (zstd with dictionaries); this is ${process.version}`)
}

// ---------------------------------------------------------------- records

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

/** Encodes a delta record as a dag-cbor block. */
export function encodeDelta (record: DeltaRecord): { cid: CID, bytes: Uint8Array } {
  // dag-cbor has no undefined: leave absent keys out
  const files = record.files.map(f => f.base === undefined
    ? { target: f.target, patch: f.patch, leaves: f.leaves }
    : { target: f.target, base: f.base, patch: f.patch, leaves: f.leaves })
  const value = { type: record.type, from: record.from, to: record.to, files, ...(record.solid !== undefined ? { solid: record.solid } : {}) }
  const bytes = dagCbor.encode(value)
  return { cid: cidOf(DAG_CBOR, bytes), bytes }
}

/** Parses and checks a delta record block. Throws InvalidInputError on anything else. */
export function decodeDelta (cid: CID, bytes: Uint8Array): DeltaRecord {
  if (cid.code !== DAG_CBOR) throw new InvalidInputError(`${cid} is not a delta record (not dag-cbor)`)
  let v: unknown
  try {
    v = dagCbor.decode(bytes)
  } catch (err) {
    throw new InvalidInputError(`${cid} is not valid dag-cbor`, { cause: err })
  }
  const r = v as Partial<DeltaRecord> | null
  const fileOk = (f: Partial<DeltaFile> | null): boolean => f !== null && typeof f === 'object' &&
    isCidOf(f.target, DAG_PB) && (f.base === undefined || isCidOf(f.base, DAG_PB)) &&
    isCidList(f.patch, RAW, 1) && isCount(f.leaves)
  const s = r?.solid as Partial<DeltaSolid> | undefined
  const ok = r !== null && typeof r === 'object' && r.type === DELTA_TYPE &&
    isCidList(r.from, DAG_CBOR, 1) && isCidOf(r.to, DAG_CBOR) &&
    Array.isArray(r.files) && r.files.every(f => fileOk(f as Partial<DeltaFile> | null)) &&
    (s === undefined || (s !== null && typeof s === 'object' && isCidList(s.targets, DAG_PB, 1) && isCidList(s.patch, RAW, 1) && isCount(s.leaves)))
  if (!ok) throw new InvalidInputError(`${cid} is not a delta record`)
  return r as DeltaRecord
}

// ---------------------------------------------------------------- the index in the data dir

/** The builds a delta starts from, sorted and without repeats: the same set always names the same delta. */
export function canonicalFrom (from: CID[]): CID[] {
  const byKey = new Map(from.map(c => [keyOf(c), c.toV1()]))
  return [...byKey.keys()].sort().map(k => byKey.get(k)!)
}

/**
 * Where the CID of the delta from `from` to `to` is kept: a text file under
 * <data dir>/deltas, the data dir being the block store's parent. One base
 * build gives `<from>-<to>`; several give a hash of their sorted CIDs, since
 * their names together could pass the file name limit.
 */
export function deltaIndexPath (store: BlockStore, from: CID[], to: CID): string {
  const keys = canonicalFrom(from).map(c => c.toString())
  const fromKey = keys.length === 1 ? keys[0]! : 'set-' + createHash('sha256').update(keys.join('\n')).digest('hex').slice(0, 32)
  return join(dirname(store.dir), 'deltas', `${fromKey}-${keyOf(to)}`)
}

/**
 * The stored delta from `from` to `to`, when its index entry, record and
 * every patch block are in place; else undefined (a stale or damaged entry
 * just means computing it again).
 */
export async function storedDelta (store: BlockStore, from: CID[], to: CID): Promise<{ cid: CID, record: DeltaRecord } | undefined> {
  try {
    const text = await readFile(deltaIndexPath(store, from, to), 'utf8')
    const cid = CID.parse(text.trim())
    const record = decodeDelta(cid, await store.get(cid))
    const want = canonicalFrom(from).map(keyOf)
    const got = canonicalFrom(record.from).map(keyOf)
    if (!record.to.equals(to.toV1()) || want.length !== got.length || want.some((k, i) => k !== got[i])) return undefined
    for (const p of patchBlocks(record)) if (!await store.has(p)) return undefined
    return { cid, record }
  } catch {
    return undefined
  }
}

/** Records the delta's CID in the index (atomically: a reader sees the old entry or the new one). */
export async function rememberDelta (store: BlockStore, record: DeltaRecord, cid: CID): Promise<void> {
  const path = deltaIndexPath(store, record.from, record.to)
  await mkdir(dirname(path), { recursive: true })
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`
  try {
    await writeFile(tmp, cid.toString() + '\n')
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
}

// ---------------------------------------------------------------- shared helpers

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

function highbit (n: number): number {
  return n <= 1 ? 0 : Math.floor(Math.log2(n))
}

/**
 * zstd parameters of a file patch, as zstd's --patch-from picks them: a
 * window spanning the larger of base and target (a match for byte p of the
 * target sits about one base length back), long-distance matching for big
 * files, and a hash table big enough that zstd indexes the whole base
 * (it only loads the last 2^(hashLog+3) bytes of a dictionary).
 */
function patchParams (baseSize: number, targetSize: number): Record<number, number> {
  const C = zlib.constants
  const biggest = Math.max(baseSize, targetSize, 1)
  const params: Record<number, number> = {
    [C.ZSTD_c_compressionLevel]: LEVEL,
    [C.ZSTD_c_windowLog]: Math.min(MAX_WINDOW_LOG, Math.max(10, highbit(biggest) + 1))
  }
  if (biggest > LONG_FILE) {
    params[C.ZSTD_c_enableLongDistanceMatching] = 1
    params[C.ZSTD_c_hashLog] = Math.min(26, Math.max(22, Math.ceil(Math.log2(Math.max(baseSize, 1))) - 3))
  }
  return params
}

function solidParams (total: number): Record<number, number> {
  const C = zlib.constants
  return {
    [C.ZSTD_c_compressionLevel]: LEVEL,
    [C.ZSTD_c_windowLog]: Math.min(SOLID_WINDOW_LOG, Math.max(10, highbit(Math.max(total, 1)) + 1))
  }
}

/** True when bytes can serve as a raw-content zstd dictionary. */
function usableAsDictionary (bytes: Uint8Array): boolean {
  return bytes.length > 0 && !ZSTD_DICT_MAGIC.every((b, i) => bytes[i] === b)
}

/** Cuts a stream of byte chunks into blocks of PATCH_BLOCK_SIZE (the last one shorter). */
class BlockCutter {
  private parts: Buffer[] = []
  private length = 0
  total = 0

  constructor (private readonly emit: (block: Uint8Array) => Promise<void>) {}

  async push (chunk: Buffer): Promise<void> {
    this.parts.push(chunk)
    this.length += chunk.length
    this.total += chunk.length
    while (this.length >= PATCH_BLOCK_SIZE) {
      const all = Buffer.concat(this.parts, this.length)
      await this.emit(all.subarray(0, PATCH_BLOCK_SIZE))
      const rest = all.subarray(PATCH_BLOCK_SIZE)
      this.parts = rest.length > 0 ? [rest] : []
      this.length = rest.length
    }
  }

  async end (): Promise<void> {
    if (this.length > 0) await this.emit(Buffer.concat(this.parts, this.length))
    this.parts = []
    this.length = 0
  }
}

// ---------------------------------------------------------------- computing a delta

/** Progress of computeDelta: files considered so far and how many there are. */
export type DeltaProgress = (p: { files: number, total: number }) => void

interface OldFile { cid: CID, size: number }

interface Target { cid: CID, path: string, size: number, leaves: PlacedLeaf[], needed: number }

/** Thrown inside the solid encoder once its output can no longer beat raw leaves. */
class NotWorthIt extends Error {}

/**
 * Computes the delta that turns holders of the `from` builds into holders of
 * `to`, or returns the one computed before. Resolves to the record's CID;
 * the record and its patch blocks are in the store and the index entry in
 * <data dir>/deltas points at it.
 *
 * For each file of `to` whose file node none of the `from` builds has, and
 * whose new leaves are not all held already, the base is an old file at the
 * same path, else one with the same name (the closest in size), else none.
 * Files with a base get a patch of their own; files without one go into one
 * solid stream. A patch is kept only when it is smaller than the raw leaves
 * it replaces. Files over MAX_DELTA_FILE and raw-CID files are left to raw
 * leaves.
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
  await completeBlocks(store, to)
  const held = await blockSet(store, fromBuilds)

  // the old files, by path (the first build listed wins) and by name
  const byPath = new Map<string, OldFile>()
  const byName = new Map<string, OldFile[]>()
  for (const b of fromBuilds) {
    for await (const e of walkTree(store, (await readRecord(store, b)).tree)) {
      if (e.node.type !== 'file' || e.cid.code !== DAG_PB) continue
      const old = { cid: e.cid, size: e.node.size }
      if (!byPath.has(e.path)) byPath.set(e.path, old)
      const name = e.path.slice(e.path.lastIndexOf('/') + 1)
      const list = byName.get(name) ?? []
      list.push(old)
      byName.set(name, list)
    }
  }

  // the files of the new build whose leaves the holder lacks
  const targets: Target[] = []
  const seen = new Set<string>()
  for await (const e of walkTree(store, (await readRecord(store, to)).tree)) {
    const key = keyOf(e.cid)
    if (e.node.type !== 'file' || e.cid.code !== DAG_PB || held.has(key) || seen.has(key)) continue
    seen.add(key)
    if (e.node.inline !== undefined || e.node.size > MAX_DELTA_FILE) continue
    const { leaves, inline } = await fileLayout(store, e.cid)
    if (inline.length > 0) continue
    const needed = leaves.reduce((n, l) => held.has(keyOf(l.cid)) ? n : n + l.size, 0)
    if (needed > 0) targets.push({ cid: e.cid, path: e.path, size: e.node.size, leaves, needed })
  }

  const files: DeltaFile[] = []
  const solid: Target[] = []
  // patch blocks this computation added: removed again if it fails, so no orphans are left
  const written: CID[] = []
  try {
    let done = 0
    for (const t of targets) {
      options.onProgress?.({ files: done++, total: targets.length })
      const base = chooseBase(t, byPath, byName)
      const entry = base === undefined ? 'no-base' : await filePatch(store, t, base, written)
      if (entry === 'no-base') solid.push(t)
      else if (entry !== undefined) files.push(entry)
      // else: the patch would not beat the raw leaves, which the bundle then carries
    }
    const solidEntry = solid.length > 0 ? await solidPatch(store, solid) : undefined
    options.onProgress?.({ files: targets.length, total: targets.length })

    const record: DeltaRecord = { type: DELTA_TYPE, from: fromBuilds, to: to.toV1(), files, ...(solidEntry !== undefined ? { solid: solidEntry } : {}) }
    const enc = encodeDelta(record)
    await store.putHashed(enc.cid, enc.bytes)
    await rememberDelta(store, record, enc.cid)
    return enc.cid
  } catch (err) {
    for (const cid of written) await store.delete(cid).catch(() => {})
    throw err
  }
}

function chooseBase (t: Target, byPath: Map<string, OldFile>, byName: Map<string, OldFile[]>): OldFile | undefined {
  const usable = (f: OldFile): boolean => f.size > 0 && f.size <= MAX_DELTA_FILE
  const same = byPath.get(t.path)
  if (same !== undefined && usable(same)) return same
  const name = t.path.slice(t.path.lastIndexOf('/') + 1)
  let best: OldFile | undefined
  for (const f of byName.get(name) ?? []) {
    if (usable(f) && (best === undefined || Math.abs(f.size - t.size) < Math.abs(best.size - t.size))) best = f
  }
  return best
}

/** Stores a patch's bytes as raw blocks, noting in `written` those the store did not hold. Resolves to their CIDs. */
async function storePatch (store: BlockStore, bytes: Uint8Array, written: CID[]): Promise<CID[]> {
  const cids: CID[] = []
  for (let i = 0; i < bytes.length; i += PATCH_BLOCK_SIZE) {
    const block = bytes.subarray(i, i + PATCH_BLOCK_SIZE)
    const cid = cidOf(RAW, block)
    if (await store.putHashed(cid, block)) written.push(cid)
    cids.push(cid)
  }
  return cids
}

function patchCost (bytes: number): number {
  return bytes + ENTRY_OVERHEAD + BLOCK_OVERHEAD * Math.ceil(bytes / PATCH_BLOCK_SIZE)
}

/**
 * The patch of one file against its base, or undefined when it would not be
 * smaller than the leaves it replaces, or 'no-base' when the base cannot
 * serve as a dictionary (the file then joins the solid stream).
 */
async function filePatch (store: BlockStore, t: Target, base: OldFile, written: CID[]): Promise<DeltaFile | 'no-base' | undefined> {
  const dictionary = await readFileBytes(store, base.cid)
  if (!usableAsDictionary(dictionary)) return 'no-base'
  const bytes = await readFileBytes(store, t.cid)
  const budget = t.needed - ENTRY_OVERHEAD - BLOCK_OVERHEAD * Math.ceil(t.needed / PATCH_BLOCK_SIZE)
  if (budget <= 0) return undefined
  let patch: Buffer
  try {
    // async: encoding runs on the thread pool, and the agent keeps serving peers meanwhile
    patch = await new Promise<Buffer>((resolve, reject) => {
      zlib.zstdCompress(bytes, { dictionary, params: patchParams(dictionary.length, bytes.length), pledgedSrcSize: bytes.length, maxOutputLength: budget }, (err, out) => {
        if (err !== null) reject(err)
        else resolve(out)
      })
    })
  } catch (err) {
    // over budget: raw leaves are cheaper
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return undefined
    throw err
  }
  if (patchCost(patch.length) >= t.needed) return undefined
  return { target: t.cid, base: base.cid, patch: await storePatch(store, patch, written), leaves: t.leaves.length }
}

/**
 * One zstd stream over the bytes of all targets, in order, streamed from the
 * store into patch blocks (memory stays at a window plus a block). Given up
 * as soon as its output reaches the raw leaves' size; the patch blocks it
 * wrote are removed again then.
 */
async function solidPatch (store: BlockStore, targets: Target[]): Promise<DeltaSolid | undefined> {
  const total = targets.reduce((n, t) => n + t.size, 0)
  const needed = targets.reduce((n, t) => n + t.needed, 0)
  const patch: CID[] = []
  const written: CID[] = []
  const cutter = new BlockCutter(async block => {
    const cid = cidOf(RAW, block)
    if (await store.putHashed(cid, block)) written.push(cid)
    patch.push(cid)
  })
  try {
    await pipeline(
      async function * () {
        for (const t of targets) {
          for (const l of t.leaves) {
            const bytes = await store.get(l.cid)
            // zstd insists on the pledged size; a build whose block sizes lie is refused here, clearly
            if (bytes.length !== l.size) throw new InvalidInputError(`leaf ${l.cid} of ${t.cid} is ${bytes.length} bytes, its parent says ${l.size}`)
            yield bytes
          }
        }
      },
      zlib.createZstdCompress({ params: solidParams(total), pledgedSrcSize: total, chunkSize: 1 << 16 }),
      async function (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          await cutter.push(chunk)
          if (patchCost(cutter.total) >= needed) throw new NotWorthIt()
        }
        await cutter.end()
      }
    )
  } catch (err) {
    for (const cid of written) await store.delete(cid)
    if (err instanceof NotWorthIt) return undefined
    throw err
  }
  return { targets: targets.map(t => t.cid), patch, leaves: targets.reduce((n, t) => n + t.leaves.length, 0) }
}

// ---------------------------------------------------------------- applying a delta

/** How rebuilt leaves are stored: the importer's put, which verifies and remembers what it wrote. */
export type PutBlock = (cid: CID, bytes: Uint8Array, where: string) => Promise<void>

/**
 * Rebuilds the leaves a delta stands for, one patch at a time: reads the
 * base file (verified), decodes the patch with it as dictionary, cuts the
 * output at the target's leaf sizes and hands each slice to `put`, which
 * must verify it against the leaf CID (BlockStore.put does). The target file
 * nodes and the patch blocks must be in the store already.
 *
 * Resolves to the number of files rebuilt. Throws CorruptBlockError when a
 * slice does not hash to its leaf (a wrong patch), InvalidInputError when a
 * patch is not valid zstd, decodes to more or fewer bytes than its targets
 * hold, or a target, base or patch block is missing. Memory: one base and
 * one leaf at a time (plus zstd's window).
 */
export async function applyDelta (store: BlockStore, record: DeltaRecord, put: PutBlock, onFile?: (done: number, total: number) => void): Promise<number> {
  checkZstd()
  const total = deltaFileCount(record)
  let done = 0
  for (const f of record.files) {
    await rebuild(store, record, [f.target], f.base, f.patch, f.leaves, put)
    done++
    onFile?.(done, total)
  }
  if (record.solid !== undefined) {
    await rebuild(store, record, record.solid.targets, undefined, record.solid.patch, record.solid.leaves, put)
    done += record.solid.targets.length
    onFile?.(done, total)
  }
  return done
}

async function rebuild (store: BlockStore, record: DeltaRecord, targets: CID[], base: CID | undefined, patch: CID[], leafCount: number, put: PutBlock): Promise<void> {
  const what = base === undefined ? `the solid patch of ${targets.length} new file(s)` : `the patch of file ${targets[0]}`
  const leaves: PlacedLeaf[] = []
  for (const t of targets) {
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
  if (leaves.length !== leafCount) throw new InvalidInputError(`${what} says ${leafCount} leaves, its targets have ${leaves.length}`)
  const size = leaves.reduce((n, l) => n + l.size, 0)
  if (base !== undefined && size > MAX_DELTA_FILE) throw new InvalidInputError(`${what} rebuilds ${size} bytes, over the ${MAX_DELTA_FILE} a delta may`)

  let dictionary: Buffer | undefined
  if (base !== undefined) {
    try {
      dictionary = await readFileBytes(store, base)
    } catch (err) {
      if (err instanceof BlockNotFoundError) {
        throw new InvalidInputError(`this bundle updates build(s) ${record.from.join(', ')}; the store lacks file ${base} that ${what} starts from (import a full bundle instead)`, { cause: err })
      }
      throw err
    }
  }
  for (const p of patch) {
    if (!await store.has(p)) throw new InvalidInputError(`patch block ${p} of ${what} is neither in the bundle nor in the store`)
  }

  const C = zlib.constants
  const decoder = zlib.createZstdDecompress({
    ...(dictionary !== undefined ? { dictionary } : {}),
    chunkSize: 1 << 16,
    // the encoder's limits: a patch asking for a larger window is refused rather than allowed to take the memory
    params: { [C.ZSTD_d_windowLogMax]: base === undefined ? SOLID_WINDOW_LOG : MAX_WINDOW_LOG }
  })
  dictionary = undefined // zstd holds its own copy now: let ours go while the file is rebuilt
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
  try {
    await pipeline(
      async function * () {
        for (const p of patch) yield await store.get(p)
      },
      decoder,
      async function (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
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
        }
      }
    )
  } catch (err) {
    if (err instanceof ContentError) throw err
    throw new InvalidInputError(`${what} is not a valid zstd stream: ${(err as Error).message}`, { cause: err })
  }
  if (i < leaves.length) {
    throw new InvalidInputError(`${what} decodes to ${produced} bytes, short of the ${size} its target(s) hold`)
  }
}

// ---------------------------------------------------------------- what an update carries

/** What a bundle of a build for holders of some builds carries, in order. */
export interface BundlePlan {
  /** The CAR's roots: the build record, then the delta record when the bundle carries one. */
  roots: CID[]
  /** The blocks, in the order a streaming reader wants them (parents first, then delta record, then patches). */
  blocks: CID[]
  delta?: { cid: CID, record: DeltaRecord }
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
 * or reuse one; `stored`: only one computed before; `off`: none) less the
 * leaves the delta rebuilds, plus the delta record and its patch blocks.
 * A delta that rebuilds no file is left out. Throws IncompleteBuildError
 * when `root` or a `have` build is not complete in the store.
 */
export async function planBundle (store: BlockStore, root: CID, have: CID[], delta: 'compute' | 'stored' | 'off'): Promise<BundlePlan> {
  const present = await completeBlocks(store, root)
  if (have.length === 0) return { roots: [root], blocks: present }
  const held = await blockSet(store, have)
  const needed = present.filter(c => !held.has(keyOf(c)))

  let d: { cid: CID, record: DeltaRecord } | undefined
  if (delta === 'compute') {
    const cid = await computeDelta(store, have, root)
    d = { cid, record: decodeDelta(cid, await store.get(cid)) }
  } else if (delta === 'stored') {
    d = await storedDelta(store, have, root)
  }
  if (d === undefined || deltaFileCount(d.record) === 0) return { roots: [root], blocks: needed }

  const targets = new Set(deltaTargets(d.record).map(keyOf))
  const covered = new Set<string>()
  for (const t of deltaTargets(d.record)) for (const l of (await fileLayout(store, t)).leaves) covered.add(keyOf(l.cid))
  const raw = await rawNeeded(store, (await readRecord(store, root)).tree, held, targets)
  const blocks = needed.filter(c => !covered.has(keyOf(c)) || raw.has(keyOf(c)))
  const included = new Set(blocks.map(keyOf))
  for (const c of [d.cid, ...patchBlocks(d.record)]) {
    const k = keyOf(c)
    if (!included.has(k) && !held.has(k)) {
      included.add(k)
      blocks.push(c)
    }
  }
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
  /** Bytes such a bundle carries with the delta stored for old -> new (record and patches included); absent when none is stored or it rebuilds nothing. */
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
