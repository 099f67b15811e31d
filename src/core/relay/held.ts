// The counters a hop holds per origin, as sorted disjoint intervals. Items
// arrive mostly in counter order, so an origin is usually one interval
// [1, n] and costs a few numbers however many items went through; a route
// that changed mid-way (the election moved the server) leaves a gap, i.e. a
// second interval. Used by the outbox (kept in memory, persisted as rows) and
// by test stores.
import type { Custody } from './types.ts'

/** Intervals kept per origin; an item that would need more is refused (the sender keeps it). */
export const MAX_INTERVALS = 256

export class HeldCounters {
  /** origin → [lo0, hi0, lo1, hi1, …], ascending, disjoint, never adjacent. */
  private readonly byOrigin = new Map<string, number[]>()

  get origins (): number { return this.byOrigin.size }

  /** Index of the interval holding c, or -(insertion point) - 1. */
  private find (iv: number[], c: number): number {
    let lo = 0
    let hi = iv.length / 2 - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      if (c < iv[2 * mid]!) hi = mid - 1
      else if (c > iv[2 * mid + 1]!) lo = mid + 1
      else return mid
    }
    return -lo - 1
  }

  has (origin: string, counter: number): boolean {
    const iv = this.byOrigin.get(origin)
    return iv !== undefined && this.find(iv, counter) >= 0
  }

  /** Whether add(origin, counter) would succeed (held already, or room for it). */
  canAdd (origin: string, counter: number): boolean {
    const iv = this.byOrigin.get(origin)
    if (iv === undefined || iv.length / 2 < MAX_INTERVALS) return true
    const i = this.find(iv, counter)
    if (i >= 0) return true
    const at = -i - 1
    return (at > 0 && iv[2 * at - 1]! === counter - 1) || (at < iv.length / 2 && iv[2 * at]! === counter + 1)
  }

  /** Records counter as held; false (and nothing changed) when the origin is too fragmented. */
  add (origin: string, counter: number): boolean {
    let iv = this.byOrigin.get(origin)
    if (iv === undefined) {
      iv = []
      this.byOrigin.set(origin, iv)
    }
    const i = this.find(iv, counter)
    if (i >= 0) return true
    const at = -i - 1
    const joinsLeft = at > 0 && iv[2 * at - 1]! === counter - 1
    const joinsRight = at < iv.length / 2 && iv[2 * at]! === counter + 1
    if (joinsLeft && joinsRight) {
      iv.splice(2 * at - 1, 2) // [lo_{at-1}, hi_{at+1}]
    } else if (joinsLeft) {
      iv[2 * at - 1] = counter
    } else if (joinsRight) {
      iv[2 * at] = counter
    } else {
      if (iv.length / 2 >= MAX_INTERVALS) return false
      iv.splice(2 * at, 0, counter, counter)
    }
    return true
  }

  /** The highest c such that 1..c are all held (0 when 1 is not). */
  contiguous (origin: string): number {
    const iv = this.byOrigin.get(origin)
    return iv !== undefined && iv.length > 0 && iv[0] === 1 ? iv[1]! : 0
  }

  /** The receipt entry for origin: its contiguous prefix and those of `counters` held above it. */
  custody (origin: string, counters: Iterable<number>): Custody {
    const contiguous = this.contiguous(origin)
    const above = [...new Set([...counters].filter(c => c > contiguous && this.has(origin, c)))].sort((a, b) => a - b)
    return { origin, contiguous, above }
  }

  /** Records lo..hi as held (loading saved intervals; lo ≤ hi). False when the origin is too fragmented. */
  addRange (origin: string, lo: number, hi: number): boolean {
    if (!this.add(origin, lo)) return false
    const iv = this.byOrigin.get(origin)!
    const i = this.find(iv, lo)
    if (iv[2 * i + 1]! >= hi) return true
    // Extend the interval holding lo to hi, swallowing those it now reaches.
    let j = i + 1
    while (j < iv.length / 2 && iv[2 * j]! <= hi + 1) j++
    iv[2 * i + 1] = Math.max(hi, iv[2 * j - 1]!)
    iv.splice(2 * i + 2, 2 * (j - i - 1))
    return true
  }

  /** The highest counter held of origin (0: none). */
  highest (origin: string): number {
    const iv = this.byOrigin.get(origin)
    return iv === undefined || iv.length === 0 ? 0 : iv[iv.length - 1]!
  }

  /** A copy holding only the given origins (to stage changes before they are committed). */
  clone (origins: Iterable<string>): HeldCounters {
    const out = new HeldCounters()
    for (const o of origins) {
      const iv = this.byOrigin.get(o)
      if (iv !== undefined) out.byOrigin.set(o, iv.slice())
    }
    return out
  }

  /** Takes the intervals of the given origins from other (after its changes were committed). */
  adopt (other: HeldCounters, origins: Iterable<string>): void {
    for (const o of origins) {
      const iv = other.byOrigin.get(o)
      if (iv !== undefined) this.byOrigin.set(o, iv.slice())
    }
  }

  /** The intervals of origin, as [lo, hi] pairs (a copy). */
  intervals (origin: string): Array<[number, number]> {
    const iv = this.byOrigin.get(origin) ?? []
    const out: Array<[number, number]> = []
    for (let i = 0; i < iv.length; i += 2) out.push([iv[i]!, iv[i + 1]!])
    return out
  }

  /** Every origin and its intervals. */
  * entries (): IterableIterator<[string, Array<[number, number]>]> {
    for (const origin of this.byOrigin.keys()) yield [origin, this.intervals(origin)]
  }
}
