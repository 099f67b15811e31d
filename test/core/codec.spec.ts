import assert from 'node:assert/strict'
import fc from 'fast-check'
import { FrameReader, InvalidMessageError, MAX_BLOCK_SIZE, MAX_CIDS, MAX_FRAME_SIZE, MAX_INDICES, MAX_LEAVES, decodeFrame, encodeBlocksHead, encodeFrame, fullBitfield } from '../../src/core/exchange/index.ts'
import type { BlocksHead, ControlMessage, Message } from '../../src/core/exchange/index.ts'
import { Writer } from '../../src/core/wire/protobuf.ts'
import { fakeCid, rng } from './mesh.ts'

const random = rng(7)
const root = fakeCid(random, 0x71)
const leafCid = fakeCid(random, 0x55)
const nodeCid = fakeCid(random, 0x70)

/** Strips the outer length prefix of an encoded frame (what FrameReader yields). */
export function body (frame: Uint8Array): Uint8Array {
  const r = new FrameReader().push(frame)
  assert.equal(r.length, 1)
  return r[0]!
}

/** A whole data frame: head plus payload. */
export function blocksFrame (h: BlocksHead, fill = 0xab): Uint8Array {
  const head = encodeBlocksHead(h)
  let n = 0
  for (let i = 0; i < h.sizes.length; i++) n += h.sizes[i]!
  const out = new Uint8Array(head.length + n).fill(fill)
  out.set(head)
  return out
}

function rejects (bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => decodeFrame(bytes), (err: unknown) => err instanceof InvalidMessageError && pattern.test(err.message))
}

/** A body made of a raw header (protobuf bytes) and payload. */
function rawBody (header: Uint8Array, payload = new Uint8Array(0)): Uint8Array {
  const w = new Writer().uvarint(header.length).raw(header).raw(payload)
  return w.finish()
}

function frameOf (field: number, inner: Writer): Uint8Array {
  return new Writer().message(field, inner).finish()
}

// ---- arbitraries -------------------------------------------------------------

const arbCid = fc.tuple(fc.constantFrom(0x55, 0x70, 0x71), fc.uint8Array({ minLength: 32, maxLength: 32 }))
  .map(([codec, digest]) => Uint8Array.from([1, codec, 0x12, 0x20, ...digest]))
const arbIndices = (min: number, max: number): fc.Arbitrary<Uint32Array> =>
  fc.uniqueArray(fc.integer({ min: 0, max: MAX_LEAVES - 1 }), { minLength: min, maxLength: max }).map(a => Uint32Array.from(a.sort((x, y) => x - y)))
const arbHave: fc.Arbitrary<ControlMessage> = fc.oneof(
  fc.record({ root: arbCid, leaves: fc.integer({ min: 0, max: MAX_LEAVES }) }).map(({ root, leaves }) => ({ type: 'have' as const, root, leaves, complete: true })),
  fc.integer({ min: 0, max: 3000 }).chain(leaves => fc.record({ root: arbCid, bits: fc.uint8Array({ minLength: (leaves + 7) >> 3, maxLength: (leaves + 7) >> 3 }) })
    .map(({ root, bits }) => {
      const mask = fullBitfield(leaves)
      return { type: 'have' as const, root, leaves, complete: false, bitfield: bits.map((b, i) => b & mask[i]!) }
    }))
)
const arbControl: fc.Arbitrary<ControlMessage> = fc.oneof(
  arbHave,
  fc.record({ root: arbCid, indices: arbIndices(1, 300) }).map(m => ({ type: 'have-update' as const, ...m })),
  fc.record({ root: arbCid, interested: fc.boolean() }).map(m => ({ type: 'interest' as const, ...m })),
  fc.record({ type: fc.constantFrom('request' as const, 'cancel' as const, 'dont-have' as const), root: arbCid, indices: arbIndices(0, 300), cids: fc.array(arbCid, { maxLength: 20 }) })
    .filter(m => m.type === 'dont-have' || m.indices.length + m.cids.length > 0),
  fc.constantFrom({ type: 'choke' as const }, { type: 'unchoke' as const })
)
const arbBlocksHead: fc.Arbitrary<BlocksHead> = fc.oneof(
  arbIndices(1, 40).chain(indices => fc.record({
    root: arbCid,
    indices: fc.constant(indices),
    cids: fc.constant([] as Uint8Array[]),
    sizes: fc.array(fc.integer({ min: 0, max: 4096 }), { minLength: indices.length, maxLength: indices.length }).map(a => Uint32Array.from(a))
  })),
  fc.uniqueArray(arbCid, { minLength: 1, maxLength: 10, selector: c => c.join() }).chain(cids => fc.record({
    root: arbCid,
    indices: fc.constant(new Uint32Array(0)),
    cids: fc.constant(cids),
    sizes: fc.array(fc.integer({ min: 0, max: 4096 }), { minLength: cids.length, maxLength: cids.length }).map(a => Uint32Array.from(a))
  }))
)

