// The event queue of the test harnesses that drive sans-IO cores with fake
// time: a binary min-heap of closures ordered by (time, sequence), so events
// at one time run in the order they were scheduled and a run is repeatable.
// (The simulator has its own queue of small records: it runs millions.)

export interface ScheduledEvent { time: number, seq: number, run: () => void }

export class EventQueue {
  private readonly heap: ScheduledEvent[] = []
  private seq = 0

  get size (): number { return this.heap.length }

  /** Schedules `run` at `time`. */
  at (time: number, run: () => void): void {
    this.push({ time, seq: this.seq++, run })
  }

  /** Puts back an event taken by pop(), keeping its place among equal times. */
  push (e: ScheduledEvent): void {
    const h = this.heap
    h.push(e)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!before(h[i]!, h[p]!)) break
      ;[h[i], h[p]] = [h[p]!, h[i]!]
      i = p
    }
  }

  peek (): ScheduledEvent | undefined { return this.heap[0] }

  pop (): ScheduledEvent | undefined {
    const h = this.heap
    const top = h[0]
    const last = h.pop()
    if (h.length > 0 && last !== undefined) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && before(h[l]!, h[m]!)) m = l
        if (r < h.length && before(h[r]!, h[m]!)) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m]!, h[i]!]
        i = m
      }
    }
    return top
  }
}

function before (a: ScheduledEvent, b: ScheduledEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq)
}
