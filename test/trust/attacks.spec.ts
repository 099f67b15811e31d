// TUF's attacks that apply to advisories (docs/deployment.md), each against
// the real verification rules: every one is refused with its code and a
// reason a person can read, and nothing of the attacker's snapshot ends up in
// the state the caller would persist.
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import {
  MAX_VERSION_JUMP, SNAPSHOT_CONTEXT, acceptSnapshot, advisoriesFor, decodeEnvelope, encodeEnvelope, generateKey,
  sealEnvelope, signBytes, signRoot, type Accepted, type Refused, type TrustState
} from '../../src/trust/index.ts'
import { DAY, T0, TestDeployment, advisory } from './support.ts'

function accepted (r: Accepted | Refused): Accepted {
  if (!r.ok) assert.fail(`refused: ${r.code}: ${r.reason}`)
  return r
}

function refused (r: Accepted | Refused, code: string, pattern: RegExp): Refused {
  if (r.ok) assert.fail('accepted what should be refused')
  assert.equal(r.code, code, r.reason)
  assert.match(r.reason, pattern)
  return r
}

/** A laptop that has accepted snapshot v`version` of d. */
function laptopAt (d: TestDeployment, version: number): TrustState {
  return accepted(acceptSnapshot(d.laptop(), d.snapshot(version).bytes, d.chain(), T0 + 1000)).state
}

