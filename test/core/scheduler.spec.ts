import assert from 'node:assert/strict'
import fc from 'fast-check'
import { bitfieldLength, emptyBitfield, fullBitfield, setBit, countBits, hasBit, clearBit, isBitfieldFor } from '../../src/core/exchange/index.ts'
import { FetchState, HELD, MISSING } from '../../src/core/exchange/fetch-state.ts'
import { pickEndgame, pickRarest, type PickLimits } from '../../src/core/exchange/scheduler.ts'
import { rng } from './mesh.ts'

const sizes = (n: number): Uint32Array => new Uint32Array(n).fill(1000)
const limits = (over: Partial<PickLimits> = {}): PickLimits => ({ peerBits: null, onlyUnshared: false, maxBytes: 10_000, maxCount: 100, atLeastOne: false, ...over })

describe('bitfields', () => {
  it('set, clear, count and check padding', () => {
    const bf = emptyBitfield(13)
    assert.equal(bf.length, bitfieldLength(13))
    setBit(bf, 0)
    setBit(bf, 12)
    assert.deepEqual(Array.from(bf), [0x80, 0x08])
    assert.equal(countBits(bf), 2)
    assert.ok(hasBit(bf, 12) && !hasBit(bf, 11))
    clearBit(bf, 0)
    assert.equal(countBits(bf), 1)
    assert.ok(isBitfieldFor(bf, 13) && !isBitfieldFor(bf, 12) && !isBitfieldFor(Uint8Array.of(0, 0x04), 13))
    assert.deepEqual(Array.from(fullBitfield(13)), [0xff, 0xf8])
  })
})

describe('leaf picker', () => {
  it('skips what is held and asks for the rarest first, ties in a random order', () => {
    const st = new FetchState(sizes(100), fullBitfield(100).map((b, i) => i === 0 ? 0xff : 0), rng(1))
    for (let i = 0; i < 100; i++) st.avail[i] = i < 50 ? 3 : 1
    st.avail[99] = 0
    const out: number[] = []
    pickRarest(st, limits({ maxBytes: 5000 }), out)
    assert.equal(out.length, 5)
    assert.equal(out[0], 99, 'the rarest first')
    assert.ok(out.every(i => i >= 50), 'then the next rarest')
    assert.ok(out.every(i => st.state[i] === MISSING))
    const again: number[] = []
    pickRarest(new FetchState(sizes(100), emptyBitfield(100), rng(2)), limits({ maxBytes: 5000 }), again)
    assert.notDeepEqual(again, [0, 1, 2, 3, 4], 'ties are not taken in index order')
  })

  it('asks a peer only for what it holds, and a complete peer only for unshared leaves when told to', () => {
    const st = new FetchState(sizes(16), emptyBitfield(16), rng(3))
    const peer = emptyBitfield(16)
    setBit(peer, 3)
    setBit(peer, 7)
    const out: number[] = []
    pickRarest(st, limits({ peerBits: peer }), out)
    assert.deepEqual(out.sort((a, b) => a - b), [3, 7])
    for (let i = 0; i < 16; i++) st.avail[i] = i === 9 ? 0 : 1
    const seedOut: number[] = []
    pickRarest(st, limits({ onlyUnshared: true }), seedOut)
    assert.deepEqual(seedOut, [9])
  })

  it('asks a partial peer for its rarest leaves in the random order, however many are wanted', () => {
    // a reference for the bitfield path: every candidate sorted by (holders, place in the order), the first `want`, rarest first, within the bytes
    fc.assert(fc.property(fc.integer({ min: 1, max: 600 }), fc.integer({ min: 0, max: 1 << 30 }), fc.integer({ min: 0, max: 120_000 }), fc.integer({ min: 1, max: 300 }), (n, seed, maxBytes, maxCount) => {
      const r = rng(seed)
      const held = emptyBitfield(n)
      const peer = emptyBitfield(n)
      for (let i = 0; i < n; i++) {
        if (r() < 0.2) setBit(held, i)
        if (r() < 0.5) setBit(peer, i)
      }
      const st = new FetchState(sizes(n), held, rng(seed + 1))
      for (let i = 0; i < n; i++) st.avail[i] = r() < 0.02 ? 256 + Math.floor(r() * 50) : Math.floor(r() * 5)
      const l = limits({ peerBits: peer, maxBytes, maxCount, atLeastOne: r() < 0.5 })
      const out: number[] = []
      pickRarest(st, l, out)
      const want = Math.min(maxCount, Math.ceil(maxBytes / 1000) + 1)
      const candidates: number[] = []
      for (let i = 0; i < n; i++) if (st.state[i] === MISSING && hasBit(peer, i)) candidates.push(i)
      if (candidates.length > Math.max(8 * want, 256)) return // the sampled scan's case, not this path
      const bucket = (i: number): number => Math.min(255, st.avail[i]!)
      const chosen = candidates.sort((x, y) => bucket(x) - bucket(y) || st.rank[x]! - st.rank[y]!).slice(0, want).sort((x, y) => st.avail[x]! - st.avail[y]!)
      const expected: number[] = []
      let bytes = 0
      for (const i of chosen) {
        if (expected.length >= maxCount) break
        if (bytes + 1000 > maxBytes && !(l.atLeastOne && bytes === 0 && expected.length === 0)) continue
        expected.push(i)
        bytes += 1000
      }
      assert.deepEqual(out, expected)
    }), { numRuns: 400 })
  })

  it('never picks a leaf already requested; in end-game only those requested exactly once elsewhere', () => {
    const st = new FetchState(sizes(4), emptyBitfield(4), rng(4))
    st.addRequest(0)
    st.addRequest(1)
    st.addRequest(1)
    st.arrive(2)
    const out: number[] = []
    pickRarest(st, limits(), out)
    assert.deepEqual(out, [3])
    st.addRequest(3)
    assert.equal(st.idle, 0)
    assert.equal(st.doubled, 1)
    const eg: number[] = []
    pickEndgame(st, limits(), new Map([[3, 0]]), eg)
    assert.deepEqual(eg, [0], 'not 1 (twice already), not 2 (arrived), not 3 (outstanding here)')
  })

  it('keeps counts straight through arrival, storage, failure and loss', () => {
    const st = new FetchState(sizes(3), emptyBitfield(3), rng(5))
    st.addRequest(0)
    st.arrive(0)
    st.removeRequest(0)
    st.storeFailed(0)
    assert.equal(st.idle, 3)
    st.arrive(1)
    st.stored(1)
    assert.equal(st.state[1], HELD)
    assert.equal(st.haveCount, 1)
    st.lost(1)
    assert.equal(st.haveCount, 0)
    assert.equal(st.idle, 3)
    assert.equal(st.orderLength, 3)
  })
})
