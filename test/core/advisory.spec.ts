// The advisory core in rooms of fake time: a snapshot offered to one agent
// reaches every agent, only verified higher versions are adopted (forged and
// older ones never), and a converged room's Trickle traffic per agent stays
// near constant as the room grows.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { Advisory, Trickle, type AdvisoryOutput, type VerifyResult } from '../../src/core/advisory/index.ts'
import { generateKey } from '../../src/trust/index.ts'
import { Room } from './advisory-room.ts'
import { TestDeployment, advisory } from '../trust/support.ts'

const HOUR = 3_600_000

describe('advisory core: Trickle', () => {
  it('doubles its interval while consistent, up to Imax, and falls back to Imin on an inconsistency', () => {
    const t = new Trickle({ iminMs: 1000, doublings: 3, k: 1 }, () => 0.5, 0)
    const sends: number[] = []
    for (let now = 0; now <= 40_000; now += 10) if (t.tick(now)) sends.push(now)
    // intervals 1, 2, 4, 8, 8, 8 s …: one send at 3/4 of each
    assert.deepEqual(sends.slice(0, 5), [750, 2500, 6000, 13000, 21000])
    assert.equal(t.interval, 8000)
    t.inconsistent(40_000)
    assert.equal(t.interval, 1000)
    assert.equal(t.nextDeadline(), 40_750)
  })

  it('stays quiet in an interval once k consistent adverts were heard', () => {
    const t = new Trickle({ iminMs: 1000, doublings: 0, k: 2 }, () => 0.5, 0)
    t.consistent()
    t.consistent()
    assert.equal(t.tick(800), false)
    assert.equal(t.tick(1800), true, 'the next interval counts afresh')
  })
})

describe('advisory core: pulls', () => {
  const hash = new Uint8Array(36).fill(7)
  const advert = { type: 'state' as const, version: 3, hash, rootVersion: 1 }
  const pulled = (outs: AdvisoryOutput[]): boolean => outs.some(o => o.type === 'send' && o.message.type === 'request')

  function pullTwice (result: VerifyResult): [boolean, boolean] {
    const core = new Advisory({ verify: () => result, random: () => 0.5 })
    core.handle({ type: 'connected', peer: 'q' }, 0)
    const first = pulled(core.handle({ type: 'message', peer: 'q', message: advert }, 10))
    core.handle({ type: 'message', peer: 'q', message: { type: 'snapshot', snapshot: new Uint8Array([1]), roots: [] } }, 20)
    return [first, pulled(core.handle({ type: 'message', peer: 'q', message: advert }, 30))]
  }

  it('writes off a refused snapshot, unless the fault is this laptop\'s (retry)', () => {
    assert.deepEqual(pullTwice({ ok: false, code: 'bad-signature', reason: 'x' }), [true, false])
    assert.deepEqual(pullTwice({ ok: false, code: 'root-expired', reason: 'x', retry: true }), [true, true])
  })

  it('ignores a snapshot it did not ask for', () => {
    let verified = 0
    const core = new Advisory({ verify: () => { verified++; return { ok: false, code: 'x', reason: 'x' } }, random: () => 0.5 })
    core.handle({ type: 'connected', peer: 'q' }, 0)
    const outs = core.handle({ type: 'message', peer: 'q', message: { type: 'snapshot', snapshot: new Uint8Array([1]), roots: [] } }, 5)
    assert.equal(verified, 0)
    assert.ok(outs.some(o => o.type === 'refuse' && o.code === 'unsolicited'))
  })
})

