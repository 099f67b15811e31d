/**
 * FastCDC 2020 content-defined chunking.
 *
 * The algorithm is the one of Xia et al., "The Design of Fast Content-Defined
 * Chunking for Data Deduplication Based Storage Systems", IEEE Transactions on
 * Parallel and Distributed Systems 31(9), 2020 (IEEE Xplore document 9055082):
 * a 64-bit Gear rolling hash, cut-point skipping below the minimum size,
 * normalized chunking (level 1: a harder mask before the average size, an
 * easier one after it) and "rolling two bytes each time" with a left-shifted
 * copy of the Gear table.
 *
 * Cut points (and the 64-bit hash at each cut) are bit-for-bit those of the
 * Rust crate `fastcdc` (https://github.com/nlfiedler/fastcdc-rs, module
 * `v2020`, version 4.0.1, checked at commit f76938d8c2d7) with normalization
 * level 1 and seed 0. Chunk boundaries feed our content addresses, so they must
 * never change: test/content/fastcdc.spec.ts pins them to the crate's published
 * test vectors. Do not "improve" the algorithm here; a different chunker needs
 * a different name.
 *
 * The code is our own TypeScript; the Gear and mask tables are data of the
 * published algorithm, transcribed from the crate.
 */

/** Minimum, average (target) and maximum chunk size in bytes. */
export interface ChunkerOptions {
  /** No chunk but the last is shorter than this. Even, 64 ..= 1 MiB. */
  minSize: number
  /** Target size; picks the cut masks. A power of two, 256 ..= 4 MiB. */
  avgSize: number
  /** No chunk is longer than this. 1 KiB ..= 16 MiB. */
  maxSize: number
}

/** The sizes xo-mesh uses for builds: 16 KiB / 64 KiB / 256 KiB. Part of our content addresses; never change. */
export const DEFAULT_CHUNKER: ChunkerOptions = Object.freeze({ minSize: 16384, avgSize: 65536, maxSize: 262144 })

/** Thrown for chunker sizes (or a FastCdcVariant) we do not accept; the message names the offending option. */
export class InvalidChunkerOptionsError extends Error {
  override readonly name = 'InvalidChunkerOptionsError'
}

// Bounds of the crate (MINIMUM_MIN ... MAXIMUM_MAX). Outside them its mask
// table has no entry or it never promised results.
const MIN_SIZE_LOW = 64
const MIN_SIZE_HIGH = 1024 * 1024
const AVG_SIZE_LOW = 256
const AVG_SIZE_HIGH = 4 * 1024 * 1024
const MAX_SIZE_LOW = 1024
const MAX_SIZE_HIGH = 16 * 1024 * 1024

/** Normalization level of FastCDC; the product uses 1. */
export type NormalizationLevel = 0 | 1 | 2 | 3

/**
 * Knobs of the crate that the product does not use, offered so that tests can
 * check this implementation against every published vector (the crate's
 * level 0 / level 3 / seed 666 tests, the Remote Execution API's level 2 ones).
 */
export interface FastCdcVariant {
  /** Default 1. */
  normalization?: NormalizationLevel
  /** XORed into the Gear table (and, shifted left by one, into its left-shifted twin), as the crate's `with_level_and_seed`. Default 0n. */
  seed?: bigint
}

function invalid (message: string): never {
  throw new InvalidChunkerOptionsError(message)
}

function checkSize (name: string, value: unknown, low: number, high: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) invalid(`${name} must be an integer, got ${String(value)}`)
  if (value < low || value > high) invalid(`${name} must be between ${low} and ${high} bytes, got ${value}`)
  return value
}

/** Fills in defaults and validates; throws InvalidChunkerOptionsError. */
function resolveOptions (opts: Partial<ChunkerOptions> | undefined): ChunkerOptions {
  const minSize = checkSize('minSize', opts?.minSize ?? DEFAULT_CHUNKER.minSize, MIN_SIZE_LOW, MIN_SIZE_HIGH)
  const avgSize = checkSize('avgSize', opts?.avgSize ?? DEFAULT_CHUNKER.avgSize, AVG_SIZE_LOW, AVG_SIZE_HIGH)
  const maxSize = checkSize('maxSize', opts?.maxSize ?? DEFAULT_CHUNKER.maxSize, MAX_SIZE_LOW, MAX_SIZE_HIGH)
  if (minSize > avgSize || avgSize > maxSize) {
    invalid(`need minSize <= avgSize <= maxSize, got ${minSize} / ${avgSize} / ${maxSize}`)
  }
  // The crate picks the mask by a rounded log2 of avgSize, and that rounding
  // changed in 4.0.0 and back in 4.0.1. Powers of two are the sizes every
  // version agrees on, so they are the only ones we accept.
  if ((avgSize & (avgSize - 1)) !== 0) invalid(`avgSize must be a power of two, got ${avgSize}`)
  // The scan starts at the pair (minSize / 2) * 2; with an odd minSize that is
  // minSize - 1 and the crate can cut a chunk one byte short of the minimum.
  if (minSize % 2 !== 0) invalid(`minSize must be even, got ${minSize}`)
  return { minSize, avgSize, maxSize }
}

