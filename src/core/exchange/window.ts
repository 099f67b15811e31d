// The request window toward one peer: how many bytes of leaves may be
// requested and not yet received. It starts small and follows the link: the
// window is gain × delivery rate × minimum delay (BBR's insight: with a gain
// of 2 it doubles every round trip while the rate still grows, and settles
// near twice the bandwidth-delay product once it does not). Bytes, not block
// counts, so small and large leaves cost what they weigh.
//
// The minimum delay must come from a drained pipe: with the window full, every
// sample carries the queue the window itself builds (a window of twice the
// bandwidth-delay product doubles the delay). Taking such a sample as the new
// minimum when the old one expires grows the window ×2 or more at each expiry.
// So, like BBR's PROBE_RTT, an expired minimum is measured again: the window
// shrinks to minWindow until what was queued has arrived, and a request sent
// after that gives the new minimum.
import { DEFAULT_TUNING, type Tuning } from './constants.ts'

/** A minimum delay older than this is forgotten, so a route change is noticed, ms. */
const MIN_DELAY_LIFETIME = 10_000
/** Each new rate sample keeps this much of the previous estimate (a decaying maximum). */
const RATE_DECAY = 0.8
/** Shortest interval a rate sample is taken over, ms. */
const MIN_SAMPLE = 4
/** A probe of the minimum delay that has not finished after this many of the old minimum (and at least PROBE_MIN_MS) takes the smallest delay it saw. */
const PROBE_DELAYS = 8
const PROBE_MIN_MS = 200

export class RequestWindow {
  /** Bytes that may be outstanding. */
  cwnd: number
  /** Bytes outstanding. */
  inflight = 0
  /** Leaves and CIDs outstanding. */
  blocks = 0
  /** Delivery rate estimate, bytes per ms (0 until measured). */
  rate = 0
  /** Smallest request-to-arrival delay seen recently, ms. */
  minDelay = Infinity
  /** Smoothed request-to-arrival delay, ms (0 until measured). */
  srtt = 0
  private minDelayAt = 0
  /** Probing the minimum delay: since when (ms), or -1. */
  private probeStart = -1
  /** When what was in flight at the probe's start had arrived (ms), or -1. */
  private probeDrainedAt = -1
  /** Smallest delay seen during the probe. */
  private probeMin = Infinity
  private sampleStart = -1
  private sampleBytes = 0
  /**
   * Most bytes one frame delivered lately (a decaying maximum): the peer
   * answers in frames, and a frame's first block waits for the whole frame,
   * so the delay grows with the frame and the window must hold the frame on
   * top of the bandwidth-delay product (BBR's allowance for ACK aggregation).
   */
  burst = 0
  /** When a delivery emptied the window (ms), or -1: a request at that same instant continues the sample. */
  private emptiedAt = -1
  private readonly tuning: Tuning

  constructor (tuning: Tuning = DEFAULT_TUNING) {
    this.tuning = tuning
    this.cwnd = tuning.initialWindow
  }

  /** Bytes that may still be requested (at least one block's worth when nothing is outstanding). */
  space (): number {
    return (this.probeStart >= 0 ? Math.min(this.cwnd, this.tuning.minWindow) : this.cwnd) - this.inflight
  }

  /** True while the window is held small to measure the minimum delay again. */
  get probing (): boolean {
    return this.probeStart >= 0
  }

  /** Blocks that may still be requested. */
  blockSpace (): number {
    return this.tuning.maxWindowBlocks - this.blocks
  }

  /**
   * Requests sent at `now`. When a delivery emptied the window, a request at
   * that same instant means the window, not a lack of work, held the link: the
   * rate sample goes on. A later one follows an idle spell: a fresh sample.
   * (A window smaller than one served frame is emptied by every frame; if
   * that reset the sample, the rate was never measured again and the window
   * stayed stuck below a frame: stop-and-wait.)
   */
  sent (bytes: number, blocks: number, now: number): void {
    if (this.emptiedAt >= 0 && now > this.emptiedAt) this.sampleStart = -1
    this.emptiedAt = -1
    this.inflight += bytes
    this.blocks += blocks
  }

