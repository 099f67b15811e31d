// A token bucket driven by the caller's clock: rate tokens per ms, at most
// `burst` saved. take() may drive the level below zero (a large frame goes
// out whole); nothing more is allowed until it has refilled above zero, so
// over any interval t the total taken is at most burst + rate·t + one take.

export class TokenBucket {
  readonly rate: number
  readonly burst: number
  private level: number
  private at: number

  /** rate: tokens per ms (> 0); burst: tokens saved at most; starts full at `now`. */
  constructor (rate: number, burst: number, now: number) {
    this.rate = rate
    this.burst = burst
    this.level = burst
    this.at = now
  }

  /** Tokens available at now (may be negative after an overdraft). */
  available (now: number): number {
    if (now > this.at) {
      this.level = Math.min(this.burst, this.level + (now - this.at) * this.rate)
      this.at = now
    }
    return this.level
  }

  /** Takes n tokens, overdrawing if needed. */
  take (n: number, now: number): void {
    this.available(now)
    this.level -= n
  }

  /** Takes n tokens if that leaves the level at zero or above; returns whether it did. */
  tryTake (n: number, now: number): boolean {
    if (this.available(now) < n) return false
    this.level -= n
    return true
  }

  /** When the level will be above zero again (now if it already is). */
  positiveAt (now: number): number {
    const level = this.available(now)
    return level > 0 ? now : now + Math.ceil((-level + 1) / this.rate)
  }
}