describe('advisory core: neighbours that are new or behind', () => {
  const hash = (b: number): Uint8Array => new Uint8Array(36).fill(b)
  const held = { version: 5, hash: hash(5), snapshot: new Uint8Array([5]), rootVersion: 1, roots: [new Uint8Array([1])] }
  const statesTo = (outs: AdvisoryOutput[], peer: string): number[] => outs.flatMap(o => o.type === 'send' && o.peer === peer && o.message.type === 'state' ? [o.message.version] : [])
  /** A core holding version 5 for an hour beside a peer that holds it too: its Trickle interval is long. */
  function quiet (): Advisory {
    const core = new Advisory({ verify: () => ({ ok: false, code: 'x', reason: 'x' }), random: () => 0.5, held })
    core.handle({ type: 'connected', peer: 'l' }, 0)
    for (let now = 0; now <= HOUR; now += 60_000) core.handle({ type: 'timer' }, now)
    assert.ok(core.nextDeadline()! - HOUR > 60_000, 'converged: the next advert is minutes away')
    return core
  }

  it('a new neighbour is told our state at once, without resetting Trickle (a reset per connection costs a waking school dearly)', () => {
    const core = quiet()
    const before = core.nextDeadline()
    assert.deepEqual(statesTo(core.handle({ type: 'connected', peer: 'n' }, HOUR + 1), 'n'), [5])
    assert.equal(core.nextDeadline(), before, 'the converged room stays quiet')
  })

  it('a neighbour that advertises an older snapshot is answered with ours at once, every time (at most once per 2 s), however quiet the room', () => {
    const core = quiet()
    core.handle({ type: 'connected', peer: 'r' }, HOUR)
    const behind = { type: 'state' as const, version: 4, hash: hash(4), rootVersion: 1 }
    // the restarted laptop advertises its old snapshot; its pull after our answer is lost; it advertises the same again later
    assert.deepEqual(statesTo(core.handle({ type: 'message', peer: 'r', message: behind }, HOUR + 10), 'r'), [5])
    assert.deepEqual(statesTo(core.handle({ type: 'message', peer: 'r', message: behind }, HOUR + 500), 'r'), [], 'not twice within 2 s')
    core.handle({ type: 'timer' }, HOUR + 39_000) // Trickle's own slots until then (its next is at +55 s)
    assert.deepEqual(statesTo(core.handle({ type: 'message', peer: 'r', message: behind }, HOUR + 40_000), 'r'), [5], 'the same old state again: answered again')
    // a neighbour as new as we are, or newer, is not answered (Trickle and pulls take care of those)
    assert.deepEqual(statesTo(core.handle({ type: 'message', peer: 'l', message: { type: 'state', version: 5, hash: hash(5), rootVersion: 1 } }, HOUR + 41_000), 'l'), [])
  })
})

