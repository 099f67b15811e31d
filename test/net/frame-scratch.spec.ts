// The reassembly buffer shared by the sessions' frame readers
// (src/net/blocks/scratch.ts): frames split over chunks are decoded from
// memory reused frame after frame, so what a message keeps past its callback
// must be copied out of it, and two frames completed in one chunk must not
// share it.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { FrameReader, decodeFrame, encodeBlocksHead, encodeFrame } from '../../src/core/exchange/index.ts'
import type { ControlMessage, Message } from '../../src/core/exchange/index.ts'
import { FrameScratch } from '../../src/net/blocks/scratch.ts'

const arbCid = fc.tuple(fc.constantFrom(0x55, 0x70, 0x71), fc.uint8Array({ minLength: 32, maxLength: 32 }))
  .map(([codec, digest]) => Uint8Array.from([1, codec, 0x12, 0x20, ...digest]))

/** A data frame of leaves or of manifest blocks (a few KiB, so that chunks split it), or a control frame. */
const arbFrame: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.record({
    root: arbCid,
    sizes: fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 4 }),
    cids: fc.boolean(),
    seed: fc.integer({ min: 0, max: 255 })
  }).chain(({ root, sizes, cids, seed }) => (cids ? fc.uniqueArray(arbCid, { minLength: sizes.length, maxLength: sizes.length, selector: c => c.join() }) : fc.constant<Uint8Array[]>([])).map(list => {
    const head = encodeBlocksHead({ root, indices: cids ? [] : sizes.map((_, i) => i * 3), cids: list, sizes })
    const total = sizes.reduce((a, b) => a + b, 0)
    const out = new Uint8Array(head.length + total)
    out.set(head)
    for (let i = 0; i < total; i++) out[head.length + i] = (seed + i * 7) & 0xff
    return out
  })),
  fc.record({ root: arbCid, indices: fc.uniqueArray(fc.integer({ min: 0, max: 5000 }), { minLength: 1, maxLength: 400 }) })
    .map(({ root, indices }) => encodeFrame({ type: 'request', root, indices: Uint32Array.from(indices.sort((a, b) => a - b)), cids: [] } satisfies ControlMessage))
)

/** What a test compares later, as plain values (decodeFrame's fields are views); the payload as hex. */
function snapshot (m: Message, payload = true): unknown {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(m)) {
    if (k === 'payload' && !payload) continue
    if (v instanceof Uint8Array) out[k] = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')
    else if (v instanceof Uint32Array) out[k] = Array.from(v)
    else if (Array.isArray(v)) out[k] = v.map(x => x instanceof Uint8Array ? Buffer.from(x).toString('hex') : x)
    else out[k] = v
  }
  return out
}

describe('the frame reassembly buffer', () => {
  it('decodes every frame as decodeFrame does, and what a message keeps survives the next frames', () => {
    let reused = 0
    fc.assert(fc.property(
      fc.array(arbFrame, { minLength: 2, maxLength: 12 }),
      fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 40 }),
      (frames, cuts) => {
        const scratch = new FrameScratch()
        const reader = new FrameReader(n => scratch.take(n))
        const stream = new Uint8Array(frames.reduce((a, f) => a + f.length, 0))
        let pos = 0
        for (const f of frames) {
          stream.set(f, pos)
          pos += f.length
        }
        const expected = frames.map(f => decodeFrame(new FrameReader().push(f)[0]!))
        const kept: Message[] = []
        let at = 0
        for (let k = 0; at < stream.length; k++) {
          const chunk = stream.slice(at, Math.min(stream.length, at + cuts[k % cuts.length]!))
          at += chunk.length
          scratch.beginChunk()
          try {
            for (const body of reader.push(chunk)) {
              if (scratch.holds(body)) reused++
              const m = scratch.decode(body)
              // within the callback, the whole message (payload too) is the frame sent
              assert.deepEqual(snapshot(m), snapshot(expected[kept.length]!))
              kept.push(m)
            }
          } finally {
            scratch.endChunk()
          }
        }
        assert.equal(kept.length, frames.length)
        // after later frames reused the buffer, everything but a data frame's payload is intact
        for (let i = 0; i < kept.length; i++) assert.deepEqual(snapshot(kept[i]!, false), snapshot(expected[i]!, false))
      }
    ), { numRuns: 200 })
    assert.ok(reused > 100, `only ${reused} frames were read from the shared buffer`)
  })

  it('lends its buffer to one frame at a time, reuses it, and lets it go when unused', () => {
    const scratch = new FrameScratch()
    scratch.beginChunk()
    const a = scratch.take(1000)
    const b = scratch.take(1000)
    assert.ok(scratch.holds(a))
    assert.ok(!scratch.holds(b), 'a second frame in the same chunk gets memory of its own')
    scratch.endChunk()
    scratch.beginChunk()
    const c = scratch.take(500)
    assert.equal(c.buffer, a.buffer, 'the next chunk reuses the buffer')
    // a nested bracket (another session read meanwhile) does not free it under the frame
    scratch.beginChunk()
    assert.ok(!scratch.holds(scratch.take(10)))
    scratch.endChunk()
    assert.ok(!scratch.holds(scratch.take(10)))
    scratch.endChunk()
    scratch.trim() // used since the last trim: kept
    scratch.beginChunk()
    assert.equal(scratch.take(10).buffer, a.buffer)
    scratch.endChunk()
    scratch.trim()
    scratch.trim() // unused for a whole period: let go
    scratch.beginChunk()
    assert.notEqual(scratch.take(10).buffer, a.buffer)
    scratch.endChunk()
  })

  it('copies a split control frame and a data frame\'s root and CIDs out of the buffer', () => {
    const scratch = new FrameScratch()
    const root = Uint8Array.from([1, 0x71, 0x12, 0x20, ...new Uint8Array(32).fill(9)])
    const cid = Uint8Array.from([1, 0x70, 0x12, 0x20, ...new Uint8Array(32).fill(4)])
    const data = new Uint8Array(encodeBlocksHead({ root, indices: [], cids: [cid], sizes: [2000] }).length + 2000)
    data.set(encodeBlocksHead({ root, indices: [], cids: [cid], sizes: [2000] }))
    const reader = new FrameReader(n => scratch.take(n))
    scratch.beginChunk()
    const [body] = reader.push(data.slice(0, 100)).concat(reader.push(data.slice(100)))
    assert.ok(scratch.holds(body!))
    const m = scratch.decode(body!)
    scratch.endChunk()
    assert.equal(m.type, 'blocks')
    if (m.type !== 'blocks') return
    body!.fill(0) // the next frame overwrites the buffer
    assert.deepEqual(Array.from(m.root), Array.from(root))
    assert.deepEqual(Array.from(m.cids[0]!), Array.from(cid))
    assert.ok(scratch.holds(m.payload), 'the payload stays a view (read in the callback)')
  })
})