function resolveVariant (variant: FastCdcVariant | undefined): { level: NormalizationLevel, seed: bigint } {
  const level = variant?.normalization ?? 1
  if (level !== 0 && level !== 1 && level !== 2 && level !== 3) invalid(`normalization must be 0, 1, 2 or 3, got ${String(level)}`)
  const seed = variant?.seed ?? 0n
  if (typeof seed !== 'bigint' || BigInt.asUintN(64, seed) !== seed) invalid(`seed must be a bigint in [0, 2^64), got ${String(seed)}`)
  return { level, seed }
}

// GEAR[b] is the high (first, big-endian) 8 bytes of MD5 of 64 copies of the
// byte b, as in the C reference implementation (destor) and the crate's
// `GEAR` table (its examples/table64.rs). The spec derives the table from MD5
// for its reference implementation and compares hashes with it.
const GEAR_HEX = `
  3b5d3c7d207e37dc 784d68ba91123086 cd52880f882e7298 eacf8e4e19fdcca7
  c31f385dfbd1632b 1d5f27001e25abe6 83130bde3c9ad991 c4b225676e9b7649
  aa329b29e08eb499 b67fcbd21e577d58 0027baaada2acf6b e3ef2d5ac73c2226
  0890f24d6ed312b7 a809e036851d7c7e f0a6fe5e0013d81b 1d026304452cec14
  03864632648e248f cdaacf3dcd92b9b4 f5e012e63c187856 8862f9d3821c00b6
  a82f7338750f6f8a 1e583dc6c1cb0b6f 7a3145b69743a7f1 abb20fee404807eb
  b14b3cfe07b83a5d b9dc27898adb9a0f 3703f5e91baa62be cf0bb866815f7d98
  3d9867c41ea9dcd3 1be1fa65442bf22c 14300da4c55631d9 e698e9cbc6545c99
  4763107ec64e92a5 c65821fc65696a24 76196c064822f0b7 485be841f3525e01
  f652bc9c85974ff5 cad8352face9e3e9 2a6ed1dceb35e98e c6f483badc11680f
  3cfd8c17e9cf12f1 89b83c5e2ea56471 ae665cfd24e392a9 ec33c4e504cb8915
  3fb9b15fc9fe7451 d7fd1fd1945f2195 31ade0853443efd8 255efc9863e1e2d2
  10eab6008d5642cf 46f04863257ac804 a52dc42a789a27d3 daaadf9ce77af565
  6b479cd53d87febb 6309e2d3f93db72f c5738ffbaa1ff9d6 6bd57f3f25af7968
  67605486d90d0a4a e14d0b9663bfbdae b7bbd8d816eb0414 def8a4f16b35a116
  e7932d85aaaffed6 08161cbae90cfd48 855507beb294f08b 91234ea6ffd399b2
  ad70cf4b2435f302 d289a97565bc2d27 8e558437ffca99de 96d2704b7115c040
  0889bbcdfc660e41 5e0d4e67dc92128d 72a9f8917063ed97 438b69d409e016e3
  df4fed8a5d8a4397 00f41dcf41d403f7 4814eb038e52603f 9dafbacc58e2d651
  fe2f458e4be170af 4457ec414df6a940 06e62f1451123314 bd1014d173ba92cc
  def318e25ed57760 9fea0de9dfca8525 459de1e76c20624b aeec189617e2d666
  126a2c06ab5a83cb b1321532360f6132 65421503dbb40123 2d67c287ea089ab3
  6c93bff5a56bd6b6 4ffb2036cab6d98d ce7b785b1be7ad4f edb42ef6189fd163
  dc905288703988f6 365f9c1d2c691884 c640583680d99bfe 3cd4624c07593ec6
  7f1ea8d85d7c5805 014842d480b57149 0b649bcb5a828688 bcd5708ed79b18f0
  e987c862fbd2f2f0 982731671f0cd82c baf13e8b16d8c063 8ea3109cbd951bba
  d141045bfb385cad 2acbc1a0af1f7d30 e6444d89df03bfdf a18cc771b8188ff9
  9834429db01c39bb 214add07fe086a1f 8f07c19b1f6b3ff9 56a297b1bf4ffe55
  94d558e493c54fc7 40bfc24c764552cb 931a706f8a8520cb 32229d322935bd52
  2560d0f5dc4fefaf 9dbcc48355969bb6 0fd81c3985c0b56a e03817e1560f2bda
  c1bb4f81d892b2d5 b0c4864f4e28d2d7 3ecc49f9d9d6c263 51307e99b52ba65e
  8af2b688da84a752 f5d72523b91b20b6 6d95ff1ff4634806 562f21555458339a
  c0ce47f889336346 487823e5089b40d8 e4727c7ebc6d9592 5a8f7277e94970ba
  fca2f406b1c8bb50 5b1f8a95f1791070 d304af9fc9028605 5440ab7fc930e748
  312d25fbca2ab5a1 10f4a4b234a4d575 90301d55047e7473 3b6372886c61591e
  293402b77c444e06 451f34a4d3e97dd7 3158d814d81bc57b 034942425b9bda69
  e2032ff9e532d9bb 62ae066b8b2179e5 9545e10c2f8d71d8 7ff7483eb2d23fc0
  00945fcebdc98d86 8764bbbe99b26ca2 1b1ec62284c0bfc3 58e0fcc4f0aa362b
  5f4abefa878d458d fd74ac2f9607c519 a4e3fb37df8cbfa9 bf697e43cac574e5
  86f14a3f68f4cd53 24a23d076f1ce522 e725cd8048868cc8 bf3c729eb2464362
  d8f6cd57b3cc1ed8 6329e52425541577 62aa688ad5ae1ac0 0a242566269bf845
  168b1a4753aca74b f789afefff2e7e3c 6c3362093b6fccdb 4ce8f50bd28c09b2
  006a2db95ae8aa93 975b0d623c3d1a8c 18605d3935338c5b 5bb6f6136cad3c71
  0f53a20701f8d8a6 ab8c5ad2e7e93c67 40b5ac5127acaa29 8c7bf63c2075895f
  78bd9f7e014a805c b2c9e9f4f9c8c032 efd6049827eb91f3 2be459f482c16fbd
  d92ce0c5745aaa8c 0aaa8fb298d965b9 2b37f92c6c803b15 8c54a5e94e0f0e78
  95f9b6e90c0a3032 e7939faa436c7874 d16bfe8f6a8a40c9 44982b86263fd2fa
  e285fb39f984e583 779a8df72d7619d3 f2d79a8de8d5dd1e d1037354d66684e2
  004c82a4e668a8e5 31d40a7668b044e6 d70578538bd02c11 db45431078c5f482
  977121bb7f6a51ad 73d5ccbd34eff8dd e437a07d356e17cd 47b2782043c95627
  9fb251413e41d49a ccd70b60652513d3 1c95b31e8a1b49b2 cae73dfd1bcb4c1b
  34d98331b1f5b70f 784e39f22338d92f 18613d4a064df420 f1d8dae25f0bcebe
  33f77c15ae855efc 3c88b3b912eb109c 956a2ec96bafeea5 1aa005b5e0ad0e87
  5500d70527c4bb8e e36c57196421cc44 13c4d286cc36ee39 5654a23d818b2a81
  77b1dc13d161abdc 734f44de5f8d5eb5 60717e174a6c89a2 d47d9649266a211e
  5b13a4322bb69e90 f7669609f8b5fc3c 21e6ac55bedcdac9 9b56b62b61166dea
  f48f66b939797e9c 35f332f9c0e6ae9a cc733f6a9a878db0 3da161e41cc108c2
  b7d74ae535914d51 4d493b0b11d36469 ce264d1dfba9741a a9d1f2dc7436dc06
  70738016604c2a27 231d36e96e93f3d5 7666881197838d19 4a2a83090aaad40c
  f1e761591668b35d 7363236497f730a7 301080e37379dd4d 502dea2971827042
  c2c5eb858f32625f 786afb9edfafbdff daee0d868490b2a4 617366b3268609f6
  ae0e35a0fe46173e d1a07de93e824f11 079b8b115ea4cca8 93a99274558faebb
  fb1e6e22e08a03b3 ea635fdba3698dd0 cf53659328503a5c cde3b31e6fd5d780
  8e3e4221d3614413 ef14d0d86bf1a22c e1d830d3f16c5ddb aabd2b2a451504e1
`

