// The simulator's parts: the event order, the seeded random source, the
// 802.11 figures and the shared channel's processor sharing.
import { strict as assert } from 'node:assert'
import fc from 'fast-check'
import { EventQueue } from '../../sim/queue.ts'
import { Random } from '../../sim/random.ts'
import { phyFor } from '../../sim/phy.ts'
import { Radio, type Domain, type Flow } from '../../sim/radio.ts'

describe('sim: event queue', () => {
  it('pops events in (time, sequence) order whatever the push order', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 300 }), times => {
      const q = new EventQueue()
      times.forEach((t, k) => q.push(t, 0, k))
      const out: Array<[number, number]> = []
      for (let e = q.pop(); e !== undefined; e = q.pop()) out.push([e.time, e.seq])
      assert.equal(out.length, times.length)
      for (let k = 1; k < out.length; k++) {
        const [t0, s0] = out[k - 1]!
        const [t1, s1] = out[k]!
        assert.ok(t0 < t1 || (t0 === t1 && s0 < s1), `out of order at ${k}: ${out[k - 1]} then ${out[k]}`)
      }
    }))
  })
})

describe('sim: event queue, pushes and pops interleaved', () => {
  it('always pops the earliest (time, sequence) of what is queued', () => {
    // a push (time) or a pop (null), past the first growth of its arrays
    fc.assert(fc.property(fc.array(fc.option(fc.integer({ min: 0, max: 50 }), { freq: 5 }), { minLength: 1, maxLength: 3000, size: 'max' }), ops => {
      const q = new EventQueue()
      const model: Array<[number, number]> = []
      let seq = 0
      for (const op of ops) {
        if (op !== null) {
          const e = q.push(op, 0, 0)
          assert.equal(e.seq, seq)
          model.push([op, seq++])
          continue
        }
        let k = -1
        for (let j = 0; j < model.length; j++) if (k < 0 || model[j]![0] < model[k]![0] || (model[j]![0] === model[k]![0] && model[j]![1] < model[k]![1])) k = j
        const want = k < 0 ? undefined : model.splice(k, 1)[0]
        const got = q.pop()
        assert.deepEqual(got === undefined ? undefined : [got.time, got.seq], want)
      }
      assert.equal(q.size, model.length)
    }), { numRuns: 30, endOnFailure: true })
  })
})

describe('sim: random source', () => {
  it('gives equal sequences for equal seeds and different ones for different seeds', () => {
    const a = new Random(42)
    const b = new Random(42)
    const c = new Random(43)
    const xa = Array.from({ length: 100 }, () => a.nextU32())
    assert.deepEqual(Array.from({ length: 100 }, () => b.nextU32()), xa)
    assert.notDeepEqual(Array.from({ length: 100 }, () => c.nextU32()), xa)
  })

  it('is uniform enough in [0, 1): mean and buckets', () => {
    const r = new Random(7)
    const buckets = new Array<number>(10).fill(0)
    let sum = 0
    const n = 100_000
    for (let i = 0; i < n; i++) {
      const x = r.next()
      assert.ok(x >= 0 && x < 1)
      sum += x
      buckets[Math.floor(x * 10)]!++
    }
    assert.ok(Math.abs(sum / n - 0.5) < 0.01, `mean ${sum / n}`)
    for (const b of buckets) assert.ok(Math.abs(b - n / 10) < n / 100 * 1.5, `bucket ${b}`)
  })

  it('forks independent streams: a draw in one leaves the other unchanged', () => {
    const root1 = new Random(1)
    const root2 = new Random(1)
    const a1 = root1.fork(1)
    const b1 = root1.fork(2)
    const a2 = root2.fork(1)
    const b2 = root2.fork(2)
    a1.next()
    a1.next()
    assert.equal(b1.next(), b2.next())
    void a2
  })
})

