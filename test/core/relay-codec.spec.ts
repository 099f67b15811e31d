// The relay codec: every message the limits allow survives a round trip
// (fast-check), and what breaks the rules is refused with InvalidMessageError.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { FrameReader, InvalidMessageError, MAX_BATCH_ITEMS, MAX_ORIGIN_LENGTH, decodeFrame, encodeFrame } from '../../src/core/relay/index.ts'
import type { Custody, Item, Message } from '../../src/core/relay/index.ts'
import { LEN, VARINT, Writer } from '../../src/core/wire/protobuf.ts'

const arbOrigin = fc.stringMatching(/^[A-Za-z0-9]{1,60}$/)
const arbCounter = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })
const arbItems = fc.uniqueArray(fc.record({
  origin: fc.constantFrom('12D3KooWA', '12D3KooWB', 'bafyC'),
  counter: arbCounter,
  kind: fc.constantFrom('statistics' as const, 'install-report' as const, 'backup-chunk' as const),
  created: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  body: fc.uint8Array({ maxLength: 300 })
}), { minLength: 1, maxLength: 40, selector: it => `${it.origin}#${it.counter}` })
const arbCustody: fc.Arbitrary<Custody> = fc.record({
  origin: arbOrigin,
  contiguous: fc.integer({ min: 0, max: 2 ** 40 }),
  gaps: fc.array(fc.integer({ min: 1, max: 2 ** 20 }), { maxLength: 20 })
}).map(({ origin, contiguous, gaps }) => {
  const above: number[] = []
  let c = contiguous
  for (const g of gaps) { c += g; above.push(c) }
  return { origin, contiguous, above }
})
const arbMessage: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ type: fc.constant('offer' as const), batch: fc.integer({ min: 0, max: 0xffffffff }), items: arbItems }),
  fc.record({ type: fc.constant('receipt' as const), batch: fc.integer({ min: 0, max: 0xffffffff }), custody: fc.uniqueArray(arbCustody, { maxLength: 10, selector: c => c.origin }) }),
  fc.record({ type: fc.constant('refusal' as const), batch: fc.integer({ min: 0, max: 0xffffffff }), reason: fc.constantFrom('full' as const, 'busy' as const, 'declined' as const), retryAfterMs: fc.integer({ min: 0, max: 3_600_000 }) })
)

/** Items in the order the codec yields them: grouped into runs by origin, in order of first appearance. */
function grouped (items: Item[]): Item[] {
  const order: string[] = []
  for (const it of items) if (!order.includes(it.origin)) order.push(it.origin)
  return order.flatMap(o => items.filter(it => it.origin === o))
}

/** A copy with ordinary prototypes (fast-check's records have none). */
function plain<T> (x: T): T {
  if (Array.isArray(x)) return x.map(plain) as T
  if (x instanceof Uint8Array || x === null || typeof x !== 'object') return x
  return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, plain(v)])) as T
}

function decodeOne (frame: Uint8Array): Message {
  const bodies = new FrameReader().push(frame)
  assert.equal(bodies.length, 1)
  return decodeFrame(bodies[0]!)
}

/** A frame from a hand-written Frame body (bypassing the encoder's checks). */
function raw (build: (w: Writer) => void): Uint8Array {
  const w = new Writer()
  build(w)
  return w.finish()
}

