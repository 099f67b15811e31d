// The sans-IO core of /xo-mesh/advisory/1.0.0 (protocols/advisory.md).
//
// Each agent holds at most one advisory snapshot (the newest it verified)
// and advertises its (version, hash, root version) to its peers with a
// Trickle timer. On hearing a newer state it pulls the snapshot from the
// advertiser (Request), and on receiving it (Snapshot) hands the bytes to the
// injected verify function, which applies every rule of the trust layer.
// Only a verified snapshot of a higher version (or the same one with newer
// roots) is adopted: the core emits `adopt`, and the driver persists it
// before anything uses it. A snapshot refused once is remembered by hash, so
// a peer holding a forgery is neither pulled from again nor lets it disturb
// the room's Trickle.
import type { Core } from '../core.ts'
import { Trickle } from './trickle.ts'
import * as D from './constants.ts'
import type { AdvisoryMessage, StateMessage } from './messages.ts'
import { ResultSet, type CheckResult, type CheckedResult } from './results.ts'

/** What verify says of a snapshot (and the roots that came with it). */
export type VerifyResult =
  | { ok: true, version: number, hash: Uint8Array, rootVersion: number, roots: Uint8Array[] }
  /** Refused; rootVersion and roots set when roots given with it were trusted nonetheless (a laptop far behind progresses 16 versions a pull). */
  /** retry: the fault is this laptop's (its root expired), not the snapshot's: do not write the snapshot off. */
  | { ok: false, code: string, reason: string, rootVersion?: number, roots?: Uint8Array[], retry?: boolean }

/**
 * Checks a snapshot received from a peer (or offered locally) against the
 * agent's trust state. On ok: its version and hash, and the trusted root
 * chain (every version, oldest first) after walking the roots given.
 * Synchronous, must not throw.
 */
export type Verify = (snapshot: Uint8Array, roots: Uint8Array[]) => VerifyResult

export interface Held {
  version: number
  hash: Uint8Array
  snapshot: Uint8Array
  rootVersion: number
  /** Root versions 1 … rootVersion, oldest first (served to peers behind). */
  roots: Uint8Array[]
}

export interface AdvisoryInit {
  verify: Verify
  /** Uniform numbers in [0, 1), seeded by the driver. */
  random: () => number
  /** The snapshot persisted from an earlier run, if any. */
  held?: Held
  /** Root versions trusted when no snapshot is held yet. */
  rootVersion?: number
  iminMs?: number
  imaxDoublings?: number
  k?: number
  pullTimeoutMs?: number
  serveIntervalMs?: number
  /** Decodes an install result record and checks its signature (results.ts); without it, results are ignored. */
  checkResult?: CheckResult
  /** Install result records persisted from an earlier run (checked again). */
  results?: Uint8Array[]
  /** Install results kept at most (default MAX_RESULTS). */
  maxResults?: number
}

export type AdvisoryInput =
  | { type: 'connected', peer: string }
  | { type: 'disconnected', peer: string }
  | { type: 'message', peer: string, message: AdvisoryMessage }
  | { type: 'timer' }
  /** A snapshot from this machine (a stick, the CLI): verified like any other. */
  | { type: 'offer', snapshot: Uint8Array, roots: Uint8Array[] }
  /** An install result of this laptop's own, signed by the driver: kept and spread like any other. */
  | { type: 'result', record: Uint8Array }

export type AdvisoryOutput =
  | { type: 'send', peer: string, message: AdvisoryMessage }
  /** Persist, then use: the new snapshot (or the same one with newer roots). */
  | { type: 'adopt', held: Held }
  /** Something refused, to log: from a peer (peer set) or offered locally. */
  | { type: 'refuse', peer?: string, code: string, reason: string }
  /** Install results new to this agent (to persist, and for the rollout to count). */
  | { type: 'results', added: Array<CheckedResult & { record: Uint8Array }> }

interface PeerState {
  /** The last state it advertised, as a key. */
  lastAdvert?: string
  lastServed: number
  /** When our install results were last pushed to it. */
  lastResults: number
  /** The results (count/digest) it last advertised, when they differed from ours and a push had to wait for the interval. */
  owed?: string
  /** When it was last answered with our state for advertising an older snapshot. */
  lastAnswered: number
}

