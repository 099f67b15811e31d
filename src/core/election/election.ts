// The election core (protocols/election.md). Every peer floods a signed claim
// about itself each heartbeat; every peer keeps the claims it hears live for
// the failure timeout (the lease) and relays the claims that matter: the
// serving ones and its few best candidates. From that view each peer decides
// alone, with the same rules:
//
// - a server that sees a better server (capability, then term, then peer id)
//   steps down at once: a merge leaves one;
// - with no server in view, the best candidate takes the role after the view
//   has settled (and never during its startup grace);
// - a candidate clearly better than the sitting server (a higher class, or a
//   battery margin) and best of all takes over after holding so for the hold
//   time: stickiness.
//
// No clock is read: `now` comes with every input. Claims are fresh by
// (incarnation, seq), never by time, so peers need no shared clock.
import { compareCapability, comparePeerId, clearlyBetter } from './capability.ts'
import { encodeClaim, signedPayload } from './codec.ts'
import { DEFAULT_CONFIG, MAX_AGE_MS, MAX_HOPS } from './constants.ts'
import type { Core } from '../core.ts'
import type { Capability } from './capability.ts'
import type { ElectionConfig } from './constants.ts'
import type { Claim, ElectionMessage, PeerId, SignedClaim } from './messages.ts'
import type { ClaimAuthenticator, ElectionInit, ElectionInput, ElectionOutput, ElectionStats, KnownClaim, NeighbourView, Role, RoleState } from './types.ts'

/** Claims per frame the core sends (half the protocol's limit keeps frames far below MAX_FRAME_SIZE). */
const CLAIMS_PER_SENT_FRAME = 32

/** A live claim of another peer. */
interface Entry {
  signed: SignedClaim
  /** When its peer issued it, on this peer's clock (arrival minus the age it came with). */
  issuedAt: number
  /** The neighbour it came from. */
  from: PeerId
  /** Fresh claims of this origin still accepted (a token bucket). */
  tokens: number
  tokensAt: number
}

/** What is remembered of a departed peer: its freshest claim's position, against replays. */
interface Memory { incarnation: number, seq: number, forgetAt: number, tokens: number, tokensAt: number }

/** A claim's rank as a candidate: capability, then peer id. */
function compareCandidate (a: Claim, b: Claim): number {
  return compareCapability(a.capability, b.capability) || comparePeerId(a.peer, b.peer)
}

/** A serving claim's rank: capability, then term, then peer id. */
function compareServer (a: Claim, b: Claim): number {
  return compareCapability(a.capability, b.capability) || (a.term - b.term) || comparePeerId(a.peer, b.peer)
}

function newer (c: { incarnation: number, seq: number }, than: { incarnation: number, seq: number }): boolean {
  return c.incarnation > than.incarnation || (c.incarnation === than.incarnation && c.seq > than.seq)
}

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

export class Election implements Core<ElectionInput, ElectionOutput> {
  readonly self: PeerId
  readonly config: Readonly<ElectionConfig>
  readonly stats: ElectionStats = { claimsAccepted: 0, claimsRelayed: 0, claimsDropped: 0, badSignatures: 0, malformed: 0, bans: 0 }
  private readonly auth: ClaimAuthenticator
  private readonly random: () => number
  private capability: Capability
  private incarnation: number
  private seq = 0
  private role: Role = 'peer'
  /** This peer's term while it serves. */
  private myTerm = 0
  /** The highest term accepted from anyone, or served here. */
  private maxTerm: number
  private own: SignedClaim
  private readonly startedAt: number
  private nextHeartbeat: number
  private readonly neighbourSet = new Set<PeerId>()
  /** Each neighbour's latest own claim (for `xo-mesh peers`). */
  private readonly direct = new Map<PeerId, Claim>()
  private readonly bans = new Map<PeerId, number>()
  private readonly known = new Map<PeerId, Entry>()
  private readonly memory = new Map<PeerId, Memory>()
  private settleSince: number | undefined
  private holdSince: number | undefined
  private holdAgainst: PeerId | undefined
  /** The best candidates last relayed (peer ids, self excluded). */
  private top = new Set<PeerId>()
  /** Whether the set or the ranks of known claims changed since the best few were last computed. */
  private topDirty = true
  /**
   * No known claim's lease ends before this (a lower bound: a refresh moves
   * a lease later without raising it). The view is scanned for expired
   * claims only once it is reached, not on every input: the scan then finds
   * the exact earliest end again.
   */
  private leaseEnd = Infinity
  /** No remembered departure is due to be forgotten before this. */
  private forgetDue = Infinity
  /** Grows whenever the view changes (a claim accepted or dropped, a fresh own claim)… */
  private view = 0
  /** …so the best other server and whether this peer is the best candidate are computed once per change, not per input. */
  private viewAt = -1
  private viewOther: Claim | undefined
  private viewBest = true
  private current: RoleState

