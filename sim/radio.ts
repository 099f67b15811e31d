// A flow-level model of a shared 802.11 channel (performance.md, "The
// simulator at scale"). Nodes hear each other within range_m. A collision
// domain is a connected set of nodes that hear each other, directly or
// through others; every transfer in a domain takes its share of the one
// channel's airtime, processor-sharing: with k transfers active, each moves
// at capacity / k. Exact for a room where everyone hears everyone; where rooms
// only partly overlap it forgoes spatial reuse (two far ends of a domain
// cannot send at once here), so it errs on the slow side (docs/simulator.md).
//
// A domain keeps a virtual clock V (bytes each of its transfers has been
// served); a transfer of B bytes started at V0 ends when V reaches V0 + B, so
// only the domain's earliest end is ever scheduled, lazily: O(log k) per start or end.
import type { Phy } from './phy.ts'

/** A transfer on the air: unicast (to ≥ 0) or broadcast (to = -1: every node in range of `from` at its end). */
export interface Flow {
  from: number
  to: number
  /** Transport-layer bytes. */
  bytes: number
  /** Whatever the engine wants back at the end. */
  token: unknown
  /** Domain virtual time at which it ends. */
  finishV: number
  domain: Domain | undefined
  done: boolean
}

/** partitionAfter's label for a node switched on with no neighbour: a domain of its own. */
const NEW_DOMAIN = -2

export class Domain {
  readonly id: number
  v = 0
  last = 0
  active = 0
  /** Bumped whenever an end is scheduled (or the domain is replaced), so a superseded scheduled end is ignored. */
  gen = 0
  /** When the domain's pending scheduled end fires (Infinity: none pending). */
  at = Infinity
  readonly heap: Flow[] = []
  constructor (id: number, now: number) { this.id = id; this.last = now }
}

/** How the radio asks the engine to call onDomainEnd(domain, gen) at a time. */
export type Scheduler = (time: number, domain: Domain, gen: number) => void

export class Radio {
  readonly phy: Phy
  readonly range: number
  readonly x: Float64Array
  readonly y: Float64Array
  readonly on: Uint8Array
  private readonly nbrs: number[][]
  /** Nodes in range whether on or not (recomputed when nodes move). */
  private readonly potential: number[][]
  private moved = true
  /** Nodes switched on or off since the last topology(). */
  private readonly switched = new Set<number>()
  private readonly domainOf: Int32Array
  private domains: Domain[] = []
  private nextDomain = 0
  private readonly schedule: Scheduler
  private readonly flows = new Set<Flow>()
  private dirty = true
  /** Scratch marks for connectedAmong (a stamp per call, so they are never cleared). */
  private readonly mark: Uint32Array
  private stampNow = 0
  /** Bytes put on the air (transport layer, loss not included). */
  bytesOnAir = 0

  constructor (phy: Phy, range: number, nodes: number, schedule: Scheduler) {
    this.phy = phy
    this.range = range
    this.x = new Float64Array(nodes)
    this.y = new Float64Array(nodes)
    this.on = new Uint8Array(nodes)
    this.nbrs = Array.from({ length: nodes }, () => [])
    this.potential = Array.from({ length: nodes }, () => [])
    this.domainOf = new Int32Array(nodes).fill(-1)
    this.mark = new Uint32Array(nodes)
    this.schedule = schedule
  }

  /** Moves or switches nodes; call topology(now) once after a batch of changes. */
  place (i: number, x: number, y: number): void {
    this.x[i] = x
    this.y[i] = y
    this.dirty = true
    this.moved = true
  }

  setOn (i: number, on: boolean): void {
    if ((this.on[i] === 1) === on) return
    this.on[i] = on ? 1 : 0
    this.dirty = true
    this.switched.add(i)
  }

  inRange (a: number, b: number): boolean {
    const dx = this.x[a]! - this.x[b]!
    const dy = this.y[a]! - this.y[b]!
    return dx * dx + dy * dy <= this.range * this.range
  }

  /** Nodes that are on and hear i (valid after topology()). */
  neighbours (i: number): readonly number[] {
    return this.nbrs[i]!
  }

  /** The collision domain a node is in (its id), or -1 when off. */
  domain (i: number): number {
    return this.domainOf[i]!
  }

