// Random failures on the chain laptops → school server → staging →
// mothership: frames lost, duplicated and reordered, hops crashing (losing all
// they had not persisted, receipts in flight included), a third party forging
// receipts. Whatever the draw, every item arrives at the mothership exactly
// once, with its bytes, and every outbox ends empty.
// XO_MESH_SOAK=1 draws ten times as many.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { Chain, FakeOutbox, FakeSink } from './relay-chain.ts'

const SOAK = process.env.XO_MESH_SOAK !== undefined && process.env.XO_MESH_SOAK !== ''

/** What every run draws: the seed, how many items, the sender's batches. */
const arbCommon = {
  seed: fc.integer({ min: 1, max: 2 ** 30 }),
  items: fc.integer({ min: 1, max: 60 }),
  batchItems: fc.integer({ min: 1, max: 16 }),
  window: fc.integer({ min: 1, max: 4 })
}

const arbRun = fc.record({
  ...arbCommon,
  laptops: fc.integer({ min: 1, max: 4 }),
  loss: fc.double({ min: 0, max: 0.4, noNaN: true }),
  duplicate: fc.double({ min: 0, max: 0.3, noNaN: true }),
  maxDelayMs: fc.integer({ min: 1, max: 400 }),
  crashes: fc.integer({ min: 0, max: 8 }),
  forgeries: fc.integer({ min: 0, max: 20 }),
  /** Staging's outbox holds at most this many items (it refuses custody past it). */
  stagingRoom: fc.constantFrom(Infinity, Infinity, 5, 20)
})

export type Run = typeof arbRun extends fc.Arbitrary<infer T> ? T : never

export function play (p: Run): Chain {
  const chain = new Chain(p.seed, { batchItems: p.batchItems, window: p.window })
  const laptops = Array.from({ length: p.laptops }, (_, i) => `12D3KooWLaptop${i}`)
  for (const l of laptops) chain.add(l, 'server', new FakeOutbox())
  chain.add('server', 'staging', new FakeOutbox())
  chain.add('staging', 'mothership', new FakeOutbox(p.stagingRoom))
  chain.add('mothership', null, new FakeSink())
  chain.add('intruder', null, new FakeOutbox())
  for (const l of laptops) chain.connect(l, 'server')
  chain.connect('server', 'staging')
  chain.connect('staging', 'mothership')
  chain.link = { loss: p.loss, duplicate: p.duplicate, maxDelayMs: p.maxDelayMs, diskDelayMs: 20 }
  chain.start()
  const r = chain.random
  const FAULTS_MS = 60_000
  // Items are made through the faulty minute; crashes and forgeries fall anywhere in it.
  for (let i = 0; i < p.items; i++) chain.at(Math.floor(r() * FAULTS_MS), () => { chain.enqueue(laptops[Math.floor(r() * laptops.length)]!, 1 + Math.floor(r() * 64)) })
  const victims = ['server', 'staging', 'mothership', ...laptops]
  for (let i = 0; i < p.crashes; i++) {
    chain.at(Math.floor(r() * FAULTS_MS), () => { chain.crash(victims[Math.floor(r() * victims.length)]!, 50 + Math.floor(r() * 3_000)) })
  }
  for (let i = 0; i < p.forgeries; i++) {
    chain.at(Math.floor(r() * FAULTS_MS), () => {
      // The intruder knows the batch ids in flight (it sniffs the air): its receipts must still be ignored.
      chain.forge('intruder', r() < 0.5 ? laptops[0]! : 'server', laptops)
    })
  }
  chain.run(FAULTS_MS)
  // Then the links heal: nothing lost or duplicated, no crash; everything must drain.
  chain.link = { loss: 0, duplicate: 0, maxDelayMs: 5, diskDelayMs: 2 }
  chain.run(FAULTS_MS + 15 * 60_000)
  return chain
}

const arbSchool = fc.record({
  ...arbCommon,
  laptops: fc.integer({ min: 2, max: 5 }),
  loss: fc.double({ min: 0, max: 0.2, noNaN: true }),
  maxDelayMs: fc.integer({ min: 1, max: 200 }),
  /** Times the server role moves; each agent hears of a move at its own moment, within viewLagMs. */
  moves: fc.integer({ min: 1, max: 8 }),
  viewLagMs: fc.integer({ min: 0, max: 3_000 }),
  crashes: fc.integer({ min: 0, max: 4 })
})

export type SchoolRun = typeof arbSchool extends fc.Arbitrary<infer T> ? T : never

/**
 * A school whose server role moves (the election): the pinned server and the
 * laptops all link to each other and to the staging agent (each may become
 * the server, whose next hop is staging; the others' next hop is the
 * server). Each agent hears of a move at its own moment, so for a while two
 * may take each other for the next hop; the server and the new one crash.
 * Every agent, the server included, makes items of its own.
 */
