// The trust layer's parts: keys, envelopes, the persisted state, the
// publisher's deployment directory.
import assert from 'node:assert/strict'
import { readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  MAX_SIGNATURES, SNAPSHOT_CONTEXT, TrustError, acceptSnapshot, advise, checkRole, decodeEnvelope, encodeEnvelope, generateKey,
  keygen, loadState, openDeployment, parsePrivateKey, privateKeyPem, rotate, saveState, sealEnvelope, signBytes, statePath,
  verifyBytes, walkRoots, anchorRoot, withdraw, readTrustBundle, writeTrustBundle
} from '../../src/trust/index.ts'
import { tempDir } from '../support/cli.ts'
import { T0, TestDeployment, advisory } from './support.ts'

describe('trust: keys and envelopes', () => {
  it('signs under a context; a private key survives PEM', () => {
    const k = generateKey()
    const bytes = new TextEncoder().encode('hello')
    const sig = signBytes(k, 'a', bytes)
    assert.ok(verifyBytes(k.publicKey, 'a', bytes, sig))
    assert.ok(!verifyBytes(k.publicKey, 'b', bytes, sig), 'another context')
    assert.ok(!verifyBytes(k.publicKey, 'a', new TextEncoder().encode('hellp'), sig))
    assert.ok(!verifyBytes(new Uint8Array(31), 'a', bytes, sig), 'a malformed key is no key, never a throw')
    const back = parsePrivateKey(privateKeyPem(k), 'test')
    assert.equal(back.keyid, k.keyid)
    assert.throws(() => parsePrivateKey('junk', 'f.key'), TrustError)
  })

  it('counts each named key once toward a threshold', () => {
    const a = generateKey()
    const b = generateKey()
    const keys = new Map([[a.keyid, a.publicKey], [b.keyid, b.publicKey]])
    const signed = new TextEncoder().encode('doc')
    const twiceA = sealEnvelope(signed, SNAPSHOT_CONTEXT, [a, a])
    assert.equal(checkRole(twiceA, SNAPSHOT_CONTEXT, { keyids: [a.keyid, b.keyid], threshold: 2 }, keys, 'x')?.code, 'threshold')
    assert.equal(checkRole(sealEnvelope(signed, SNAPSHOT_CONTEXT, [a, b]), SNAPSHOT_CONTEXT, { keyids: [a.keyid, b.keyid], threshold: 2 }, keys, 'x'), undefined)
  })

  it('refuses malformed envelopes without throwing', () => {
    const k = generateKey()
    const many = encodeEnvelope(sealEnvelope(new Uint8Array([1]), 'c', Array(MAX_SIGNATURES + 1).fill(k)))
    for (const bytes of [new Uint8Array([0xff]), new Uint8Array(0), many]) {
      const r = decodeEnvelope(bytes, 1 << 20)
      assert.ok('ok' in r && r.code === 'malformed')
    }
    assert.equal((decodeEnvelope(new Uint8Array(100), 50) as { code: string }).code, 'too-large')
  })

  it('walks roots given in any order and stops at a gap', () => {
    const d = new TestDeployment()
    const anchor = anchorRoot(d.rootKeys[0]!.publicKey)
    d.rotate('root')
    d.rotate('root')
    const all = walkRoots(anchor, [...d.chain()].reverse())
    assert.equal(all.root.doc.version, 3)
    const gap = walkRoots(anchor, [d.chain()[0]!, d.chain()[2]!])
    assert.equal(gap.root.doc.version, 1)
  })
})

describe('trust: persisted state', () => {
  let t: Awaited<ReturnType<typeof tempDir>>
  beforeEach(async () => { t = await tempDir() })
  afterEach(async () => { await t.cleanup() })

  it('round-trips through DATA/trust/state.cbor and leaves no temporary file', async () => {
    const d = new TestDeployment()
    d.rotate('advisory')
    const r = acceptSnapshot(d.laptop(), d.snapshot(3).bytes, d.chain(), T0 + 5)
    assert.ok(r.ok)
    await saveState(t.dir, r.state)
    assert.deepEqual(await readdir(join(t.dir, 'trust')), ['state.cbor'])
    const back = await loadState(t.dir, d.rootKeys[0]!.publicKey)
    assert.equal(back?.root.doc.version, 2)
    assert.equal(back?.snapshot?.doc.version, 3)
    assert.equal(back?.floor, 3)
    assert.equal(back?.clock, T0 + 5)
    // a replay after a restart is still refused: the floor came back from disk
    const again = acceptSnapshot(back!, d.snapshot(2).bytes, [], T0 + 6)
    assert.ok(!again.ok && again.code === 'rollback')
  })

  it('refuses a corrupt state file and a state made from another root key', async () => {
    const d = new TestDeployment()
    await saveState(t.dir, d.laptop())
    await assert.rejects(loadState(t.dir, generateKey().publicKey), /another root key/)
    await writeFile(statePath(t.dir), 'garbage')
    await assert.rejects(loadState(t.dir), (e: unknown) => e instanceof TrustError && /not dag-cbor|not a trust state/.test(e.message))
    assert.equal(await loadState(join(t.dir, 'none')), undefined, 'not provisioned: nothing trusted')
  })
})

