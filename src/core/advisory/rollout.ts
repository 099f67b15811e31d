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
// "After N hours if fewer than F% failed" is a promise about evidence, not
// only about the clock: a laptop of a later wave that has heard no install
// result of the build at all knows nothing of how the earlier waves fared
// (their results may be slow to fetch, apply or spread, on a busy laptop or
// across a mesh that is split for now), and zero failures out of zero
// results is not "fewer than F%". So a later wave starts once its time has
// come AND the laptop holds at least MIN_RESULTS_FOR_NEXT_WAVE results for
// the build. Results come first from the earlier waves: a later-wave laptop
// only installs, and only publishes a result, once it has evidence itself.
// The first wave needs none (somebody has to go first). The price: in a
// school whose earlier waves hold no laptop, a later wave waits until a
// result arrives (docs/deployment.md says how a deployment sizes its first
// wave and what it can do then).
//
// Pure functions: no clock (now is given), no randomness.
import { DEFAULT_MAX_FAILED_PERCENT, MIN_RESULTS_FOR_NEXT_WAVE } from './constants.ts'
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
  /**
   * Wait; `until` (ms) when the wait is for the clock, undefined when for
   * results (the failures to fall, or the first evidence to arrive) or never;
   * `halted` when failures hold it back.
   */
  | { go: false, wave: number | undefined, reason: string, until?: number, halted?: boolean }

/**
 * May this laptop install the build now? `issued`: the snapshot's issue time
 * (ms), `tally`: the install results seen for the build (one per laptop),
 * `position`: rolloutPosition(...). In this order: a halt on failures
 * (whatever the wave), the wave's time, and for a wave after the first the
 * evidence of the earlier ones.
 */
export function rolloutDecision (plan: RolloutPlan | undefined, position: number, issued: number, now: number, tally: Tally): RolloutDecision {
  const waves = plan?.waves ?? []
  let wave = 0
  if (waves.length > 0) {
    wave = waves.findIndex(w => position < w.percent)
    if (wave < 0) return { go: false, wave: undefined, reason: `in no wave (place ${position.toFixed(2)} of 100; the last wave reaches ${waves[waves.length - 1]!.percent}%)` }
  }
  const seen = tally.ok + tally.failed
  const max = plan?.maxFailedPercent ?? DEFAULT_MAX_FAILED_PERCENT
  if (seen > 0 && tally.failed * 100 >= max * seen) {
    return { go: false, wave, halted: true, reason: `halted: ${tally.failed} of the ${seen} install results seen failed (at least ${max}%)` }
  }
  if (waves.length === 0) return { go: true, wave, reason: 'no staged rollout' }
  const start = issued + waves[wave]!.after_s * 1000
  if (now < start) return { go: false, wave, reason: `wave ${wave + 1} of ${waves.length} starts at ${start} (ms)`, until: start }
  if (wave > 0 && seen < MIN_RESULTS_FOR_NEXT_WAVE) {
    return { go: false, wave, reason: `wave ${wave + 1} of ${waves.length} has started but waits for evidence: ${seen} install result(s) of the build heard, ${MIN_RESULTS_FOR_NEXT_WAVE} needed from the earlier waves` }
  }
  return { go: true, wave, reason: `wave ${wave + 1} of ${waves.length}` }
}
