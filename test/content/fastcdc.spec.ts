import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import {
  Chunker, DEFAULT_CHUNKER, InvalidChunkerOptionsError, chunkBoundaries, chunkLengths, chunkStream,
  type ChunkBoundary, type ChunkerOptions, type FastCdcVariant, type NormalizationLevel
} from '../../src/content/fastcdc.ts'

// Public-domain test image used by fastcdc-rs and the Remote Execution API
// (see test/fixtures/README.md).
const SEKIEN = new Uint8Array(readFileSync(new URL('../fixtures/SekienAkashita.jpg', import.meta.url)))
const SEKIEN_SHA256 = 'd9e749d9367fc908876749d6502eb212fee88c9a94892fb07da5ef3ba8bc39ed'

const U64 = (1n << 64n) - 1n

// ---------------------------------------------------------------------------
// An independent, slow reference: the crate's v2020 `cut` written out with
// BigInt, with the Gear table derived from MD5 (not copied from the module).

/** GEAR[b] = first 8 bytes (big-endian) of MD5 of 64 copies of b, as the crate's examples/table64.rs. */
const REF_GEAR: readonly bigint[] = Array.from({ length: 256 }, (_, b) =>
  BigInt('0x' + createHash('md5').update(new Uint8Array(64).fill(b)).digest('hex').slice(0, 16)))

/** fastcdc-rs src/v2020/mod.rs `MASKS`: entry k has k bits set. */
const REF_MASKS: readonly bigint[] = [
  0n, 0n, 0n, 0n, 0n,
  0x0000000001804110n, 0x0000000001803110n, 0x0000000018035100n, 0x0000001800035300n,
  0x0000019000353000n, 0x0000590003530000n, 0x0000d90003530000n, 0x0000d90103530000n,
  0x0000d90303530000n, 0x0000d90313530000n, 0x0000d90f03530000n, 0x0000d90303537000n,
  0x0000d90703537000n, 0x0000d90707537000n, 0x0000d91707537000n, 0x0000d91747537000n,
  0x0000d91767537000n, 0x0000d93767537000n, 0x0000d93777537000n, 0x0000d93777577000n,
  0x0000db3777577000n
]

function referenceChunks (data: Uint8Array, o: ChunkerOptions, level = 1, seed = 0n): ChunkBoundary[] {
  const bits = Math.round(Math.log2(o.avgSize))
  const maskS = REF_MASKS[bits + level]!
  const maskL = REF_MASKS[bits - level]!
  const gear = REF_GEAR.map(g => g ^ seed)
  const gearLs = gear.map(g => (g << 1n) & U64)
  const out: ChunkBoundary[] = []
  let offset = 0
  while (offset < data.length) {
    let remaining = data.length - offset
    let hash = 0n
    let length = remaining
    if (remaining > o.minSize) {
      let center = o.avgSize
      if (remaining > o.maxSize) remaining = o.maxSize
      else if (remaining < center) center = remaining
      length = remaining
      for (let index = Math.floor(o.minSize / 2); index < Math.floor(remaining / 2); index++) {
        const mask = index < Math.floor(center / 2) ? maskS : maskL
        const a = 2 * index
        hash = ((hash << 2n) + gearLs[data[offset + a]!]!) & U64
        if ((hash & (mask << 1n)) === 0n) { length = a; break }
        hash = (hash + gear[data[offset + a + 1]!]!) & U64
        if ((hash & mask) === 0n) { length = a + 1; break }
      }
    }
    out.push({ offset, length, hash })
    offset += length
  }
  return out
}

// ---------------------------------------------------------------------------
// Helpers

/** Deterministic bytes (xorshift32); optionally with runs of one byte value, which force maxSize cuts. */
function pseudoRandom (length: number, seed: number, runs = false): Uint8Array {
  const out = new Uint8Array(length)
  let x = (seed | 0) || 0x9e3779b9
  const next = (): number => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return x >>> 0
  }
  let i = 0
  while (i < length) {
    const r = next()
    if (runs && (r & 0xff) < 8) {
      // a run of a constant byte, up to 96 KiB
      const end = Math.min(length, i + (next() % 98304))
      out.fill(r >>> 24, i, end)
      i = end
    } else {
      const end = Math.min(length, i + 4096)
      for (; i < end; i += 4) {
        const v = next()
        out[i] = v
        out[i + 1] = v >>> 8
        out[i + 2] = v >>> 16
        out[i + 3] = v >>> 24
      }
    }
  }
  return out
}

