// USB bundles: a build (or an update to builds a laptop holds) as one CARv1
// file, to carry on a stick where the mesh cannot reach.
//
// A bundle is a standard CARv1, so any IPFS tool can read it:
//
//   full, or update without delta (--no-delta)
//     roots:  [build record]
//     blocks: the build's blocks in buildCids order (record first, each
//             parent before its children), less those the receiver holds.
//   update with a static delta (delta.ts, the default with --have)
//     roots:  [build record, pack manifest]
//     blocks: the manifest; the node pack's blocks (the new build's record
//             and dag-pb nodes and the patch record, as one zstd stream
//             against the old builds' nodes: node-pack.ts); the raw leaves
//             no patch rebuilds; the patch blocks.
//
// The manifest is a second root rather than a link from anything: the
// build stays exactly the build, and tools that do not know deltas just see
// one more root they can ignore (the build itself they cannot read from an
// update bundle alone, as from any update).
//
// Import trusts nothing: every block is hashed before it is stored, the CAR
// framing is read with a cap on every length (a flipped length byte must not
// make us buffer a whole stick), a pack item is stored only when the build
// or the manifest refers to it, every rebuilt leaf is checked against its
// CID, blocks of the CAR that nothing refers to are dropped once the build
// is complete, and a failed import removes every block it wrote, so the
// store is as it was.
import { createWriteStream } from 'node:fs'
import { open, rename, stat, unlink } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import { dirname } from 'node:path'
import { CarWriter } from '@ipld/car/writer'
import { asyncIterableReader, createDecoder, type BytesReader } from '@ipld/car/decoder'
import { CID, DAG_CBOR, checkCid } from './cid.ts'
import { IncompleteBuildError, InvalidInputError, NoSpaceError } from './errors.ts'
import { buildCids, readRecord } from './build.ts'
import { applyDelta, decodeDelta, decodeManifest, deltaFileCount, deltasSupported, keyOf, patchBlocks, planBundle, readPack, rememberDelta, sameBuilds } from './delta.ts'
import type { BlockStore } from './blockstore.ts'

/** Largest CAR section (header or block) an import will read, in bytes. Our blocks are at most 1 MiB; a directory node of a huge flat directory can be a few MiB. */
export const MAX_SECTION = 16 << 20

/** Blocks read ahead of the CAR writer, and block writes in flight during import: hides disk latency, bounds memory to a few MiB. */
const IN_FLIGHT = 8

/** Progress: bytes done so far, of total (unknown totals are left out). */
export type BytesProgress = (done: number, total?: number) => void

export interface ExportOptions {
  /** Builds the receiver holds: the bundle carries only what they lack. Each must be complete in this store. */
  have?: CID[]
  /** Send a static delta: the new leaves of changed and new files as zstd patches, the new nodes as a node pack (default: true when `have` is given and this Node can, see deltasSupported; ignored without `have`). */
  delta?: boolean
  /** Block bytes written so far, of the bundle's total (CAR framing not counted). */
  onProgress?: BytesProgress
}

export interface ExportResult {
  /** Blocks in the CAR (manifest, pack and patch blocks included; the nodes inside the pack not counted). */
  blocks: number
  /** Size of the bundle file in bytes. */
  bytes: number
  /** Files the bundle's delta rebuilds (0 without a delta). */
  deltaFiles: number
}

export interface ImportOptions {
  /** The build the bundle must carry: a bundle whose first root is anything else is refused before a block is read. */
  expect?: CID
  /** Bytes of the bundle file read so far, of its size; rebuilding and checking come after the last call. */
  onProgress?: BytesProgress
}

export interface ImportResult {
  /** The CAR's roots: the build record, then the pack manifest if there is one. */
  roots: CID[]
  /** Blocks read from the bundle's CAR sections (held ones included). */
  blocks: number
  /** Blocks read from the node pack (0 without a delta). */
  unpacked: number
  /** Files rebuilt from the delta's patches. */
  rebuilt: number
}