describe('trust: the deployment directory', () => {
  let t: Awaited<ReturnType<typeof tempDir>>
  beforeEach(async () => { t = await tempDir() })
  afterEach(async () => { await t.cleanup() })

  it('keygen, advise, withdraw, rotate, bundle: a laptop follows every step', async () => {
    const dir = join(t.dir, 'dep')
    const d = await keygen(dir, { now: T0, rootKeys: 2, rootThreshold: 2 })
    await assert.rejects(keygen(dir, { now: T0 }), /refusing to overwrite/)
    for (const f of await readdir(join(dir, 'keys'))) assert.equal((await stat(join(dir, 'keys', f))).mode & 0o777, 0o600)
    const rootKey = (await readFile(join(dir, 'root.pub'), 'utf8')).trim().split('\n')[0]!
    const s1 = await advise(d, advisory(1), { now: T0 })
    const s2 = await advise(d, advisory(2), { now: T0 })
    const s3 = await advise(d, { ...advisory(1), size: 5 }, { now: T0 })
    assert.deepEqual(s3.doc.advisories.map(a => [a.name, a.size]), [['os-2', 1002], ['os-1', 5]], 'same name: replaced')
    const s4 = await withdraw(d, 'os-2', { now: T0 })
    assert.deepEqual(s4.doc.advisories.map(a => a.name), ['os-1'])
    const r = await rotate(d, 'advisory', { now: T0 })
    assert.equal(r.root.doc.version, 2)
    assert.equal(r.snapshot?.doc.version, 5, 'advisories signed again with the new key')
    const again = await openDeployment(dir)
    assert.equal(again.roots.length, 2)
    assert.equal(again.snapshot?.doc.version, 5)

    let laptop = (await loadState(join(t.dir, 'lap'), Buffer.from(rootKey, 'hex')))!
    for (const s of [s1, s2]) {
      const x = acceptSnapshot(laptop, s.bytes, [again.roots[0]!.bytes], T0 + 1)
      assert.ok(x.ok)
      laptop = x.state
    }
    const car = join(t.dir, 'stick.car')
    await writeTrustBundle(car, { snapshot: again.snapshot!.bytes, roots: again.roots.map(x => x.bytes) })
    const b = await readTrustBundle(car)
    assert.ok(!('ok' in b))
    const y = acceptSnapshot(laptop, b.snapshot, b.roots, T0 + 2)
    assert.ok(y.ok, y.ok ? '' : y.reason)
    assert.equal(y.state.root.doc.version, 2)
  })
})

describe('trust: fuzz', function () {
  this.timeout(120_000)
  const SOAK = process.env.XO_MESH_SOAK !== undefined && process.env.XO_MESH_SOAK !== ''
  const N = SOAK ? 100_000 : 5_000

  it(`${N.toLocaleString('en')} mutated snapshots and roots: never a throw, nothing accepted but the genuine documents`, () => {
    const d = new TestDeployment()
    const laptop = acceptSnapshot(d.laptop(), d.snapshot(1).bytes, d.chain(), T0)
    assert.ok(laptop.ok)
    d.rotate('advisory')
    const good = d.snapshot(2).bytes
    const root = d.chain()[1]!
    let seed = 12345
    const int = (n: number): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n }
    const codes = new Map<string, number>()
    for (let i = 0; i < N; i++) {
      const snap = good.slice()
      const r2 = root.slice()
      const target = int(3) === 0 ? r2 : snap
      for (let k = 1 + int(3); k > 0; k--) target[int(target.length)] = int(256)
      const cut = int(4) === 0 ? snap.subarray(0, int(snap.length)) : snap
      const r = acceptSnapshot(laptop.state, cut, [r2], T0 + 1)
      // a mutation that changes nothing signed (or nothing at all) may be accepted; anything else must not
      if (r.ok) assert.ok(r.snapshot.doc.version === 2 && r.state.root.doc.version === 2)
      else codes.set(r.code, (codes.get(r.code) ?? 0) + 1)
    }
    assert.ok((codes.get('malformed') ?? 0) > 0 && (codes.get('bad-signature') ?? 0) + (codes.get('unknown-key') ?? 0) > 0, JSON.stringify([...codes]))
  })
})