// MASKS[k] has k bits set, spread over bits 4..47; the mask for an average of
// 2^b bytes is MASKS[b + level] before the average and MASKS[b - level] after.
// Entries 6..17 (64 B to 128 KiB) come from the C reference implementation,
// the others from restic-FastCDC, via the crate (`v2020::MASKS`). All are
// below 2^53, so plain numbers are exact.
const MASKS: readonly number[] = [
  0, 0, 0, 0, 0, // unused
  0x0000000001804110, // 5: only for level 3 with a 256 B average
  0x0000000001803110, // 6: 64 B
  0x0000000018035100,
  0x0000001800035300,
  0x0000019000353000,
  0x0000590003530000, // 10: 1 KiB
  0x0000d90003530000,
  0x0000d90103530000,
  0x0000d90303530000,
  0x0000d90313530000,
  0x0000d90f03530000,
  0x0000d90303537000, // 16: 64 KiB
  0x0000d90703537000,
  0x0000d90707537000,
  0x0000d91707537000,
  0x0000d91747537000, // 20: 1 MiB
  0x0000d91767537000,
  0x0000d93767537000,
  0x0000d93777537000,
  0x0000d93777577000, // 24: 16 MiB
  0x0000db3777577000 // 25: only for level 3 with a 4 MiB average
]