  constructor (init: ElectionInit) {
    this.self = init.self
    this.config = Object.freeze({ ...DEFAULT_CONFIG, ...init.config })
    if (this.config.relayTop < 2) throw new RangeError('relayTop must be at least 2')
    if (this.config.failureTimeoutMs <= this.config.heartbeatMs) throw new RangeError('failureTimeoutMs must exceed heartbeatMs')
    this.auth = init.authenticator
    this.random = init.random
    this.capability = { ...init.capability }
    this.incarnation = init.incarnation ?? 1
    this.maxTerm = init.term ?? 0
    const now = init.now ?? 0
    this.startedAt = now
    this.nextHeartbeat = now + this.config.heartbeatMs * this.random()
    this.own = this.issue()
    this.current = { role: 'peer', server: null, term: this.maxTerm }
  }

  // ---- queries --------------------------------------------------------------

  /** Role, server and term as of the last input. */
  state (): RoleState {
    return { ...this.current }
  }

  /** This peer's own facts. */
  ownCapability (): Capability {
    return { ...this.capability }
  }

  /** The highest term known (for the driver to persist). */
  highestTerm (): number {
    return this.maxTerm
  }

  /** This peer's incarnation (may grow when an older life of it is heard). */
  currentIncarnation (): number {
    return this.incarnation
  }

  /** Neighbours with an open stream (unordered; cheap). */
  neighbourIds (): PeerId[] {
    return [...this.neighbourSet]
  }

  /** Neighbours with an open stream, with what their own latest claim says. */
  neighbours (): NeighbourView[] {
    return [...this.neighbourSet].sort().map(peer => {
      const c = this.direct.get(peer)
      return { peer, capability: c === undefined ? null : { ...c.capability }, serving: c?.serving ?? false, term: c?.term ?? 0 }
    })
  }

  /** Every live claim of another peer. */
  claims (): KnownClaim[] {
    return [...this.known.values()].map(e => ({
      peer: e.signed.claim.peer,
      capability: { ...e.signed.claim.capability },
      serving: e.signed.claim.serving,
      term: e.signed.claim.term,
      hops: e.signed.hops,
      heardAt: e.issuedAt
    }))
  }

  nextDeadline (): number | undefined {
    let t = Math.min(this.nextHeartbeat, this.leaseEnd)
    if (this.settleSince !== undefined) t = Math.min(t, Math.max(this.settleSince + this.config.settleMs, this.startedAt + this.config.startupGraceMs))
    if (this.holdSince !== undefined) t = Math.min(t, this.holdSince + this.config.holdMs)
    return t
  }

  // ---- inputs ---------------------------------------------------------------

  handle (input: ElectionInput, now: number): ElectionOutput[] {
    const out: ElectionOutput[] = []
    const relay: Array<{ claim: SignedClaim, except: PeerId | undefined }> = []
    this.expire(now)
    switch (input.type) {
      case 'neighbour-up': {
        if (this.isBanned(input.peer, now) || input.peer === this.self) break
        this.neighbourSet.add(input.peer)
        // a new link: tell it everything this peer would relay, so it need not wait for heartbeats
        const claims = [this.own, ...this.relayable().map(e => this.hopped(e, now))]
        for (let i = 0; i < claims.length; i += CLAIMS_PER_SENT_FRAME) {
          out.push({ type: 'send', peer: input.peer, message: { type: 'claims', claims: claims.slice(i, i + CLAIMS_PER_SENT_FRAME) } })
        }
        break
      }
      case 'neighbour-down':
        this.neighbourSet.delete(input.peer)
        this.direct.delete(input.peer)
        break
      case 'message':
        if (this.isBanned(input.peer, now) || input.peer === this.self) break
        this.receive(input.peer, input.message, now, out, relay)
        break
      case 'malformed':
        if (this.isBanned(input.peer, now)) break
        this.stats.malformed++
        this.ban(input.peer, `malformed frame: ${input.reason}`, now, out)
        break
      case 'capability': {
        const before = this.capability
        this.capability = { ...input.capability }
        // a change of class can move the election: tell the group now; smaller drifts ride the next heartbeat
        if (before.pinned !== this.capability.pinned || before.upstream !== this.capability.upstream || before.ac !== this.capability.ac) this.announce(now, out)
        break
      }
      case 'timer':
        break
    }
    if (now >= this.nextHeartbeat) this.announce(now, out)
    this.decide(now, out)
    this.relayNewTop(relay, now)
    this.flushRelays(relay, out)
    if (this.roleChanged()) {
      const next = this.observed()
      out.push({ type: 'role', state: next, previous: this.current })
      this.current = next
    }
    return out
  }