function sha256 (data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

function offsetsOf (lengths: readonly number[]): number[] {
  let at = 0
  return lengths.map(n => { const o = at; at += n; return o })
}

/** Splits data into pieces whose sizes come from the seed: many of 1..3 bytes, some small, some large. */
function splitBySeed (data: Uint8Array, seed: number): Uint8Array[] {
  const sizes = pseudoRandom(4096, seed)
  const pieces: Uint8Array[] = []
  let at = 0
  let k = 0
  while (at < data.length) {
    const r = sizes[k++ % sizes.length]!
    const s = sizes[k++ % sizes.length]! * 256 + sizes[k++ % sizes.length]!
    const size = r < 64 ? 1 + (r % 3) : r < 128 ? 1 + (s % 300) : r < 250 ? 1 + s * 3 : 0 // 0: an empty push
    pieces.push(data.subarray(at, at + size))
    at += size
  }
  return pieces
}

function streamLengths (pieces: readonly Uint8Array[], o: Partial<ChunkerOptions>): number[] {
  const chunker = new Chunker(o)
  const out: number[] = []
  for (const p of pieces) out.push(...chunker.push(p))
  out.push(...chunker.finish())
  return out
}

async function collect (source: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  for await (const c of source) out.push(c)
  return out
}

function concat (parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.length }
  return out
}

/** Parameter sets for property tests: small ones give many chunks; odd max, min = avg, avg = max are edge cases. */
const PARAMS: readonly ChunkerOptions[] = [
  { minSize: 64, avgSize: 256, maxSize: 1024 },
  { minSize: 64, avgSize: 256, maxSize: 1025 },
  { minSize: 256, avgSize: 256, maxSize: 4096 },
  { minSize: 1024, avgSize: 4096, maxSize: 4096 },
  { minSize: 2048, avgSize: 8192, maxSize: 32767 },
  { minSize: 4096, avgSize: 16384, maxSize: 65535 },
  DEFAULT_CHUNKER
]

// ---------------------------------------------------------------------------

