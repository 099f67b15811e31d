// The world around the radio: where laptops are, when they come and go
// (churn), sleep and wake, run out of battery, wander (random waypoint), and
// when the school server's uplink to the mothership is open. All of it is
// events in the engine's queue, drawn from the run's seeded streams.
import { EV, Engine, type EngineHooks } from './engine.ts'
import type { SimEvent } from './queue.ts'
import type { Random } from './random.ts'
import type { NodeSpec, Scenario, Uplink } from './scenario.ts'

const W = { LEAVE: 0, RETURN: 1, SLEEP: 2, WAKE: 3, BATTERY: 4, MOVE: 5, UPLINK_OPEN: 6, UPLINK_CLOSE: 7, CHURN: 8 } as const
/** Battery is accounted every minute. */
const BATTERY_TICK = 60_000
/** Below this level a laptop shuts down. */
const BATTERY_EMPTY = 0.03

/** What the world knows of each node beside the engine's view. */
export interface NodeInfo {
  spec: NodeSpec
  group: number
  /** Rectangle it lives (and wanders) in. */
  box: [number, number, number, number]
  away: boolean
  asleep: boolean
  dead: boolean
  /** Random-waypoint target and speed (m per ms), pause until. */
  tx: number
  ty: number
  speed: number
  pauseUntil: number
}

export class World {
  readonly engine: Engine
  readonly info: NodeInfo[] = []
  private readonly random: Random
  private readonly s: Scenario
  private readonly mobile: number[] = []
  /** The group simulated alone (parts: groups, sim/parts.ts), or undefined: every node. */
  readonly part: number | undefined
  /** Churn per hour over this world's laptops: the scenario's, or a part's share of it (set up in setup()). */
  private churnPerHour = 0

  constructor (scenario: Scenario, hooks: EngineHooks, part?: number) {
    this.s = scenario
    this.part = part
    // the engine keeps this very object: hooks set on it later (the election) are seen
    hooks.world = (_e, ev) => this.onEvent(ev)
    this.engine = new Engine(scenario, hooks, part)
    this.random = this.engine.random.fork(2)
  }

