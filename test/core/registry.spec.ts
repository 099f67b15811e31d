// The school server's registry decisions: first registration, renewal, a
// change of owner details, a serial under a new peer id (a new identity), and
// a peer id presented by another machine (a cloned image), which changes
// nothing and is answered "conflict".
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { applyDecision, decide, type Registration, type RegistryEntry } from '../../src/core/registration/index.ts'

function reg (serial: string, machineId: string, over: Partial<Registration> = {}): Registration {
  return { type: 'registration', serial, machineId, bootId: 'b1', nickname: 'ana', ownerKey: new Uint8Array(32).fill(7), school: 'Escuela 12', ...over }
}

describe('registry decisions', () => {
  it('registers, renews, notes a change, and refuses a clone without changing anything', () => {
    let r = new Map<string, RegistryEntry>()
    const first = decide(r, 'P1', reg('A', 'm-a'), 1000)
    assert.equal(first.verdict, 'registered')
    r = applyDecision(r, first)
    const again = decide(r, 'P1', reg('A', 'm-a', { bootId: 'b2' }), 2000)
    assert.equal(again.verdict, 'renewed')
    r = applyDecision(r, again)
    assert.equal(r.get('P1')!.registeredAt, 1000)
    assert.equal(r.get('P1')!.lastSeen, 2000)
    const renamed = decide(r, 'P1', reg('A', 'm-a', { nickname: 'ana maria' }), 3000)
    assert.equal(renamed.verdict, 'changed')
    r = applyDecision(r, renamed)
    const clone = decide(r, 'P1', reg('B', 'm-b'), 4000)
    assert.equal(clone.verdict, 'conflict')
    assert.match(clone.verdict === 'conflict' ? clone.reason : '', /serial A.*serial B/)
    assert.deepEqual(applyDecision(r, clone), r)
    // the same serial, another machine id: a disk moved into other hardware? still a clone of the identity
    assert.equal(decide(r, 'P1', reg('A', 'm-other'), 5000).verdict, 'conflict')
  })

  it('a serial that comes back under a new peer id replaces its old entry', () => {
    let r = applyDecision(new Map(), decide(new Map(), 'P1', reg('A', 'm-a'), 1000))
    const fresh = decide(r, 'P2', reg('A', 'm-a'), 2000)
    assert.equal(fresh.verdict, 'registered')
    assert.equal(fresh.verdict === 'registered' ? fresh.replaced?.peerId : undefined, 'P1')
    r = applyDecision(r, fresh)
    assert.deepEqual([...r.keys()], ['P2'])
  })

  it('never holds two entries for one serial, and never changes a peer id\'s machine', () => {
    const step = fc.record({ peer: fc.constantFrom('P1', 'P2', 'P3'), serial: fc.constantFrom('A', 'B', 'C'), machine: fc.constantFrom('m1', 'm2'), nick: fc.constantFrom('x', 'y') })
    fc.assert(fc.property(fc.array(step, { maxLength: 40 }), steps => {
      let r = new Map<string, RegistryEntry>()
      let now = 0
      for (const s of steps) {
        const before = r.get(s.peer)
        const d = decide(r, s.peer, reg(s.serial, s.machine, { nickname: s.nick }), ++now)
        r = applyDecision(r, d)
        if (before !== undefined) {
          assert.equal(r.get(s.peer)!.serial, before.serial)
          assert.equal(r.get(s.peer)!.machineId, before.machineId)
        }
        const serials = [...r.values()].map(e => e.serial)
        assert.equal(new Set(serials).size, serials.length)
      }
    }), { numRuns: 300 })
  })
})