  /** Number of nodes per domain id, for reports. */
  domainSizes (): Map<number, number> {
    const m = new Map<number, number>()
    for (const d of this.domainOf) if (d >= 0) m.set(d, (m.get(d) ?? 0) + 1)
    return m
  }

  /**
   * Recomputes neighbours and domains after place/setOn. Transfers in
   * progress keep the bytes they still owe and continue in their new domain.
   * A laptop waking or sleeping changes its neighbours' lists in place and,
   * unless it joins or splits domains, keeps the partition without a flood
   * fill of every link (school-1000: ~360 per laptop); the domains are
   * rebuilt either way, in the same order and with the same ids, so a run's
   * events are the same as with a full recomputation.
   */
  topology (now: number): void {
    if (!this.dirty) return
    this.dirty = false
    // settle every domain's progress, so each transfer knows what it still owes
    const flows = [...this.flows]
    const owed = new Float64Array(flows.length)
    for (let k = 0; k < flows.length; k++) {
      const f = flows[k]!
      const d = f.domain!
      this.advance(d, now)
      owed[k] = Math.max(0, f.finishV - d.v)
    }
    if (this.moved) {
      this.computeNeighbours()
      this.computeDomains(now)
    } else {
      const switched = [...this.switched]
      this.switched.clear()
      for (const i of switched) this.relink(i)
      const label = switched.length === 1 ? this.partitionAfter(switched[0]!) : undefined
      if (label === undefined) this.computeDomains(now)
      else this.renumberDomains(label, now)
    }
    for (let k = 0; k < flows.length; k++) {
      const f = flows[k]!
      f.domain = undefined
      if (this.domainOf[f.from]! < 0) {
        // its sender went off: the engine closes the connection and cancels it
        f.done = true
        this.flows.delete(f)
        continue
      }
      this.enter(f, owed[k]!, now)
    }
    for (const d of this.domains) this.reschedule(d, now)
  }

  /** Neighbour lists from scratch (after nodes moved). */
  private computeNeighbours (): void {
    const n = this.on.length
    this.moved = false
    this.switched.clear()
    const r = this.range
    const cells = new Map<string, number[]>()
    for (let i = 0; i < n; i++) {
      const k = `${Math.floor(this.x[i]! / r)},${Math.floor(this.y[i]! / r)}`
      let c = cells.get(k)
      if (c === undefined) cells.set(k, c = [])
      c.push(i)
    }
    for (let i = 0; i < n; i++) {
      const cx = Math.floor(this.x[i]! / r)
      const cy = Math.floor(this.y[i]! / r)
      const list = this.potential[i]!
      list.length = 0
      for (let dx = -1; dx <= 1; dx++) {
        for (let dy = -1; dy <= 1; dy++) {
          const c = cells.get(`${cx + dx},${cy + dy}`)
          if (c === undefined) continue
          for (const j of c) if (j !== i && this.inRange(i, j)) list.push(j)
        }
      }
      list.sort((a, b) => a - b)
    }
    for (let i = 0; i < n; i++) this.filter(i)
  }

  /** A node switched on or off: its own list from scratch, itself put in or taken out of its neighbours' (kept sorted, as filter makes them). */
  private relink (i: number): void {
    this.filter(i)
    const on = this.on[i] === 1
    for (const j of this.potential[i]!) {
      if (this.on[j] !== 1) continue
      const list = this.nbrs[j]!
      const at = lowerBound(list, i)
      const there = list[at] === i
      if (on && !there) list.splice(at, 0, i)
      else if (!on && there) list.splice(at, 1)
    }
  }

  /**
   * The domain partition after one node switched, as a label per node (the
   * old domain's id, or NEW_DOMAIN for a node alone), when it is the old one
   * with that node added or removed; undefined when the node joins two
   * domains or its leaving may split one (then a full flood fill decides).
   */
  private partitionAfter (i: number): Int32Array | undefined {
    const label = this.domainOf
    if (this.on[i] === 1) {
      if (label[i] !== -1) return undefined
      let joined = NEW_DOMAIN
      for (const j of this.nbrs[i]!) {
        const l = label[j]!
        if (joined === NEW_DOMAIN) joined = l
        else if (l !== joined) return undefined
      }
      label[i] = joined
      return label
    }
    if (label[i] === -1) return undefined
    // its leaving splits nothing when the neighbours it leaves reach each other without it
    const left = this.potential[i]!.filter(j => this.on[j] === 1)
    label[i] = -1
    if (left.length > 1 && !this.connectedAmong(left)) {
      return undefined
    }
    return label
  }