function hex (b: Uint8Array): string {
  let s = ''
  for (let i = 0; i < b.length; i++) s += b[i]!.toString(16).padStart(2, '0')
  return s
}

/** The install results a state advertises, as a key. */
function resultsKey (m: StateMessage): string {
  return `${m.resultsCount ?? 0}/${hex(m.resultsDigest ?? new Uint8Array(0))}`
}

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

export class Advisory implements Core<AdvisoryInput, AdvisoryOutput> {
  private readonly init: AdvisoryInit
  private held: Held | undefined
  private rootVersion: number
  private readonly peers = new Map<string, PeerState>()
  private trickle: Trickle | undefined
  /** The pull in flight: from whom, until when, and the hash it was advertised under. */
  private pull: { peer: string, deadline: number, hash: string } | undefined
  /** Hashes of refused snapshots, oldest first, at most MAX_REFUSED. */
  private readonly refused: string[] = []
  /** Counters for status and tests. */
  readonly stats = { adverts: 0, requests: 0, snapshotsSent: 0, adopted: 0, refused: 0, resultsSent: 0, resultsAdded: 0, resultsRefused: 0 }
  /** Install results held: one per laptop and build. */
  readonly results: ResultSet

  constructor (init: AdvisoryInit) {
    this.init = init
    this.held = init.held
    this.rootVersion = init.held?.rootVersion ?? init.rootVersion ?? 0
    this.results = new ResultSet(init.maxResults)
    for (const r of init.results ?? []) {
      const c = init.checkResult?.(r)
      if (c !== undefined) this.results.add(r, c)
    }
  }

  /** The snapshot held, if any. */
  get current (): Held | undefined { return this.held }

  private state (): StateMessage {
    const s: StateMessage = { type: 'state', version: this.held?.version ?? 0, hash: this.held?.hash ?? new Uint8Array(0), rootVersion: this.rootVersion }
    if (this.results.size > 0) {
      s.resultsDigest = this.results.digest()
      s.resultsCount = this.results.size
    }
    return s
  }

  private timer (now: number): Trickle {
    this.trickle ??= new Trickle({ iminMs: this.init.iminMs ?? D.DEFAULT_IMIN_MS, doublings: this.init.imaxDoublings ?? D.DEFAULT_IMAX_DOUBLINGS, k: this.init.k ?? D.DEFAULT_K }, this.init.random, now)
    return this.trickle
  }

  handle (input: AdvisoryInput, now: number): AdvisoryOutput[] {
    const out: AdvisoryOutput[] = []
    const trickle = this.timer(now)
    switch (input.type) {
      case 'connected':
        if (!this.peers.has(input.peer)) {
          this.peers.set(input.peer, { lastServed: -Infinity, lastResults: -Infinity, lastAnswered: -Infinity })
          // a laptop met in passing hears our state at once, not at our next Trickle slot. Trickle is not reset for a
          // new neighbour (RFC 6206 leaves such events to the protocol): the newcomer has our state already, what it
          // brings that differs resets Trickle as an inconsistency, and in a school where laptops sleep and wake a
          // reset per connection multiplied the converged traffic by 16 (school-300-advisory: 822 messages per laptop
          // per hour instead of 51)
          out.push({ type: 'send', peer: input.peer, message: this.state() })
          this.stats.adverts++
        }
        break
      case 'disconnected':
        this.peers.delete(input.peer)
        if (this.pull?.peer === input.peer) this.pull = undefined
        break
      case 'message':
        if (this.peers.has(input.peer)) this.onMessage(input.peer, input.message, now, out)
        break
      case 'offer':
        this.consider(undefined, input.snapshot, input.roots, now, out)
        break
      case 'result':
        this.addResults([input.record], undefined, now, out)
        break
      case 'timer':
        break
    }
    if (this.pull !== undefined && now >= this.pull.deadline) this.pull = undefined
    for (const [peer, p] of this.peers) if (p.owed !== undefined) this.payResults(peer, p, now, out)
    if (trickle.tick(now)) {
      const state = this.state()
      for (const peer of this.peers.keys()) out.push({ type: 'send', peer, message: state })
      this.stats.adverts += this.peers.size
    }
    return out
  }