  /** Lays out nodes, content and the first events. */
  setup (): Engine {
    const s = this.s
    const e = this.engine
    const groups = s.groups?.count ?? 1
    const plan: Array<{ spec: NodeSpec, group: number }> = []
    for (const spec of s.nodes) {
      if (spec.perGroup) for (let g = 0; g < groups; g++) for (let k = 0; k < spec.count; k++) plan.push({ spec, group: g })
      else for (let k = 0; k < spec.count; k++) plan.push({ spec, group: spec.placement === 'center' ? -1 : this.random.int(groups) })
    }
    const hasUplink = plan.some(p => p.spec.uplink !== undefined) || s.content.some(c => c.on.includes('uplink'))
    // a part keeps its group's nodes, numbered as in the whole scenario (node-K), and its share of the churn
    const mine = this.part === undefined ? plan.map((_p, i) => i) : plan.flatMap((p, i) => p.group === this.part ? [i] : [])
    const local = new Map<number, number>(mine.map((i, k) => [i, k]))
    this.churnPerHour = this.part === undefined ? s.churn.joinLeavePerHour : s.churn.joinLeavePerHour * mine.length / plan.length
    e.init(mine.length + (hasUplink ? 1 : 0))
    const place = this.random.fork(3)
    for (const [k, i] of mine.entries()) {
      const p = plan[i]!
      const box = this.box(p.group)
      const battery = p.spec.power === 'ac' ? NaN : p.spec.battery ?? place.between(0.5, 1)
      e.addNode(`node-${i}`, Math.max(0, p.group), battery, false, i)
      let x: number, y: number
      if (p.spec.placement === 'center') {
        x = (box[0] + box[2]) / 2
        y = (box[1] + box[3]) / 2
      } else {
        x = place.between(box[0], box[2])
        y = place.between(box[1], box[3])
      }
      e.radio.place(k, x, y)
      this.info.push({ spec: p.spec, group: Math.max(0, p.group), box, away: false, asleep: false, dead: false, tx: x, ty: y, speed: 0, pauseUntil: 0 })
      if (p.spec.mobile) this.mobile.push(k)
    }
    if (hasUplink) {
      const m = e.addNode('mothership', -1, NaN, true)
      e.mothership = m.id
    }
    // content: on its sources' disks from the start, held by everyone at `at`
    for (const [b, c] of s.content.entries()) {
      const sources = new Set<number>()
      for (const on of c.on) {
        if (on === 'uplink') sources.add(e.mothership)
        else if (on === 'each-group') {
          const seen = new Set<number>()
          for (const [i, p] of plan.entries()) {
            if (seen.has(p.group)) continue
            seen.add(p.group)
            const k = local.get(i)
            if (k !== undefined) sources.add(k)
          }
        } else {
          const k = local.get(Number(on.slice(5)))
          if (k !== undefined) sources.add(k)
        }
      }
      for (const i of sources) e.give(i, b)
      // an advised build is held by the others only once the advisory reaches them (sim/advisory/)
      const advised = s.advisory?.build === b
      for (const n of e.nodes) if ((!n.virtual && !advised) || sources.has(n.id)) e.queue.push(c.at, EV.HOLD, n.id, b)
    }
    // everyone starts up at time 0
    for (const n of e.nodes) e.up(n.id)
    e.radio.topology(0)
    for (const n of e.nodes) if (!n.virtual) e.discover(n.id, true)
    // uplinks, sleep, battery, churn, mobility
    for (const [i, inf] of this.info.entries()) {
      const u = inf.spec.uplink
      if (u !== undefined) this.scheduleUplink(i, u)
      if (inf.spec.sleep !== undefined) e.queue.push(this.random.exponential(inf.spec.sleep.awakeMin * 60_000), EV.WORLD, i, W.SLEEP)
    }
    if (this.info.some(inf => inf.spec.power === 'battery')) e.queue.push(BATTERY_TICK, EV.WORLD, -1, W.BATTERY)
    if (this.churnPerHour > 0) e.queue.push(this.random.exponential(3_600_000 / this.churnPerHour), EV.WORLD, -1, W.CHURN)
    if (this.mobile.length > 0) e.queue.push(s.mobility.stepS * 1000, EV.WORLD, -1, W.MOVE)
    e.queue.push(0, EV.SAMPLE, -1)
    return e
  }

  private box (group: number): [number, number, number, number] {
    const g = this.s.groups
    if (g === undefined || group < 0) return [0, 0, this.s.area.widthM, this.s.area.heightM]
    const col = group % g.columns
    const row = Math.floor(group / g.columns)
    const x = col * (g.widthM + g.spacingM)
    const y = row * (g.heightM + g.spacingM)
    return [x, y, x + g.widthM, y + g.heightM]
  }

  private scheduleUplink (i: number, u: Uplink): void {
    const e = this.engine
    if (u.windows.length === 0) {
      e.queue.push(0, EV.WORLD, i, W.UPLINK_OPEN)
      return
    }
    // windows repeat daily
    for (let day = 0; day * 86_400_000 < this.s.duration; day++) {
      for (const [a, b] of u.windows) {
        const open = a + day * 86_400_000
        const close = b + day * 86_400_000
        if (open >= this.s.duration) continue
        e.queue.push(Math.max(0, open), EV.WORLD, i, W.UPLINK_OPEN)
        e.queue.push(close, EV.WORLD, i, W.UPLINK_CLOSE)
      }
    }
  }

  /** Whether a node's uplink is open now (for a node coming back up). */
  private uplinkOpen (i: number): boolean {
    const u = this.info[i]!.spec.uplink
    if (u === undefined) return false
    if (u.windows.length === 0) return true
    const t = this.engine.now % 86_400_000
    return u.windows.some(([a, b]) => (t >= a && t < b) || (t + 86_400_000 >= a && t + 86_400_000 < b))
  }

  private connectUplink (i: number): void {
    const e = this.engine
    const u = this.info[i]!.spec.uplink!
    // Mb/s → bytes per ms; the mothership sends at the node's down rate
    e.tryConnect(e.mothership, i, { rateAB: (u.downMbps * 1e6) / 8 / 1000, rateBA: (u.upMbps * 1e6) / 8 / 1000 })
  }