const GEAR: readonly bigint[] = GEAR_HEX.trim().split(/\s+/).map(h => BigInt('0x' + h))
if (GEAR.length !== 256) throw new Error(`fastcdc: GEAR table has ${GEAR.length} entries, expected 256`)

const U64 = (1n << 64n) - 1n

// How the hash is kept in 32-bit integers
// ---------------------------------------
// The crate's hash is a u64 updated as h = (h << 2) + GEAR_LS[a] (tested with
// mask << 1), then h = h + GEAR[b] (tested with mask), both wrapping. Shifts
// and adds only carry upwards, so bit k of h depends only on bits 0..k of the
// inputs; the masks (also when shifted left by one) touch bits 4..48 only.
// So we keep bits 0..55 of h, in two int32s:
//   lo = bits 0..23, always normalised to [0, 2^24);
//   hi = bits 24..55, wrapping modulo 2^32 (which drops bits 56..63: never tested).
// After each add, lo >> 24 is the carry into hi, including the two bits that
// lo << 2 pushed past bit 23, so no comparison or branch is needed for it.
// A mask m is tested as (lo & m mod 2^24) | (hi & floor(m / 2^24)).
// Bits 56..63 of the crate's hash are only reported, never tested: because
// every step shifts left, the 64-bit hash at a position is a function of the
// last 64 bytes, and chunkBoundaries() recomputes it from them with BigInt.
//
// The table is interleaved per byte value b, to have one array and one base
// index in the loop: [GEAR_LS lo, GEAR_LS hi, GEAR lo, GEAR hi] at 4*b.

function split24 (v: bigint, into: Int32Array, at: number): void {
  into[at] = Number(v & 0xffffffn)
  into[at + 1] = Number(BigInt.asIntN(32, v >> 24n))
}

function gearTable (seed: bigint): Int32Array {
  const t = new Int32Array(1024)
  for (let b = 0; b < 256; b++) {
    const g = GEAR[b]! ^ seed
    split24((g << 1n) & U64, t, 4 * b)
    split24(g, t, 4 * b + 2)
  }
  return t
}

const DEFAULT_TABLE = gearTable(0n)

/**
 * The hot loop: rolls the hash over the byte pairs (src[j], src[j+1]) for
 * j = i, i+2, ... < end ((end - i) even), starting from the state in st, and
 * returns the index of the first byte whose update makes the hash pass its
 * mask (the crate's cut point: that byte starts the next chunk), or -1 with st
 * holding the state after the last pair. The even byte of a pair is tested
 * with the left-shifted mask (evenLo/evenHi), the odd one with the mask itself.
 *
 * Kept small and free of `this` so that V8 can keep most of the loop's values in
 * registers.
 */
