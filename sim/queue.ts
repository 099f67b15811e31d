// The event queue: one binary min-heap ordered by (time, sequence number),
// so events at the same time run in the order they were scheduled and a run
// is a total order of events (Shadow, ns-3). Events are small records, not
// closures: a kind, a node and up to two arguments.

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
  private seq = 0

  get size (): number { return this.heap.length }

  /** Schedules an event; returns it (its seq is its place among equal times). */
  push (time: number, kind: number, node: number, a = 0, ref: unknown = undefined): SimEvent {
    const e: SimEvent = { time, seq: this.seq++, kind, node, a, ref }
    const h = this.heap
    let i = h.length
    h.push(e)
    while (i > 0) {
      const p = (i - 1) >> 1
      const q = h[p]!
      if (q.time < time || (q.time === time && q.seq < e.seq)) break
      h[i] = q
      i = p
    }
    h[i] = e
    return e
  }

  /** The earliest event's time, or Infinity. */
  peekTime (): number {
    return this.heap.length > 0 ? this.heap[0]!.time : Infinity
  }

  pop (): SimEvent | undefined {
    const h = this.heap
    const top = h[0]
    const last = h.pop()
    const n = h.length
    if (n > 0 && last !== undefined) {
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        if (l >= n) break
        const r = l + 1
        let m = l
        if (r < n && before(h[r]!, h[l]!)) m = r
        if (!before(h[m]!, last)) break
        h[i] = h[m]!
        i = m
      }
      h[i] = last
    }
    return top
  }
}

function before (x: SimEvent, y: SimEvent): boolean {
  return x.time < y.time || (x.time === y.time && x.seq < y.seq)
}