describe('sim: 802.11 figures', () => {
  it('802.11g at 54 Mb/s carries within 5% of ns-3\'s one TCP flow (24.3 Mb/s)', () => {
    const p = phyFor('802.11g', 54, 0)
    assert.ok(Math.abs(p.goodputBps / 1e6 - 24.3) / 24.3 < 0.05, `${p.goodputBps / 1e6} Mb/s`)
  })

  it('802.11b at 11 Mb/s carries within 10% of ns-3\'s one TCP flow (5.21 Mb/s)', () => {
    const p = phyFor('802.11b', 11, 0)
    assert.ok(Math.abs(p.goodputBps / 1e6 - 5.21) / 5.21 < 0.1, `${p.goodputBps / 1e6} Mb/s`)
  })

  it('loss inflates airtime: 10% loss leaves 90% of the throughput', () => {
    assert.ok(Math.abs(phyFor('802.11g', 54, 0.1).bytesPerMs / phyFor('802.11g', 54, 0).bytesPerMs - 0.9) < 1e-9)
  })

  it('refuses a rate the standard does not have', () => {
    assert.throws(() => phyFor('802.11b', 54, 0), RangeError)
  })
})

/** A radio with an event list instead of an engine: runs domain ends in time order. */
function harness (positions: Array<[number, number]>, range = 50): { radio: Radio, run: () => Array<{ t: number, f: Flow }> } {
  const pending: Array<{ t: number, d: Domain, gen: number }> = []
  const radio = new Radio(phyFor('802.11g', 54, 0), range, positions.length, (t, d, gen) => { pending.push({ t, d, gen }) })
  positions.forEach(([x, y], i) => { radio.place(i, x, y); radio.setOn(i, true) })
  radio.topology(0)
  return {
    radio,
    run: () => {
      const done: Array<{ t: number, f: Flow }> = []
      let guard = 0
      while (pending.length > 0) {
        if (++guard > 10_000) throw new Error('the radio keeps rescheduling at one instant')
        pending.sort((a, b) => a.t - b.t)
        const e = pending.shift()!
        for (const f of radio.onDomainEnd(e.d, e.gen, e.t)) done.push({ t: e.t, f })
      }
      return done
    }
  }
}

