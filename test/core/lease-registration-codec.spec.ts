// The codecs of /xo-mesh/lease/1.0.0 and /xo-mesh/register/1.0.0: round trips
// (fast-check), limits refused at encode, and a fuzz of each decoder with
// random and mutated bodies: only InvalidMessageError may come out, and what
// decodes keeps the documented limits and encodes again. XO_MESH_SOAK=1 runs
// ten times as many frames.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { InvalidMessageError } from '../../src/core/wire/errors.ts'
import { MAX_LEASE_BYTES, MAX_ROOTS, MAX_SERIALS, decodeLeaseMessage, encodeLeaseMessage, type LeaseMessage } from '../../src/core/lease/index.ts'
import { MAX_ROSTER, OWNER_KEY_BYTES, decodeRegisterMessage, encodeRegisterMessage, type RegisterMessage } from '../../src/core/registration/index.ts'
import { rng } from './mesh.ts'

const SOAK = process.env.XO_MESH_SOAK !== undefined && process.env.XO_MESH_SOAK !== ''
const FRAMES = SOAK ? 1_000_000 : 100_000

const serial = fc.stringMatching(/^[A-Z0-9]{1,12}$/)
const blob = (max: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: 1, maxLength: max })
const leaseMessage: fc.Arbitrary<LeaseMessage> = fc.oneof(
  fc.record({ type: fc.constant('request' as const), serials: fc.array(serial, { maxLength: 20 }) }),
  fc.record({ type: fc.constant('reply' as const), leases: fc.array(blob(300), { maxLength: 10 }), roots: fc.array(blob(300), { maxLength: 3 }) })
).map(m => structuredClone(m))
const text = fc.string({ maxLength: 20 })
const registerMessage: fc.Arbitrary<RegisterMessage> = fc.oneof(
  fc.record({ type: fc.constant('registration' as const), serial, machineId: fc.stringMatching(/^[0-9a-f]{32}$/), bootId: fc.stringMatching(/^[0-9a-f-]{0,36}$/), nickname: text, ownerKey: fc.uint8Array({ minLength: 32, maxLength: 32 }), school: text }),
  fc.record({
    type: fc.constant('answer' as const),
    status: fc.constantFrom('ok' as const, 'conflict' as const, 'refused' as const),
    reason: text,
    roster: fc.array(fc.record({ peerId: fc.stringMatching(/^12D3KooW[a-zA-Z0-9]{1,44}$/), nickname: text, serial: fc.oneof(fc.constant(''), serial), inReach: fc.boolean() }), { maxLength: 8 })
  })
).map(m => structuredClone(m))

function concat (...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) { out.set(p, o); o += p.length }
  return out
}

function mutate (random: () => number, f0: Uint8Array, all: Uint8Array[]): Uint8Array {
  const int = (n: number): number => Math.floor(random() * n)
  const noise = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => int(256))
  const f = f0.slice()
  if (f.length === 0) return noise(1 + int(20))
  switch (int(7)) {
    case 0: for (let k = 1 + int(4); k > 0; k--) { const i = int(f.length); f[i] = f[i]! ^ (1 << int(8)) } return f
    case 1: { const v = [0, 1, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x08, 0x1a, 0x20][int(10)]!; for (let k = 1 + int(3); k > 0; k--) f[int(f.length)] = v; return f }
    case 2: return f.subarray(0, int(f.length))
    case 3: return concat(f, noise(1 + int(40)))
    case 4: { const a = int(f.length); return concat(f.subarray(0, a), f.subarray(a + int(8))) }
    case 5: { const a = int(f.length); return concat(f.subarray(0, a), noise(1 + int(6)), f.subarray(a)) }
    default: { const o = all[int(all.length)]!; return concat(f.subarray(0, int(f.length)), o.subarray(int(o.length))) }
  }
}