function noSpace (err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  return code === 'ENOSPC' || code === 'EDQUOT'
}

/**
 * Writes a bundle of build `root` to the file `out`: a CARv1 whose first
 * root is the build record (see the top of this file for the layout).
 * Without `have`, every block of the build; with `have`, exactly the blocks
 * a holder of those builds lacks and, unless `delta` is false, as a delta:
 * the new nodes in a node pack and the new leaves of changed and new files
 * as patches (computed once, then reused: see computeDelta).
 *
 * Streams: memory holds a few blocks, whatever the build's size (computing
 * a delta the first time takes more: see zstd.ts). Writes
 * `out`.partial, flushes it to the device and renames it to `out`, so a
 * stick pulled early never holds a file that looks finished.
 *
 * Throws IncompleteBuildError when root or a have build is not complete in
 * the store, NoSpaceError when the target device fills (the partial file is
 * removed then, as on any error).
 */
export async function exportBundle (store: BlockStore, root: CID, out: string, options: ExportOptions = {}): Promise<ExportResult> {
  const have = options.have ?? []
  // by default a Node too old for deltas just sends raw leaves; asking for a delta there fails clearly
  const useDelta = have.length > 0 && (options.delta ?? deltasSupported())
  const plan = await planBundle(store, root, have, useDelta ? 'compute' : 'off')
  const partial = out + '.partial'
  const { writer, out: car } = CarWriter.create(plan.roots)
  const abort = new AbortController()
  let failure: unknown
  let total: number | undefined
  if (options.onProgress !== undefined) {
    total = 0
    for (const c of plan.blocks) total += await store.size(c) ?? 0
  }

  // the writer's put resolves once its bytes are taken by the file stream, and the file stream takes no more than it can write: backpressure end to end
  const produce = async (): Promise<void> => {
    const reads: Array<Promise<Uint8Array>> = []
    let next = 0
    let bytes = 0
    for (let i = 0; i < plan.blocks.length; i++) {
      while (next < plan.blocks.length && next < i + IN_FLIGHT) {
        const p = store.get(plan.blocks[next++]!)
        p.catch(() => {}) // awaited below; an early failure must not surface as unhandled
        reads.push(p)
      }
      const block = await reads.shift()!
      if (abort.signal.aborted) return
      await writer.put({ cid: plan.blocks[i]!, bytes: block })
      bytes += block.length
      options.onProgress?.(bytes, total)
    }
    await writer.close()
  }
  const producing = produce().catch(err => {
    failure ??= err
    abort.abort()
  })
  try {
    await pipeline(car, createWriteStream(partial, { flush: true }), { signal: abort.signal })
    await producing
  } catch (err) {
    failure ??= err
  }
  let bytes = 0
  if (failure === undefined) {
    try {
      bytes = (await stat(partial)).size
      await rename(partial, out)
      await syncDir(dirname(out))
    } catch (err) {
      failure = err
    }
  }
  if (failure !== undefined) {
    abort.abort()
    await unlink(partial).catch(() => {})
    if (noSpace(failure)) throw new NoSpaceError(out, { cause: failure })
    const code = (failure as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' || code === 'EROFS' || code === 'ENOTDIR') {
      throw new InvalidInputError(`cannot write bundle ${out}: ${(failure as Error).message}`, { cause: failure })
    }
    throw failure
  }
  const patches = plan.delta?.patches?.record
  return { blocks: plan.blocks.length, bytes, deltaFiles: patches === undefined ? 0 : deltaFileCount(patches) }
}

/** Flushes a directory's entries (the rename of a finished bundle) to the device: a stick pulled right after must hold the file. Best effort. */
async function syncDir (dir: string): Promise<void> {
  const fh = await open(dir, 'r').catch(() => undefined)
  if (fh === undefined) return
  await fh.sync().catch(() => {})
  await fh.close().catch(() => {})
}