describe('content/fastcdc', function () {
  it('has the same fixture as fastcdc-rs and the Remote Execution API (length, SHA-256)', function () {
    assert.equal(SEKIEN.length, 109466)
    assert.equal(sha256(SEKIEN), SEKIEN_SHA256)
  })

  it('has the reference masks and Gear table of the algorithm (sanity of the spec itself)', function () {
    for (let k = 5; k < REF_MASKS.length; k++) {
      assert.equal(REF_MASKS[k]!.toString(2).replaceAll('0', '').length, k, `MASKS[${k}]`)
    }
    // first and last entries of the crate's GEAR table, as printed there
    assert.equal(REF_GEAR[0], 0x3b5d3c7d207e37dcn)
    assert.equal(REF_GEAR[255], 0xaabd2b2a451504e1n)
  })

  describe('reference vectors of fastcdc-rs (src/v2020/mod.rs tests)', function () {
    // Expected (hash, length) pairs quoted from nlfiedler/fastcdc-rs,
    // src/v2020/mod.rs, at commit f76938d8c2d77799852415247c9b3e1fd91b73f3
    // (fastcdc 4.0.1; unchanged since 3.0.0). Offsets are their running sums,
    // and for 16k they are also listed by test_iter_sekien_16k_chunks.
    const cases: Array<{ test: string, o: ChunkerOptions, variant?: FastCdcVariant, expected: Array<[bigint, number]> }> = [
      {
        test: 'test_cut_sekien_16k_chunks',
        o: { minSize: 4096, avgSize: 16384, maxSize: 65535 },
        expected: [
          [17968276318003433923n, 21325], [8197189939299398838n, 17140], [13019990849178155730n, 28084],
          [4509236223063678303n, 18217], [2504464741100432583n, 24700]
        ]
      },
      {
        test: 'test_cut_sekien_32k_chunks',
        o: { minSize: 8192, avgSize: 32768, maxSize: 131072 },
        expected: [[15733367461443853673n, 66549], [6321136627705800457n, 42917]]
      },
      {
        test: 'test_cut_sekien_64k_chunks',
        o: { minSize: 16384, avgSize: 65536, maxSize: 262144 },
        expected: [[2504464741100432583n, 109466]]
      },
      {
        test: 'test_cut_sekien_16k_nc_0',
        o: { minSize: 4096, avgSize: 16384, maxSize: 65535 },
        variant: { normalization: 0 },
        expected: [
          [443122261039895162n, 6634], [15733367461443853673n, 59915], [10460176299449652894n, 25597],
          [6197802202431009942n, 5237], [6321136627705800457n, 12083]
        ]
      },
      {
        test: 'test_cut_sekien_16k_nc_3',
        o: { minSize: 8192, avgSize: 16384, maxSize: 32768 },
        variant: { normalization: 3 },
        expected: [
          [10718006254707412376n, 17350], [13104072099671895560n, 19911], [12322483109039221194n, 17426],
          [16009206469796846404n, 17519], [2473608525189754172n, 19940], [2504464741100432583n, 17320]
        ]
      },
      {
        test: 'test_cut_sekien_16k_chunks_seed_666',
        o: { minSize: 4096, avgSize: 16384, maxSize: 65535 },
        variant: { seed: 666n },
        expected: [
          [9312357714466240148n, 10605], [226910853333574584n, 55745], [12271755243986371352n, 11346],
          [14153975939352546047n, 5883], [5890158701071314778n, 11586], [8981594897574481255n, 14301]
        ]
      }
    ]
    for (const c of cases) {
      it(`${c.test}: ${c.o.minSize}/${c.o.avgSize}/${c.o.maxSize}${c.variant === undefined ? '' : ' ' + JSON.stringify(c.variant, (_, v: unknown) => typeof v === 'bigint' ? String(v) : v)}`, function () {
        const lengths = c.expected.map(([, n]) => n)
        const expected = c.expected.map(([hash, length], i) => ({ offset: offsetsOf(lengths)[i]!, length, hash }))
        assert.deepEqual(chunkBoundaries(SEKIEN, c.o, c.variant), expected)
        assert.deepEqual(referenceChunks(SEKIEN, c.o, c.variant?.normalization, c.variant?.seed), expected)
        if (c.variant === undefined) {
          assert.deepEqual(chunkLengths(SEKIEN, c.o), lengths)
          assert.deepEqual(streamLengths(splitBySeed(SEKIEN, 7), c.o), lengths)
        }
      })
    }

    it('test_iter_sekien_16k_chunks: offsets 0, 21325, 38465, 66549, 84766', function () {
      const got = chunkBoundaries(SEKIEN, { minSize: 4096, avgSize: 16384, maxSize: 65535 }).map(b => b.offset)
      assert.deepEqual(got, [0, 21325, 38465, 66549, 84766])
    })

    it('test_cut_all_zeros: 10240 zero bytes at 64/256/1024 are ten maximal chunks with hash 14169102344523991076', function () {
      const o = { minSize: 64, avgSize: 256, maxSize: 1024 }
      const zeros = new Uint8Array(10240)
      assert.deepEqual(chunkBoundaries(zeros, o), Array.from({ length: 10 }, (_, i) => ({ offset: 1024 * i, length: 1024, hash: 14169102344523991076n })))
      assert.deepEqual(chunkLengths(zeros, o), new Array<number>(10).fill(1024))
    })

    it('test_fastcdc_covers_every_byte: empty, short, all-zero and exactly-minimum inputs at 4096/16384/65535', function () {
      // The crate's test only checks that the chunks cover the input; the
      // lengths follow from its rules (input <= minSize: one chunk; zeros
      // never pass a mask, so they cut at maxSize, here odd).
      const o = { minSize: 4096, avgSize: 16384, maxSize: 65535 }
      assert.deepEqual(chunkLengths(new Uint8Array(0), o), [])
      assert.deepEqual(chunkLengths(new Uint8Array(10), o), [10])
      assert.deepEqual(chunkLengths(SEKIEN.subarray(0, 4096), o), [4096])
      assert.deepEqual(chunkLengths(new Uint8Array(50000), o), [50000]) // below maxSize: one chunk
      assert.deepEqual(chunkLengths(new Uint8Array(150000), o), [65535, 65535, 18930])
    })
  })

  describe('reference vectors of the Remote Execution API (fastcdc2020_test_vectors.txt)', function () {
    // Quoted from bazelbuild/remote-apis,
    // build/bazel/remote/execution/v2/fastcdc2020_test_vectors.txt at commit
    // becdd8f9ff811df88a22d3eadd6341753d51d167: normalization level 2,
    // 4096/16384/65535, offset, length, sha256 of the chunk, 64-bit hash.
    const o = { minSize: 4096, avgSize: 16384, maxSize: 65535 }
    const vectors: Array<{ seed: bigint, rows: Array<[number, number, string, bigint]> }> = [
      {
        seed: 0n,
        rows: [
          [0, 19186, '0f9efa589121d5d9e9e2c4ace91337d77cae866537143f6f15a0ffd525a77c2d', 17583755766661134474n],
          [19186, 19279, 'c7c86a165573c16448cda35c9169742e85645af42be22889f8b96b8ee0ec7cb0', 4098594969649699419n],
          [38465, 17354, 'bc88521e28a8b4479cdea5f75aa721a24f3a0a7d0be903aa6d505c574e51e89d', 2365586132076908760n],
          [55819, 16387, '4b8dac2652e4685c629d2bb1ae9d4448e676b86f2e67ca0b2fff3d9580184b79', 16009206469796846404n],
          [72206, 19940, 'c0a7062da6f2386c28e086ee0cedd5732252741269838773cff1ddb05b2df6ed', 2473608525189754172n],
          [92146, 17320, '7fa5b12134dc75cd2ac8dc60d3a8f3c8d22f0ee9d4cf74a4aa937e2a0d2d79a5', 2504464741100432583n]
        ]
      },
      {
        seed: 666n,
        rows: [
          [0, 17635, 'cb3a9d80a3569772d4ed331ca37ab0c862c759897b890fc1aac90a4f2ea3a407', 17021115692437263050n],
          [17635, 17334, 'd758c6b7b0b7eef1e996f8ccd17de6c645360b03a26c35541e7581348ac08944', 8231525949846907466n],
          [34969, 19136, '24846aefd89e510594bae3e9d7d5ea5012067601512610fed126a3c57ba993f5', 10944310959829698982n],
          [54105, 17467, 'efa785e1fefb49f190e665f72fd246c1442079874508c312196da1fb3040d00b', 13602876513398592944n],
          [71572, 23593, 'a2f557bdd8d40d8faada963ad5f91ec54b10ccee7c5ae72754a65137592dc607', 2945079350535657389n],
          [95165, 14301, 'e131100b4a7147ccad19dc63c4a2fac1f5d8b644e1373eeb6803825024234efc', 8981594897574481255n]
        ]
      }
    ]
    for (const { seed, rows } of vectors) {
      it(`seed ${seed}`, function () {
        const got = chunkBoundaries(SEKIEN, o, { normalization: 2, seed })
        assert.deepEqual(got.map(b => [b.offset, b.length, sha256(SEKIEN.subarray(b.offset, b.offset + b.length)), b.hash]), rows)
      })
    }
  })

  describe('properties', function () {
    it('matches the BigInt reference (offsets, lengths and hashes) on random data, levels and seeds', function () {
      fc.assert(fc.property(
        fc.uint8Array({ maxLength: 24 * 1024 }),
        fc.boolean(),
        fc.constantFrom(...PARAMS.slice(0, 4)),
        fc.constantFrom<NormalizationLevel>(0, 1, 2, 3),
        fc.bigInt({ min: 0n, max: U64 }),
        (bytes, lowEntropy, o, normalization, seed) => {
          // low-entropy data (values 0..3) reaches maxSize and the odd-max tail more often
          const data = lowEntropy ? bytes.map(b => b & 3) : bytes
          const variant = { normalization, seed: normalization === 1 ? 0n : seed }
          assert.deepEqual(chunkBoundaries(data, o, variant), referenceChunks(data, o, variant.normalization, variant.seed))
        }
      ), { numRuns: 60 })
    })

    it('streaming over any split equals chunking the whole buffer; sizes are within bounds and sum to the input', function () {
      fc.assert(fc.property(
        fc.integer({ min: 0, max: 2 * 1024 * 1024 }),
        fc.integer(),
        fc.boolean(),
        fc.constantFrom(...PARAMS),
        (length, seed, runs, o) => {
          const data = pseudoRandom(length, seed, runs)
          const whole = chunkLengths(data, o)
          assert.deepEqual(streamLengths(splitBySeed(data, seed ^ 0x5bd1e995), o), whole)
          assert.equal(whole.reduce((a, b) => a + b, 0), length)
          whole.forEach((n, i) => {
            assert.ok(n <= o.maxSize, `chunk ${i} is ${n} > maxSize`)
            assert.ok(n >= 1 && (n >= o.minSize || i === whole.length - 1), `chunk ${i} of ${whole.length} is ${n} < minSize`)
          })
        }
      ), { numRuns: 25 })
    })

    it('pushing one byte at a time gives the same chunks', function () {
      const o = { minSize: 64, avgSize: 256, maxSize: 1025 }
      const data = pseudoRandom(200_000, 42, true)
      const chunker = new Chunker(o)
      const out: number[] = []
      for (let i = 0; i < data.length; i++) out.push(...chunker.push(data.subarray(i, i + 1)))
      out.push(...chunker.finish())
      assert.deepEqual(out, chunkLengths(data, o))
    })

    it('chunkStream yields the input, byte for byte, cut at chunkLengths', async function () {
      await fc.assert(fc.asyncProperty(
        fc.integer({ min: 0, max: 1024 * 1024 }),
        fc.integer(),
        fc.constantFrom(...PARAMS),
        async (length, seed, o) => {
          const data = pseudoRandom(length, seed, true)
          const chunks = await collect(chunkStream(splitBySeed(data, ~seed), o))
          assert.deepEqual(chunks.map(c => c.length), chunkLengths(data, o))
          assert.ok(Buffer.from(concat(chunks)).equals(data))
        }
      ), { numRuns: 20 })
    })

    it('chunkStream copies only chunks that span input buffers', async function () {
      const data = pseudoRandom(3 * 1024 * 1024, 3)
      const pieces = [data.subarray(0, 1_000_001), data.subarray(1_000_001)]
      const chunks = await collect(chunkStream(pieces))
      let at = 0
      let copied = 0
      for (const c of chunks) {
        const inFirst = at + c.length <= 1_000_001
        const inSecond = at >= 1_000_001
        if (inFirst || inSecond) assert.equal(c.buffer, data.buffer, `chunk at ${at} should be a view`)
        else { assert.notEqual(c.buffer, data.buffer); copied++ }
        at += c.length
      }
      assert.equal(copied, 1)
    })

    it('chunkStream handles a chunk that ends one byte before a buffer boundary (the held-back byte)', async function () {
      const o = { minSize: 64, avgSize: 256, maxSize: 1024 }
      const data = pseudoRandom(100_000, 11)
      const chunks = chunkBoundaries(data, o)
      // a chunk cut at an even position: its length is even and below maxSize
      const c = chunks.find((b, i) => i > 0 && b.length % 2 === 0 && b.length < o.maxSize)!
      const end = c.offset + c.length
      for (const splits of [[end + 1], [c.offset + 10, end + 1], [c.offset - 10, c.offset + 10, end + 1]]) {
        const pieces = [0, ...splits, data.length].slice(1).map((to, i) => data.subarray([0, ...splits][i], to))
        const got = await collect(chunkStream(pieces, o))
        assert.deepEqual(got.map(g => g.length), chunks.map(b => b.length), `splits ${splits.join()}`)
        assert.ok(Buffer.from(concat(got)).equals(data))
      }
    })
  })

  it('is content-defined: an insertion near the start keeps >= 90% of a 4 MiB buffer\'s chunks', function () {
    const data = pseudoRandom(4 * 1024 * 1024, 2024)
    const edited = concat([data.subarray(0, 1000), new Uint8Array([1, 2, 3, 4, 5, 6, 7]), data.subarray(1000)])
    const before = chunkLengths(data)
    const after = chunkLengths(edited)
    // chunks as (distance of their end from the end of the buffer, length)
    const key = (lengths: number[]): Set<string> => {
      const set = new Set<string>()
      let left = lengths.reduce((a, b) => a + b, 0)
      for (const n of lengths) { left -= n; set.add(`${left}:${n}`) }
      return set
    }
    const a = key(before)
    const b = key(after)
    const shared = [...a].filter(k => b.has(k)).length
    assert.ok(before.length > 40, `only ${before.length} chunks`)
    assert.ok(shared >= 0.9 * before.length, `${shared} of ${before.length} chunks shared`)
  })

  describe('options', function () {
    it('defaults to 16 KiB / 64 KiB / 256 KiB, frozen', function () {
      assert.deepEqual({ ...DEFAULT_CHUNKER }, { minSize: 16384, avgSize: 65536, maxSize: 262144 })
      assert.ok(Object.isFrozen(DEFAULT_CHUNKER))
      assert.deepEqual({ ...new Chunker().options }, DEFAULT_CHUNKER)
      assert.deepEqual({ ...new Chunker({ maxSize: 1 << 20 }).options }, { ...DEFAULT_CHUNKER, maxSize: 1 << 20 })
    })

    it('can be reused after finish()', function () {
      const chunker = new Chunker({ minSize: 64, avgSize: 256, maxSize: 1024 })
      const run = (): number[] => [...chunker.push(SEKIEN.subarray(0, 5001)), ...chunker.push(SEKIEN.subarray(5001, 9000)), ...chunker.finish()]
      const first = run()
      assert.deepEqual(run(), first)
      assert.deepEqual(first, chunkLengths(SEKIEN.subarray(0, 9000), { minSize: 64, avgSize: 256, maxSize: 1024 }))
      assert.deepEqual(chunker.finish(), [])
    })

    const bad: Array<[string, Partial<ChunkerOptions>, RegExp]> = [
      ['minSize below 64', { minSize: 32, avgSize: 256, maxSize: 1024 }, /minSize must be between 64/],
      ['maxSize above 16 MiB', { maxSize: 16 * 1024 * 1024 + 2 }, /maxSize must be between 1024 and 16777216/],
      ['avgSize above 4 MiB', { minSize: 1 << 20, avgSize: 8 << 20, maxSize: 16 << 20 }, /avgSize must be between/],
      ['minSize > avgSize', { minSize: 32768, avgSize: 16384 }, /minSize <= avgSize <= maxSize/],
      ['avgSize > maxSize', { avgSize: 1 << 20 }, /minSize <= avgSize <= maxSize/],
      ['avgSize not a power of two', { avgSize: 65535 }, /power of two/],
      ['odd minSize', { minSize: 16383 }, /minSize must be even/],
      ['fractional size', { maxSize: 262144.5 }, /maxSize must be an integer/],
      ['NaN', { avgSize: Number.NaN }, /avgSize must be an integer/]
    ]
    for (const [what, o, message] of bad) {
      it(`rejects ${what}`, async function () {
        assert.throws(() => new Chunker(o), (e: unknown) => e instanceof InvalidChunkerOptionsError && e.name === 'InvalidChunkerOptionsError' && message.test(e.message))
        assert.throws(() => chunkLengths(new Uint8Array(0), o), InvalidChunkerOptionsError)
        assert.throws(() => chunkBoundaries(new Uint8Array(0), o), InvalidChunkerOptionsError)
        await assert.rejects(collect(chunkStream([], o)), InvalidChunkerOptionsError)
      })
    }

    it('rejects a bad normalization level or seed', function () {
      assert.throws(() => chunkBoundaries(SEKIEN, {}, { normalization: 4 as NormalizationLevel }), InvalidChunkerOptionsError)
      assert.throws(() => chunkBoundaries(SEKIEN, {}, { seed: -1n }), InvalidChunkerOptionsError)
      assert.throws(() => chunkBoundaries(SEKIEN, {}, { seed: 1n << 64n }), InvalidChunkerOptionsError)
    })

    it('chunkStream rejects a source of non-bytes', async function () {
      const strings = ['not bytes'] as unknown as Iterable<Uint8Array>
      await assert.rejects(collect(chunkStream(strings)), TypeError)
    })
  })
})
