// Staged rollout, decided by each laptop alone (docs/deployment.md, "Staged
// rollout"): an advisory's signed waves say "p1 % of the laptops may start
// s1 seconds after the snapshot was issued, p2 % (in all) after s2, …". A
// laptop's place in the line is a number in [0, 100) drawn from its peer id
// and the build (so it is the same on every run, and a laptop is not always
// first); its wave is the first whose percent exceeds it. Whatever its wave,
// a laptop that has not installed the build yet holds back while at least
// max_failed_percent of the install results it has seen for the build
// failed: failures reach it through the mesh (results.ts), so a bad build
// halts after its first wave in a school with no link.
//
// Pure functions: no clock (now is given), no randomness.
import { DEFAULT_MAX_FAILED_PERCENT } from './constants.ts'
import type { Tally } from './results.ts'

export interface RolloutWave { percent: number, after_s: number }

export interface RolloutPlan {
  waves: RolloutWave[]
  /** Halt while at least this percent of the results seen failed (1-100; default DEFAULT_MAX_FAILED_PERCENT). */
  maxFailedPercent?: number
}

/** FNV-1a, 32 bits, over a string's UTF-16 code units: a stable, well-spread hash needing no crypto. */
function fnv1a (text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  // a final avalanche (murmur3's fmix32): FNV's low bits alone spread poorly over similar keys
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b) >>> 0
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35) >>> 0
  h ^= h >>> 16
  return h >>> 0
}

/** A laptop's place for a build's rollout, in [0, 100): the same on every run for the same laptop and build. */
export function rolloutPosition (laptop: string, build: string): number {
  return fnv1a(`${build}\n${laptop}`) / 2 ** 32 * 100
}

export type RolloutDecision =
  | { go: true, wave: number, reason: string }
  /** Wait; `until` (ms) when the wait is for the clock, undefined when for the failures to fall (or never). */
  | { go: false, wave: number | undefined, reason: string, until?: number, halted?: boolean }

/**
 * May this laptop install the build now? `issued`: the snapshot's issue time
 * (ms), `tally`: the install results seen for the build (one per laptop),
 * `position`: rolloutPosition(...).
 */
export function rolloutDecision (plan: RolloutPlan | undefined, position: number, issued: number, now: number, tally: Tally): RolloutDecision {
  const waves = plan?.waves ?? []
  let wave = 0
  if (waves.length > 0) {
    wave = waves.findIndex(w => position < w.percent)
    if (wave < 0) return { go: false, wave: undefined, reason: `in no wave (place ${position.toFixed(2)} of 100; the last wave reaches ${waves[waves.length - 1]!.percent}%)` }
    const start = issued + waves[wave]!.after_s * 1000
    if (now < start) return { go: false, wave, reason: `wave ${wave + 1} of ${waves.length} starts at ${start} (ms)`, until: start }
  }
  const seen = tally.ok + tally.failed
  const max = plan?.maxFailedPercent ?? DEFAULT_MAX_FAILED_PERCENT
  if (seen > 0 && tally.failed * 100 >= max * seen) {
    return { go: false, wave, halted: true, reason: `halted: ${tally.failed} of the ${seen} install results seen failed (at least ${max}%)` }
  }
  return { go: true, wave, reason: waves.length > 0 ? `wave ${wave + 1} of ${waves.length}` : 'no staged rollout' }
}