function fuzz<M> (name: string, arb: fc.Arbitrary<M>, encode: (m: M) => Uint8Array, decode: (b: Uint8Array) => M, invariants: (m: M) => void): void {
  it(`${name}: refuses ${FRAMES} random and mutated bodies with InvalidMessageError only`, () => {
    const random = rng(Number(process.env.XO_MESH_SEED ?? 20261126))
    const all = fc.sample(arb, { numRuns: 300, seed: 7 }).map(encode)
    let decoded = 0
    let refused = 0
    for (let i = 0; i < FRAMES; i++) {
      const body = random() < 0.05 ? Uint8Array.from({ length: Math.floor(random() * 200) }, () => Math.floor(random() * 256)) : mutate(random, all[Math.floor(random() * all.length)]!, all)
      let m: M
      try {
        m = decode(body)
      } catch (err) {
        assert.ok(err instanceof InvalidMessageError, `${String(err)} on ${Buffer.from(body).toString('hex').slice(0, 200)}`)
        refused++
        continue
      }
      decoded++
      invariants(m)
      assert.deepEqual(decode(encode(m)), m)
    }
    assert.ok(decoded > FRAMES / 20, `only ${decoded} decoded: the mutations are too harsh to reach deep`)
    assert.ok(refused > FRAMES / 20, `only ${refused} refused`)
  })
}

describe('lease and registration codecs', function () {
  this.timeout(SOAK ? 600_000 : 60_000)

  it('round-trip every lease message', () => {
    fc.assert(fc.property(leaseMessage, m => { assert.deepEqual(decodeLeaseMessage(encodeLeaseMessage(m)), m) }), { numRuns: 300 })
  })

  it('round-trip every registration message', () => {
    fc.assert(fc.property(registerMessage, m => { assert.deepEqual(decodeRegisterMessage(encodeRegisterMessage(m)), m) }), { numRuns: 300 })
  })

  it('refuse to encode what breaks a limit', () => {
    assert.throws(() => encodeLeaseMessage({ type: 'reply', leases: [new Uint8Array(MAX_LEASE_BYTES + 1)], roots: [] }), RangeError)
    assert.throws(() => encodeLeaseMessage({ type: 'request', serials: [''] }), RangeError)
    assert.throws(() => encodeRegisterMessage({ type: 'registration', serial: 'S', machineId: 'm', bootId: '', nickname: '', ownerKey: new Uint8Array(31), school: '' }), RangeError)
  })

  it('refuse a registration without an owner key of 32 bytes, and an answer of unknown status', () => {
    const ok = encodeRegisterMessage({ type: 'registration', serial: 'S', machineId: 'm', bootId: '', nickname: 'ana', ownerKey: new Uint8Array(32), school: '' })
    // field 5 (owner key) is the last but school (empty, omitted): cut one byte of the key and fix the lengths
    const cut = Uint8Array.from([...ok.subarray(0, ok.length - 1)]); cut[1] = cut[1]! - 1; cut[cut.length - OWNER_KEY_BYTES] = OWNER_KEY_BYTES - 1
    assert.throws(() => decodeRegisterMessage(cut), InvalidMessageError)
    assert.throws(() => decodeRegisterMessage(Uint8Array.from([0x12, 0x02, 0x08, 0x09])), InvalidMessageError)
  })

  fuzz('lease decoder', leaseMessage, encodeLeaseMessage, decodeLeaseMessage, m => {
    if (m.type === 'request') assert.ok(m.serials.length <= MAX_SERIALS && m.serials.every(s => s.length > 0))
    else assert.ok(m.roots.length <= MAX_ROOTS && m.leases.every(l => l.length > 0 && l.length <= MAX_LEASE_BYTES))
  })

  fuzz('registration decoder', registerMessage, encodeRegisterMessage, decodeRegisterMessage, m => {
    if (m.type === 'registration') assert.ok(m.serial !== '' && m.machineId !== '' && m.ownerKey.length === OWNER_KEY_BYTES)
    else assert.ok(m.roster.length <= MAX_ROSTER && m.roster.every(e => e.peerId !== ''))
  })
})