describe('relay codec', () => {
  it('round-trips every message within the limits', () => {
    fc.assert(fc.property(arbMessage, m => {
      const back = decodeOne(encodeFrame(m))
      if (m.type === 'offer') assert.deepEqual(back, plain({ ...m, items: grouped(m.items) }))
      else assert.deepEqual(back, plain(m))
    }), { numRuns: 500 })
  })

  it('reads frames split anywhere in the stream', () => {
    fc.assert(fc.property(fc.array(arbMessage, { minLength: 1, maxLength: 5 }), fc.integer({ min: 1, max: 50 }), (ms, step) => {
      const bytes = Buffer.concat(ms.map(encodeFrame))
      const r = new FrameReader()
      const bodies: Uint8Array[] = []
      for (let i = 0; i < bytes.length; i += step) bodies.push(...r.push(bytes.subarray(i, i + step)))
      assert.equal(bodies.length, ms.length)
      bodies.forEach((b, i) => { assert.equal(decodeFrame(b).type, ms[i]!.type) })
    }), { numRuns: 100 })
  })

  it('refuses to encode what the limits forbid', () => {
    const it = (over: Partial<Item>): Item => ({ origin: 'a', counter: 1, kind: 'statistics', created: 0, body: new Uint8Array(0), ...over })
    assert.throws(() => encodeFrame({ type: 'offer', batch: 1, items: [] }), RangeError)
    assert.throws(() => encodeFrame({ type: 'offer', batch: 1, items: [it({ counter: 0 })] }), RangeError)
    assert.throws(() => encodeFrame({ type: 'offer', batch: 1, items: [it({ origin: 'a-b' })] }), RangeError)
    assert.throws(() => encodeFrame({ type: 'offer', batch: 1, items: [it({ origin: 'x'.repeat(MAX_ORIGIN_LENGTH + 1) })] }), RangeError)
    assert.throws(() => encodeFrame({ type: 'offer', batch: 1, items: Array.from({ length: MAX_BATCH_ITEMS + 1 }, (_, i) => it({ counter: i + 1 })) }), RangeError)
    assert.throws(() => encodeFrame({ type: 'receipt', batch: 1, custody: [{ origin: 'a', contiguous: 5, above: [5] }] }), RangeError)
    assert.throws(() => encodeFrame({ type: 'refusal', batch: 2 ** 32, reason: 'full', retryAfterMs: 0 }), RangeError)
  })

  it('refuses frames that break the rules, with InvalidMessageError only', () => {
    const entry = (counter: number, kind = 1): Writer => { const e = new Writer(); e.tag(1, VARINT).uvarint(counter); e.uint32(2, kind); return e }
    const run = (origin: string, entries: Writer[]): Writer => { const r = new Writer(); r.bytes(1, Buffer.from(origin)); for (const e of entries) r.message(2, e); return r }
    const offer = (runs: Writer[]): Uint8Array => raw(w => { const o = new Writer(); o.uint32(1, 7); for (const r of runs) o.message(2, r); w.message(1, o) })
    const cases: Array<[string, Uint8Array]> = [
      ['empty', new Uint8Array(0)],
      ['unknown message', raw(w => { w.tag(9, LEN).uvarint(0) })],
      ['two messages', raw(w => { w.message(3, new Writer().uint32(2, 1)).message(3, new Writer().uint32(2, 1)) })],
      ['offer without items', offer([])],
      ['a run without items', offer([run('abc', [])])],
      ['counter 0', offer([run('abc', [entry(0)])])],
      ['a counter twice', offer([run('abc', [entry(3), entry(3)])])],
      ['an origin in two runs', offer([run('abc', [entry(1)]), run('abc', [entry(2)])])],
      ['origin with a dash', offer([run('a-c', [entry(1)])])],
      ['unknown kind', offer([run('abc', [entry(1, 9)])])],
      ['counter past 2^53', offer([run('abc', [(() => { const e = new Writer(); e.tag(1, VARINT).raw(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x10])); e.uint32(2, 1); return e })()])])],
      ['above not past contiguous', raw(w => { const h = new Writer(); h.bytes(1, Buffer.from('abc')); h.tag(2, VARINT).uvarint(5); h.tag(3, VARINT).uvarint(4); w.message(2, new Writer().message(2, h)) })],
      ['refusal without a reason', raw(w => { w.message(3, new Writer().uint32(1, 4)) })],
      ['retry past an hour', raw(w => { w.message(3, new Writer().uint32(2, 1).uint32(3, 3_600_001)) })],
      ['too many items', offer([run('abc', Array.from({ length: MAX_BATCH_ITEMS + 1 }, (_, i) => entry(i + 1)))])]
    ]
    for (const [why, body] of cases) {
      assert.throws(() => decodeFrame(body), InvalidMessageError, why)
    }
  })

  it('skips unknown fields (later minor versions may add some)', () => {
    const m: Message = { type: 'refusal', batch: 3, reason: 'busy', retryAfterMs: 10 }
    const body = raw(w => { w.message(3, new Writer().uint32(1, 3).uint32(2, 2).uint32(3, 10).uint32(15, 99)) })
    assert.deepEqual(decodeFrame(body), m)
  })
})