describe('advisory attacks (TUF) are refused', () => {
  it('accepts a genuine snapshot with its root chain, and raises the clock to its issue time', () => {
    const d = new TestDeployment()
    const r = accepted(acceptSnapshot(d.laptop(), d.snapshot(1).bytes, d.chain(), 0))
    assert.equal(r.state.floor, 1)
    assert.equal(r.state.root.doc.version, 1)
    assert.equal(r.state.clock, T0, 'a laptop whose clock reads 1970 learns the issue time')
    assert.equal(r.state.snapshot?.doc.advisories[0]?.name, 'os-1')
  })

  describe('arbitrary installation', () => {
    it('a snapshot signed by a key the root never named', () => {
      const d = new TestDeployment()
      const s = laptopAt(d, 1)
      const mallory = generateKey()
      const forged = d.snapshot(2, [advisory(666)], {}, [mallory])
      const r = refused(acceptSnapshot(s, forged.bytes, [], T0 + 2000), 'unknown-key', /no signature by a key the trusted root names/)
      assert.equal(r.state.floor, 1)
      assert.equal(r.state.snapshot?.doc.version, 1)
    })

    it('a forged signature under the advisory key id', () => {
      const d = new TestDeployment()
      const s = laptopAt(d, 1)
      const genuine = decodeEnvelope(d.snapshot(2).bytes, 1 << 20)
      assert.ok(!('ok' in genuine))
      const evil = dagCbor.encode({ type: 'xo-mesh/advisories', version: 2, issued: T0, expires: T0 + DAY, advisories: [] })
      const forged = encodeEnvelope({ signed: evil, signatures: [{ keyid: d.advisoryKeys[0]!.keyid, sig: genuine.signatures[0]!.sig }] })
      refused(acceptSnapshot(s, forged, [], T0 + 2000), 'bad-signature', /do not verify/)
    })

    it('a snapshot signed by the root key (a key of another role) or with the root context', () => {
      const d = new TestDeployment()
      const s = laptopAt(d, 1)
      refused(acceptSnapshot(s, d.snapshot(2, [advisory(2)], {}, d.rootKeys).bytes, [], T0 + 2000), 'unknown-key', /advisory snapshot/)
      // the advisory key's signature made over the bytes in another context (a root) does not count
      const doc = dagCbor.encode({ type: 'xo-mesh/advisories', version: 2, issued: T0, expires: T0 + DAY, advisories: [] })
      const k = d.advisoryKeys[0]!
      const wrong = encodeEnvelope({ signed: doc, signatures: [{ keyid: k.keyid, sig: signBytes(k, 'xo-mesh root v1', doc) }] })
      refused(acceptSnapshot(s, wrong, [], T0 + 2000), 'bad-signature', /do not verify/)
      const right = encodeEnvelope(sealEnvelope(doc, SNAPSHOT_CONTEXT, [k]))
      accepted(acceptSnapshot(s, right, [], T0 + 2000))
    })

    it('a root version signed only by the attacker, carried with a snapshot it signs', () => {
      const d = new TestDeployment()
      const s = laptopAt(d, 1)
      const evil = new TestDeployment()
      evil.rotate('advisory')
      const r = refused(acceptSnapshot(s, evil.snapshot(5).bytes, evil.chain(), T0 + 2000), 'unknown-key', /advisory snapshot/)
      assert.equal(r.state.root.doc.version, 1, 'the attacker\'s roots were not walked')
      assert.ok(r.roots.rejections.length > 0)
      assert.match(r.roots.rejections[0]!.reason, /keys of root v1/)
    })

    it('a threshold of root keys: one signature of two is not enough', () => {
      const d = new TestDeployment(3, 2)
      const s = laptopAt(d, 1)
      // root v2 signed by one old root key only
      const doc = d.doc(2)
      const weak = signRoot(doc, [d.rootKeys[0]!])
      const r = acceptSnapshot(s, d.snapshot(2).bytes, [weak.bytes], T0 + 2000)
      assert.equal(r.state.root.doc.version, 1)
      assert.equal(r.roots.rejections[0]?.code, 'threshold')
      assert.match(r.roots.rejections[0]!.reason, /signed by 1 of the 2 keys required/)
    })
  })

  it('mix-and-match: entries of two snapshots combined under one signature are refused', () => {
    const d = new TestDeployment()
    const s = laptopAt(d, 1)
    const a = decodeEnvelope(d.snapshot(2, [advisory(2)]).bytes, 1 << 20)
    const b = decodeEnvelope(d.snapshot(3, [advisory(3)]).bytes, 1 << 20)
    assert.ok(!('ok' in a) && !('ok' in b))
    const docA = dagCbor.decode(a.signed) as { advisories: unknown[] }
    const docB = dagCbor.decode(b.signed) as { advisories: unknown[] }
    const mixed = dagCbor.encode({ ...docB, advisories: [...docA.advisories, ...docB.advisories] })
    for (const sig of [a.signatures, b.signatures]) {
      const r = refused(acceptSnapshot(s, encodeEnvelope({ signed: mixed, signatures: sig }), [], T0 + 2000), 'bad-signature', /do not verify/)
      assert.equal(r.state.snapshot?.doc.version, 1)
    }
  })

  describe('rollback and replay', () => {
    it('an older snapshot (from a peer or a stick) is refused', () => {
      const d = new TestDeployment()
      const old = d.snapshot(3)
      const s = accepted(acceptSnapshot(laptopAt(d, 1), d.snapshot(5).bytes, [], T0 + 2000)).state
      refused(acceptSnapshot(s, old.bytes, d.chain(), T0 + 3000), 'rollback', /v3 is older than v5/)
    })

    it('the trusted version with other bytes is refused; the same bytes are a no-op', () => {
      const d = new TestDeployment()
      const s = laptopAt(d, 4)
      refused(acceptSnapshot(s, d.snapshot(4, [advisory(99)]).bytes, [], T0 + 3000), 'replay', /already trusted/)
      const same = accepted(acceptSnapshot(s, s.snapshot!.bytes, [], T0 + 3000))
      assert.equal(same.changed, false)
    })
  })

  describe('indefinite freeze', () => {
    it('an expired snapshot is refused', () => {
      const d = new TestDeployment()
      const s = laptopAt(d, 1)
      refused(acceptSnapshot(s, d.snapshot(2).bytes, [], T0 + 31 * DAY), 'expired', /expired at/)
    })

    it('a clock set back does not revive an expired snapshot', () => {
      const d = new TestDeployment()
      const s = laptopAt(d, 1)
      const seen = refused(acceptSnapshot(s, d.snapshot(2).bytes, [], T0 + 31 * DAY), 'expired', /expired/).state
      assert.equal(seen.clock, T0 + 31 * DAY)
      // the laptop's clock is reset to its factory date; the highest clock seen still rules
      refused(acceptSnapshot(seen, d.snapshot(2).bytes, [], Date.UTC(2010, 0, 1)), 'expired', /clock 2026-12-27/)
    })

    it('nothing is accepted under an expired root', () => {
      const d = new TestDeployment()
      const s = laptopAt(d, 1)
      refused(acceptSnapshot(s, d.snapshot(2, [advisory(2)], { expires: T0 + 400 * DAY }).bytes, [], T0 + 366 * DAY), 'root-expired', /root v1 expired/)
    })
  })

  it('fast-forward: an absurd version is refused', () => {
    const d = new TestDeployment()
    const s = laptopAt(d, 1)
    refused(acceptSnapshot(s, d.snapshot(2 + MAX_VERSION_JUMP).bytes, [], T0 + 2000), 'fast-forward', /jumps more than 1048576/)
    refused(acceptSnapshot(s, d.snapshot(0xffffffff).bytes, [], T0 + 2000), 'fast-forward', /jumps/)
    accepted(acceptSnapshot(s, d.snapshot(1 + MAX_VERSION_JUMP).bytes, [], T0 + 2000))
  })

  it('wrong software: an advisory for another school or model is not for this laptop', () => {
    const d = new TestDeployment()
    const snap = d.snapshot(2, [
      advisory(1, { targets: { schools: ['escuela-12'] } }),
      advisory(2, { targets: { models: ['XO-4'] } }),
      advisory(3, { targets: { serials: ['SHC001', 'SHC002'] } }),
      advisory(4, { targets: { builds: [advisory(0).build] } }),
      advisory(5, { targets: { schools: ['escuela-7'], models: ['XO-1.75'] } })
    ])
    const t = advisoriesFor(snap.doc, { school: 'escuela-7', model: 'XO-1.75', serial: 'SHC003', current: [advisory(9).build] })
    assert.deepEqual(t.mine.map(a => a.name), ['os-5'])
    assert.deepEqual(t.others.map(o => o.reason), [
      'school "escuela-7" is not among "escuela-12"',
      'hardware model "XO-1.75" is not among "XO-4"',
      'serial number "SHC003" is not among "SHC001", "SHC002"',
      'none of the builds it runs is among the builds the advisory updates from'
    ])
    assert.deepEqual(advisoriesFor(snap.doc, {}).mine, [], 'a laptop that knows nothing of itself matches no targeted advisory')
  })

  it('a tampered snapshot (one byte changed) is refused', () => {
    const d = new TestDeployment()
    const s = laptopAt(d, 1)
    const bytes = d.snapshot(2).bytes.slice()
    let refusedAll = true
    for (let i = 0; i < bytes.length; i += 7) {
      const t = bytes.slice()
      t[i] = t[i]! ^ 0x01
      const r = acceptSnapshot(s, t, [], T0 + 2000)
      if (r.ok) refusedAll = false
      else assert.equal(r.state.snapshot?.doc.version, 1)
    }
    assert.ok(refusedAll)
  })

  describe('key rotation', () => {
    it('an old advisory key is refused after rotation, and the new key\'s snapshot is taken', () => {
      const d = new TestDeployment()
      const s = laptopAt(d, 3)
      const oldKeys = d.advisoryKeys
      d.rotate('advisory')
      const r = accepted(acceptSnapshot(s, d.snapshot(4).bytes, d.chain(), T0 + 2000))
      assert.equal(r.state.root.doc.version, 2)
      assert.match(r.roots.dropped ?? '', /advisory keys rotated in root v2/)
      refused(acceptSnapshot(r.state, d.snapshot(9, [advisory(9)], {}, oldKeys).bytes, [], T0 + 3000), 'unknown-key', /no signature by a key the trusted root names/)
    })

    it('an old root key cannot sign a root after the root keys rotated', () => {
      const d = new TestDeployment()
      const s = laptopAt(d, 1)
      const oldRootKeys = d.rootKeys
      d.rotate('root')
      const s2 = accepted(acceptSnapshot(s, d.snapshot(2).bytes, d.chain(), T0 + 2000)).state
      assert.equal(s2.root.doc.version, 2)
      const evil = new TestDeployment()
      evil.rootKeys = oldRootKeys
      const v3 = signRoot({ ...evil.doc(3) }, oldRootKeys)
      const r = acceptSnapshot(s2, evil.snapshot(3).bytes, [v3.bytes], T0 + 3000)
      assert.equal(r.state.root.doc.version, 2)
      assert.equal(r.roots.rejections[0]?.code, 'unknown-key')
    })

    it('a laptop several root versions behind catches up from a stick carrying every root version', () => {
      const d = new TestDeployment()
      const s = laptopAt(d, 1)
      d.rotate('root')
      d.rotate('advisory')
      d.rotate('root')
      d.rotate('advisory')
      assert.equal(d.root.doc.version, 5)
      const snap = d.snapshot(7)
      // without the intermediate versions it cannot
      const gap = refused(acceptSnapshot(s, snap.bytes, [d.roots[4]!.bytes], T0 + 2000), 'unknown-key', /advisory snapshot/)
      assert.equal(gap.state.root.doc.version, 1)
      assert.match(gap.roots.rejections[0]!.reason, /version is missing/)
      // with all of them, in any order, it walks 1 → 5
      const r = accepted(acceptSnapshot(s, snap.bytes, [...d.chain()].reverse(), T0 + 2000))
      assert.equal(r.state.root.doc.version, 5)
      assert.deepEqual(r.roots.adopted.map(x => x.doc.version), [2, 3, 4, 5])
      assert.equal(r.state.chain.length, 5)
    })
  })
})