describe('advisory core: rooms', function () {
  this.timeout(120_000)

  it('a snapshot offered to one agent reaches all, in seconds', () => {
    const d = new TestDeployment()
    const room = new Room({ n: 20, seed: 7, rootKey: d.rootKeys[0]!.publicKey })
    room.connectAll()
    room.run(60_000)
    room.offer(3, d.snapshot(1).bytes, d.chain())
    const start = room.now
    room.run(start + 600_000, () => room.versions().every(v => v === 1))
    assert.deepEqual(room.versions(), Array(20).fill(1))
    assert.ok(room.now - start < 5_000, `converged in ${room.now - start} ms`)
  })

  it('converges on the highest valid snapshot and never adopts a forged or older one (property)', () => {
    const d = new TestDeployment()
    const snaps = Array.from({ length: 6 }, (_, i) => d.snapshot(i + 1))
    const mallory = generateKey()
    const forged = d.snapshot(50, [advisory(50)], {}, [mallory])
    fc.assert(fc.property(
      fc.integer({ min: 2, max: 16 }),
      fc.integer({ min: 1, max: 1e6 }),
      fc.array(fc.record({ node: fc.nat(), snap: fc.integer({ min: 0, max: 6 }), at: fc.integer({ min: 0, max: 120_000 }) }), { minLength: 1, maxLength: 10 }),
      fc.double({ min: 0, max: 0.2, noNaN: true }),
      (n, seed, offers, loss) => {
        const room = new Room({ n, seed, rootKey: d.rootKeys[0]!.publicKey, loss })
        room.connectAll()
        let best = 0
        for (const o of offers.sort((a, b) => a.at - b.at)) {
          room.run(o.at)
          const bytes = o.snap === 0 ? forged.bytes : snaps[o.snap - 1]!.bytes
          room.offer(o.node % n, bytes, d.chain())
          if (o.snap > 0) best = Math.max(best, o.snap)
        }
        // loss delays but does not stop it: adverts repeat every Imax at worst
        room.run(room.now + 3 * HOUR, () => room.versions().every(v => v === best))
        assert.deepEqual(room.versions(), Array(n).fill(best))
        for (const a of room.agents) {
          assert.ok(!a.adopted.includes(50), 'a forged snapshot was adopted')
          for (let i = 1; i < a.adopted.length; i++) assert.ok(a.adopted[i]! > a.adopted[i - 1]!, `adopted ${a.adopted.join(', ')}`)
        }
      }
    ), { numRuns: 25, seed: 42 })
  })

  it('an agent holding a forged higher version is pulled from once and then ignored', () => {
    const d = new TestDeployment()
    const room = new Room({ n: 5, seed: 3, rootKey: d.rootKeys[0]!.publicKey })
    room.connectAll()
    room.offer(0, d.snapshot(2).bytes, d.chain())
    room.run(30_000)
    // agent 4 is made to hold a forgery (as a hostile peer would advertise it)
    const mallory = generateKey()
    const forged = d.snapshot(9, [advisory(9)], {}, [mallory])
    const hostile = room.agents[4]!.core as unknown as { held: unknown }
    hostile.held = { version: 9, hash: forged.cid.bytes, snapshot: forged.bytes, rootVersion: 1, roots: d.chain() }
    room.feed(4, { type: 'offer', snapshot: new Uint8Array([1]), roots: [] })
    room.run(room.now + 2 * HOUR)
    for (const a of room.agents.slice(0, 4)) {
      assert.equal(a.core.current?.version, 2)
      const refusals = a.refusals.filter(r => r.startsWith('unknown-key'))
      assert.equal(refusals.length, 1, `pulled the forgery ${refusals.length} times`)
    }
  })

  it('a laptop several root versions behind catches up from its peers', () => {
    const d = new TestDeployment()
    const key = d.rootKeys[0]!.publicKey
    d.rotate('root')
    d.rotate('advisory')
    d.rotate('root')
    const room = new Room({ n: 6, seed: 11, rootKey: key })
    room.connectAll()
    room.offer(0, d.snapshot(3).bytes, d.chain())
    room.run(60_000, () => room.versions().every(v => v === 3))
    assert.deepEqual(room.versions(), Array(6).fill(3))
    for (const a of room.agents) assert.equal(a.trust.root.doc.version, 4)
  })

  it('a laptop 20 root versions behind catches up from a peer, 16 versions a pull', () => {
    const d = new TestDeployment()
    const key = d.rootKeys[0]!.publicKey
    for (let i = 0; i < 18; i++) d.rotate('root')
    d.rotate('advisory')
    assert.equal(d.root.doc.version, 20)
    const room = new Room({ n: 2, seed: 5, rootKey: key })
    room.connectAll()
    room.offer(0, d.snapshot(1).bytes, d.chain())
    room.run(HOUR, () => room.versions().every(v => v === 1))
    assert.deepEqual(room.versions(), [1, 1])
    assert.equal(room.agents[1]!.trust.root.doc.version, 20)
    assert.equal(room.agents[1]!.refusals.length, 1, 'one pull refused (16 roots were not enough), the next one adopted')
  })

  it('messages per agent per hour once converged stay near constant as the room grows', () => {
    const d = new TestDeployment()
    const figures: Array<{ n: number, sent: number, received: number }> = []
    for (const n of [10, 30, 100]) {
      const room = new Room({ n, seed: n, rootKey: d.rootKeys[0]!.publicKey })
      room.connectAll()
      room.offer(0, d.snapshot(1).bytes, d.chain())
      room.run(HOUR)
      assert.deepEqual(room.versions(), Array(n).fill(1))
      room.countFrom = room.now
      room.run(room.now + 2 * HOUR)
      const sent = room.agents.reduce((s, a) => s + a.sentCounted, 0) / n / 2
      const received = room.agents.reduce((s, a) => s + a.receivedCounted, 0) / n / 2
      figures.push({ n, sent, received })
    }
    process.stdout.write(`      converged, per agent per hour (Imin 1 s, Imax 1 s·2^10, k 1): ${figures.map(f => `N=${f.n}: ${f.received.toFixed(2)} received, ${(f.sent / (f.n - 1)).toFixed(3)} adverts sent (to every peer)`).join('; ')}\n`)
    for (const f of figures) assert.ok(f.received < 15, `N=${f.n}: ${f.received} received per hour`)
    assert.ok(figures[2]!.received < 2.5 * figures[0]!.received, 'received per agent grows far slower than the room')
  })
})
