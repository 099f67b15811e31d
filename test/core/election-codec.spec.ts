// The election codec: round trips, the limits, and a fuzz of ≥100,000 random
// and mutated frames (1,000,000 under XO_MESH_SOAK=1) through FrameReader,
// decodeFrame and a live core: only InvalidMessageError may come out of a
// decoder, what decodes is within the limits, and the core never throws.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { Election, FrameReader, InvalidMessageError, MAX_AGE_MS, MAX_CLAIMS_PER_FRAME, MAX_FRAME_SIZE, MAX_HOPS, MAX_PEER_ID_LENGTH, MAX_SIGNATURE_SIZE, checksumAuthenticator, decodeClaim, decodeFrame, encodeClaim, encodeFrame, signedPayload } from '../../src/core/election/index.ts'
import type { Capability, Claim, ElectionMessage, SignedClaim } from '../../src/core/election/index.ts'
import { rng } from './mesh.ts'

const SOAK = process.env.XO_MESH_SOAK !== undefined && process.env.XO_MESH_SOAK !== ''
const FRAMES = SOAK ? 1_000_000 : 100_000

const arbCapability: fc.Arbitrary<Capability> = fc.record({
  pinned: fc.boolean(),
  upstream: fc.boolean(),
  ac: fc.boolean(),
  battery: fc.integer({ min: 0, max: 100 }),
  freeDiskMiB: fc.maxSafeNat(),
  uptimeS: fc.maxSafeNat()
})

const arbClaim: fc.Arbitrary<Claim> = fc.record({
  peer: fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }).filter(s => new TextEncoder().encode(s).length <= MAX_PEER_ID_LENGTH),
  incarnation: fc.maxSafeNat(),
  seq: fc.maxSafeNat(),
  capability: arbCapability,
  serving: fc.boolean(),
  term: fc.maxSafeNat()
})

function signed (c: Claim, hops = 0, age = 0): SignedClaim {
  const bytes = encodeClaim(c)
  return { claim: c, bytes, signature: checksumAuthenticator(c.peer).sign(signedPayload(bytes)), hops, age }
}

/** The body of an encoded frame (what FrameReader yields). */
function body (frame: Uint8Array): Uint8Array {
  const out = new FrameReader().push(frame)
  assert.equal(out.length, 1)
  return out[0]!
}

/** A claim as plain objects (fast-check's records have no prototype). */
function plain (c: Claim): Claim {
  return { ...c, capability: { ...c.capability } }
}

function expectInvalid (bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => decodeFrame(bytes), (err: unknown) => err instanceof InvalidMessageError && pattern.test(err.message))
}