describe('sim: shared channel', () => {
  it('one transfer alone moves at the channel\'s capacity', () => {
    const h = harness([[0, 0], [10, 0]])
    const bytes = 3_000_000
    h.radio.start(0, 1, bytes, 'a', 0)
    const [end] = h.run()
    assert.ok(Math.abs(end!.t - bytes / h.radio.capacity) < 1e-6)
  })

  it('two transfers in one room share the air: each takes twice as long', () => {
    const h = harness([[0, 0], [10, 0], [20, 0], [30, 0]])
    const bytes = 3_000_000
    h.radio.start(0, 1, bytes, 'a', 0)
    h.radio.start(2, 3, bytes, 'b', 0)
    const ends = h.run()
    assert.equal(ends.length, 2)
    for (const e of ends) assert.ok(Math.abs(e.t - 2 * bytes / h.radio.capacity) < 1e-6, `${e.t}`)
  })

  it('a short transfer that joins late ends first and gives the long one its air back', () => {
    // alone, the long one would take 10 ms; at 2 ms (2c served) a transfer of c joins: both at c/2 per ms, it ends at 4 ms; then the long one has 5c left alone
    const pending: Array<{ t: number, f: Flow }> = []
    const r = harness([[0, 0], [10, 0], [20, 0]])
    const c = r.radio.capacity
    r.radio.start(0, 1, 10 * c, 'long', 0)
    r.radio.onDomainEnd({ gen: -1 } as unknown as Domain, 0, 2) // a no-op at t=2 (stale generation)
    r.radio.start(2, 1, c, 'short', 2)
    for (const e of r.run()) pending.push(e)
    assert.deepEqual(pending.map(e => e.f.token), ['short', 'long'])
    assert.ok(Math.abs(pending[0]!.t - 4) < 1e-6, `short ends at ${pending[0]!.t}`)
    assert.ok(Math.abs(pending[1]!.t - 11) < 1e-6, `long ends at ${pending[1]!.t}`)
  })

  it('a transfer that owes less than the clock can resolve late in a run still ends (no spin at one instant)', () => {
    const h = harness([[0, 0], [10, 0]])
    const now = 4_921_000 // ms: a double resolves about 1e-9 ms here
    h.radio.start(0, 1, 1.2e-6, 'tiny', now) // 4e-10 ms of air: below half the resolution
    const ends = h.run()
    assert.equal(ends.length, 1)
    assert.equal(ends[0]!.t, now)
  })

  it('rooms out of range of each other do not share air', () => {
    const h = harness([[0, 0], [10, 0], [1000, 0], [1010, 0]])
    const bytes = 1_000_000
    h.radio.start(0, 1, bytes, 'a', 0)
    h.radio.start(2, 3, bytes, 'b', 0)
    assert.notEqual(h.radio.domain(0), h.radio.domain(2))
    for (const e of h.run()) assert.ok(Math.abs(e.t - bytes / h.radio.capacity) < 1e-6)
  })

  it('a node switched on or off leaves the neighbours and domains a recomputation from scratch would give', () => {
    // range 50 m over 300 m: switching one node joins, splits or leaves domains; the kept radio updates in place
    const node = fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 60 }))
    fc.assert(fc.property(fc.array(node, { minLength: 2, maxLength: 24 }), fc.array(fc.nat(), { maxLength: 40 }), (positions, toggles) => {
      const phy = phyFor('802.11g', 54, 0)
      const kept = new Radio(phy, 50, positions.length, () => {})
      positions.forEach(([x, y], i) => { kept.place(i, x, y); kept.setOn(i, true) })
      kept.topology(0)
      const on = positions.map(() => true)
      toggles.forEach((t, k) => {
        const i = t % positions.length
        on[i] = !on[i]
        kept.setOn(i, on[i]!)
        kept.topology(k + 1)
        const fresh = new Radio(phy, 50, positions.length, () => {})
        positions.forEach(([x, y], j) => { fresh.place(j, x, y); fresh.setOn(j, on[j]!) })
        fresh.topology(k + 1)
        const order = (r: Radio): number[] => {
          // domains by first appearance: ids differ between the two radios, the partition and its order must not
          const seen = new Map<number, number>()
          return positions.map((_p, j) => {
            const d = r.domain(j)
            if (d < 0) return -1
            if (!seen.has(d)) seen.set(d, seen.size)
            return seen.get(d)!
          })
        }
        assert.deepEqual(order(kept), order(fresh), `after switching ${i}`)
        for (let j = 0; j < positions.length; j++) assert.deepEqual([...kept.neighbours(j)], [...fresh.neighbours(j)], `neighbours of ${j} after switching ${i}`)
        // what the domains are numbered by: a new run of consecutive ids in node order
        const ids = [...new Set(positions.map((_p, j) => kept.domain(j)).filter(d => d >= 0))]
        for (let m = 1; m < ids.length; m++) assert.equal(ids[m], ids[m - 1]! + 1)
      })
    }), { numRuns: 300 })
  })

  it('a transfer in progress keeps what it still owes when the domain changes', () => {
    const h = harness([[0, 0], [10, 0], [1000, 0], [1010, 0]])
    const c = h.radio.capacity
    h.radio.start(0, 1, 4 * c, 'a', 0)
    h.radio.start(2, 3, 4 * c, 'b', 0)
    // at 2 ms a node appears between the rooms, joining them into one domain (range 50 m is not enough: 500 m apart)
    h.radio.place(2, 30, 0)
    h.radio.place(3, 40, 0)
    h.radio.topology(2)
    // both owe 2c and now share: they end at 2 + 4 = 6 ms
    const ends = h.run()
    assert.equal(ends.length, 2)
    for (const e of ends) assert.ok(Math.abs(e.t - 6) < 1e-6, `${e.t}`)
  })
})