function scanPairs (
  src: Uint8Array, i: number, end: number, st: Int32Array, t: Int32Array,
  evenLo: number, evenHi: number, oddLo: number, oddHi: number
): number {
  let lo = st[0]!
  let hi = st[1]!
  let cut = -1
  for (; i < end; i += 2) {
    let k = src[i]! << 2
    lo = ((lo << 2) + t[k]!) | 0
    hi = ((hi << 2) + t[k + 1]! + (lo >> 24)) | 0
    lo &= 0xffffff
    if (((lo & evenLo) | (hi & evenHi)) === 0) { cut = i; break }
    k = src[i + 1]! << 2
    lo = (lo + t[k + 2]!) | 0
    hi = (hi + t[k + 3]! + (lo >> 24)) | 0
    lo &= 0xffffff
    if (((lo & oddLo) | (hi & oddHi)) === 0) { cut = i + 1; break }
  }
  st[0] = lo
  st[1] = hi
  return cut
}

/**
 * The streaming state machine behind Chunker. Positions below are relative to
 * the start of the current chunk; n counts its bytes seen so far.
 *
 * The crate decides a chunk from R = min(bytes left, maxSize) bytes: it hashes
 * the pairs starting at minSize, minSize + 2, ... while the pair lies below
 * 2 * floor(R / 2), with the small-chunk mask for pairs below avgSize and the
 * large-chunk mask after, and cuts at the first byte that passes; without a
 * cut the chunk is R bytes. None of that depends on R except where the scan
 * stops, so a cut found in the bytes seen so far is final, and a pair is
 * scanned as soon as both its bytes are here. A lone first byte of a pair is
 * held back (this.half) because at end of input the crate never scans it.
 */
class Engine {
  private readonly min: number
  private readonly max: number
  private readonly avgEnd: number // pairs at or after this use the large-chunk mask
  private readonly maxEnd: number // no pair at or after this is scanned (2 * floor(max / 2))
  private readonly t: Int32Array
  private readonly sEvenLo: number
  private readonly sEvenHi: number
  private readonly sOddLo: number
  private readonly sOddHi: number
  private readonly lEvenLo: number
  private readonly lEvenHi: number
  private readonly lOddLo: number
  private readonly lOddHi: number
  private readonly st = new Int32Array(2) // hash state: lo, hi (see above)
  private readonly pair = new Uint8Array(2) // a pair split across push() calls
  private n = 0
  private half = -1 // held-back first byte of a pair, or -1

  constructor (opts: ChunkerOptions, level: NormalizationLevel, table: Int32Array) {
    this.min = opts.minSize
    this.max = opts.maxSize
    this.avgEnd = opts.avgSize
    this.maxEnd = opts.maxSize - (opts.maxSize % 2)
    this.t = table
    const bits = Math.log2(opts.avgSize) // exact: avgSize is a power of two
    const small = MASKS[bits + level]!
    const large = MASKS[bits - level]!
    const lo = (m: number): number => m % 0x1000000
    const hi = (m: number): number => Math.floor(m / 0x1000000)
    this.sEvenLo = lo(small * 2)
    this.sEvenHi = hi(small * 2)
    this.sOddLo = lo(small)
    this.sOddHi = hi(small)
    this.lEvenLo = lo(large * 2)
    this.lEvenHi = hi(large * 2)
    this.lOddLo = lo(large)
    this.lOddHi = hi(large)
  }

  /** Scans the pairs in src[i, e) of the current chunk, which are at n, n + 2, ... */
  private scan (src: Uint8Array, i: number, e: number, n: number): number {
    let cut = -1
    if (n < this.avgEnd) {
      const e1 = Math.min(e, i + this.avgEnd - n)
      cut = scanPairs(src, i, e1, this.st, this.t, this.sEvenLo, this.sEvenHi, this.sOddLo, this.sOddHi)
      i = e1
    }
    if (cut < 0 && i < e) {
      cut = scanPairs(src, i, e, this.st, this.t, this.lEvenLo, this.lEvenHi, this.lOddLo, this.lOddHi)
    }
    return cut
  }

  private newChunk (): void {
    this.st[0] = 0
    this.st[1] = 0
  }