  /** Whether nodes reach each other over links between themselves alone. */
  private connectedAmong (set: number[]): boolean {
    const stamp = ++this.stampNow
    const mark = this.mark
    for (const j of set) mark[j] = stamp
    const seen = stamp + 1
    this.stampNow++
    const stack = [set[0]!]
    mark[set[0]!] = seen
    let reached = 1
    while (stack.length > 0 && reached < set.length) {
      const u = stack.pop()!
      for (const v of this.nbrs[u]!) {
        if (mark[v] !== stamp) continue
        mark[v] = seen
        reached++
        stack.push(v)
      }
    }
    return reached === set.length
  }

  /** New domains for an unchanged partition, numbered as computeDomains would: by each domain's lowest node. */
  private renumberDomains (label: Int32Array, now: number): void {
    const old = this.domains
    const base = old.length > 0 ? old[0]!.id : 0
    for (const d of old) {
      d.gen++
      d.at = Infinity
      d.heap.length = 0
      d.active = 0
    }
    // old ids are consecutive (one computeDomains made them all); a node alone is one past them
    const fresh = new Array<Domain | undefined>(old.length + 1).fill(undefined)
    this.domains = []
    for (let i = 0; i < label.length; i++) {
      const l = label[i]!
      if (l === -1) continue
      const k = l === NEW_DOMAIN ? old.length : l - base
      let d = fresh[k]
      if (d === undefined) {
        d = fresh[k] = new Domain(this.nextDomain++, now)
        this.domains.push(d)
      }
      label[i] = d.id
    }
  }

  private filter (i: number): void {
    const list = this.nbrs[i]!
    list.length = 0
    if (this.on[i] !== 1) return
    for (const j of this.potential[i]!) if (this.on[j] === 1) list.push(j)
  }

  private computeDomains (now: number): void {
    const n = this.on.length
    this.domainOf.fill(-1)
    // the old domains' scheduled ends must never fire: their transfers move to the new ones
    for (const d of this.domains) {
      d.gen++
      d.at = Infinity
      d.heap.length = 0
      d.active = 0
    }
    this.domains = []
    const stack: number[] = []
    for (let i = 0; i < n; i++) {
      if (this.on[i] !== 1 || this.domainOf[i] !== -1) continue
      const d = new Domain(this.nextDomain++, now)
      this.domains.push(d)
      this.domainOf[i] = d.id
      stack.push(i)
      while (stack.length > 0) {
        const u = stack.pop()!
        for (const v of this.nbrs[u]!) {
          if (this.domainOf[v] === -1) {
            this.domainOf[v] = d.id
            stack.push(v)
          }
        }
      }
    }
  }

  private domainById (id: number): Domain | undefined {
    // domains are created in increasing id order, all of them by one computeDomains or renumberDomains: consecutive ids
    const ds = this.domains
    if (ds.length > 0) {
      const d = ds[id - ds[0]!.id]
      if (d !== undefined && d.id === id) return d
    }
    let lo = 0
    let hi = this.domains.length - 1
    while (lo <= hi) {
      const m = (lo + hi) >> 1
      const d = this.domains[m]!
      if (d.id === id) return d
      if (d.id < id) lo = m + 1
      else hi = m - 1
    }
    return undefined
  }

  /** Capacity of the channel in bytes per ms (what one transfer alone gets). */
  get capacity (): number { return this.phy.bytesPerMs }