/** Comparable plain form of a message. */
function plain (m: unknown): unknown {
  return JSON.parse(JSON.stringify(m, (_k, v: unknown) => (v instanceof Uint8Array || v instanceof Uint32Array) ? Array.from(v) : v))
}

describe('blocks codec', () => {
  it('round-trips every control message', () => {
    fc.assert(fc.property(arbControl, m => {
      const frame = encodeFrame(m)
      const got = decodeFrame(body(frame))
      assert.deepEqual(plain(got), plain(m))
    }), { numRuns: 500, seed: 1 })
  })

  it('round-trips data frames, payload as a view of the frame', () => {
    fc.assert(fc.property(arbBlocksHead, h => {
      const frame = blocksFrame(h)
      const m = decodeFrame(body(frame))
      assert.equal(m.type, 'blocks')
      if (m.type !== 'blocks') return
      assert.deepEqual(plain({ root: m.root, indices: m.indices, cids: m.cids, sizes: m.sizes }), plain({ root: h.root, indices: h.indices, cids: h.cids, sizes: h.sizes }))
      assert.equal(m.payload.buffer, frame.buffer, 'no copy of the payload')
      assert.equal(m.offsets[m.offsets.length - 1], m.payload.length)
      for (let e = 0; e < m.sizes.length; e++) {
        assert.ok(m.payload.subarray(m.offsets[e]!, m.offsets[e + 1]!).every(b => b === 0xab))
      }
    }), { numRuns: 300, seed: 2 })
  })

  it('splits a stream cut anywhere into the same frames', () => {
    fc.assert(fc.property(fc.array(arbControl, { minLength: 1, maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }), (msgs, cuts) => {
      const frames = msgs.map(encodeFrame)
      const stream = new Uint8Array(frames.reduce((n, f) => n + f.length, 0))
      let o = 0
      for (const f of frames) { stream.set(f, o); o += f.length }
      const reader = new FrameReader()
      const got: Message[] = []
      let pos = 0
      let c = 0
      while (pos < stream.length) {
        const n = cuts[c++ % cuts.length]!
        for (const b of reader.push(stream.subarray(pos, pos + n))) got.push(decodeFrame(b))
        pos += n
      }
      assert.equal(reader.pending, 0)
      assert.deepEqual(got.map(plain), msgs.map(plain))
    }), { numRuns: 200, seed: 3 })
  })

  it('refuses a length prefix above the limit before buffering the body', () => {
    const r = new FrameReader()
    const prefix = new Writer().uvarint(MAX_FRAME_SIZE + 1).finish()
    assert.throws(() => r.push(prefix), InvalidMessageError)
    assert.throws(() => new FrameReader().push(Uint8Array.of(0)), /zero length/)
    assert.throws(() => new FrameReader().push(Uint8Array.of(0x81, 0x00)), /non-minimal/)
    assert.throws(() => new FrameReader().push(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x01)), InvalidMessageError)
  })

  it('refuses malformed frames with a clear InvalidMessageError', () => {
    rejects(new Uint8Array(0), /empty/)
    rejects(Uint8Array.of(5, 1, 2), /header runs past/)
    rejects(rawBody(new Uint8Array(0)), /no message/)
    rejects(rawBody(frameOf(42, new Writer())), /unknown message type 42/)
    rejects(rawBody(new Writer().tag(1, 0).uvarint(1).finish()), /wire type 0/)
    rejects(rawBody(Uint8Array.of(...frameOf(7, new Writer()), ...frameOf(8, new Writer()))), /more than one message/)
    rejects(rawBody(frameOf(7, new Writer()), Uint8Array.of(1)), /payload bytes after a choke/)
    // Have
    rejects(rawBody(frameOf(1, new Writer().uint32(2, 8).bool(3, true))), /no root/)
    rejects(rawBody(frameOf(1, new Writer().bytes(1, Uint8Array.of(1, 2, 3)).bool(3, true))), /root is not/)
    rejects(rawBody(frameOf(1, new Writer().bytes(1, root).uint32(2, 9).bytes(4, Uint8Array.of(0xff)))), /does not fit 9 leaves/)
    rejects(rawBody(frameOf(1, new Writer().bytes(1, root).uint32(2, 7).bytes(4, Uint8Array.of(0xff)))), /padding/)
    rejects(rawBody(frameOf(1, new Writer().bytes(1, root).uint32(2, 8).bool(3, true).bytes(4, Uint8Array.of(0xff)))), /complete Have carries a bitfield/)
    rejects(rawBody(frameOf(1, new Writer().bytes(1, root).uint32(2, MAX_LEAVES + 1).bool(3, true))), /exceed/)
    rejects(rawBody(frameOf(1, new Writer().bytes(1, root).bytes(1, root).bool(3, true))), /root given twice/)
    rejects(rawBody(frameOf(1, new Writer().bytes(1, root).tag(3, 0).uvarint(2))), /bool is not 0 or 1/)
    // index lists
    rejects(rawBody(frameOf(2, new Writer().bytes(1, root))), /no indices/)
    rejects(rawBody(frameOf(2, new Writer().bytes(1, root).packed(2, [3, 3]))), /strictly ascending/)
    rejects(rawBody(frameOf(2, new Writer().bytes(1, root).packed(2, [MAX_LEAVES]))), /not below/)
    rejects(rawBody(frameOf(2, new Writer().bytes(1, root).packed(2, Array.from({ length: MAX_INDICES + 1 }, (_, i) => i)))), /more than 4096/)
    rejects(rawBody(frameOf(4, new Writer().bytes(1, root))), /neither indices nor cids/)
    rejects(rawBody(frameOf(4, new Writer().bytes(1, root).bytes(3, Uint8Array.of(1, 0x55), true))), /cid is not/)
    const tooMany = new Writer().bytes(1, root)
    for (let i = 0; i <= MAX_CIDS; i++) tooMany.bytes(3, nodeCid)
    rejects(rawBody(frameOf(4, tooMany)), /more than 512 cids/)
    rejects(rawBody(frameOf(4, new Writer().bytes(1, root).tag(2, 0).uvarint(2 ** 32))), /exceeds 32 bits/)
    rejects(rawBody(frameOf(4, new Writer().bytes(1, root).tag(2, 2).uvarint(3).raw(Uint8Array.of(0x80, 0x80, 0x80)))), /truncated varint/)
    rejects(rawBody(frameOf(4, new Writer().bytes(1, root).tag(9, 3))), /wire type 3/)
    // Blocks
    const head = (w: Writer): Uint8Array => frameOf(9, w)
    rejects(rawBody(head(new Writer().bytes(1, root))), /no blocks/)
    rejects(rawBody(head(new Writer().bytes(1, root).packed(2, [1]).bytes(3, leafCid).packed(4, [1, 1])), Uint8Array.of(0, 0)), /leaves and cids/)
    rejects(rawBody(head(new Writer().bytes(1, root).packed(2, [1, 2]).packed(4, [1])), Uint8Array.of(0)), /1 sizes for 2 blocks/)
    rejects(rawBody(head(new Writer().bytes(1, root).packed(2, [1]).packed(4, [3])), Uint8Array.of(0)), /add up to 3 bytes but the payload has 1/)
    rejects(rawBody(head(new Writer().bytes(1, root).packed(2, [1]).packed(4, [MAX_BLOCK_SIZE + 1]))), /exceeds/)
    rejects(rawBody(head(new Writer().bytes(1, root).bytes(3, nodeCid).bytes(3, nodeCid).packed(4, [0, 0]))), /appears twice/)
  })

  it('skips unknown fields inside a message (later minor versions may add some)', () => {
    const inner = new Writer().bytes(1, root).bool(2, true).tag(15, 0).uvarint(123456789).tag(16, 2).uvarint(2).raw(Uint8Array.of(9, 9)).tag(17, 5).raw(new Uint8Array(4)).tag(18, 1).raw(new Uint8Array(8))
    const m = decodeFrame(rawBody(frameOf(3, inner)))
    assert.deepEqual(plain(m), plain({ type: 'interest', root, interested: true }))
  })

  it('accepts unpacked repeated indices, as proto3 parsers must', () => {
    const inner = new Writer().bytes(1, root).tag(2, 0).uvarint(4).tag(2, 0).uvarint(9)
    const m = decodeFrame(rawBody(frameOf(2, inner)))
    assert.deepEqual(plain(m), plain({ type: 'have-update', root, indices: Uint32Array.of(4, 9) }))
  })

  it('refuses to encode what it could not decode', () => {
    assert.throws(() => encodeBlocksHead({ root, indices: [1], cids: [], sizes: [MAX_FRAME_SIZE] }), RangeError)
  })
})
