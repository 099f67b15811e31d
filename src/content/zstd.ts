// zstd frames with a dictionary, as static deltas use them (delta.ts): the
// parameters a frame is written with, writing a frame straight into raw
// blocks of the store, and reading one back from them with the decoder's
// memory bounded.
//
// Every frame of a delta is zstd's "patch-from": the dictionary is bytes
// the receiver already holds (old files, old nodes), the window spans the
// dictionary and the output so a match anywhere in either can be used, and
// the match finder's tables are made large enough to index all of it.
//
// Memory: a decoder holds its copy of the dictionary plus a buffer of at
// most the window (for a frame whose size is known, at most its size), so
// MAX_DICTIONARY and MAX_WINDOW_LOG bound it to ~256 MiB. Encoders use far
// more: the match finder's tables twice (zstd builds them for the
// dictionary, then copies them for the frame), the window and the
// dictionary, up to ~900 MiB for a full 128 MiB group (the export that
// computed the bench's image update, a 48 MB group, peaked at 1.06 GB RSS,
// ~190 MB of it the walks around it). The sender computes a delta once;
// MAX_CHAIN_LOG 25 would halve the tables for 0-13% larger frames.
import zlib from 'node:zlib'
import { pipeline } from 'node:stream/promises'
import { CID, RAW, cidOf } from './cid.ts'
import { ContentError, InvalidInputError } from './errors.ts'
import type { BlockStore } from './blockstore.ts'

/** Largest block of a patch or pack, in bytes: a longer frame is split over several raw blocks. */
export const PATCH_BLOCK_SIZE = 1 << 20

/** Largest window of any frame (2^27, zstd's largest portable one): decoders refuse frames asking for more. */
export const MAX_WINDOW_LOG = 27

/** Largest dictionary of any frame, in bytes. */
export const MAX_DICTIONARY = 1 << 27

/** zstd level of every frame: slow to encode, but encoding happens once per update and decoding stays fast. */
const LEVEL = 19

/** Above this span (dictionary + output) the match finder's tree is enlarged to reach all of it (level 19's reaches 8 MiB). */
const WIDE_SPAN = 8 << 20

/**
 * Largest window of a frame without dictionary (new files only). Far matches
 * between different new files are rare (identical files are already one
 * CID), and a smaller window keeps the decoder small on a 256 MB XO.
 */
const PLAIN_WINDOW_LOG = 24

/** Largest binary tree of an encoder: 2^26 entries reach 32 MiB back and take 256 MiB (twice: zstd keeps the dictionary's tables and the frame's). */
const MAX_CHAIN_LOG = 26

/** Magic number of a formatted zstd dictionary (little-endian 0xEC30A437): a dictionary starting with it would be parsed as one. */
const ZSTD_DICT_MAGIC = [0x37, 0xa4, 0x30, 0xec]

/**
 * True when this Node can make and apply deltas: zstd with dictionaries
 * needs Node >= 22.19 (zstd itself arrived in 22.15), and older ones would
 * silently ignore the dictionary option rather than fail.
 */
export function deltasSupported (): boolean {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
  return typeof zlib.createZstdDecompress === 'function' && (major > 22 || (major === 22 && minor >= 19))
}

/** Throws unless deltasSupported(). */
export function checkZstd (): void {
  if (!deltasSupported()) throw new ContentError('ERR_UNSUPPORTED', `deltas need Node >= 22.19 (zstd with dictionaries); this is ${process.version}`)
}

/** True when bytes can serve as a raw-content zstd dictionary: zstd would parse one starting with its dictionary magic as a formatted one. */
export function usableAsDictionary (bytes: Uint8Array): boolean {
  return bytes.length === 0 || !ZSTD_DICT_MAGIC.every((b, i) => bytes[i] === b)
}

function highbit (n: number): number {
  return n <= 1 ? 0 : Math.floor(Math.log2(n))
}

/**
 * zstd parameters of a frame of `outSize` bytes against a dictionary of
 * `dictSize` bytes, as zstd's --patch-from picks them: a window spanning
 * dictionary and output (capped at 2^27, or 2^24 without dictionary), and,
 * above WIDE_SPAN, a binary tree reaching back over the whole dictionary: a
 * byte of the output finds its old version about one dictionary length
 * back, and level 19's tree reaches 2^(chainLog-1) bytes (measured on the
 * bench pairs: 23% smaller frames on the image of 22 packages, 28% on a
 * typescript patch). Past 2^25 bytes of dictionary the tree stops growing
 * (its memory doubles with each step) and long-distance matching is turned
 * on, as zstd's CLI does.
 */