describe('election codec', () => {
  it('round-trips claims and frames, signed bytes untouched', () => {
    fc.assert(fc.property(fc.array(fc.tuple(arbClaim, fc.integer({ min: 0, max: MAX_HOPS }), fc.integer({ min: 0, max: MAX_AGE_MS })), { minLength: 1, maxLength: MAX_CLAIMS_PER_FRAME }), list => {
      const m: ElectionMessage = { type: 'claims', claims: list.map(([c, h, a]) => signed(c, h, a)) }
      const d = decodeFrame(body(encodeFrame(m)))
      assert.equal(d.claims.length, m.claims.length)
      for (let i = 0; i < m.claims.length; i++) {
        assert.deepEqual(d.claims[i]!.claim, plain(m.claims[i]!.claim))
        assert.deepEqual(d.claims[i]!.bytes, m.claims[i]!.bytes)
        assert.deepEqual(d.claims[i]!.signature, m.claims[i]!.signature)
        assert.equal(d.claims[i]!.hops, m.claims[i]!.hops)
        assert.equal(d.claims[i]!.age, m.claims[i]!.age)
        assert.deepEqual(decodeClaim(d.claims[i]!.bytes), plain(m.claims[i]!.claim))
      }
    }), { numRuns: 300 })
  })

  it('refuses frames outside the limits with InvalidMessageError', () => {
    const c: Claim = { peer: 'p1', incarnation: 1, seq: 1, capability: { pinned: false, upstream: false, ac: true, battery: 50, freeDiskMiB: 10, uptimeS: 5 }, serving: false, term: 0 }
    const ok = signed(c)
    expectInvalid(new Uint8Array(0), /empty/)
    expectInvalid(Uint8Array.of(0x12, 0x00), /unknown message type 2/)
    expectInvalid(Uint8Array.of(0x0a, 0x00), /no claims/)
    // too many claims
    const many = body(encodeFrame({ type: 'claims', claims: Array.from({ length: MAX_CLAIMS_PER_FRAME }, () => ok) }))
    assert.equal(decodeFrame(many).claims.length, MAX_CLAIMS_PER_FRAME)
    assert.throws(() => encodeFrame({ type: 'claims', claims: Array.from({ length: MAX_CLAIMS_PER_FRAME + 1 }, () => ok) }), RangeError)
    // hops, age, signature beyond the limits: built by hand (the encoder refuses them)
    assert.throws(() => encodeFrame({ type: 'claims', claims: [{ ...ok, hops: MAX_HOPS + 1 }] }), RangeError)
    const frameWith = (extra: number[]): Uint8Array => {
      const inner = [0x0a, ok.bytes.length, ...ok.bytes, 0x12, ok.signature.length, ...ok.signature, ...extra]
      return Uint8Array.from([0x0a, inner.length + 2, 0x0a, inner.length, ...inner])
    }
    assert.equal(decodeFrame(frameWith([0x18, MAX_HOPS])).claims[0]!.hops, MAX_HOPS)
    expectInvalid(frameWith([0x18, MAX_HOPS + 1]), /hops/)
    expectInvalid(frameWith([0x18, 1, 0x18, 1]), /hops given twice/)
    expectInvalid(frameWith([0x20, 0xff, 0xff, 0xff, 0xff, 0x0f]), /age/)
    // a claim without a signature, a signature too long
    const noSig = [0x0a, ok.bytes.length, ...ok.bytes]
    expectInvalid(Uint8Array.from([0x0a, noSig.length + 2, 0x0a, noSig.length, ...noSig]), /no signature/)
    assert.throws(() => encodeFrame({ type: 'claims', claims: [{ ...ok, signature: new Uint8Array(MAX_SIGNATURE_SIZE + 1) }] }), RangeError)
    // claims that break the limits: battery above 100, no peer, peer id too long, a term beyond 2^53
    const claimFrame = (claim: number[]): Uint8Array => {
      const inner = [0x0a, claim.length, ...claim, 0x12, 1, 7]
      return Uint8Array.from([0x0a, inner.length + 2, 0x0a, inner.length, ...inner])
    }
    expectInvalid(claimFrame([0x0a, 1, 0x41, 0x22, 2, 0x20, 101]), /battery/)
    expectInvalid(claimFrame([0x22, 0]), /no peer/)
    expectInvalid(claimFrame([0x0a, 1, 0x41]), /no capability/)
    expectInvalid(claimFrame([0x0a, 1, 0x41, 0x22, 0, 0x30, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]), /2\^53/)
    expectInvalid(claimFrame([0x0a, 2, 0xc3, 0x28, 0x22, 0]), /UTF-8/)
    expectInvalid(claimFrame([0x0a, 1, 0x41, 0x0a, 1, 0x42, 0x22, 0]), /given twice/)
    // the length prefix
    assert.throws(() => new FrameReader().push(Uint8Array.of(0)), /zero length/)
    assert.throws(() => new FrameReader().push(Uint8Array.of(0x81, 0x80, 0x04)), new RegExp(`exceed ${MAX_FRAME_SIZE}`))
  })
})

// ---- fuzz ---------------------------------------------------------------------

function corpus (random: () => number): Uint8Array[] {
  const out: Uint8Array[] = []
  const int = (n: number): number => Math.floor(random() * n)
  for (let k = 0; k < 300; k++) {
    const claims: SignedClaim[] = []
    for (let i = 1 + int(4); i > 0; i--) {
      const c: Claim = {
        peer: `p${int(6)}`,
        incarnation: 1 + int(3),
        seq: int(1000),
        capability: { pinned: random() < 0.1, upstream: random() < 0.2, ac: random() < 0.5, battery: int(101), freeDiskMiB: int(100_000), uptimeS: int(1e6) },
        serving: random() < 0.3,
        term: int(20)
      }
      claims.push(signed(c, int(5), int(8000)))
    }
    out.push(encodeFrame({ type: 'claims', claims }))
  }
  return out
}

