// The advisory codec: every message round-trips (property), and 100,000
// random and mutated frames (1,000,000 under XO_MESH_SOAK=1) bring out only
// InvalidMessageError, decode within the limits, and never make a live core
// throw.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  Advisory, InvalidMessageError, MAX_HASH_BYTES, MAX_ROOTS_PER_MESSAGE, MAX_ROOT_BYTES, MAX_SNAPSHOT_BYTES, MAX_RESULTS_PER_MESSAGE, MAX_RESULT_BYTES,
  decodeMessage, decodeResult, encodeMessage, encodeResult, type AdvisoryMessage
} from '../../src/core/advisory/index.ts'
import { rng } from './mesh.ts'

const SOAK = process.env.XO_MESH_SOAK !== undefined && process.env.XO_MESH_SOAK !== ''
const FRAMES = SOAK ? 1_000_000 : 100_000

const u32 = fc.integer({ min: 0, max: 0xffffffff })
const message: fc.Arbitrary<AdvisoryMessage> = fc.oneof(
  fc.record({ type: fc.constant('state' as const), version: fc.integer({ min: 1, max: 0xffffffff }), hash: fc.uint8Array({ minLength: 1, maxLength: MAX_HASH_BYTES }), rootVersion: u32 }),
  fc.constant({ type: 'state' as const, version: 0, hash: new Uint8Array(0), rootVersion: 0 }),
  fc.record({ type: fc.constant('request' as const), version: u32, rootVersion: u32 }),
  fc.record({ type: fc.constant('snapshot' as const), snapshot: fc.uint8Array({ minLength: 1, maxLength: 300 }), roots: fc.array(fc.uint8Array({ minLength: 1, maxLength: 100 }), { maxLength: MAX_ROOTS_PER_MESSAGE }) }),
  fc.record({ type: fc.constant('state' as const), version: fc.integer({ min: 1, max: 0xffffffff }), hash: fc.uint8Array({ minLength: 1, maxLength: MAX_HASH_BYTES }), rootVersion: u32, resultsDigest: fc.uint8Array({ minLength: 32, maxLength: 32 }), resultsCount: fc.integer({ min: 1, max: 0xffffffff }) }),
  fc.record({
    type: fc.constant('results' as const),
    records: fc.array(fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 200 }),
      fc.record({ originKey: fc.uint8Array({ minLength: 32, maxLength: 32 }), build: fc.uint8Array({ minLength: 1, maxLength: 40 }), ok: fc.boolean(), at: fc.integer({ min: 0, max: 2 ** 45 }), signature: fc.uint8Array({ minLength: 64, maxLength: 64 }) }).map(encodeResult)
    ), { minLength: 1, maxLength: 8 })
  })
)

function plain (m: AdvisoryMessage): unknown {
  return JSON.parse(JSON.stringify(m, (_k, v: unknown) => v instanceof Uint8Array ? Array.from(v) : v))
}

function checkInvariants (m: AdvisoryMessage): void {
  switch (m.type) {
    case 'state':
      assert.ok(m.hash.length <= MAX_HASH_BYTES)
      assert.equal(m.version === 0, m.hash.length === 0)
      assert.ok(m.resultsDigest === undefined || m.resultsDigest.length === 32)
      assert.equal(m.resultsDigest === undefined, m.resultsCount === undefined)
      break
    case 'results':
      assert.ok(m.records.length >= 1 && m.records.length <= MAX_RESULTS_PER_MESSAGE)
      for (const r of m.records) assert.ok(r.length >= 1 && r.length <= MAX_RESULT_BYTES)
      break
    case 'request':
      assert.ok(Number.isInteger(m.version) && m.version >= 0 && m.version <= 0xffffffff)
      break
    case 'snapshot':
      assert.ok(m.snapshot.length >= 1 && m.snapshot.length <= MAX_SNAPSHOT_BYTES)
      assert.ok(m.roots.length <= MAX_ROOTS_PER_MESSAGE)
      for (const r of m.roots) assert.ok(r.length >= 1 && r.length <= MAX_ROOT_BYTES)
  }
}

describe('advisory codec', function () {
  this.timeout(120_000)

  it('round-trips every message (property)', () => {
    fc.assert(fc.property(message, m => {
      assert.deepEqual(plain(decodeMessage(encodeMessage(m))), plain(m))
    }), { numRuns: 2000 })
  })

  it('refuses oversize fields, two messages in a frame, and unknown message types', () => {
    const bad = (bytes: number[], why: RegExp): void => {
      assert.throws(() => decodeMessage(Uint8Array.from(bytes)), (e: unknown) => e instanceof InvalidMessageError && why.test(e.message))
    }
    bad([], /empty frame/)
    bad([0x2a, 0x00], /unknown message 5/)
    bad([0x22, 0x00], /without results/)
    bad([0x0a, 0x00, 0x12, 0x00], /more than one message/)
    bad([0x0a, 0x02, 0x08, 0x01], /a version without a hash/)
    bad([0x1a, 0x00], /without its snapshot/)
    bad([0x0a, 0x03, 0x12, 0x01], /runs past the end|truncated/)
    const hash = new Uint8Array(MAX_HASH_BYTES + 1)
    bad([0x0a, 2 + 2 + hash.length, 0x08, 0x01, 0x12, hash.length, ...hash], /hash of 65 bytes/)
    assert.throws(() => encodeMessage({ type: 'snapshot', snapshot: new Uint8Array(MAX_SNAPSHOT_BYTES + 1), roots: [] }), RangeError)
  })

  it(`fuzz: ${FRAMES.toLocaleString('en')} random and mutated frames bring out only InvalidMessageError`, () => {
    const random = rng(0xad71)
    const int = (n: number): number => Math.floor(random() * n)
    const corpus = fc.sample(message, { numRuns: 300, seed: 5 }).map(encodeMessage)
    // records that decode count as checked (a fake id): the core's result set takes every path
    const checkResult = (rec: Uint8Array): { result: ReturnType<typeof decodeResult>, id: Uint8Array } | undefined => {
      try { return { result: decodeResult(rec), id: rec.subarray(0, 32) } } catch (err) { if (err instanceof InvalidMessageError) return undefined; throw err }
    }
    const core = new Advisory({ verify: () => ({ ok: false, code: 'malformed', reason: 'fuzz' }), random, checkResult, maxResults: 64 })
    core.handle({ type: 'connected', peer: 'fuzz' }, 0)
    let decoded = 0
    for (let i = 0; i < FRAMES; i++) {
      let frame: Uint8Array
      const base = corpus[int(corpus.length)]!
      switch (int(4)) {
        case 0: frame = Uint8Array.from({ length: int(64) }, () => int(256)); break
        case 1: {
          frame = base.slice()
          for (let k = 1 + int(4); k > 0; k--) if (frame.length > 0) frame[int(frame.length)] = int(256)
          break
        }
        case 2: frame = base.subarray(0, int(base.length + 1)); break
        default: {
          const other = corpus[int(corpus.length)]!
          frame = new Uint8Array(base.length + other.length)
          frame.set(base)
          frame.set(other, base.length)
        }
      }
      let m: AdvisoryMessage
      try {
        m = decodeMessage(frame)
      } catch (err) {
        if (!(err instanceof InvalidMessageError)) throw err
        continue
      }
      decoded++
      checkInvariants(m)
      core.handle({ type: 'message', peer: 'fuzz', message: m }, i)
    }
    assert.ok(decoded > FRAMES / 20, `only ${decoded} frames decoded: the corpus is not exercising the decoder`)
  })
})