export function frameParams (dictSize: number, outSize: number): Record<number, number> {
  const C = zlib.constants
  const span = Math.max(dictSize + outSize, 1)
  const params: Record<number, number> = {
    [C.ZSTD_c_compressionLevel]: LEVEL,
    [C.ZSTD_c_windowLog]: Math.min(dictSize > 0 ? MAX_WINDOW_LOG : PLAIN_WINDOW_LOG, Math.max(10, highbit(span) + 1))
  }
  if (span > WIDE_SPAN && dictSize > 0) {
    const reach = Math.ceil(Math.log2(dictSize)) + 1
    params[C.ZSTD_c_chainLog] = Math.min(MAX_CHAIN_LOG, Math.max(24, reach))
    if (reach > MAX_CHAIN_LOG) params[C.ZSTD_c_enableLongDistanceMatching] = 1
  }
  return params
}

/** Cuts a stream of byte chunks into blocks of PATCH_BLOCK_SIZE (the last one shorter). */
class BlockCutter {
  private parts: Buffer[] = []
  private length = 0
  total = 0

  private readonly emit: (block: Uint8Array) => Promise<void>

  // a plain field, not a parameter property: the agent also runs under Node's type stripping
  constructor (emit: (block: Uint8Array) => Promise<void>) {
    this.emit = emit
  }

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

/** Thrown inside an encoder once its output passes the caller's limit. */
class OverLimit extends Error {}

export interface EncodeOptions {
  dictionary?: Buffer
  params: Record<number, number>
  /** Exact bytes `source` yields (zstd writes it in the frame header; a mismatch fails the encoder). */
  size: number
  /** Give up (resolve undefined) once the frame reaches this many bytes. */
  limit?: number
}

/**
 * Compresses `source` into one zstd frame stored as raw blocks of at most
 * PATCH_BLOCK_SIZE, streaming (memory: the dictionary, the encoder's tables
 * and window, a block). Resolves to the blocks and the frame's length, or
 * undefined when the frame reached `limit` (its blocks are removed again
 * then). Blocks the store did not hold are added to `written`.
 */
export async function encodeToBlocks (store: BlockStore, source: AsyncIterable<Uint8Array>, options: EncodeOptions, written: CID[]): Promise<{ blocks: CID[], bytes: number } | undefined> {
  const blocks: CID[] = []
  const mine: CID[] = []
  const cutter = new BlockCutter(async block => {
    const cid = cidOf(RAW, block)
    if (await store.putHashed(cid, block)) mine.push(cid)
    blocks.push(cid)
  })
  try {
    await pipeline(
      source,
      zlib.createZstdCompress({
        ...(options.dictionary !== undefined && options.dictionary.length > 0 ? { dictionary: options.dictionary } : {}),
        params: options.params,
        pledgedSrcSize: options.size,
        chunkSize: 1 << 16
      }),
      async function (frames: AsyncIterable<Buffer>) {
        for await (const chunk of frames) {
          await cutter.push(chunk)
          if (options.limit !== undefined && cutter.total >= options.limit) throw new OverLimit()
        }
        await cutter.end()
      }
    )
  } catch (err) {
    for (const cid of mine) await store.delete(cid).catch(() => {})
    if (err instanceof OverLimit) return undefined
    throw err
  }
  written.push(...mine)
  return { blocks, bytes: cutter.total }
}

/**
 * Decodes the zstd frame stored in `blocks` (verified as they are read)
 * with `dict.dictionary` (taken out of `dict` once zstd has its copy), handing the output to `sink` chunk by chunk (64 KiB at
 * most). The decoder refuses a window over MAX_WINDOW_LOG. A ContentError
 * thrown by `sink` passes through; anything else that goes wrong (not zstd,
 * a wrong dictionary, a truncated frame) becomes InvalidInputError
 * "`what` is not a valid zstd stream".
 */
export async function decodeBlocks (store: BlockStore, blocks: CID[], dict: { dictionary?: Buffer }, what: string, sink: (chunk: Buffer) => Promise<void>): Promise<void> {
  const C = zlib.constants
  const decoder = zlib.createZstdDecompress({
    ...(dict.dictionary !== undefined && dict.dictionary.length > 0 ? { dictionary: dict.dictionary } : {}),
    chunkSize: 1 << 16,
    params: { [C.ZSTD_d_windowLogMax]: MAX_WINDOW_LOG }
  })
  // zstd holds its own copy now: let the caller's go while the frame decodes
  delete dict.dictionary
  try {
    await pipeline(
      async function * () {
        for (const b of blocks) yield await store.get(b)
      },
      decoder,
      async function (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) await sink(chunk)
      }
    )
  } catch (err) {
    if (err instanceof ContentError) throw err
    throw new InvalidInputError(`${what} is not a valid zstd stream: ${(err as Error).message}`, { cause: err })
  }
}
