// A Trickle timer (RFC 6206), as data. In each interval I a node picks t in
// [I/2, I) and transmits at t only if it heard fewer than k consistent
// transmissions in the interval; I doubles up to Imax while all is
// consistent and falls back to Imin on an inconsistency. So a quiet room
// costs about k transmissions per Imax however many laptops it holds, and
// news spreads within about Imin.

export interface TrickleParams {
  iminMs: number
  /** Imax = Imin · 2^doublings. */
  doublings: number
  k: number
}

export class Trickle {
  private readonly imin: number
  private readonly imax: number
  private readonly k: number
  private readonly random: () => number
  /** Current interval length (ms). */
  interval: number
  private end = 0
  private t = 0
  private counter = 0
  private fired = false

  constructor (params: TrickleParams, random: () => number, now: number) {
    this.imin = params.iminMs
    this.imax = params.iminMs * 2 ** params.doublings
    this.k = params.k
    this.random = random
    this.interval = this.imin
    this.begin(now)
  }

  private begin (start: number): void {
    this.end = start + this.interval
    this.t = start + this.interval / 2 + this.random() * (this.interval / 2)
    this.counter = 0
    this.fired = false
  }

  /** A consistent transmission was heard. */
  consistent (): void {
    this.counter++
  }

  /** An inconsistency: back to Imin, unless already there (RFC 6206, 4.2 step 6). */
  inconsistent (now: number): void {
    if (this.interval === this.imin) return
    this.interval = this.imin
    this.begin(now)
  }

  /** Advances to now; true when the node should transmit now. */
  tick (now: number): boolean {
    let transmit = false
    for (;;) {
      if (!this.fired && now >= this.t) {
        this.fired = true
        // suppressed when k consistent adverts were heard (k = ∞ never suppresses)
        if (this.counter < this.k) transmit = true
      }
      if (now < this.end) return transmit
      const start = this.end
      this.interval = Math.min(this.interval * 2, this.imax)
      this.begin(start)
    }
  }

  nextDeadline (): number {
    return this.fired ? this.end : this.t
  }
}