/** A BytesReader that refuses sections over MAX_SECTION bytes and negative lengths, before reading them. */
function boundedReader (reader: BytesReader): BytesReader {
  const check = (length: number): void => {
    if (!Number.isSafeInteger(length) || length < 0 || length > MAX_SECTION) throw new Error(`a section of ${length} bytes at byte ${reader.pos} (at most ${MAX_SECTION} allowed)`)
  }
  return {
    async upTo (length: number) { check(length); return await reader.upTo(length) },
    async exactly (length: number, seek?: boolean) { check(length); return await reader.exactly(length, seek) },
    seek (length: number) { check(length); reader.seek(length) },
    get pos () { return reader.pos }
  }
}

/**
 * Reads a bundle into the store. Every block is hashed before it is stored;
 * then, if the bundle carries a delta, the node pack is decoded against the
 * old builds' nodes (each item stored only when the build or the manifest
 * refers to it) and the leaves the patches stand for are rebuilt from the
 * base files this store holds, each checked against its leaf CID; finally
 * the build must be complete, and CAR blocks nothing refers to are dropped.
 *
 * Resolves to the CAR's roots, the blocks read and the files rebuilt. On any
 * failure every block this import wrote is removed again and it throws:
 * InvalidInputError (not a CAR, truncated or damaged framing, no or too
 * many roots, a first root other than `expect`, a block of a codec or hash
 * a build cannot hold, a bad manifest, pack or patch record, a pack item
 * nothing refers to, an update for builds the store does not hold),
 * CorruptBlockError (a block, or a leaf rebuilt from a patch, that does not
 * match its CID), IncompleteBuildError (the build still lacks blocks),
 * NoSpaceError.
 */
