// The event queue: a min-heap ordered by (time, sequence number), so events
// at the same time run in the order they were scheduled and a run is a total
// order of events (Shadow, ns-3). Events are small records, not closures: a
// kind, a node and up to two arguments. The heap is 4-ary and compares keys
// kept in typed arrays beside it (a node's four children share a cache line),
// not the events themselves: a district's queue holds ~10^5 events, and a
// binary heap of objects took a cache miss per level on every pop.

/** One scheduled event. `kind` is the engine's; `a`, `b` and `ref` are its arguments. */
export interface SimEvent {
  time: number
  seq: number
  kind: number
  node: number
  a: number
  ref: unknown
}

export class EventQueue {
  private heap: SimEvent[] = []
  private times = new Float64Array(1024)
  private seqs = new Float64Array(1024)
  private seq = 0

  get size (): number { return this.heap.length }

  /** Schedules an event; returns it (its seq is its place among equal times). */
  push (time: number, kind: number, node: number, a = 0, ref: unknown = undefined): SimEvent {
    const seq = this.seq++
    const e: SimEvent = { time, seq, kind, node, a, ref }
    const h = this.heap
    let i = h.length
    if (i === this.times.length) this.grow()
    const ts = this.times
    const ss = this.seqs
    h.push(e)
    // a new event has the largest seq so far: it goes above a parent only when strictly earlier
    while (i > 0) {
      const p = (i - 1) >> 2
      if (ts[p]! <= time) break
      h[i] = h[p]!
      ts[i] = ts[p]!
      ss[i] = ss[p]!
      i = p
    }
    h[i] = e
    ts[i] = time
    ss[i] = seq
    return e
  }

  /** The earliest event's time, or Infinity. */
  peekTime (): number {
    return this.heap.length > 0 ? this.times[0]! : Infinity
  }

  pop (): SimEvent | undefined {
    const h = this.heap
    const top = h[0]
    const last = h.pop()
    const n = h.length
    if (n > 0 && last !== undefined) {
      const ts = this.times
      const ss = this.seqs
      const lt = ts[n]!
      const ls = ss[n]!
      let i = 0
      for (;;) {
        const first = 4 * i + 1
        if (first >= n) break
        // the earliest of up to four children
        let m = first
        let mt = ts[first]!
        let ms = ss[first]!
        const end = Math.min(first + 4, n)
        for (let c = first + 1; c < end; c++) {
          const ct = ts[c]!
          if (ct < mt || (ct === mt && ss[c]! < ms)) {
            m = c
            mt = ct
            ms = ss[c]!
          }
        }
        if (lt < mt || (lt === mt && ls < ms)) break
        h[i] = h[m]!
        ts[i] = mt
        ss[i] = ms
        i = m
      }
      h[i] = last
      ts[i] = lt
      ss[i] = ls
    }
    return top
  }

  private grow (): void {
    const t = new Float64Array(this.times.length * 2)
    t.set(this.times)
    this.times = t
    const s = new Float64Array(this.seqs.length * 2)
    s.set(this.seqs)
    this.seqs = s
  }
}
