// Random schools: random topologies (not cliques: ad-hoc wireless), random
// capabilities with many ties, then joins, leaves, crashes (seen or silent),
// restarts, partitions, merges, link flaps and capability changes at random
// times. Whatever the draw:
//
// - convergence: 2 × heartbeat + failure timeout after the last change, every
//   connected group has exactly one server and every member follows it, with
//   the same term;
// - stillness: once a hold time has also passed (a clearly better candidate
//   may take over, once), no role, server or term changes at all while the
//   topology and the facts stay still.
//
// XO_MESH_SOAK=1 draws ten times as many.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { arbSchool, runSchool } from './election-schools.ts'
import type { Outcome } from './election-schools.ts'

const SOAK = process.env.XO_MESH_SOAK !== undefined && process.env.XO_MESH_SOAK !== ''

describe('school server election in random schools', function () {
  this.timeout(SOAK ? 1_200_000 : 60_000)

  it('one server per connected group within 2 × heartbeat + failure timeout, and no role change while still', () => {
    const out: Outcome = { convergenceChecks: 0, quietChecks: 0, settleTimes: [], maxDiameter: 0 }
    const runs = SOAK ? 10_000 : 1000
    fc.assert(fc.property(arbSchool, s => runSchool(s, out)), { numRuns: runs, seed: 0x5e1ec7 })
    out.settleTimes.sort((a, b) => a - b)
    const p = (q: number): number => out.settleTimes[Math.min(out.settleTimes.length - 1, Math.floor(q * out.settleTimes.length))] ?? 0
    console.log(`      ${runs} schools: ${out.convergenceChecks} convergence checks, ${out.quietChecks} still periods, diameter up to ${out.maxDiameter}; last role event after a change (takeovers after the hold time included): median ${Math.round(p(0.5))} ms, p99 ${Math.round(p(0.99))} ms, max ${Math.round(p(1))} ms`)
    // the checks really ran, on groups that were not all single hops
    assert.ok(out.convergenceChecks > runs)
    assert.ok(out.quietChecks > runs / 2)
    assert.ok(out.maxDiameter >= 4)
  })
})
