// What a run measures, sampled at the scenario's `sample` interval: builds
// complete over time, bytes on the air, nodes up, and the school server each
// component (collision domain) has elected. Adding a metric: a field here,
// filled in sample(), and a column or plot in output.ts (docs/simulator.md).
import type { Engine } from './engine.ts'

export interface Sample {
  t: number
  /** Nodes (not the mothership) holding each build complete. */
  complete: number[]
  bytesOnAir: number
  up: number
  flows: number
}

/** A change of a component's elected server: at t, component `component` takes `server` (node name, or null: none). */
export interface ElectedChange { t_s: number, component: number, members: number, server: string | null }

export class Metrics {
  readonly samples: Sample[] = []
  readonly elected: ElectedChange[] = []
  /** ms with two or more servers in one component. */
  splitBrain = 0
  /** ms with a component of two or more nodes and no server. */
  noServer = 0
  private lastT = 0
  private readonly current = new Map<number, string | null>()

  sample (e: Engine, now: number): void {
    const dt = now - this.lastT
    this.lastT = now
    const complete = e.builds.map(() => 0)
    let up = 0
    for (const n of e.nodes) {
      if (n.virtual) continue
      if (n.on) up++
      for (let b = 0; b < complete.length; b++) if (n.held[b]?.complete === true) complete[b]!++
    }
    this.samples.push({ t: now, complete, bytesOnAir: e.radio.bytesOnAir, up, flows: e.radio.active })
    const el = e.hooks.election
    if (el !== undefined) this.sampleElection(e, now, dt)
    e.queue.push(now + e.scenario.sampleMs, 7, -1)
  }

  private sampleElection (e: Engine, now: number, dt: number): void {
    const el = e.hooks.election!
    // a component: the nodes of a collision domain that are up
    const servers = new Map<number, Set<number>>()
    const members = new Map<number, number>()
    for (const n of e.nodes) {
      if (n.virtual || !n.on) continue
      const d = e.radio.domain(n.id)
      members.set(d, (members.get(d) ?? 0) + 1)
      let s = servers.get(d)
      if (s === undefined) servers.set(d, s = new Set())
      // a node that takes itself for the server is one; count who claims the role
      if (el.serverOf(n.id) === n.id) s.add(n.id)
    }
    let split = false
    let none = false
    for (const [d, s] of servers) {
      if (s.size > 1) split = true
      if (s.size === 0 && (members.get(d) ?? 0) > 1) none = true
      const server = s.size === 0 ? null : e.nodes[Math.min(...s)]!.name
      if (this.current.get(d) !== server || !this.current.has(d)) {
        this.current.set(d, server)
        this.elected.push({ t_s: now / 1000, component: d, members: members.get(d) ?? 0, server })
      }
    }
    if (split) this.splitBrain += dt
    if (none) this.noServer += dt
  }
}
