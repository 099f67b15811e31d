// What a run measures, sampled at the scenario's `sample` interval: builds
// complete over time, bytes on the air, nodes up, and the school server each
// component has elected. Adding a metric: a field here, filled in sample(),
// and a column or plot in output.ts (docs/simulator.md).
import type { Engine } from './engine.ts'

/**
 * A component's election counts only once its links have been still this
 * long: 2 × heartbeat + failure timeout (the election core's convergence
 * bound), ms. With no server, also the startup grace and the settle time.
 */
export const CONVERGENCE_MS = 2 * 2000 + 7000
export const SERVERLESS_MS = CONVERGENCE_MS + 6000 + 2000

export interface Sample {
  t: number
  /** Nodes (not the mothership) holding each build complete. */
  complete: number[]
  bytesOnAir: number
  up: number
  flows: number
  /** Components (of two or more laptops) and servers, when an election runs. */
  components: number
  servers: number
  /** Whether, at this sample, some component had split brain (settled, and at all) or was settled without a server: what the s of the summary add up. */
  split: boolean
  splitRaw: boolean
  none: boolean
}

/** A change of a component's elected server: at t, the component led by its lowest node number takes `server` (node name, or null: none). */
export interface ElectedChange { t_s: number, component: number, members: number, server: string | null }

export class Metrics {
  readonly samples: Sample[] = []
  readonly elected: ElectedChange[] = []
  private readonly current = new Map<number, string | null>()

  sample (e: Engine, now: number): void {
    const complete = e.builds.map(() => 0)
    let up = 0
    for (const n of e.nodes) {
      if (n.virtual) continue
      if (n.on) up++
      for (let b = 0; b < complete.length; b++) if (n.held[b]?.complete === true) complete[b]!++
    }
    const el = e.hooks.election
    const flags = el !== undefined ? this.sampleElection(e, now) : { components: 0, servers: 0, split: false, splitRaw: false, none: false }
    this.samples.push({ t: now, complete, bytesOnAir: e.radio.bytesOnAir, up, flows: e.radio.active, ...flags })
    if (now < e.scenario.duration) e.queue.push(now + e.scenario.sampleMs, 7, -1)
  }

  /** Components of the connection graph (laptops that are up), each named by its lowest node number. */
  private components (e: Engine): Map<number, number[]> {
    const root = new Int32Array(e.nodes.length).fill(-1)
    const out = new Map<number, number[]>()
    const stack: number[] = []
    for (const n of e.nodes) {
      if (n.virtual || !n.on || root[n.id] !== -1) continue
      const members: number[] = []
      root[n.id] = n.id
      stack.push(n.id)
      while (stack.length > 0) {
        const u = stack.pop()!
        members.push(u)
        for (const v of e.nodes[u]!.conns.keys()) {
          const m = e.nodes[v]!
          if (m.virtual || !m.on || root[v] !== -1) continue
          root[v] = n.id
          stack.push(v)
        }
      }
      out.set(n.id, members)
    }
    return out
  }

  private sampleElection (e: Engine, now: number): Pick<Sample, 'components' | 'servers' | 'split' | 'splitRaw' | 'none'> {
    const el = e.hooks.election!
    let split = false
    let splitRaw = false
    let none = false
    let groups = 0
    let serversTotal = 0
    const seen = new Set<number>()
    for (const [id, members] of this.components(e)) {
      const servers: number[] = []
      let still = Infinity
      for (const m of members) {
        if (el.serverOf(m) === m) servers.push(m)
        still = Math.min(still, now - e.lastChange[m]!)
      }
      serversTotal += servers.length
      if (members.length > 1) groups++
      if (servers.length > 1) {
        splitRaw = true
        if (still >= CONVERGENCE_MS) split = true
      }
      if (servers.length === 0 && members.length > 1 && still >= SERVERLESS_MS) none = true
      const server = servers.length === 0 ? null : e.nodes[Math.min(...servers)]!.name
      if (members.length > 1) {
        seen.add(id)
        if (!this.current.has(id) || this.current.get(id) !== server) {
          this.current.set(id, server)
          // named by its node number in the whole scenario (a part's engine numbers its own nodes from 0)
          this.elected.push({ t_s: now / 1000, component: e.nodes[id]!.index, members: members.length, server })
        }
      }
    }
    for (const id of [...this.current.keys()]) if (!seen.has(id)) this.current.delete(id)
    return { components: groups, servers: serversTotal, split, splitRaw, none }
  }
}