  private refresh (i: number): void {
    const inf = this.info[i]!
    const e = this.engine
    const want = !inf.away && !inf.asleep && !inf.dead
    const n = e.nodes[i]!
    if (want === n.on) return
    if (want) {
      e.up(i)
      e.radio.topology(e.now)
      e.discover(i)
      if (this.uplinkOpen(i)) this.connectUplink(i)
    } else {
      e.down(i)
      e.radio.topology(e.now)
    }
  }

  private onEvent (ev: SimEvent): void {
    const e = this.engine
    const i = ev.node
    switch (ev.a) {
      case W.CHURN: {
        const present = this.info.map((inf, k) => ({ inf, k })).filter(x => !x.inf.away && !x.inf.dead)
        if (present.length > 0) {
          const pick = present[this.random.int(present.length)]!
          pick.inf.away = true
          this.refresh(pick.k)
          e.queue.push(e.now + this.random.exponential(this.s.churn.awayMin * 60_000), EV.WORLD, pick.k, W.RETURN)
        }
        e.queue.push(e.now + this.random.exponential(3_600_000 / this.churnPerHour), EV.WORLD, -1, W.CHURN)
        return
      }
      case W.LEAVE:
        this.info[i]!.away = true
        return this.refresh(i)
      case W.RETURN:
        this.info[i]!.away = false
        return this.refresh(i)
      case W.SLEEP: {
        const inf = this.info[i]!
        inf.asleep = true
        this.refresh(i)
        e.queue.push(e.now + this.random.exponential(inf.spec.sleep!.asleepMin * 60_000), EV.WORLD, i, W.WAKE)
        return
      }
      case W.WAKE: {
        const inf = this.info[i]!
        inf.asleep = false
        this.refresh(i)
        e.queue.push(e.now + this.random.exponential(inf.spec.sleep!.awakeMin * 60_000), EV.WORLD, i, W.SLEEP)
        return
      }
      case W.BATTERY: {
        for (const [k, inf] of this.info.entries()) {
          const n = e.nodes[k]!
          if (!n.on || Number.isNaN(n.battery)) continue
          n.battery = Math.max(0, n.battery - BATTERY_TICK / (inf.spec.batteryHours * 3_600_000))
          if (n.battery <= BATTERY_EMPTY) {
            inf.dead = true
            this.refresh(k)
          }
        }
        e.queue.push(e.now + BATTERY_TICK, EV.WORLD, -1, W.BATTERY)
        return
      }
      case W.MOVE: return this.move()
      case W.UPLINK_OPEN:
        if (e.nodes[i]!.on) this.connectUplink(i)
        return
      case W.UPLINK_CLOSE:
        e.close(i, e.mothership)
    }
  }

  /** One random-waypoint step of every mobile node, then the radio's view of it. */
  private move (): void {
    const e = this.engine
    const dt = this.s.mobility.stepS * 1000
    const before = new Map<number, Set<number>>()
    for (const i of this.mobile) {
      const inf = this.info[i]!
      if (!e.nodes[i]!.on) continue
      before.set(i, new Set(e.radio.neighbours(i)))
      if (e.now < inf.pauseUntil) continue
      let x = e.radio.x[i]!
      let y = e.radio.y[i]!
      if (inf.speed === 0) {
        inf.tx = this.random.between(inf.box[0], inf.box[2])
        inf.ty = this.random.between(inf.box[1], inf.box[3])
        inf.speed = this.random.between(this.s.mobility.speedMps[0], this.s.mobility.speedMps[1]) / 1000
      }
      const dx = inf.tx - x
      const dy = inf.ty - y
      const dist = Math.hypot(dx, dy)
      const step = inf.speed * dt
      if (dist <= step) {
        x = inf.tx
        y = inf.ty
        inf.speed = 0
        inf.pauseUntil = e.now + this.random.exponential(this.s.mobility.pauseS * 1000)
      } else {
        x += (dx / dist) * step
        y += (dy / dist) * step
      }
      e.radio.place(i, x, y)
    }
    e.radio.topology(e.now)
    e.dropOutOfRange()
    for (const [i, old] of before) {
      const now = e.radio.neighbours(i)
      if (now.some(j => !old.has(j))) e.discover(i)
    }
    e.queue.push(e.now + dt, EV.WORLD, -1, W.MOVE)
  }
}