  /**
   * Starts a transfer of `bytes` (transport layer) from one node to another
   * in range (or broadcast with to = -1). Returns undefined when the sender is off.
   */
  start (from: number, to: number, bytes: number, token: unknown, now: number): Flow | undefined {
    const id = this.domainOf[from]!
    if (id < 0) return undefined
    const f: Flow = { from, to, bytes, token, finishV: 0, domain: undefined, done: false }
    this.flows.add(f)
    this.bytesOnAir += bytes
    // a broadcast goes at the basic rate: it costs more of the shared airtime per byte
    const airBytes = to < 0 ? bytes * (this.phy.bytesPerMs / this.phy.broadcastBytesPerMs) : bytes
    this.enter(f, airBytes, now)
    this.reschedule(f.domain!, now)
    return f
  }

  /** Abandons a transfer (its connection closed); the bytes already sent stay counted. */
  cancel (f: Flow, now: number): void {
    if (f.done) return
    f.done = true
    this.flows.delete(f)
    const d = f.domain
    if (d === undefined) return
    this.advance(d, now)
    d.active--
    this.reschedule(d, now)
  }

  /** Transfers in progress. */
  get active (): number { return this.flows.size }

  /** Transfers sharing node i's domain. */
  sharing (i: number): number {
    const d = this.domainById(this.domainOf[i]!)
    return d === undefined ? 0 : d.active
  }

  /**
   * A domain's scheduled end came due: finishes the transfers whose bytes are
   * all served and returns them, in the order they finish.
   */
  onDomainEnd (d: Domain, gen: number, now: number): Flow[] {
    if (gen !== d.gen) return []
    d.at = Infinity
    this.advance(d, now)
    const ended: Flow[] = []
    const eps = Math.max(1e-6, Math.abs(d.v) * 1e-12)
    for (;;) {
      const top = d.heap[0]
      if (top === undefined) break
      if (top.done) { popFlow(d.heap); continue }
      if (top.finishV > d.v + eps) break
      popFlow(d.heap)
      top.done = true
      this.flows.delete(top)
      d.active--
      ended.push(top)
    }
    this.reschedule(d, now)
    return ended
  }

  private enter (f: Flow, airBytes: number, now: number): void {
    const d = this.domainById(this.domainOf[f.from]!)!
    this.advance(d, now)
    f.domain = d
    f.finishV = d.v + airBytes
    d.active++
    pushFlow(d.heap, f)
  }

  private advance (d: Domain, now: number): void {
    if (d.active > 0 && now > d.last) d.v += ((now - d.last) * this.phy.bytesPerMs) / d.active
    d.last = Math.max(d.last, now)
  }

  /**
   * Makes sure an end is scheduled no later than the domain's earliest
   * transfer end. Lazy: a start slows everyone down, so the pending end is
   * early and is kept (it fires, finds nothing due and schedules again);
   * only an earlier end (after a cancel or an end) pushes an event.
   */
  private reschedule (d: Domain, now: number): void {
    while (d.heap.length > 0 && d.heap[0]!.done) popFlow(d.heap)
    const top = d.heap[0]
    if (top === undefined || d.active === 0) return
    let t = now + Math.max(0, ((top.finishV - d.v) * d.active) / this.phy.bytesPerMs)
    // what it still owes is below the clock's resolution at this time: it is done now (else it would never end)
    if (t <= now) {
      d.v = Math.max(d.v, top.finishV)
      t = now
    }
    if (t >= d.at) return
    d.gen++
    d.at = t
    this.schedule(t, d, d.gen)
  }
}

function pushFlow (h: Flow[], f: Flow): void {
  let i = h.length
  h.push(f)
  while (i > 0) {
    const p = (i - 1) >> 1
    if (h[p]!.finishV <= f.finishV) break
    h[i] = h[p]!
    i = p
  }
  h[i] = f
}

function popFlow (h: Flow[]): Flow | undefined {
  const top = h[0]
  const last = h.pop()
  const n = h.length
  if (n > 0 && last !== undefined) {
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      const m = r < n && h[r]!.finishV < h[l]!.finishV ? r : l
      if (h[m]!.finishV >= last.finishV) break
      h[i] = h[m]!
      i = m
    }
    h[i] = last
  }
  return top
}

/** The first position in a sorted list whose value is not below x. */
function lowerBound (list: number[], x: number): number {
  let lo = 0
  let hi = list.length
  while (lo < hi) {
    const m = (lo + hi) >> 1
    if (list[m]! < x) lo = m + 1
    else hi = m
  }
  return lo
}