  /** Appends to out the length of every chunk that data completes. */
  push (data: Uint8Array, out: number[]): void {
    const len = data.length
    const min = this.min
    const max = this.max
    const maxEnd = this.maxEnd
    let n = this.n
    let i = 0
    for (;;) {
      if (n < min) {
        // Cut-point skipping: bytes below the minimum are not even hashed.
        if (i >= len) break
        const k = Math.min(min - n, len - i)
        n += k
        i += k
      } else if (n >= maxEnd) {
        // No cut in any pair below maxSize: the chunk is maxSize bytes (one
        // more unscanned byte when maxSize is odd).
        if (n === max) {
          out.push(n)
          n = 0
          this.newChunk()
          continue
        }
        if (i >= len) break
        const k = Math.min(max - n, len - i)
        n += k
        i += k
      } else if (i >= len) {
        break
      } else if (this.half >= 0) {
        const pair = this.pair
        pair[0] = this.half
        pair[1] = data[i]!
        this.half = -1
        const cut = this.scan(pair, 0, 2, n)
        if (cut === 0) {
          // the held-back byte starts the next chunk; data[i] is not consumed yet
          out.push(n)
          n = 1
          this.newChunk()
        } else if (cut === 1) {
          out.push(n + 1)
          n = 0
          this.newChunk()
        } else {
          n += 2
          i += 1
        }
      } else if (len - i === 1) {
        this.half = data[i]!
        i += 1
      } else {
        const avail = len - i // not `& ~1`: buffers may exceed 2 GiB
        const e = i + Math.min(avail - (avail % 2), maxEnd - n)
        const cut = this.scan(data, i, e, n)
        if (cut >= 0) {
          out.push(n + cut - i)
          n = 0
          this.newChunk()
          i = cut
        } else {
          n += e - i
          i = e
        }
      }
    }
    this.n = n
  }

  /** Appends the length of the last chunk, if any, and resets for a new stream. */
  finish (out: number[]): void {
    const n = this.n + (this.half >= 0 ? 1 : 0)
    if (n > 0) out.push(n)
    this.n = 0
    this.half = -1
    this.newChunk()
  }
}

/**
 * Streaming FastCDC 2020 chunker (normalization level 1, the crate's Gear
 * table). Feed the bytes of one stream, in order and in pieces of any size,
 * with push(); end the stream with finish().
 *
 * Promises: the lengths returned by all push() calls and then finish(), in
 * order, are exactly chunkLengths(the whole stream) however the stream was
 * split; each is <= maxSize, each but the last is >= minSize; they sum to the
 * stream's length. A length is returned as soon as that chunk is final. The
 * chunker keeps no reference to the buffers given to push() (at most one byte
 * is copied), so callers may reuse them. After finish() it is ready for a new
 * stream.
 */
export class Chunker {
  /** The validated sizes, defaults filled in. */
  readonly options: Readonly<ChunkerOptions>
  readonly #engine: Engine

  /** @throws InvalidChunkerOptionsError for sizes outside the documented bounds. */
  constructor (opts?: Partial<ChunkerOptions>) {
    this.options = Object.freeze(resolveOptions(opts))
    this.#engine = new Engine(this.options, 1, DEFAULT_TABLE)
  }

  /** Consumes data; returns the lengths of the chunks completed by it (often none), in order. */
  push (data: Uint8Array): number[] {
    const out: number[] = []
    this.#engine.push(data, out)
    return out
  }

  /** Ends the stream; returns the length of the last chunk ([] if nothing is left, e.g. for empty input). */
  finish (): number[] {
    const out: number[] = []
    this.#engine.finish(out)
    return out
  }
}

/**
 * Lengths of the FastCDC 2020 chunks of a whole buffer, in order; [] for an
 * empty buffer. Same results as the crate's `v2020::FastCDC::new(data, min,
 * avg, max)`.
 * @throws InvalidChunkerOptionsError for bad sizes.
 */
export function chunkLengths (data: Uint8Array, opts?: Partial<ChunkerOptions>): number[] {
  const chunker = new Chunker(opts)
  const out = chunker.push(data)
  for (const n of chunker.finish()) out.push(n)
  return out
}