  private onMessage (peer: string, m: AdvisoryMessage, now: number, out: AdvisoryOutput[]): void {
    const p = this.peers.get(peer)!
    const trickle = this.trickle!
    switch (m.type) {
      case 'state': {
        if (m.version > 0 && this.refused.includes(hex(m.hash))) return
        const mine = this.state()
        const sameResults = (m.resultsCount ?? 0) === (mine.resultsCount ?? 0) && sameBytes(m.resultsDigest ?? new Uint8Array(0), mine.resultsDigest ?? new Uint8Array(0))
        if (m.version === mine.version && m.rootVersion === mine.rootVersion && sameBytes(m.hash, mine.hash) && sameResults) {
          trickle.consistent()
          p.lastAdvert = undefined
          return
        }
        // install results differ: push ours (the peer pushes its own: the union is what both end with);
        // our state goes with them, so that the peer pushes what we lack at once rather than at its next Trickle slot
        if (!sameResults && this.init.checkResult !== undefined) {
          p.owed = resultsKey(m)
          this.payResults(peer, p, now, out)
        }
        // an inconsistency resets Trickle once per change of a peer's state, so a peer that cannot move (it refuses what we hold) does not keep the room chattering
        const key = `${m.version}/${m.rootVersion}/${hex(m.hash)}/${m.resultsCount ?? 0}/${hex(m.resultsDigest ?? new Uint8Array(0))}`
        if (p.lastAdvert !== key) {
          p.lastAdvert = key
          trickle.inconsistent(now)
        }
        // a neighbour behind us is answered with our state at once, each time it advertises (at most once per serve
        // interval), not only when its advert is news: our adverts go to each peer alone, so a Trickle interval
        // suppressed by another neighbour's consistent advert leaves this one unanswered, and a pull it lost (a kill,
        // a stream that died) would wait for our next unsuppressed slot, up to Imax
        const behind = m.version < mine.version || (m.version === mine.version && m.rootVersion < mine.rootVersion && sameBytes(m.hash, mine.hash))
        if (behind && this.held !== undefined && now - p.lastAnswered >= (this.init.serveIntervalMs ?? D.DEFAULT_SERVE_INTERVAL_MS)) {
          p.lastAnswered = now
          out.push({ type: 'send', peer, message: mine })
          this.stats.adverts++
        }
        const newer = m.version > mine.version || (m.version === mine.version && m.rootVersion > mine.rootVersion && sameBytes(m.hash, mine.hash))
        if (newer && this.pull === undefined) {
          this.pull = { peer, deadline: now + (this.init.pullTimeoutMs ?? D.DEFAULT_PULL_TIMEOUT_MS), hash: hex(m.hash) }
          out.push({ type: 'send', peer, message: { type: 'request', version: m.version, rootVersion: this.rootVersion } })
          this.stats.requests++
        }
        return
      }
      case 'request': {
        if (this.held === undefined) return
        if (now - p.lastServed < (this.init.serveIntervalMs ?? D.DEFAULT_SERVE_INTERVAL_MS)) return
        p.lastServed = now
        const from = Math.min(m.rootVersion, this.held.roots.length)
        const roots = this.held.roots.slice(from, from + D.MAX_ROOTS_PER_MESSAGE)
        out.push({ type: 'send', peer, message: { type: 'snapshot', snapshot: this.held.snapshot, roots } })
        this.stats.snapshotsSent++
        return
      }
      case 'results':
        this.addResults(m.records, peer, now, out)
        return
      case 'snapshot':
        // only what we asked this peer for: nobody pushes megabytes at us unasked
        if (this.pull?.peer !== peer) {
          out.push({ type: 'refuse', peer, code: 'unsolicited', reason: 'a snapshot that was not asked for' })
          return
        }
        {
          const advertised = this.pull.hash
          this.pull = undefined
          if (!this.consider(peer, m.snapshot, m.roots, now, out)) this.remember(advertised)
        }
    }
  }

