// Install results and staged rollout in the advisory core: a result signed
// by one laptop reaches every agent of a room through Trickle (so a failure
// halts the rollout where there is no link), a result signed by another key
// or changed in transit is refused, the set keeps one result per laptop and
// build, and a laptop's wave and go/no-go follow from its id, the clock and
// the failures it has seen. 100,000 random and mutated records (1,000,000
// under XO_MESH_SOAK=1) bring out only InvalidMessageError.
import assert from 'node:assert/strict'
import { createHash, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto'
import {
  INSTALL_RESULT_CONTEXT, InvalidMessageError, MAX_RESULT_BYTES, ResultSet, decodeResult, encodeResult, resultBody,
  rolloutDecision, rolloutPosition, type CheckedResult, type InstallResult
} from '../../src/core/advisory/index.ts'
import { generateKey } from '../../src/trust/index.ts'
import { Room } from './advisory-room.ts'
import { rng } from './mesh.ts'

const SOAK = process.env.XO_MESH_SOAK !== undefined && process.env.XO_MESH_SOAK !== ''
const RECORDS = SOAK ? 1_000_000 : 100_000

interface Laptop { key: Uint8Array, privateKey: KeyObject }

function laptop (): Laptop {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const jwk = publicKey.export({ format: 'jwk' })
  return { key: new Uint8Array(Buffer.from(jwk.x!, 'base64url')), privateKey }
}

function message (body: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(INSTALL_RESULT_CONTEXT + '\n'), body])
}

function signed (l: Laptop, build: Uint8Array, ok: boolean, at: number): Uint8Array {
  const body = { originKey: l.key, build, ok, at }
  return encodeResult({ ...body, signature: new Uint8Array(sign(null, message(resultBody(body)), l.privateKey)) })
}

/** The checker a driver injects: decode, verify against the key the record names, id = sha2-256 of the record. */
function check (record: Uint8Array): CheckedResult | undefined {
  let r: InstallResult
  try { r = decodeResult(record) } catch { return undefined }
  const pub = { key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(r.originKey).toString('base64url') }, format: 'jwk' as const }
  if (!verify(null, message(resultBody(r)), pub, r.signature)) return undefined
  return { result: r, id: new Uint8Array(createHash('sha256').update(record).digest()) }
}

const BUILD = new Uint8Array([1, 0x71, 0x12, 0x20, ...new Uint8Array(32).fill(9)])