  // ---- claims ---------------------------------------------------------------

  /** Signs a fresh claim of this peer. */
  private issue (): SignedClaim {
    this.seq++
    const claim: Claim = {
      peer: this.self,
      incarnation: this.incarnation,
      seq: this.seq,
      capability: { ...this.capability },
      serving: this.role === 'server',
      term: this.role === 'server' ? this.myTerm : this.maxTerm
    }
    const bytes = encodeClaim(claim)
    this.topDirty = true
    this.view++
    return { claim, bytes, signature: this.auth.sign(signedPayload(bytes)), hops: 0, age: 0 }
  }

  /** Issues a fresh own claim, broadcasts it and schedules the next heartbeat (jittered in [¾, 1] heartbeat). */
  private announce (now: number, out: ElectionOutput[]): void {
    this.own = this.issue()
    out.push({ type: 'broadcast', message: { type: 'claims', claims: [this.own] } })
    this.nextHeartbeat = now + this.config.heartbeatMs * (0.75 + 0.25 * this.random())
  }

  /** A stored claim as this peer relays it: one more hop, aged by the time it has held it. */
  private hopped (e: Entry, now: number): SignedClaim {
    return { ...e.signed, hops: e.signed.hops + 1, age: Math.min(MAX_AGE_MS, Math.max(0, Math.round(now - e.issuedAt))) }
  }

  private receive (from: PeerId, m: ElectionMessage, now: number, out: ElectionOutput[], relay: Array<{ claim: SignedClaim, except: PeerId | undefined }>): void {
    for (const sc of m.claims) {
      const c = sc.claim
      if (c.peer === this.self) {
        // an echo of this peer's claim, or of an older life of it that others still remember: outgrow it
        const echo = c.incarnation === this.incarnation && c.seq === this.seq && sameBytes(sc.bytes, this.own.bytes)
        if (echo || !(newer(c, this.own.claim) || (c.incarnation === this.incarnation && c.seq === this.seq))) continue
        if (!this.auth.verify(c.peer, signedPayload(sc.bytes), sc.signature)) {
          this.stats.badSignatures++
          this.ban(from, 'a claim with a bad signature', now, out)
          return
        }
        this.incarnation = c.incarnation + 1
        this.seq = 0
        this.own = this.issue()
        continue
      }
      const prev = this.known.get(c.peer)
      const mem = this.memory.get(c.peer)
      const last = prev?.signed.claim ?? mem
      if (last !== undefined && !newer(c, last)) continue // a duplicate via another path, or a replay: cheap to drop
      if (c.term > this.maxTerm + this.config.maxTermStep || sc.hops > MAX_HOPS || sc.age >= this.config.failureTimeoutMs) {
        this.stats.claimsDropped++
        continue
      }
      const bucket = prev ?? mem
      let tokens = this.config.claimBurst
      if (bucket !== undefined) tokens = Math.min(this.config.claimBurst, bucket.tokens + (now - bucket.tokensAt) * 2 / this.config.heartbeatMs)
      if (tokens < 1) {
        this.stats.claimsDropped++
        continue
      }
      if (!this.auth.verify(c.peer, signedPayload(sc.bytes), sc.signature)) {
        // honest relays check before they relay: whoever sent this forged it
        this.stats.badSignatures++
        this.ban(from, `a claim of ${c.peer} with a bad signature`, now, out)
        return
      }
      if (prev === undefined && this.known.size >= this.config.maxKnown && !this.makeRoom(c)) {
        this.stats.claimsDropped++
        continue
      }
      const entry: Entry = { signed: sc, issuedAt: now - sc.age, from, tokens: tokens - 1, tokensAt: now }
      this.known.set(c.peer, entry)
      this.view++
      this.leaseEnd = Math.min(this.leaseEnd, entry.issuedAt + this.config.failureTimeoutMs)
      if (prev === undefined || compareCapability(prev.signed.claim.capability, c.capability) !== 0) this.topDirty = true
      this.memory.delete(c.peer)
      this.stats.claimsAccepted++
      if (c.term > this.maxTerm) this.maxTerm = c.term
      if (c.peer === from && this.neighbourSet.has(from)) this.direct.set(from, c)
      const withdrawn = prev?.signed.claim.serving === true && !c.serving
      if ((c.serving || withdrawn || this.inTop(c)) && sc.hops < MAX_HOPS) relay.push({ claim: this.hopped(entry, now), except: from })
    }
  }

