// Install results and staged rollout in the advisory core: a result signed
// by one laptop reaches every agent of a room through Trickle (so a failure
// halts the rollout where there is no link), a result signed by another key
// or changed in transit is refused, the set keeps one result per laptop and
// build, and a laptop's wave and go/no-go follow from its id, the clock and
// the results it has seen (a later wave never goes on the clock alone). 100,000 random and mutated records (1,000,000
// under XO_MESH_SOAK=1) bring out only InvalidMessageError.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { createHash, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto'
import {
  Advisory, INSTALL_RESULT_CONTEXT, type AdvisoryMessage, type AdvisoryOutput, InvalidMessageError, MAX_RESULT_BYTES, ResultSet, decodeResult, encodeResult, resultBody,
  MIN_RESULTS_FOR_NEXT_WAVE, rolloutDecision, rolloutPosition, type CheckedResult, type InstallResult, type RolloutPlan
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

  it('two neighbours holding different results both end with the union in one exchange, with no Trickle slot needed', () => {
    const mk = (): Advisory => new Advisory({ verify: () => ({ ok: false, code: 'x', reason: 'x' }), random: () => 0.5, checkResult: check })
    const a = mk()
    const b = mk()
    a.handle({ type: 'connected', peer: 'b' }, 0)
    b.handle({ type: 'connected', peer: 'a' }, 0)
    a.handle({ type: 'result', record: signed(laptop(), BUILD, true, 1) }, 1)
    b.handle({ type: 'result', record: signed(laptop(), BUILD, false, 2) }, 1)
    const to = (outs: AdvisoryOutput[], peer: string): AdvisoryMessage[] => outs.flatMap(o => o.type === 'send' && o.peer === peer ? [o.message] : [])
    // a hears b's state (b's Trickle slot); from then on only messages pass, no timer runs
    let toB = to(a.handle({ type: 'message', peer: 'b', message: { type: 'state', version: 0, hash: new Uint8Array(0), rootVersion: 0, resultsCount: b.results.size, resultsDigest: b.results.digest() } }, 10), 'b')
    for (let round = 0; round < 4 && toB.length > 0; round++) {
      const toA = toB.flatMap(m => to(b.handle({ type: 'message', peer: 'a', message: m }, 20 + round), 'a'))
      toB = toA.flatMap(m => to(a.handle({ type: 'message', peer: 'b', message: m }, 30 + round), 'b'))
    }
    assert.equal(a.results.size, 2, 'a holds both')
    assert.equal(b.results.size, 2, 'b holds both')
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

  it('a later wave whose time has come but which has heard no result waits for evidence, then goes or halts on it', () => {
    const none = { ok: 0, failed: 0 }
    const blind = rolloutDecision(plan, 50, 0, 99 * H, none)
    assert.equal(blind.go, false, 'the delay alone is not evidence')
    assert.ok(!blind.go && blind.until === undefined && blind.halted !== true, 'waits for results, not for the clock')
    assert.match(blind.reason, /waits for evidence/)
    assert.equal(rolloutDecision(plan, 50, 0, 24 * H, { ok: 1, failed: 0 }).go, true, 'one success from the first wave')
    const failed = rolloutDecision(plan, 50, 0, 24 * H, { ok: 0, failed: 1 })
    assert.ok(!failed.go && failed.halted === true, 'one failure from the first wave halts')
    assert.ok(!rolloutDecision(plan, 50, 0, 23 * H, { ok: 0, failed: 1 }).go && (rolloutDecision(plan, 50, 0, 23 * H, { ok: 0, failed: 1 }) as { halted?: boolean }).halted === true, 'halted shows before the wave\'s time')
  })

  // plans of one to four waves with increasing percents and delays; places, clocks and tallies anywhere
  const plans = fc.array(fc.record({ percent: fc.integer({ min: 1, max: 100 }), after_s: fc.integer({ min: 0, max: 48 * 3600 }) }), { minLength: 1, maxLength: 4 })
    .map(ws => {
      const percents = [...new Set(ws.map(w => w.percent))].sort((a, b) => a - b)
      const delays = ws.map(w => w.after_s).sort((a, b) => a - b)
      return percents.map((percent, i) => ({ percent, after_s: delays[i]! }))
    })
    .chain(waves => fc.record({ waves: fc.constant(waves), maxFailedPercent: fc.option(fc.integer({ min: 1, max: 100 }), { nil: undefined }) }))
    .map(p => (p.maxFailedPercent === undefined ? { waves: p.waves } : p) as RolloutPlan)
  // no result at all, one of a kind, or many: the edges are where the rule lives
  const tallies = fc.oneof({ arbitrary: fc.constant({ ok: 0, failed: 0 }), weight: 3 }, { arbitrary: fc.record({ ok: fc.nat(2), failed: fc.nat(2) }), weight: 2 }, { arbitrary: fc.record({ ok: fc.nat(50), failed: fc.nat(50) }), weight: 1 })
  const place = fc.double({ min: 0, max: 99.999, noNaN: true })
  const clock = fc.integer({ min: 0, max: 60 * H })

  it('property: a go has its wave\'s time, fewer failures than the limit and, past the first wave, evidence', () => {
    fc.assert(fc.property(plans, place, clock, tallies, (p, position, now, tally) => {
      const d = rolloutDecision(p, position, 0, now, tally)
      if (!d.go) return
      const wave = p.waves.findIndex(w => position < w.percent)
      assert.equal(d.wave, wave)
      assert.ok(now >= p.waves[wave]!.after_s * 1000, 'not before its wave\'s time')
      const seen = tally.ok + tally.failed
      assert.ok(seen === 0 || tally.failed * 100 < (p.maxFailedPercent ?? 10) * seen, 'not over the failure limit')
      if (wave > 0) assert.ok(seen >= MIN_RESULTS_FOR_NEXT_WAVE, 'a later wave never goes on the clock alone')
    }), { numRuns: 5000 })
  })

  it('property: with no result heard only the first wave goes, and only once its time has come', () => {
    fc.assert(fc.property(plans, place, clock, (p, position, now) => {
      const d = rolloutDecision(p, position, 0, now, { ok: 0, failed: 0 })
      const wave = p.waves.findIndex(w => position < w.percent)
      assert.equal(d.go, wave === 0 && now >= p.waves[0]!.after_s * 1000, JSON.stringify({ p, position, now, d }))
    }), { numRuns: 2000 })
  })

  it('property: another failure heard never turns a wait into a go; another success never turns a go into a wait', () => {
    fc.assert(fc.property(plans, place, clock, tallies, (p, position, now, tally) => {
      const d = rolloutDecision(p, position, 0, now, tally)
      const worse = rolloutDecision(p, position, 0, now, { ...tally, failed: tally.failed + 1 })
      if (!d.go) assert.equal(worse.go, false)
      const better = rolloutDecision(p, position, 0, now, { ...tally, ok: tally.ok + 1 })
      if (d.go) assert.equal(better.go, true)
    }), { numRuns: 2000 })
  })
})