export function playSchool (p: SchoolRun): Chain {
  const chain = new Chain(p.seed, { batchItems: p.batchItems, window: p.window })
  const school = ['server', ...Array.from({ length: p.laptops }, (_, i) => `12D3KooWLaptop${i}`)]
  for (const a of school) chain.add(a, a === 'server' ? 'staging' : 'server', new FakeOutbox())
  chain.add('staging', 'mothership', new FakeOutbox())
  chain.add('mothership', null, new FakeSink())
  school.forEach((a, i) => { for (const b of [...school.slice(i + 1), 'staging']) chain.connect(a, b) })
  chain.connect('staging', 'mothership')
  chain.link = { loss: p.loss, duplicate: 0.1, maxDelayMs: p.maxDelayMs, diskDelayMs: 20 }
  chain.start()
  const r = chain.random
  const FAULTS_MS = 60_000
  const pick = (): string => school[Math.floor(r() * school.length)]!
  const elect = (server: string, lagMs: number): void => {
    for (const a of school) chain.at(Math.floor(r() * (lagMs + 1)), () => { chain.setUpstream(a, a === server ? 'staging' : server) })
  }
  for (let i = 0; i < p.items; i++) chain.at(Math.floor(r() * FAULTS_MS), () => { chain.enqueue(pick(), 1 + Math.floor(r() * 64)) })
  for (let i = 0; i < p.moves; i++) {
    const at = Math.floor(r() * FAULTS_MS)
    const to = pick()
    chain.at(at, () => { elect(to, p.viewLagMs) })
  }
  for (let i = 0; i < p.crashes; i++) chain.at(Math.floor(r() * FAULTS_MS), () => { chain.crash(r() < 0.5 ? 'server' : pick(), 50 + Math.floor(r() * 3_000)) })
  chain.run(FAULTS_MS)
  // The pinned server takes the role back for good; the links heal.
  elect('server', p.viewLagMs)
  chain.link = { loss: 0, duplicate: 0, maxDelayMs: 5, diskDelayMs: 2 }
  chain.run(FAULTS_MS + 15 * 60_000)
  return chain
}

export function check (chain: Chain, p: Run | SchoolRun): void {
  const sink = chain.agents.get('mothership')!.store as FakeSink
  const want = new Map(chain.enqueued.map(it => [`${it.origin}#${it.counter}`, it]))
  const ctx = JSON.stringify(p)
  assert.equal(sink.items.size, want.size, `mothership holds ${sink.items.size} of ${want.size} items: ${ctx}`)
  for (const [k, it] of want) {
    const got = sink.items.get(k)
    assert.ok(got !== undefined, `${k} never arrived: ${ctx}`)
    assert.equal(sink.stored.get(k), 1, `${k} stored ${sink.stored.get(k)} times: ${ctx}`)
    assert.deepEqual(got.body, it.body, `${k} arrived with other bytes: ${ctx}`)
  }
  assert.deepEqual(sink.conflicts, [], ctx)
  for (const [id, a] of chain.agents) {
    if (a.store instanceof FakeOutbox && id !== 'intruder') assert.equal(a.store.items.size, 0, `${id} still holds ${a.store.items.size} items: ${ctx}`)
  }
}

describe('relay over a failing chain of hops', function () {
  this.timeout(SOAK ? 1_200_000 : 60_000)

  it('delivers every item to the mothership exactly once, whatever is lost, duplicated, reordered, crashed or forged', () => {
    fc.assert(fc.property(arbRun, p => { check(play(p), p) }), { numRuns: SOAK ? 1000 : 100 })
  })

  it('delivers every item exactly once while the server role moves, views disagree for a while and the servers crash', () => {
    fc.assert(fc.property(arbSchool, p => { check(playSchool(p), p) }), { numRuns: SOAK ? 1000 : 100 })
  })

  it('survives a lossy hour with every hop crashing repeatedly (a long run)', () => {
    const p: Run = { seed: 7, laptops: 4, items: 300, loss: 0.3, duplicate: 0.2, maxDelayMs: 300, crashes: 8, forgeries: 20, batchItems: 8, window: 3, stagingRoom: 20 }
    check(play(p), p)
  })

  it('the check fails when a hop forgets before the next one has persisted (it can fail)', () => {
    // A broken receiver: it answers with a receipt before its store has the items.
    const p: Run = { seed: 11, laptops: 2, items: 40, loss: 0, duplicate: 0, maxDelayMs: 5, crashes: 0, forgeries: 0, batchItems: 4, window: 2, stagingRoom: Infinity }
    const chain = new Chain(p.seed, { batchItems: p.batchItems, window: p.window })
    chain.add('12D3KooWLaptop0', 'server', new FakeOutbox())
    chain.add('server', 'mothership', new FakeOutbox())
    chain.add('mothership', null, new FakeSink())
    chain.connect('12D3KooWLaptop0', 'server')
    chain.connect('server', 'mothership')
    const server = chain.agents.get('server')!
    // Drop whatever the server takes: the store "accepts" without keeping.
    ;(server.store as FakeOutbox).accept = items => {
      const origins = new Map<string, number[]>()
      for (const it of items) origins.set(it.origin, [...(origins.get(it.origin) ?? []), it.counter])
      return { custody: [...origins].map(([origin, c]) => ({ origin, contiguous: Math.max(...c), above: [] })) }
    }
    chain.start()
    for (let i = 0; i < p.items; i++) chain.at(i * 10, () => { chain.enqueue('12D3KooWLaptop0', 8) })
    chain.run(10 * 60_000)
    assert.throws(() => { check(chain, p) }, /holds 0 of 40/)
  })
})