  /** The table is full: evicts the worst non-serving claim if c ranks above it. */
  private makeRoom (c: Claim): boolean {
    let worst: Entry | undefined
    for (const e of this.known.values()) {
      if (e.signed.claim.serving) continue
      if (worst === undefined || compareCandidate(e.signed.claim, worst.signed.claim) < 0) worst = e
    }
    if (worst === undefined || (!c.serving && compareCandidate(c, worst.signed.claim) <= 0)) return false
    this.known.delete(worst.signed.claim.peer)
    this.view++
    this.topDirty = true
    return true
  }

  /** Whether c is among the relayTop best candidates this peer knows (itself included). */
  private inTop (c: Claim): boolean {
    let better = compareCandidate(this.own.claim, c) > 0 ? 1 : 0
    for (const e of this.known.values()) {
      if (e.signed.claim.peer !== c.peer && compareCandidate(e.signed.claim, c) > 0 && ++better >= this.config.relayTop) return false
    }
    return better < this.config.relayTop
  }

  /** The claims this peer relays: serving ones and its best candidates. */
  private relayable (): Entry[] {
    return [...this.known.values()].filter(e => e.signed.claim.serving || this.inTop(e.signed.claim))
  }

  /** Relays claims that just entered the best few (a better one expired), so the runner-up spreads at once. */
  private relayNewTop (relay: Array<{ claim: SignedClaim, except: PeerId | undefined }>, now: number): void {
    if (!this.topDirty) return
    this.topDirty = false
    // the relayTop best by selection: n × relayTop comparisons, no sort
    const best: Claim[] = [this.own.claim]
    for (const e of this.known.values()) {
      const c = e.signed.claim
      if (best.length === this.config.relayTop && compareCandidate(c, best[best.length - 1]!) <= 0) continue
      let i = best.length
      while (i > 0 && compareCandidate(c, best[i - 1]!) > 0) i--
      best.splice(i, 0, c)
      if (best.length > this.config.relayTop) best.pop()
    }
    const top = new Set<PeerId>()
    for (const c of best) if (c.peer !== this.self) top.add(c.peer)
    for (const p of top) {
      if (this.top.has(p)) continue
      const e = this.known.get(p)!
      if (relay.some(r => r.claim.claim.peer === p) || e.signed.hops >= MAX_HOPS) continue
      relay.push({ claim: this.hopped(e, now), except: undefined })
    }
    this.top = top
  }

  private flushRelays (relay: Array<{ claim: SignedClaim, except: PeerId | undefined }>, out: ElectionOutput[]): void {
    if (relay.length === 0 || this.neighbourSet.size === 0) return
    const groups = new Map<PeerId | undefined, SignedClaim[]>()
    for (const r of relay) {
      const g = groups.get(r.except)
      if (g === undefined) groups.set(r.except, [r.claim])
      else g.push(r.claim)
    }
    for (const [except, claims] of groups) {
      this.stats.claimsRelayed += claims.length
      for (let i = 0; i < claims.length; i += CLAIMS_PER_SENT_FRAME) {
        const message: ElectionMessage = { type: 'claims', claims: claims.slice(i, i + CLAIMS_PER_SENT_FRAME) }
        out.push(except === undefined ? { type: 'broadcast', message } : { type: 'broadcast', message, except })
      }
    }
  }