export async function importBundle (store: BlockStore, file: string, options: ImportOptions = {}): Promise<ImportResult> {
  let fh
  let totalBytes: number
  try {
    fh = await open(file, 'r')
    const st = await fh.stat()
    if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' })
    totalBytes = st.size
  } catch (err) {
    await fh?.close()
    throw new InvalidInputError(`cannot read bundle ${file}: ${(err as Error).message}`, { cause: err })
  }
  const stream = fh.createReadStream({ highWaterMark: 1 << 18 })
  let bytesRead = 0
  async function * counted (): AsyncGenerator<Uint8Array> {
    for await (const chunk of stream) {
      bytesRead += (chunk as Buffer).length
      yield chunk as Buffer
    }
  }
  const reader = boundedReader(asyncIterableReader(counted()))
  const decoder = createDecoder(reader)

  // CIDs as text: a CID the decoder made is a view into the read buffer around it, and a
  // list of them would keep every buffer of the file alive (a 1 GiB bundle took 1.2 GB)
  const written: string[] = []
  const pending = new Set<Promise<void>>()
  let putFailure: unknown
  const put = async (cid: CID, bytes: Uint8Array, where: string): Promise<void> => {
    if (await store.put(cid, bytes, where)) written.push(cid.toString())
  }
  const drain = async (): Promise<void> => {
    await Promise.allSettled(pending)
    if (putFailure !== undefined) throw putFailure
  }

  let blocks = 0
  try {
    let header
    try {
      header = await decoder.header()
    } catch (err) {
      throw new InvalidInputError(`${file} is not a CAR file: ${(err as Error).message}`, { cause: err })
    }
    if (header.version !== 1) throw new InvalidInputError(`${file} is a CARv${header.version}; bundles are CARv1`)
    const roots = header.roots.map(r => CID.asCID(r)!)
    if (roots.length === 0) throw new InvalidInputError(`${file} has no root: a bundle's first root is its build record`)
    if (roots.length > 2) throw new InvalidInputError(`${file} has ${roots.length} roots; a bundle has a build record and at most a pack manifest`)
    for (const r of roots) {
      if (r.code !== DAG_CBOR) throw new InvalidInputError(`${file}: root ${r} is not a dag-cbor record`)
    }
    const root = roots[0]!
    if (options.expect !== undefined && keyOf(options.expect) !== keyOf(root)) {
      throw new InvalidInputError(`${file} has root ${root}, not the expected build ${options.expect}`)
    }

    const iterator = decoder.blocks()
    for (;;) {
      let next
      try {
        next = await iterator.next()
      } catch (err) {
        throw new InvalidInputError(`${file} is truncated or damaged at byte ${reader.pos}, after ${blocks} block(s): ${(err as Error).message}`, { cause: err })
      }
      if (next.done === true) break
      const { cid, bytes } = next.value
      try {
        checkCid(cid)
      } catch (err) {
        throw new InvalidInputError(`${file}: block ${blocks + 1} (${cid}) is not a block a build can hold: ${(err as Error).message}`, { cause: err })
      }
      blocks++
      if (putFailure !== undefined) break
      while (pending.size >= IN_FLIGHT) await Promise.race(pending)
      const p: Promise<void> = put(cid, bytes, file).catch(err => { putFailure ??= err }).finally(() => { pending.delete(p) })
      pending.add(p)
      options.onProgress?.(bytesRead, totalBytes)
    }
    await drain()

    let rebuilt = 0
    let unpacked = 0
    // blocks besides the build's that the bundle legitimately brings: the delta's
    const extra = new Set<string>()
    const manifestCid = roots[1]
    let manifest
    if (manifestCid !== undefined) {
      if (!await store.has(manifestCid)) throw new InvalidInputError(`${file}: its pack manifest ${manifestCid} is not in the bundle`)
      manifest = decodeManifest(manifestCid, await store.get(manifestCid))
      if (keyOf(manifest.to) !== keyOf(root)) throw new InvalidInputError(`${file}: its pack manifest is for build ${manifest.to}, not its root ${root}`)
      for (const c of [manifestCid, ...manifest.pack]) extra.add(keyOf(c))
      unpacked = await readPack(store, manifest, root, put)
    }

    if (!await store.has(root)) throw new InvalidInputError(`${file}: its root ${root} is neither in the bundle nor in the store`)
    await readRecord(store, root) // a root that is not a build record is refused here

    if (manifest?.delta !== undefined) {
      const cid = manifest.delta
      if (!await store.has(cid)) throw new InvalidInputError(`${file}: its patch record ${cid} is neither in its node pack nor in the store`)
      const delta = decodeDelta(cid, await store.get(cid))
      if (keyOf(delta.to) !== keyOf(root)) throw new InvalidInputError(`${file}: its patch record rebuilds build ${delta.to}, not its root ${root}`)
      if (!sameBuilds(delta.from, manifest.from)) throw new InvalidInputError(`${file}: its patch record starts from other builds than its pack manifest`)
      for (const c of [cid, ...patchBlocks(delta)]) extra.add(keyOf(c))
      rebuilt = await applyDelta(store, delta, put)
    }

    const { present, missing } = await buildCids(store, root)
    if (missing.length > 0) throw new IncompleteBuildError(root.toString(), missing.length)
    // a block of the CAR that neither the build nor its delta refers to has no business in the store
    for (const c of present) extra.add(keyOf(c))
    for (let i = written.length - 1; i >= 0; i--) {
      const cid = CID.parse(written[i]!)
      if (!extra.has(keyOf(cid))) {
        await store.delete(cid)
        written.splice(i, 1)
      }
    }
    if (manifest !== undefined) {
      // the delta is in the store now: exporting the same update from this laptop reuses it
      await rememberDelta(store, manifest, manifestCid!).catch(() => {})
    }
    return { roots, blocks, unpacked, rebuilt }
  } catch (err) {
    await Promise.allSettled(pending)
    for (const cid of written.reverse()) await store.delete(CID.parse(cid)).catch(() => {})
    throw err
  } finally {
    stream.destroy()
    await fh.close().catch(() => {})
  }
}