/**
 * Re-slices a stream of buffers (e.g. fs.createReadStream with a large
 * highWaterMark) into its FastCDC 2020 chunks, in order. A chunk that lies
 * within one input buffer is yielded as a subarray of it (no copy); only a
 * chunk spanning buffers is copied into a new one. So the source must not
 * reuse or change a buffer after yielding it (Node's file and socket streams
 * do not), and consumers should treat the chunks as read-only.
 *
 * Promises: the concatenation of the chunks is the concatenation of the
 * input; their lengths are chunkLengths(whole input). Empty input yields
 * nothing. Options are validated before the source is read (an async
 * generator's body starts at the first next(), so that is where a bad option
 * throws).
 * @throws InvalidChunkerOptionsError for bad sizes; TypeError if the source yields something other than a Uint8Array.
 */
export async function * chunkStream (
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  opts?: Partial<ChunkerOptions>
): AsyncGenerator<Uint8Array> {
  const chunker = new Chunker(opts)
  // The bytes seen but not yet yielded: tails of earlier buffers, in order.
  // (Usually the start of the current chunk; the chunker may also end a chunk
  // inside them, when it held back the last byte of a buffer.)
  let parts: Uint8Array[] = []
  let partsLength = 0
  // Removes the first n bytes of parts and returns them, copied only if they
  // span parts.
  const drain = (n: number): Uint8Array => {
    partsLength -= n
    const first = parts[0]!
    if (first.length === n) {
      parts.shift()
      return first
    }
    if (first.length > n) {
      parts[0] = first.subarray(n)
      return first.subarray(0, n)
    }
    const chunk = new Uint8Array(n)
    let at = 0
    let used = 0
    while (at < n) {
      const p = parts[used]!
      const k = Math.min(p.length, n - at)
      chunk.set(k === p.length ? p : p.subarray(0, k), at)
      at += k
      if (k === p.length) used++
      else parts[used] = p.subarray(k)
    }
    parts = parts.slice(used)
    return chunk
  }
  for await (const buf of source) {
    if (!(buf instanceof Uint8Array)) throw new TypeError(`chunkStream: source yielded ${typeof buf}, expected Uint8Array`)
    let at = 0
    for (const n of chunker.push(buf)) {
      if (partsLength === 0) {
        yield buf.subarray(at, at + n)
        at += n
      } else {
        if (n > partsLength) {
          const end = at + n - partsLength
          parts.push(buf.subarray(at, end))
          partsLength = n
          at = end
        }
        yield drain(n)
      }
    }
    if (at < buf.length) {
      parts.push(buf.subarray(at))
      partsLength += buf.length - at
    }
  }
  if (chunker.finish().length > 0) yield drain(partsLength)
}

/** One chunk as the crate reports it. */
export interface ChunkBoundary {
  /** Offset of the chunk's first byte. */
  offset: number
  /** Length in bytes. */
  length: number
  /** The crate's 64-bit Gear hash where the scan stopped (0n when it scanned nothing). */
  hash: bigint
}

/**
 * Chunks of a whole buffer with the crate's 64-bit hash of each, optionally
 * with another normalization level or a seed. For checking against published
 * vectors and for diagnostics; the product chunks with Chunker and the
 * defaults (level 1, seed 0), which give the same offsets and lengths as this
 * does without a variant.
 * @throws InvalidChunkerOptionsError for bad sizes, level or seed.
 */
export function chunkBoundaries (data: Uint8Array, opts?: Partial<ChunkerOptions>, variant?: FastCdcVariant): ChunkBoundary[] {
  const o = resolveOptions(opts)
  const { level, seed } = resolveVariant(variant)
  const engine = new Engine(o, level, seed === 0n ? DEFAULT_TABLE : gearTable(seed))
  const lengths: number[] = []
  engine.push(data, lengths)
  engine.finish(lengths)
  const gear = seed === 0n ? GEAR : GEAR.map(g => g ^ seed)
  const result: ChunkBoundary[] = []
  let offset = 0
  for (const length of lengths) {
    // A cut always lands below R = min(bytes left, maxSize), so length === R
    // means the scan ran out (the crate then reports the hash after the last
    // whole pair); otherwise the byte at `length` triggered the cut.
    const r = Math.min(data.length - offset, o.maxSize)
    const last = length === r ? r - (r % 2) - 1 : length
    let hash = 0n
    for (let p = Math.max(o.minSize, last - 63); p <= last; p++) {
      hash = ((hash << 1n) + gear[data[offset + p]!]!) & U64
    }
    // An even position is tested before its pair's second byte, on the hash
    // doubled (the crate keeps it left-shifted there).
    if (length !== r && last % 2 === 0) hash = (hash << 1n) & U64
    result.push({ offset, length, hash })
    offset += length
  }
  return result
}