  /** Drops claims whose lease ran out (their peer left or is cut off) and forgets old departures. */
  private expire (now: number): void {
    if (now >= this.leaseEnd) {
      let next = Infinity
      for (const [peer, e] of this.known) {
        const end = e.issuedAt + this.config.failureTimeoutMs
        if (end > now) {
          if (end < next) next = end
          continue
        }
        this.known.delete(peer)
        this.topDirty = true
        this.view++
        const c = e.signed.claim
        // re-inserted at the end: the memory stays in order of forgetAt
        this.memory.delete(peer)
        this.memory.set(peer, { incarnation: c.incarnation, seq: c.seq, forgetAt: now + this.config.forgetMs, tokens: e.tokens, tokensAt: e.tokensAt })
        this.forgetDue = Math.min(this.forgetDue, now + this.config.forgetMs)
      }
      this.leaseEnd = next
      // bounded: the oldest departures go first (a Map iterates in insertion order)
      for (const peer of this.memory.keys()) {
        if (this.memory.size <= 4 * this.config.maxKnown) break
        this.memory.delete(peer)
      }
    }
    if (this.bans.size > 0) for (const [peer, until] of this.bans) if (until <= now) this.bans.delete(peer)
    if (now >= this.forgetDue) {
      // in order of forgetAt (inserted at the end, with now growing): the first one not due ends the sweep
      this.forgetDue = Infinity
      for (const [peer, m] of this.memory) {
        if (m.forgetAt > now) {
          this.forgetDue = m.forgetAt
          break
        }
        this.memory.delete(peer)
      }
    }
  }

  // ---- the decision -----------------------------------------------------------

  /** The best live serving claim of another peer, if any. */
  private bestOtherServer (): Claim | undefined {
    this.look()
    return this.viewOther
  }

  /** Recomputes, after a change of the view, its best other server and whether this peer is the best candidate in it. */
  private look (): void {
    if (this.viewAt === this.view) return
    this.viewAt = this.view
    let other: Claim | undefined
    let best = true
    for (const e of this.known.values()) {
      const c = e.signed.claim
      if (c.serving && (other === undefined || compareServer(c, other) > 0)) other = c
      if (best && compareCandidate(c, this.own.claim) > 0) best = false
    }
    this.viewOther = other
    this.viewBest = best
  }

  private decide (now: number, out: ElectionOutput[]): void {
    const other = this.bestOtherServer()
    if (this.role === 'server') {
      this.settleSince = this.holdSince = this.holdAgainst = undefined
      if (other !== undefined && compareServer(other, this.own.claim) > 0) {
        this.role = 'peer'
        this.announce(now, out)
      }
      return
    }
    const best = this.viewBest
    if (other === undefined) {
      this.holdSince = this.holdAgainst = undefined
      if (!best) { this.settleSince = undefined; return }
      this.settleSince ??= now
      if (now >= this.settleSince + this.config.settleMs && now >= this.startedAt + this.config.startupGraceMs) this.takeRole(now, out)
      return
    }
    this.settleSince = undefined
    if (!best || !clearlyBetter(this.own.claim.capability, other.capability, this.config.batteryMargin)) {
      this.holdSince = this.holdAgainst = undefined
      return
    }
    if (this.holdAgainst !== other.peer) {
      this.holdSince = now
      this.holdAgainst = other.peer
    }
    if (now >= this.holdSince! + this.config.holdMs) this.takeRole(now, out)
  }

  private takeRole (now: number, out: ElectionOutput[]): void {
    this.role = 'server'
    this.myTerm = this.maxTerm + 1
    this.maxTerm = this.myTerm
    this.settleSince = this.holdSince = this.holdAgainst = undefined
    this.announce(now, out)
  }

  /** Whether observed() differs from the state last reported (without building it: most inputs change nothing). */
  private roleChanged (): boolean {
    const c = this.current
    if (this.role === 'server') return c.role !== 'server' || c.server !== this.self || c.term !== this.myTerm
    const s = this.bestOtherServer()
    return c.role !== 'peer' || c.server !== (s === undefined ? null : s.peer) || c.term !== (s === undefined ? this.maxTerm : s.term)
  }

  private observed (): RoleState {
    if (this.role === 'server') return { role: 'server', server: this.self, term: this.myTerm }
    const s = this.bestOtherServer()
    return s === undefined ? { role: 'peer', server: null, term: this.maxTerm } : { role: 'peer', server: s.peer, term: s.term }
  }

  // ---- bans -------------------------------------------------------------------

  private isBanned (peer: PeerId, now: number): boolean {
    const until = this.bans.get(peer)
    if (until === undefined) return false
    if (until > now) return true
    this.bans.delete(peer)
    return false
  }

  private ban (peer: PeerId, reason: string, now: number, out: ElectionOutput[]): void {
    const until = now + this.config.banMs
    this.bans.set(peer, until)
    this.neighbourSet.delete(peer)
    this.direct.delete(peer)
    this.stats.bans++
    out.push({ type: 'ban', peer, reason, until })
  }
}

/** Creates the election core of one peer (see index.ts). */
export function createElection (init: ElectionInit): Election {
  return new Election(init)
}
