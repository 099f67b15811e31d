// Random schools for the election's property test (election-property.spec.ts):
// the arbitraries and the scenario runner, kept apart so a failing draw can be
// replayed alone.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { ElectionMesh } from './election-mesh.ts'
import type { Capability } from '../../src/core/election/index.ts'

const H = 2000
const F = 7000
const HOLD = 10_000
export const CONVERGENCE = 2 * H + F
export const QUIET = CONVERGENCE + HOLD + H
const MAX_LATENCY = 25

const arbCapability: fc.Arbitrary<Capability> = fc.record({
  pinned: fc.constantFrom(false, false, false, false, false, false, false, false, false, true),
  upstream: fc.constantFrom(false, false, false, false, false, true),
  ac: fc.boolean(),
  battery: fc.constantFrom(5, 30, 55, 80, 100),
  freeDiskMiB: fc.constantFrom(500, 2000, 8000),
  uptimeS: fc.constantFrom(60, 3600)
})

const arbEvent = fc.record({
  // many changes in a burst, or long still periods
  gap: fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: CONVERGENCE, max: QUIET + 10_000 })),
  kind: fc.constantFrom('link', 'unlink', 'crash', 'restart', 'join', 'partition', 'merge', 'capability', 'flap'),
  a: fc.nat(),
  b: fc.nat(),
  mask: fc.nat(),
  capability: arbCapability
})

export const arbSchool = fc.record({
  seed: fc.integer({ min: 1, max: 2 ** 30 }),
  peers: fc.integer({ min: 2, max: 9 }),
  joiners: fc.integer({ min: 0, max: 2 }),
  capabilities: fc.array(arbCapability, { minLength: 11, maxLength: 11 }),
  density: fc.constantFrom(0, 0.15, 0.3, 0.6, 1),
  events: fc.array(arbEvent, { minLength: 1, maxLength: 7 }),
  crashNoticed: fc.constantFrom(0, 0.5, 1),
  wire: fc.constantFrom(false, false, false, true)
})

export type School = typeof arbSchool extends fc.Arbitrary<infer T> ? T : never

export interface Outcome {
  /** Checks made. */
  convergenceChecks: number
  quietChecks: number
  /** Latest role event after a change, relative to it, over changes followed by a long enough still period. */
  settleTimes: number[]
  maxDiameter: number
}

export function runSchool (s: School, out: Outcome): void {
  const mesh = new ElectionMesh({
    seed: s.seed,
    wire: s.wire,
    latency: [1, MAX_LATENCY],
    crashNoticed: s.crashNoticed,
    config: { heartbeatMs: H, failureTimeoutMs: F, holdMs: HOLD }
  })
  const r = mesh.random
  const ids = Array.from({ length: s.peers }, (_, i) => `p${i}`)
  for (const id of ids) mesh.add(id, s.capabilities[ids.indexOf(id)]!)
  // a random spanning forest plus random extra links: connected groups that are rarely cliques
  for (let i = 1; i < ids.length; i++) if (r() < 0.85) mesh.link(ids[i]!, ids[Math.floor(r() * i)]!)
  for (let i = 0; i < ids.length; i++) for (let j = i + 1; j < ids.length; j++) if (r() < s.density) mesh.link(ids[i]!, ids[j]!)
  let joined = 0
  const pick = (n: number): string => ids[n % ids.length]!
  // the start is the first change; then each event comes its gap after the one before
  const events = [{ gap: 0, kind: 'start' as const, a: 0, b: 0, mask: 0, capability: s.capabilities[0]! }, ...s.events]
  let t = 0
  for (let k = 0; k < events.length; k++) {
    // the topology is still from t until the next change
    const next = k + 1 < events.length ? t + Math.max(1, events[k + 1]!.gap) : t + QUIET + 5000
    const before = mesh.now
    if (next - t >= CONVERGENCE) {
      mesh.runUntil(t + CONVERGENCE)
      out.maxDiameter = Math.max(out.maxDiameter, mesh.diameter())
      const why = mesh.checkOneServer()
      assert.equal(why, undefined, `${JSON.stringify(why)} ${CONVERGENCE} ms after the change at ${t}`)
      out.convergenceChecks++
    }
    if (next - t >= QUIET) {
      mesh.runUntil(t + QUIET)
      const last = mesh.lastRoleEvent()
      if (last >= before) out.settleTimes.push(last - before)
      const roleCount = [...mesh.peers.values()].reduce((n, p) => n + p.roles.length, 0)
      mesh.runUntil(next - 1)
      const roleCountAfter = [...mesh.peers.values()].reduce((n, p) => n + p.roles.length, 0)
      assert.equal(roleCountAfter, roleCount, `role events while still, between ${t + QUIET} and ${next}: ${describeRoles(mesh, t + QUIET)}`)
      assert.equal(mesh.checkOneServer(), undefined)
      out.quietChecks++
    }
    mesh.runUntil(next)
    t = next
    if (k + 1 >= events.length) break
    const ev = events[k + 1]!
    switch (ev.kind) {
      case 'link': mesh.link(pick(ev.a), pick(ev.b)); break
      case 'unlink': mesh.unlink(pick(ev.a), pick(ev.b)); break
      case 'flap': {
        // a link drops and comes back within a heartbeat
        const [a, b] = [pick(ev.a), pick(ev.b)]
        if (a !== b && mesh.isLinked(a, b)) {
          mesh.unlink(a, b)
          mesh.runUntil(mesh.now + 1 + (ev.mask % H))
          mesh.link(a, b)
        }
        break
      }
      case 'crash': mesh.crash(pick(ev.a)); break
      case 'restart': for (const id of ids) if (!mesh.alive(id) && ev.a % 2 === 0) mesh.restart(id); mesh.restart(pick(ev.a)); break
      case 'join': {
        if (joined >= s.joiners) break
        const id = `j${joined++}`
        mesh.add(id, s.capabilities[s.peers + joined] ?? ev.capability)
        mesh.link(id, pick(ev.a))
        if (ev.b % 3 === 0) mesh.link(id, pick(ev.b + 1))
        ids.push(id)
        break
      }
      case 'partition':
        // cut every link across a random split
        for (const a of ids) for (const b of ids) if (a < b && ((ev.mask >> ids.indexOf(a)) & 1) !== ((ev.mask >> ids.indexOf(b)) & 1)) mesh.unlink(a, b)
        break
      case 'merge': {
        // join two groups by one link
        const comps = mesh.components()
        if (comps.length >= 2) {
          const x = comps[ev.a % comps.length]!
          const y = comps[(ev.a + 1 + (ev.b % (comps.length - 1))) % comps.length]!
          mesh.link(x[ev.mask % x.length]!, y[(ev.mask >> 4) % y.length]!)
        }
        break
      }
      case 'capability': mesh.setCapability(pick(ev.a), ev.capability); break
    }
    t = mesh.now // a flap takes time
  }
}

function describeRoles (mesh: ElectionMesh, since: number): string {
  const lines: string[] = []
  for (const p of mesh.peers.values()) {
    for (const r of p.roles) if (r.t >= since) lines.push(`${p.id}@${r.t}: ${r.previous.role}/${r.previous.server}/${r.previous.term} -> ${r.state.role}/${r.state.server}/${r.state.term}`)
  }
  return lines.join('; ')
}

