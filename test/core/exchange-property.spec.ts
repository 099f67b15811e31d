// Random classrooms: random connected topologies, links, seeds, partial
// holders, upload slots, link drops and agent restarts. Whatever the draw,
// every laptop completes, nobody honest is banned, no leaf is requested twice
// outside end-game, and nobody receives much more than it lacked.
// XO_MESH_SOAK=1 draws ten times as many.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { Mesh } from './mesh.ts'

const SOAK = process.env.XO_MESH_SOAK !== undefined && process.env.XO_MESH_SOAK !== ''

const arbClassroom = fc.record({
  seed: fc.integer({ min: 1, max: 2 ** 30 }),
  nodes: fc.integer({ min: 2, max: 7 }),
  leaves: fc.integer({ min: 1, max: 250 }),
  extraEdges: fc.integer({ min: 0, max: 8 }),
  seeds: fc.integer({ min: 1, max: 2 }),
  partial: fc.integer({ min: 0, max: 3 }),
  slots: fc.integer({ min: 1, max: 4 }),
  uploadRate: fc.constantFrom(0, 0, 0, 3_000_000),
  churn: fc.boolean(),
  wire: fc.boolean()
})

describe('block exchange in random classrooms', function () {
  this.timeout(SOAK ? 1_200_000 : 30_000)

  it('every laptop completes, whatever the topology, links, seeds, churn and restarts', () => {
    fc.assert(fc.property(arbClassroom, c => {
      const mesh = new Mesh({ seed: c.seed, wire: c.wire })
      const r = mesh.random
      const b = mesh.build({ leaves: c.leaves, minSize: 1, maxSize: 200_000 })
      const ids = Array.from({ length: c.nodes }, (_, i) => `n${i}`)
      for (const id of ids) mesh.add(id, { init: { uploadSlots: c.slots, uploadRate: c.uploadRate }, diskDelay: Math.floor(r() * 3) })
      const missing = new Map<string, number>()
      for (const [k, id] of ids.entries()) {
        if (k < c.seeds) mesh.give(id, b)
        else if (k < c.seeds + c.partial) {
          const p = r()
          mesh.give(id, b, () => r() < p)
        }
        const h = mesh.node(id).store.held.get(b.key)
        let m = 0
        for (let i = 0; i < c.leaves; i++) if (h === undefined || (h.have[i >> 3]! & (0x80 >> (i & 7))) === 0) m += b.sizes[i]!
        missing.set(id, m)
      }
      const edges: Array<[string, string]> = []
      const seen = new Set<string>()
      const edge = (a: string, z: string): void => {
        const key = [a, z].sort().join()
        if (a === z || seen.has(key)) return
        seen.add(key)
        edges.push([a, z])
        mesh.connect(a, z, { latency: 1 + Math.floor(r() * 40), bandwidth: 300 + Math.floor(r() * 30_000) })
      }
      for (let i = 1; i < c.nodes; i++) edge(ids[i]!, ids[Math.floor(r() * i)]!)
      for (let e = 0; e < c.extraEdges; e++) edge(ids[Math.floor(r() * c.nodes)]!, ids[Math.floor(r() * c.nodes)]!)
      for (const id of ids) mesh.hold(id, b, Math.floor(r() * 3))
      if (c.churn) {
        // drop a link for a while, and restart one agent, mid-transfer
        mesh.drive(50 + r() * 2000)
        const [a, z] = edges[Math.floor(r() * edges.length)]!
        mesh.disconnect(a, z)
        mesh.drive(mesh.now + r() * 3000)
        mesh.connect(a, z, { latency: 5, bandwidth: 2000 })
        const victim = ids[Math.floor(r() * c.nodes)]!
        mesh.restart(victim)
        mesh.hold(victim, b)
      }
      mesh.driveUntilComplete(b, ids, 3_600_000)
      for (const id of ids) {
        const n = mesh.node(id)
        assert.ok(n.completeAt.has(b.key) || missing.get(id) === 0, `${id} did not complete (now ${mesh.now})`)
        assert.equal(n.store.leafCount(b), c.leaves)
        assert.deepEqual(n.bans, [], `${id} banned someone`)
        assert.equal(n.dupOutsideEndgame, 0, `${id} asked two peers for a leaf outside end-game`)
        const lacked = missing.get(id)!
        assert.ok(n.received <= 1.05 * lacked + 2_000_000, `${id} received ${n.received} bytes, lacked ${lacked}`)
      }
    }), { numRuns: SOAK ? 500 : 40, seed: Number(process.env.XO_MESH_SEED ?? 20261126) })
  })
})