  /** Requests given up on (cancelled, refused, timed out): no delivery to learn from. */
  released (bytes: number, blocks: number): void {
    this.take(bytes, blocks)
    // an empty window idles the link: the next delivery starts a fresh rate sample
    if (this.blocks === 0) this.sampleStart = -1
  }

  /** Bytes and blocks no longer outstanding. */
  private take (bytes: number, blocks: number): void {
    this.inflight = Math.max(0, this.inflight - bytes)
    this.blocks = Math.max(0, this.blocks - blocks)
  }

  /**
   * A frame brought `blocks` requested blocks, `bytes` in all, the earliest
   * requested `delay` ms before now. Call once per frame: its blocks arrive
   * together, and a rate measured block by block would count them at once.
   */
  delivered (bytes: number, blocks: number, delay: number, now: number): void {
    if (delay >= 0) {
      this.srtt = this.srtt === 0 ? delay : this.srtt * 0.875 + delay * 0.125
      if (delay <= this.minDelay) {
        this.minDelay = delay
        this.minDelayAt = now
      }
    }
    this.take(bytes, blocks)
    if (this.blocks === 0) this.emptiedAt = now
    if (bytes > this.burst) this.burst = bytes
    if (this.probeStart >= 0) this.probe(delay, now)
    else if (now - this.minDelayAt > MIN_DELAY_LIFETIME && Number.isFinite(this.minDelay)) this.startProbe(now)
    else this.sample(bytes, now)
  }

  private startProbe (now: number): void {
    this.probeStart = now
    this.probeDrainedAt = this.inflight <= this.tuning.minWindow ? now : -1
    this.probeMin = Infinity
    this.sampleStart = -1
  }

  /** A delivery while probing: the first request sent once the pipe drained sets the minimum delay. */
  private probe (delay: number, now: number): void {
    if (delay >= 0) this.probeMin = Math.min(this.probeMin, delay)
    const sentAt = now - delay
    let found: number | undefined
    if (this.probeDrainedAt >= 0 && delay >= 0 && sentAt >= this.probeDrainedAt) found = delay
    else if (now - this.probeStart > Math.max(PROBE_MIN_MS, PROBE_DELAYS * this.minDelay) && Number.isFinite(this.probeMin)) found = this.probeMin
    if (this.probeDrainedAt < 0 && this.inflight <= this.tuning.minWindow) this.probeDrainedAt = now
    if (found === undefined) return
    this.minDelay = found
    this.minDelayAt = now
    this.probeStart = -1
    this.sampleStart = -1
    // the window follows the new minimum at once; the rate is still the link's
    if (this.rate > 0) this.cwnd = this.target()
  }

  private sample (bytes: number, now: number): void {
    const max = this.tuning.maxWindow
    if (this.rate === 0) this.cwnd = Math.min(max, this.cwnd + bytes) // slow start until a rate is known
    if (this.sampleStart < 0) {
      // the first frame after a quiet spell opens the interval; its bytes were sent before it
      this.sampleStart = now
      this.sampleBytes = 0
      return
    }
    this.sampleBytes += bytes
    const elapsed = now - this.sampleStart
    if (elapsed < Math.max(MIN_SAMPLE, Math.min(this.minDelay, 1000))) return
    this.rate = Math.max(this.sampleBytes / elapsed, this.rate * RATE_DECAY)
    this.sampleStart = now
    this.sampleBytes = 0
    this.cwnd = this.target()
    this.burst *= RATE_DECAY
  }

  /** gain × delivery rate × minimum delay, plus the frame allowance (burst), within [minWindow, maxWindow]. */
  private target (): number {
    const t = this.tuning.windowGain * this.rate * Math.max(this.minDelay, 1) + this.burst
    return Math.max(this.tuning.minWindow, Math.min(this.tuning.maxWindow, t))
  }

  /** The peer stalled: start again from the smallest window. */
  stalled (): void {
    this.cwnd = this.tuning.minWindow
    this.rate = 0
    this.sampleStart = -1
    this.probeStart = -1
  }

  /** How long the peer may go without delivering anything while requests are outstanding, ms. */
  stallTimeout (): number {
    return Math.max(this.tuning.stallTimeout, 4 * this.srtt)
  }
}