  /** Verifies and maybe adopts; false when verify refused it and nothing came of it. */
  private consider (peer: string | undefined, snapshot: Uint8Array, roots: Uint8Array[], now: number, out: AdvisoryOutput[]): boolean {
    const r = this.init.verify(snapshot, roots)
    const from = peer !== undefined ? { peer } : {}
    if (!r.ok) {
      this.stats.refused++
      out.push({ type: 'refuse', ...from, code: r.code, reason: r.reason })
      if (r.rootVersion !== undefined && r.roots !== undefined && r.rootVersion > this.rootVersion) {
        // roots moved on: the snapshot may verify once the rest of them arrive, so it is not written off
        this.rootVersion = r.rootVersion
        if (this.held !== undefined) this.held = { ...this.held, roots: r.roots }
        return true
      }
      return r.retry === true
    }
    const mine = this.held
    const higher = mine === undefined || r.version > mine.version || (r.version === mine.version && sameBytes(r.hash, mine.hash) && r.rootVersion > mine.rootVersion)
    if (!higher) {
      if (r.rootVersion > this.rootVersion) this.rootVersion = r.rootVersion
      return true
    }
    this.held = { version: r.version, hash: r.hash, snapshot, rootVersion: r.rootVersion, roots: r.roots }
    this.rootVersion = r.rootVersion
    this.stats.adopted++
    out.push({ type: 'adopt', held: this.held })
    this.trickle!.inconsistent(now)
    return true
  }

  /**
   * Pushes our install results to a peer whose advertised results differ
   * from ours, then our state (so that it pushes those we lack), at
   * most once per serve interval; a push that must wait is owed and made at
   * the interval's end unless the peer has since caught up.
   */
  private payResults (peer: string, p: PeerState, now: number, out: AdvisoryOutput[]): void {
    if (p.owed === undefined || p.owed === resultsKey(this.state())) { p.owed = undefined; return }
    if (now - p.lastResults < (this.init.serveIntervalMs ?? D.DEFAULT_SERVE_INTERVAL_MS)) return
    p.owed = undefined
    p.lastResults = now
    const records = this.results.records()
    for (let i = 0; i < records.length; i += D.MAX_RESULTS_PER_MESSAGE) {
      out.push({ type: 'send', peer, message: { type: 'results', records: records.slice(i, i + D.MAX_RESULTS_PER_MESSAGE) } })
      this.stats.resultsSent++
    }
    // then our state: the peer, holding the union of its results and ours once it has read them, sees from it at once
    // whether it holds results we lack and pushes them. Left to its Trickle slot, the push back waits while another
    // neighbour's consistent adverts suppress that slot, interval after interval in a line of laptops
    out.push({ type: 'send', peer, message: this.state() })
    this.stats.adverts++
  }

  /** Checks and keeps install results; what is new goes out (persist, count) and resets Trickle so it spreads. */
  private addResults (records: Uint8Array[], peer: string | undefined, now: number, out: AdvisoryOutput[]): void {
    const check = this.init.checkResult
    if (check === undefined) return
    const added: Array<CheckedResult & { record: Uint8Array }> = []
    let refused = 0
    for (const record of records) {
      const c = check(record)
      if (c === undefined) { refused++; continue }
      if (this.results.add(record, c)) added.push({ ...c, record })
    }
    if (refused > 0) {
      this.stats.resultsRefused += refused
      out.push({ type: 'refuse', ...(peer !== undefined ? { peer } : {}), code: 'bad-result', reason: `${refused} install result(s) that do not decode or whose signature fails` })
    }
    if (added.length === 0) return
    this.stats.resultsAdded += added.length
    out.push({ type: 'results', added })
    this.trickle!.inconsistent(now)
  }

  /** A hash whose snapshot was refused: its adverts are ignored from now on (bounded memory). */
  private remember (k: string): void {
    if (k === '' || this.refused.includes(k)) return
    this.refused.push(k)
    if (this.refused.length > D.MAX_REFUSED) this.refused.shift()
  }

  nextDeadline (): number | undefined {
    if (this.trickle === undefined) return undefined
    let t = this.trickle.nextDeadline()
    if (this.pull !== undefined) t = Math.min(t, this.pull.deadline)
    const interval = this.init.serveIntervalMs ?? D.DEFAULT_SERVE_INTERVAL_MS
    for (const p of this.peers.values()) if (p.owed !== undefined) t = Math.min(t, p.lastResults + interval)
    return t
  }
}