describe('advisory core: install results', function () {
  this.timeout(120_000)

  it('keeps one result per laptop and build, the latest, with an order-independent digest', () => {
    const a = laptop()
    const b = laptop()
    const records = [signed(a, BUILD, false, 1000), signed(b, BUILD, true, 1000), signed(a, BUILD, true, 2000), signed(a, BUILD, false, 1500)]
    const one = new ResultSet()
    const two = new ResultSet()
    for (const r of records) one.add(r, check(r)!)
    for (const r of [...records].reverse()) two.add(r, check(r)!)
    assert.equal(one.size, 2)
    assert.deepEqual(one.tally(BUILD), { ok: 2, failed: 0 }, 'a laptop that failed, then succeeded, counts as a success')
    assert.deepEqual(one.digest(), two.digest())
    assert.equal(one.add(records[0]!, check(records[0]!)!), false, 'an older result changes nothing')
    const small = new ResultSet(2)
    for (let i = 0; i < 5; i++) { const r = signed(laptop(), BUILD, true, 100 + i); small.add(r, check(r)!) }
    assert.equal(small.size, 2, 'bounded: the oldest go')
  })

  it('refuses a result changed in transit or signed by another key than the one it names', () => {
    const a = laptop()
    const r = signed(a, BUILD, false, 1000)
    assert.ok(check(r) !== undefined)
    const flipped = decodeResult(r)
    assert.equal(check(encodeResult({ ...flipped, ok: true })), undefined, 'a failure turned into a success')
    const other = laptop()
    assert.equal(check(encodeResult({ ...flipped, originKey: other.key })), undefined, 'put in another laptop\'s name')
  })

  it('a failure reported by one agent reaches all 20 of a room through Trickle, and forged ones never spread', () => {
    const room = new Room({ n: 20, seed: 3, rootKey: generateKey().publicKey, core: { checkResult: check } })
    room.connectAll()
    room.run(60_000)
    const forged = encodeResult({ ...decodeResult(signed(laptop(), BUILD, false, 5)), ok: true })
    room.feed(7, { type: 'result', record: forged })
    room.run(70_000)
    assert.ok(room.agents.every(x => x.core.results.size === 0), 'a forged result was kept')
    const start = room.now
    room.feed(3, { type: 'result', record: signed(laptop(), BUILD, false, 42) })
    room.run(start + 30_000, () => room.agents.every(x => x.core.results.size === 1))
    const took = room.now - start
    assert.ok(room.agents.every(x => x.core.results.tally(BUILD).failed === 1), 'every agent counts the failure')
    assert.ok(took < 10_000, `took ${took} ms`)
    // and it falls quiet again: equal sets are consistent
    const sent = room.agents.reduce((n, x) => n + x.core.stats.resultsSent, 0)
    room.run(room.now + 3_600_000)
    const after = room.agents.reduce((n, x) => n + x.core.stats.resultsSent, 0)
    assert.equal(after, sent, 'results keep being pushed once every agent holds them')
  })

  it(`fuzz: ${RECORDS.toLocaleString('en')} random and mutated records bring out only InvalidMessageError`, () => {
    const random = rng(0x5e5)
    const int = (n: number): number => Math.floor(random() * n)
    const corpus = Array.from({ length: 50 }, (_, i) => signed(laptop(), BUILD.subarray(0, 1 + (i % 36)), i % 2 === 0, i * 1000))
    let decoded = 0
    for (let i = 0; i < RECORDS; i++) {
      const base = corpus[int(corpus.length)]!
      let rec: Uint8Array
      switch (int(3)) {
        case 0: rec = Uint8Array.from({ length: int(200) }, () => int(256)); break
        case 1: rec = base.slice(); for (let k = 1 + int(4); k > 0; k--) rec[int(rec.length)] = int(256); break
        default: rec = base.subarray(0, int(base.length + 1))
      }
      let r: InstallResult
      try {
        r = decodeResult(rec)
      } catch (err) {
        if (!(err instanceof InvalidMessageError)) throw err
        continue
      }
      decoded++
      assert.equal(r.originKey.length, 32)
      assert.equal(r.signature.length, 64)
      assert.ok(r.build.length >= 1 && r.build.length <= 64 && rec.length <= MAX_RESULT_BYTES)
      assert.ok(Number.isSafeInteger(r.at) && r.at >= 0)
    }
    assert.ok(decoded > RECORDS / 10, `only ${decoded} records decoded`)
  })
})

describe('advisory core: staged rollout', () => {
  const H = 3_600_000
  const plan = { waves: [{ percent: 10, after_s: 0 }, { percent: 100, after_s: 24 * 3600 }] }

  it('puts a laptop in the same place on every run, spread evenly over laptops', () => {
    assert.equal(rolloutPosition('12D3KooWabc', 'bafyX'), rolloutPosition('12D3KooWabc', 'bafyX'))
    const buckets = new Array<number>(10).fill(0)
    for (let i = 0; i < 10_000; i++) buckets[Math.floor(rolloutPosition(`12D3KooW${i}`, 'bafyX') / 10)]!++
    for (const b of buckets) assert.ok(b > 850 && b < 1150, `bucket of ${b}`)
    assert.notEqual(rolloutPosition('12D3KooWabc', 'bafyX'), rolloutPosition('12D3KooWabc', 'bafyY'), 'the first wave is not always the same laptops')
  })

  it('the first wave goes at once; the next waits for its hour, and halts on failures', () => {
    const none = { ok: 0, failed: 0 }
    assert.deepEqual(rolloutDecision(plan, 5, 0, 0, none), { go: true, wave: 0, reason: 'wave 1 of 2' })
    const early = rolloutDecision(plan, 50, 0, 23 * H, none)
    assert.equal(early.go, false)
    assert.equal(!early.go && early.until, 24 * H)
    assert.equal(rolloutDecision(plan, 50, 0, 24 * H, { ok: 10, failed: 1 }).go, true, '1 of 11 failed: under 10%')
    const halted = rolloutDecision(plan, 50, 0, 24 * H, { ok: 8, failed: 1 })
    assert.equal(halted.go, false)
    assert.equal(!halted.go && halted.halted, true, '1 of 9 failed: over 10%')
    assert.equal(rolloutDecision({ ...plan, maxFailedPercent: 50 }, 50, 0, 24 * H, { ok: 8, failed: 1 }).go, true)
    assert.equal(rolloutDecision({ waves: [{ percent: 30, after_s: 0 }] }, 31, 0, 99 * H, none).go, false, 'beyond the last wave: never')
    assert.equal(rolloutDecision(undefined, 99, 0, 0, { ok: 0, failed: 1 }).go, false, 'no waves, but failures halt too')
  })
})
