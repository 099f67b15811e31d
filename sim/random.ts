// The simulator's only source of randomness: xoshiro128** (Blackman and
// Vigna), seeded through splitmix32 so that nearby seeds give unrelated
// streams. Every core gets its own stream forked from the run's, so adding a
// draw in one place does not shift every other node's choices.

/** splitmix32: spreads a 32-bit seed into well-mixed state words. */
function splitmix32 (state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) >>> 0
  let z = state.s
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
  return (z ^ (z >>> 16)) >>> 0
}

/** A seeded generator of uniform numbers; equal seeds give equal sequences on every platform. */
export class Random {
  private a: number
  private b: number
  private c: number
  private d: number

  /** seed: any integer (taken modulo 2^32) or a sequence of them (mixed in order). */
  constructor (seed: number | readonly number[]) {
    const st = { s: 0 }
    for (const x of typeof seed === 'number' ? [seed] : seed) st.s = (st.s ^ (Math.floor(x) >>> 0) ^ splitmix32(st)) >>> 0
    this.a = splitmix32(st)
    this.b = splitmix32(st)
    this.c = splitmix32(st)
    this.d = splitmix32(st)
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1
  }

  /** 32 random bits as an unsigned integer. */
  nextU32 (): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0
    const t = this.b << 9
    this.c ^= this.a
    this.d ^= this.b
    this.b ^= this.c
    this.a ^= this.d
    this.c ^= t
    this.d = rotl(this.d, 11)
    return r
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  next (): number {
    return this.nextU32() / 4294967296
  }

  /** Uniform integer in [0, n). */
  int (n: number): number {
    return Math.floor(this.next() * n)
  }

  /** Uniform in [lo, hi). */
  between (lo: number, hi: number): number {
    return lo + (hi - lo) * this.next()
  }

  /** Exponentially distributed with the given mean. */
  exponential (mean: number): number {
    return -Math.log(1 - this.next()) * mean
  }

  /** A new independent stream derived from this one (and a label, so forks in different roles differ). */
  fork (label = 0): Random {
    return new Random([this.nextU32(), this.nextU32(), label])
  }

  /** This generator as the `() => number` the cores take. */
  get fn (): () => number {
    return () => this.next()
  }
}

function rotl (x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0
}
