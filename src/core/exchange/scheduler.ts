// Which leaves to ask one peer for: rarest first among the leaves it holds
// and nobody has been asked for, ties broken by the build's random order; in
// end-game, a second request for a leaf outstanding elsewhere. Two passes over
// (a bounded random sample of) the missing leaves, no allocation per leaf.
// A partial peer's candidates are first counted with one AND of its bitfield
// and the requestable leaves: most refills toward a sparse peer find nothing
// (or a few leaves) and cost n / 8 byte operations, not a walk of the order.
import { countCommon, hasBit } from './bitfield.ts'
import { MISSING, type FetchState } from './fetch-state.ts'

const BUCKETS = 256
const histogram = new Uint32Array(BUCKETS)
/** Sort keys of a sparse peer's candidates: (rarity bucket, place in the random order, leaf), one float each. */
let keys = new Float64Array(256)
/** pickAmong keeps the smallest keys by insertion below this many wanted, else sorts them all. */
const SELECT_BELOW = 48
const selected = new Float64Array(SELECT_BELOW)
/** 2^20: MAX_LEAVES, so a place or a leaf index fits below it and a key below 2^48. */
const SPAN = 0x100000

/** What may be asked of one peer. */
export interface PickLimits {
  /** The peer's bitfield, or null when it holds every leaf. */
  peerBits: Uint8Array | null
  /** Only leaves no connected partial peer holds (when asking a complete peer while partial peers can serve). */
  onlyUnshared: boolean
  /** Bytes the picks may add up to… */
  maxBytes: number
  /** …and how many. */
  maxCount: number
  /** Take one leaf even when it alone exceeds maxBytes (nothing is outstanding at the peer). */
  atLeastOne: boolean
}

function candidate (st: FetchState, i: number, l: PickLimits): boolean {
  return st.state[i] === MISSING && st.req[i] === 0 &&
    (l.peerBits === null || hasBit(l.peerBits, i)) &&
    (!l.onlyUnshared || st.avail[i] === 0)
}

/** Bytes of picks within the limits, rarest first; appends the picks to out and returns their total bytes. */
function trim (st: FetchState, picks: number[], l: PickLimits, out: number[]): number {
  let bytes = 0
  for (const i of picks) {
    if (out.length >= l.maxCount) break
    const size = st.sizes[i]!
    if (bytes + size > l.maxBytes && !(l.atLeastOne && bytes === 0 && out.length === 0)) continue
    out.push(i)
    bytes += size
  }
  return bytes
}

/**
 * Picks leaves to request from a peer, rarest first (fewest partial holders),
 * ties in the build's random order. Appends them to out (unsorted) and
 * returns how many candidates it saw: 0 when the peer has nothing we could
 * request (whatever the limits), more even when none fitted the limits.
 */
export function pickRarest (st: FetchState, l: PickLimits, out: number[]): number {
  if (st.idle === 0) return 0
  if (l.maxCount <= 0) return -1
  const avg = Math.max(1, st.totalBytes / Math.max(1, st.n))
  const want = Math.min(l.maxCount, Math.ceil(Math.max(0, l.maxBytes) / avg) + 1)
  const sample = Math.max(8 * want, 256)
  if (l.peerBits !== null) {
    const k = countCommon(l.peerBits, st.idleBits)
    if (k === 0) return 0
    if (k <= sample) {
      pickAmong(st, l, want, out)
      return k
    }
  }
  // pass 1: rarity histogram of the candidates in a random sample of the missing leaves
  histogram.fill(0)
  let seen = 0
  const start = st.scanStart()
  let end = start
  for (let p = start; p < st.orderLength && seen < sample; p++) {
    const i = st.order[p]!
    end = p + 1
    if (!candidate(st, i, l)) continue
    histogram[Math.min(BUCKETS - 1, st.avail[i]!)]!++
    seen++
  }
  if (seen === 0) return 0
  let threshold = BUCKETS - 1
  let cumulative = 0
  for (let a = 0; a < BUCKETS; a++) {
    cumulative += histogram[a]!
    if (cumulative >= want) {
      threshold = a
      break
    }
  }
  let equalWanted = want - (cumulative - histogram[threshold]!)
  // pass 2: every candidate rarer than the threshold, and enough at it, in random order
  const picks: number[] = []
  for (let p = start; p < end; p++) {
    const i = st.order[p]!
    if (!candidate(st, i, l)) continue
    const a = Math.min(BUCKETS - 1, st.avail[i]!)
    if (a < threshold || (a === threshold && equalWanted-- > 0)) picks.push(i)
  }
  picks.sort((x, y) => st.avail[x]! - st.avail[y]!) // stable: ties keep the random order
  trim(st, picks, l, out)
  return seen
}

/**
 * The picks of the sampled scan below when it would see every candidate (a
 * partial peer's, at most `sample` of them): the `want` rarest in the random
 * order, found from the AND of the two bitfields and one numeric sort.
 */
function pickAmong (st: FetchState, l: PickLimits, want: number, out: number[]): void {
  const a = l.peerBits!
  const b = st.idleBits
  let m = 0
  for (let byte = 0; byte < b.length; byte++) {
    const v = a[byte]! & b[byte]!
    if (v === 0) continue
    for (let bit = 0; bit < 8; bit++) {
      if ((v & (0x80 >>> bit)) === 0) continue
      const i = byte * 8 + bit
      if (m === keys.length) {
        const grown = new Float64Array(2 * m)
        grown.set(keys)
        keys = grown
      }
      keys[m++] = (Math.min(BUCKETS - 1, st.avail[i]!) * SPAN + st.rank[i]!) * SPAN + i
    }
  }
  const picks: number[] = []
  if (want < SELECT_BELOW && want < m) {
    // the want smallest keys, kept sorted as they come: a typed array's sort costs more than this when few are wanted
    const best = selected
    let c = 0
    for (let q = 0; q < m; q++) {
      const x = keys[q]!
      if (c === want) {
        if (x >= best[c - 1]!) continue
        c--
      }
      let at = c
      while (at > 0 && best[at - 1]! > x) {
        best[at] = best[at - 1]!
        at--
      }
      best[at] = x
      c++
    }
    for (let q = 0; q < c; q++) picks.push(best[q]! % SPAN)
  } else {
    const sorted = keys.subarray(0, m).sort()
    for (let q = 0; q < m && q < want; q++) picks.push(sorted[q]! % SPAN)
  }
  picks.sort((x, y) => st.avail[x]! - st.avail[y]!) // as the scan orders its picks (only ≥ BUCKETS - 1 holders can differ)
  trim(st, picks, l, out)
}

/**
 * End-game picks: missing leaves with exactly one request outstanding, at
 * another peer, that this peer holds (and, with `only`, that are in it).
 * Appends them to out, returns bytes.
 */
export function pickEndgame (st: FetchState, l: PickLimits, outstandingHere: ReadonlyMap<number, number>, out: number[], only?: ReadonlySet<number>): number {
  const picks: number[] = []
  for (let p = 0; p < st.orderLength; p++) {
    const i = st.order[p]!
    if (st.state[i] !== MISSING || st.req[i] !== 1 || outstandingHere.has(i)) continue
    if (l.peerBits !== null && !hasBit(l.peerBits, i)) continue
    if (only !== undefined && !only.has(i)) continue
    picks.push(i)
  }
  return trim(st, picks, l, out)
}
