// Activation leases: what a laptop accepts and what it refuses, each refusal
// with its code (the driver logs it). Real keys and signatures, a fixed clock.
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import {
  LEASE_TYPE, acceptLeases, decodeEnvelope, encodeEnvelope, generateKey, signLease, signRoot, verifyLease,
  type Lease, type LeaseDoc, type SigningKey
} from '../../src/trust/index.ts'
import { DAY, T0, TestDeployment } from './support.ts'

function lease (d: TestDeployment, serial: string, over: Partial<LeaseDoc> = {}, keys: SigningKey[] = [d.leaseKey]): Lease {
  return signLease({ type: LEASE_TYPE, serial, issued: T0, expires: T0 + 30 * DAY, school: 'Escuela 12', ...over }, keys)
}

/** Rotates the lease role to a fresh key: the next root, signed by the root keys. */
function rotateLease (d: TestDeployment): SigningKey {
  const old = d.leaseKey
  d.leaseKey = generateKey()
  d.roots.push(signRoot(d.doc(d.root.doc.version + 1), d.rootKeys))
  return old
}

describe('activation leases', () => {
  const now = T0 + DAY

  it('accepts a lease for this serial signed by the lease key, and says until when', () => {
    const d = new TestDeployment()
    const v = verifyLease(d.root, lease(d, 'SHC001').bytes, [], 'SHC001', 0, now)
    assert.ok('lease' in v, JSON.stringify(v))
    assert.equal(v.lease.doc.expires, T0 + 30 * DAY)
    assert.deepEqual(v.lease.signers, [d.leaseKey.keyid])
  })

  it('refuses a forged lease (a signature that does not verify)', () => {
    const d = new TestDeployment()
    const good = lease(d, 'SHC001')
    const env = decodeEnvelope(good.bytes, 4096)
    assert.ok(!('ok' in env))
    // the same signature over a document that now lasts ten years
    const forged = encodeEnvelope({ signed: dagCbor.encode({ type: LEASE_TYPE, serial: 'SHC001', issued: T0, expires: T0 + 3650 * DAY }), signatures: env.signatures })
    const v = verifyLease(d.root, forged, [], 'SHC001', 0, now)
    assert.ok(!('lease' in v))
    assert.equal(v.code, 'bad-signature')
  })

  it('refuses a lease for another serial', () => {
    const d = new TestDeployment()
    const v = verifyLease(d.root, lease(d, 'SHC002').bytes, [], 'SHC001', 0, now)
    assert.ok(!('lease' in v))
    assert.equal(v.code, 'wrong-serial')
  })

  it('refuses an expired lease, also when the clock was set back after seeing a later time', () => {
    const d = new TestDeployment()
    const l = lease(d, 'SHC001', { expires: T0 + 2 * DAY })
    const late = verifyLease(d.root, l.bytes, [], 'SHC001', 0, T0 + 3 * DAY)
    assert.ok(!('lease' in late))
    assert.equal(late.code, 'expired')
    // the wall clock says T0+1d, but the laptop has already seen T0+3d
    const reset = verifyLease(d.root, l.bytes, [], 'SHC001', T0 + 3 * DAY, T0 + DAY)
    assert.ok(!('lease' in reset))
    assert.equal(reset.code, 'expired')
  })

  it('refuses a lease signed by a key the root never named, and one signed by the advisory key', () => {
    const d = new TestDeployment()
    const stranger = verifyLease(d.root, lease(d, 'SHC001', {}, [generateKey()]).bytes, [], 'SHC001', 0, now)
    assert.ok(!('lease' in stranger))
    assert.equal(stranger.code, 'unknown-key')
    const wrongRole = verifyLease(d.root, lease(d, 'SHC001', {}, d.advisoryKeys).bytes, [], 'SHC001', 0, now)
    assert.ok(!('lease' in wrongRole))
    assert.equal(wrongRole.code, 'unknown-key')
  })

  it('refuses a lease signed by a rotated-out lease key once the laptop walks to the new root', () => {
    const d = new TestDeployment()
    const v1 = d.root
    const old = rotateLease(d)
    const stale = lease(d, 'SHC001', {}, [old])
    // a laptop still on v1 takes it; carried the v2 root, it refuses it
    assert.ok('lease' in verifyLease(v1, stale.bytes, [], 'SHC001', 0, now))
    const walked = verifyLease(v1, stale.bytes, d.chain(), 'SHC001', 0, now)
    assert.ok(!('lease' in walked))
    assert.equal(walked.code, 'unknown-key')
    assert.equal(walked.root.doc.version, 2)
    // the new key's lease, carried with the roots, is taken by the laptop on v1
    const fresh = verifyLease(v1, lease(d, 'SHC001').bytes, d.chain(), 'SHC001', 0, now)
    assert.ok('lease' in fresh, JSON.stringify(fresh))
  })

  it('refuses everything once the trusted root has expired', () => {
    const d = new TestDeployment()
    const v = verifyLease(d.root, lease(d, 'SHC001', { expires: T0 + 400 * DAY }).bytes, [], 'SHC001', 0, T0 + 366 * DAY)
    assert.ok(!('lease' in v))
    assert.equal(v.code, 'root-expired')
  })

  it('refuses bytes that are not a lease without throwing', () => {
    const d = new TestDeployment()
    for (const junk of [new Uint8Array(0), new Uint8Array([0xa0]), new Uint8Array(5000), d.root.bytes, dagCbor.encode({ signed: new Uint8Array(3), signatures: [] })]) {
      const v = verifyLease(d.root, junk, [junk], 'SHC001', 0, now)
      assert.ok(!('lease' in v))
    }
  })

  it('a school server keeps the longest lease per serial, drops the refused and the expired', () => {
    const d = new TestDeployment()
    const batch = [lease(d, 'A', { expires: T0 + 10 * DAY }), lease(d, 'A', { expires: T0 + 20 * DAY }), lease(d, 'B'), lease(d, 'C', {}, [generateKey()]), lease(d, 'D', { expires: T0 + 2 * DAY })]
    const r = acceptLeases(d.root, { leases: [], roots: [], clock: 0 }, { leases: batch.map(l => l.bytes), roots: [] }, undefined, now)
    assert.deepEqual(r.accepted.map(l => l.doc.serial).sort(), ['A', 'A', 'B', 'D'])
    assert.deepEqual(r.refused.map(x => [x.serial, x.code]), [['C', 'unknown-key']])
    assert.equal(r.store.leases.length, 3)
    // ten days later, D has expired and is dropped; A keeps its 20-day lease
    const later = acceptLeases(d.root, r.store, { leases: [batch[0]!.bytes], roots: [] }, undefined, T0 + 11 * DAY)
    assert.equal(later.accepted.length, 0)
    assert.equal(later.store.leases.length, 2)
    const a = later.store.leases.map(b => verifyLease(d.root, b, [], undefined, 0, now)).find(v => 'lease' in v && v.lease.doc.serial === 'A')
    assert.ok(a !== undefined && 'lease' in a && a.lease.doc.expires === T0 + 20 * DAY)
  })

  it('a laptop keeps only its own serial from a batch', () => {
    const d = new TestDeployment()
    const r = acceptLeases(d.root, { leases: [], roots: [], clock: 0 }, { leases: [lease(d, 'A').bytes, lease(d, 'B').bytes], roots: [] }, 'B', now)
    assert.deepEqual(r.accepted.map(l => l.doc.serial), ['B'])
    assert.deepEqual(r.refused.map(x => x.code), ['wrong-serial'])
  })
})