function mutate (random: () => number, frame: Uint8Array, all: Uint8Array[]): Uint8Array {
  const int = (n: number): number => Math.floor(random() * n)
  const f = frame.slice()
  switch (int(7)) {
    case 0: for (let k = 1 + int(4); k > 0; k--) { const i = int(f.length); f[i] = f[i]! ^ (1 << int(8)) } return f
    case 1: { const v = [0, 1, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x18, 0x20][int(9)]!; for (let k = 1 + int(3); k > 0; k--) f[int(f.length)] = v; return f }
    case 2: return f.subarray(0, int(f.length))
    case 3: { const extra = new Uint8Array(1 + int(40)); for (let i = 0; i < extra.length; i++) extra[i] = int(256); const o = new Uint8Array(f.length + extra.length); o.set(f); o.set(extra, f.length); return o }
    case 4: { const a = int(f.length); const b = a + int(f.length - a); const o = new Uint8Array(f.length - (b - a)); o.set(f.subarray(0, a)); o.set(f.subarray(b), a); return o }
    case 5: { const g = all[int(all.length)]!; const a = int(f.length); const o = new Uint8Array(a + g.length - Math.min(g.length, int(g.length))); o.set(f.subarray(0, a)); o.set(g.subarray(0, o.length - a), a); return o }
    default: { const o = new Uint8Array(int(200)); for (let i = 0; i < o.length; i++) o[i] = int(256); return o }
  }
}

describe('election codec fuzz', function () {
  this.timeout(SOAK ? 600_000 : 60_000)

  it(`${FRAMES} random and mutated frames: only InvalidMessageError, results within the limits, the core never throws`, () => {
    const random = rng(0xe1ec7)
    const all = corpus(random)
    const core = new Election({ self: 'p9', capability: { pinned: false, upstream: false, ac: false, battery: 50, freeDiskMiB: 1, uptimeS: 1 }, authenticator: checksumAuthenticator('p9'), random: rng(1), config: { banMs: 1 } })
    let decoded = 0
    let refused = 0
    let now = 0
    for (let n = 0; n < FRAMES; n++) {
      const base = all[Math.floor(random() * all.length)]!
      const frame = random() < 0.05 ? base : mutate(random, base, all)
      // through a FrameReader, in two chunks
      const reader = new FrameReader()
      const cut = Math.floor(random() * (frame.length + 1))
      let bodies: Uint8Array[] = []
      try {
        bodies = [...reader.push(frame.subarray(0, cut)), ...reader.push(frame.subarray(cut))]
      } catch (err) {
        if (!(err instanceof InvalidMessageError)) throw err
        refused++
      }
      // and the frame's bytes taken as a body directly
      for (const b of [...bodies, frame.subarray(Math.min(frame.length, 1 + Math.floor(random() * 3)))]) {
        let m: ElectionMessage
        try {
          m = decodeFrame(b)
        } catch (err) {
          if (!(err instanceof InvalidMessageError)) throw err
          refused++
          continue
        }
        decoded++
        assert.ok(m.claims.length >= 1 && m.claims.length <= MAX_CLAIMS_PER_FRAME)
        for (const c of m.claims) {
          assert.ok(c.hops <= MAX_HOPS && c.age <= MAX_AGE_MS && c.signature.length <= MAX_SIGNATURE_SIZE && c.signature.length > 0)
          assert.ok(c.claim.capability.battery <= 100 && Number.isSafeInteger(c.claim.term) && c.claim.peer.length > 0)
        }
        now += 10
        core.handle({ type: 'message', peer: `n${n % 7}`, message: m }, now)
      }
    }
    assert.ok(decoded > FRAMES / 20, `only ${decoded} frames decoded`)
    assert.ok(refused > FRAMES / 4, `only ${refused} frames refused`)
  })
})
