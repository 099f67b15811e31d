// The sans-IO core of /xo-mesh/blocks/1.0.0 (protocols/blocks.md). One value
// per agent: it learns what its peers hold, decides what to request from whom
// (rarest first, windows sized to each link, end-game only at the very end),
// decides what to serve to whom (upload slots, a global cap) and bans peers
// that break the protocol. Bytes of blocks never pass through it: the driver
// stores and serves them when told to.
import type { Core } from '../core.ts'
import { DEFAULT_BAN_MS, DEFAULT_CONTROL_RATE, DEFAULT_MAX_PEERS, DEFAULT_NEW_PEERS_PER_SECOND, DEFAULT_TUNING, DEFAULT_UPLOAD_RATE, DEFAULT_UPLOAD_SLOTS, MAX_BLOCK_SIZE, MAX_CIDS, MAX_FRAME_SIZE, MAX_INDICES, MAX_INTERESTS, MAX_LEAVES, type Tuning } from './constants.ts'
import { cidKey, isValidCid } from './cid-bytes.ts'
import { countBits, fullBitfield, hasBit, isBitfieldFor, clearBit, setBit } from './bitfield.ts'
import { FetchState, HELD, MISSING, STORING } from './fetch-state.ts'
import { Peer, controlCost, newPeerBuild, type PeerBuild } from './peer-state.ts'
import { Build, countPeer, uncountPeer } from './build-state.ts'
import { pickEndgame, pickRarest, type PickLimits } from './scheduler.ts'
import { TokenBucket } from './token-bucket.ts'
import { Ledger, type ServeItem } from './ledger.ts'
import type { Blocks, Cancel, ControlMessage, DontHave, Have, HaveUpdate, Interest, Message, Request, Root } from './messages.ts'
import type { BuildStatus, ExchangeInit, ExchangeInput, ExchangeOutput, ExchangeStats, LoadResult, PeerId } from './types.ts'

/** Assumed size of a manifest block not yet seen (for upload accounting), bytes. */
const MANIFEST_BLOCK_ESTIMATE = 16 * 1024
/** A build whose blocks the store failed to write is not fetched for this long, ms. */
const STORE_RETRY = 10_000
/** End-game asks a second peer for a leaf when the first would take this many times longer. */
const SLOW_FACTOR = 4
/** Bans remembered at most (expired ones go first, then the oldest). */
const MAX_BANS = 4096
const NO_INDICES = new Uint32Array(0)
/** The stall timeout doubles at most this many times (5 s → 160 s). */
const MAX_BACKOFF = 5
/**
 * Bytes a fetcher keeps requested from a peer whose rate is within
 * SLOW_FACTOR of its fastest peer's, even when the window is smaller: on a
 * crowded channel every source crawls alike, a window of a few leaves makes
 * the server send a frame per leaf (each with its request and announcements,
 * for the same airtime), and there is no faster peer that leaves held there
 * would be kept from (protocols/blocks.md 7.3).
 */
const CROWD_WINDOW = 1024 * 1024
/**
 * When no peer has delivered faster than this lately, bytes per ms, a
 * fetcher takes its channel for crowded and keeps requests at one source at
 * a time (end-game aside): on one shared 802.11 channel each source is one
 * more transfer splitting the same airtime (a fetcher's sources add to its
 * share at every other fetcher's expense, not to the channel), and each
 * costs its requests, chokes and unchokes. An 802.11g channel carries
 * ~3,000; a wired link or loopback far more.
 */
const CROWDED_RATE = 256
/** Only peers that delivered (or were asked after a quiet spell) this recently tell whether the channel is crowded, ms. */
const CROWD_MEMORY = 30_000

/** The exchange core. See types.ts for its inputs and outputs. */
export class Exchange implements Core<ExchangeInput, ExchangeOutput> {
  private readonly peers = new Map<PeerId, Peer>()
  /**
   * The same peers in an array, in no particular order: the counts and
   * maxima taken over every peer once per input (sourceCount, fastestRate)
   * walk it instead of the map's iterator.
   */
  private readonly peerArray: Peer[] = []
  private readonly builds = new Map<string, Build>()
  /** Held builds, highest priority first, then oldest first. */
  private ordered: Build[] = []
  private readonly bans = new Map<PeerId, number>()
  private readonly ledger: Ledger
  private readonly newPeers: TokenBucket
  private readonly random: () => number
  private readonly tuning: Tuning
  private readonly maxPeers: number
  private readonly banTime: number
  private readonly controlRate: number
  private out: ExchangeOutput[] = []
  private now: number
  private deadline: number | undefined
  private readonly toRefill = new Set<Peer>()
  private refillEveryone = false
  private rotor = 0
  /**
   * No peer's stall or snub deadline falls before this (a lower bound:
   * progress moves a deadline later without raising it). Only the peer an
   * input concerns and the peers just asked for more can get an earlier one,
   * so computeDeadline need not walk every peer; a timer that finds nothing
   * due walks them once and makes it exact again.
   */
  private peerDue = Infinity
  /**
   * Smoothed request-to-arrival delay over every peer's frames, ms (0 until
   * measured). A peer may take a few times this long before it counts as stalled: on a
   * crowded channel every transfer crawls, and a fixed timeout would cancel
   * slow-but-alive peers one after another (each cancel, re-request and
   * snub costs airtime and gains nothing).
   */
  private typicalDelay = 0
  private peerDueStale = false
  /** Stalls since the last frame from any peer. */
  private dryStalls = 0
  /** Peers with requests outstanding (sources), counted once per refill (-1: not yet). */
  private sources = -1
  /** A peer was passed over because the sources were at their cap. */
  private capSkipped = false
  /** Sources at once: maxSources, or one on a crowded channel (set with the count, CROWDED_RATE). */
  private sourceCap: number
  /** The fastest peer's delivery rate, bytes per ms, found once per refill (-1: not yet). */
  private bestRate = -1
  private seq = 0
  readonly stats: ExchangeStats = { bytesServed: 0, bytesReceived: 0, duplicateBlocks: 0, duplicateBytes: 0, endgameRequests: 0, stalls: 0, bans: 0 }

  constructor (init: ExchangeInit) {
    this.random = init.random
    this.tuning = { ...DEFAULT_TUNING, ...init.tuning }
    this.sourceCap = this.tuning.maxSources
    this.now = init.now ?? 0
    this.maxPeers = init.maxPeers ?? DEFAULT_MAX_PEERS
    this.banTime = init.banTime ?? DEFAULT_BAN_MS
    this.controlRate = init.controlRate ?? DEFAULT_CONTROL_RATE
    const perSecond = init.newPeersPerSecond ?? DEFAULT_NEW_PEERS_PER_SECOND
    this.newPeers = new TokenBucket(perSecond / 1000, perSecond * 2, this.now)
    this.ledger = new Ledger({ slots: init.uploadSlots ?? DEFAULT_UPLOAD_SLOTS, rate: init.uploadRate ?? DEFAULT_UPLOAD_RATE, tuning: this.tuning }, this.now)
  }

  handle (input: ExchangeInput, now: number): ExchangeOutput[] {
    this.now = Math.max(this.now, now)
    this.out = []
    if (input.type === 'message') {
      try {
        this.onMessage(input.peer, input.message)
      } catch (err) {
        // a bug must not let one peer take the agent down: drop that peer
        const p = this.peers.get(input.peer)
        if (p !== undefined) this.removePeer(p)
        this.out.push({ type: 'disconnect', peer: input.peer, reason: `internal error: ${(err as Error).message}` })
      }
    } else {
      this.dispatch(input)
    }
    if ('peer' in input) {
      const p = this.peers.get(input.peer)
      if (p !== undefined) this.peerDue = Math.min(this.peerDue, this.dueOf(p))
    }
    if (this.peerDueStale) {
      this.peerDueStale = false
      for (const p of this.peers.values()) this.peerDue = Math.min(this.peerDue, this.dueOf(p))
    }
    this.refillWindows()
    this.pumpUploads()
    this.deadline = this.computeDeadline()
    return this.out
  }

  nextDeadline (): number | undefined {
    return this.deadline
  }

  /** A held build's progress, or undefined. */
  status (root: Root): BuildStatus | undefined {
    const b = this.builds.get(cidKey(root))
    if (b === undefined) return undefined
    let holders = 0
    for (const p of this.peers.values()) if (p.builds.get(b.key)?.known === true) holders++
    return {
      root: b.root,
      priority: b.priority,
      phase: b.phase,
      complete: b.complete,
      leaves: b.n,
      haveLeaves: b.complete ? b.n : b.fetch?.haveCount ?? 0,
      bytes: b.totalBytes,
      haveBytes: b.complete ? b.totalBytes : b.fetch?.haveBytes ?? 0,
      holders
    }
  }

  /** Every held build's status, in priority order. */
  list (): BuildStatus[] {
    return this.ordered.map(b => this.status(b.root)!)
  }

  /** Connected peers with the bytes of blocks sent to and received from each. */
  peerList (): Array<{ peer: PeerId, bytesIn: number, bytesOut: number, chokedUs: boolean, serving: boolean }> {
    return [...this.peers.values()].map(p => ({ peer: p.id, bytesIn: p.bytesIn, bytesOut: p.bytesOut, chokedUs: p.chokedUs, serving: this.ledger.serving(p.id) }))
  }

  // ---- inputs ---------------------------------------------------------------

  private dispatch (input: Exclude<ExchangeInput, { type: 'message' }>): void {
    switch (input.type) {
      case 'connected': return this.onConnected(input.peer)
      case 'disconnected': {
        const p = this.peers.get(input.peer)
        if (p !== undefined) this.removePeer(p)
        return
      }
      case 'malformed': return this.banId(input.peer, `malformed frame: ${input.reason}`)
      case 'hold': return this.onHold(input.root, input.priority)
      case 'drop': {
        const b = this.builds.get(cidKey(input.root))
        if (b !== undefined) this.dropBuild(b)
        return
      }
      case 'loaded': return this.onLoaded(input.root, input.result)
      case 'stored': return this.onStored(input.peer, input.root, input.indices, input.cids, input.result)
      case 'served': return this.onServed(input.peer, input.root, input.missingIndices, input.missingCids)
      case 'timer': return this.onTimer()
    }
  }

  private onConnected (id: PeerId): void {
    const until = this.bans.get(id)
    if (until !== undefined) {
      if (until > this.now) {
        this.out.push({ type: 'ban', peer: id, reason: 'banned', until })
        return
      }
      this.bans.delete(id)
    }
    if (this.peers.has(id)) return
    if (!this.newPeers.tryTake(1, this.now)) {
      this.out.push({ type: 'disconnect', peer: id, reason: 'too many new peers per second' })
      return
    }
    if (this.peers.size >= this.maxPeers) {
      this.out.push({ type: 'disconnect', peer: id, reason: `peer limit (${this.maxPeers}) reached` })
      return
    }
    const p = new Peer(id, this.tuning, this.controlRate, this.now)
    this.peers.set(id, p)
    this.peerArray.push(p)
    for (const b of this.ordered) {
      if (b.complete) this.send(p, this.haveOf(b))
      else if (b.interestSent) this.send(p, { type: 'interest', root: b.root, interested: true })
    }
  }

  private onHold (root: Root, priority: number | undefined): void {
    const key = cidKey(root)
    let b = this.builds.get(key)
    if (b !== undefined) {
      if (priority !== undefined && priority !== b.priority) {
        b.priority = priority
        this.sortBuilds()
        this.refillEveryone = true
      }
      return
    }
    b = new Build(root.slice(), key, priority ?? 0, this.seq++)
    this.builds.set(key, b)
    this.sortBuilds()
    this.out.push({ type: 'load', root: b.root })
  }

  private onLoaded (root: Root, result: LoadResult): void {
    const b = this.builds.get(cidKey(root))
    if (b === undefined || b.phase !== 'loading') return
    if (result.status === 'failed') return this.failBuild(b, result.reason)
    if (result.status === 'manifest-missing') {
      const missing = result.missing.filter(isValidCid)
      if (missing.length === 0) return this.failBuild(b, 'the store reports the manifest incomplete but names no missing block')
      b.phase = 'manifest'
      b.wants.clear()
      for (const cid of missing) b.wants.set(cidKey(cid), { cid: cid.slice(), peer: undefined, storing: false, tried: new Set() })
      this.ensureInterest(b)
      this.refillEveryone = true
      return
    }
    const { sizes, have } = result
    const n = sizes.length
    if (n > MAX_LEAVES) return this.failBuild(b, `${n} leaves exceed the protocol's ${MAX_LEAVES}`)
    if (!isBitfieldFor(have, n)) return this.failBuild(b, `a bitfield of ${have.length} bytes does not fit ${n} leaves`)
    let total = 0
    for (let i = 0; i < n; i++) {
      if (sizes[i]! > MAX_BLOCK_SIZE) return this.failBuild(b, `leaf ${i} of ${sizes[i]} bytes exceeds the protocol's ${MAX_BLOCK_SIZE}`)
      total += sizes[i]!
    }
    b.phase = 'ready'
    b.wants.clear()
    b.n = n
    b.sizes = sizes
    b.totalBytes = total
    b.manifest = new Set(result.manifest.map(cidKey))
    for (const p of this.peers.values()) {
      const pb = p.builds.get(b.key)
      if (pb === undefined) continue
      this.releaseCids(b, p, pb)
      if (pb.known && pb.leaves !== n) this.ban(p, `announced ${pb.leaves} leaves for a build of ${n}`)
    }
    if (countBits(have) === n) {
      this.finish(b)
      return
    }
    b.fetch = new FetchState(sizes, have, this.random)
    for (const p of this.peers.values()) {
      const pb = p.builds.get(b.key)
      if (pb !== undefined) countPeer(b, pb)
    }
    this.ensureInterest(b)
    for (const p of this.peers.values()) if (p.interests.has(b.key)) this.send(p, this.haveOf(b))
    this.refillEveryone = true
  }

  private onMessage (id: PeerId, m: Message): void {
    const p = this.peers.get(id)
    if (p === undefined) return // frames still arriving from a peer we dropped
    if (m.type !== 'blocks' && !p.control.tryTake(controlCost(m), this.now)) return this.ban(p, 'flooding control messages')
    switch (m.type) {
      case 'have': return this.onHave(p, m)
      case 'have-update': return this.onHaveUpdate(p, m)
      case 'interest': return this.onInterest(p, m)
      case 'request': return this.onRequest(p, m)
      case 'cancel': return this.onCancel(p, m)
      case 'dont-have': return this.onDontHave(p, m)
      case 'choke': return this.onChoke(p)
      case 'unchoke':
        p.chokedUs = false
        this.toRefill.add(p)
        return
      case 'blocks': return this.onBlocks(p, m)
    }
  }

  private onHave (p: Peer, m: Have): void {
    const key = cidKey(m.root)
    const b = this.builds.get(key)
    if (b === undefined) {
      this.out.push({ type: 'available', peer: p.id, root: m.root.slice(), leaves: m.leaves, complete: m.complete })
      return
    }
    if (b.phase === 'ready' && m.leaves !== b.n) return this.ban(p, `announced ${m.leaves} leaves for a build of ${b.n}`)
    if (b.complete) return // we need nothing from it
    const pb = this.peerBuild(p, key)
    uncountPeer(b, pb)
    pb.known = true
    pb.leaves = m.leaves
    if (m.complete || m.bitfield === undefined) {
      pb.bits = null
      pb.count = m.leaves
    } else {
      pb.count = countBits(m.bitfield)
      pb.bits = pb.count === m.leaves ? null : m.bitfield.slice()
    }
    for (const w of b.wants.values()) w.tried.delete(p.id)
    pb.dryEpoch = -1
    countPeer(b, pb)
    this.toRefill.add(p)
  }

  private onHaveUpdate (p: Peer, m: HaveUpdate): void {
    const b = this.builds.get(cidKey(m.root))
    const pb = p.builds.get(cidKey(m.root))
    if (b === undefined || pb === undefined || !pb.known || pb.bits === null) return
    const bits = pb.bits
    if (m.indices[m.indices.length - 1]! >= pb.leaves) return this.ban(p, `HaveUpdate names leaf ${m.indices[m.indices.length - 1]} of ${pb.leaves}`)
    const st = pb.counted ? b.fetch : undefined
    let useful = false
    for (const i of m.indices) {
      if (hasBit(bits, i)) continue
      setBit(bits, i)
      pb.count++
      if (st === undefined) continue
      st.avail[i] = st.avail[i]! + 1
      if (st.state[i] === MISSING && st.req[i] === 0) useful = true
    }
    if (useful) pb.dryEpoch = -1
    if (pb.count === pb.leaves) {
      uncountPeer(b, pb)
      pb.bits = null
      countPeer(b, pb)
    }
    if (pb.dryEpoch === -1) this.toRefill.add(p)
  }

  private onInterest (p: Peer, m: Interest): void {
    const key = cidKey(m.root)
    if (!m.interested) {
      p.interests.delete(key)
      return
    }
    if (!p.interests.has(key)) {
      if (p.interests.size >= MAX_INTERESTS) return
      p.interests.add(key)
    }
    const b = this.builds.get(key)
    if (b !== undefined && b.phase === 'ready') this.send(p, this.haveOf(b))
  }

  private onRequest (p: Peer, m: Request): void {
    const key = cidKey(m.root)
    const b = this.builds.get(key)
    if (b === undefined || b.phase !== 'ready') {
      this.send(p, { type: 'dont-have', root: m.root.slice(), indices: NO_INDICES, cids: [] })
      return
    }
    if (m.indices.length > 0 && m.indices[m.indices.length - 1]! >= b.n) return this.ban(p, `requested leaf ${m.indices[m.indices.length - 1]} of ${b.n}`)
    const items: ServeItem[] = []
    const missing: number[] = []
    const missingCids: Uint8Array[] = []
    for (const i of m.indices) {
      if (b.complete || b.fetch?.state[i] === HELD) items.push({ key, index: i, cid: undefined, bytes: b.sizes[i]! })
      else missing.push(i)
    }
    for (const c of m.cids) {
      if (b.manifest.has(cidKey(c))) items.push({ key, index: -1, cid: c.slice(), bytes: MANIFEST_BLOCK_ESTIMATE })
      else missingCids.push(c.slice())
    }
    if (items.length > 0 && this.ledger.enqueue(p.id, items, this.now) === 'overflow') {
      return this.ban(p, 'more requests outstanding than the protocol allows')
    }
    if (missing.length > 0 || missingCids.length > 0) this.send(p, { type: 'dont-have', root: b.root, indices: Uint32Array.from(missing), cids: missingCids })
  }

  private onCancel (p: Peer, m: Cancel): void {
    this.ledger.cancel(p.id, cidKey(m.root), m.indices, m.cids)
  }

  private onDontHave (p: Peer, m: DontHave): void {
    const b = this.builds.get(cidKey(m.root))
    const pb = p.builds.get(cidKey(m.root))
    if (b === undefined || pb === undefined) return
    p.lastProgress = this.now
    this.refillEveryone = true
    if (m.indices.length === 0 && m.cids.length === 0) {
      this.releaseAll(b, p, pb, false)
      uncountPeer(b, pb)
      p.builds.delete(b.key)
      return
    }
    for (const i of m.indices) {
      if (pb.out.has(i)) this.releaseLeaf(b, p, pb, i)
      if (!pb.known || i >= pb.leaves) continue
      if (pb.bits === null) {
        // a complete peer that lost a leaf is partial from now on
        uncountPeer(b, pb)
        pb.bits = fullBitfield(pb.leaves)
        countPeer(b, pb)
      }
      if (!hasBit(pb.bits, i)) continue
      clearBit(pb.bits, i)
      pb.count--
      const avail = pb.counted ? b.fetch?.avail : undefined
      if (avail !== undefined && avail[i]! > 0) avail[i] = avail[i]! - 1
    }
    for (const c of m.cids) {
      const k = cidKey(c)
      if (pb.outCids.has(k)) this.releaseCid(b, p, pb, k)
      b.wants.get(k)?.tried.add(p.id)
    }
  }

  private onChoke (p: Peer): void {
    p.chokedUs = true
    for (const [key, pb] of p.builds) {
      const b = this.builds.get(key)
      if (b !== undefined) this.releaseAll(b, p, pb, false)
    }
    this.refillEveryone = true
  }

  private onBlocks (p: Peer, m: Blocks): void {
    const entries = m.sizes.length
    const bytes = m.offsets[entries]!
    p.bytesIn += bytes
    this.stats.bytesReceived += bytes
    const key = cidKey(m.root)
    const b = this.builds.get(key)
    const pb = p.builds.get(key)
    if (b === undefined) {
      if (!this.takeCredit(p, bytes)) this.ban(p, 'sent blocks of a build we do not hold')
      return
    }
    p.lastProgress = this.now
    p.strikes = 0
    if (this.dryStalls > 0) {
      // one frame in a crowd says little: the patience comes down a step at a time
      this.dryStalls--
      this.peerDueStale = true
    }
    const accepted: number[] = []
    if (m.cids.length > 0) {
      // every manifest block is hashed against its CID by the driver: a wanted one is welcome from anyone
      let unexpected = 0
      for (let e = 0; e < entries; e++) {
        const k = cidKey(m.cids[e]!)
        if (pb?.outCids.has(k) !== true && pb?.lateCids.has(k) !== true && !b.wants.has(k)) unexpected += m.sizes[e]!
      }
      if (!this.takeCredit(p, unexpected)) return this.ban(p, 'sent manifest blocks nobody asked for')
      for (let e = 0; e < entries; e++) {
        const k = cidKey(m.cids[e]!)
        if (pb !== undefined && pb.outCids.has(k)) {
          pb.outCids.delete(k)
          p.window.released(0, 1)
        }
        pb?.lateCids.delete(k)
        const w = b.wants.get(k)
        if (w !== undefined && !w.storing) {
          if (w.peer !== undefined && w.peer !== p.id) this.withdrawCid(b, w.peer, k)
          w.storing = true
          w.peer = p.id
          accepted.push(e)
        } else {
          this.stats.duplicateBlocks++
          this.stats.duplicateBytes += m.sizes[e]!
        }
      }
    } else {
      if (b.phase !== 'ready') {
        if (!this.takeCredit(p, bytes)) this.ban(p, 'sent leaves before we could know them')
        return
      }
      let unexpected = 0
      for (let e = 0; e < entries; e++) {
        const i = m.indices[e]!
        if (i >= b.n) return this.ban(p, `sent leaf ${i} of ${b.n}`)
        if (m.sizes[e] !== b.sizes[i]) return this.ban(p, `sent leaf ${i} as ${m.sizes[e]} bytes, the manifest says ${b.sizes[i]}`)
        if (pb?.out.has(i) !== true) unexpected += m.sizes[e]!
      }
      if (!this.takeCredit(p, unexpected)) return this.ban(p, 'sent leaves nobody asked for')
      const st = b.fetch
      let delivered = 0
      let count = 0
      let firstSent = Infinity
      for (let e = 0; e < entries; e++) {
        const i = m.indices[e]!
        const size = b.sizes[i]!
        const sentAt = pb?.out.get(i)
        // mark it arrived before releasing its request, so it never looks requestable meanwhile
        const wanted = st !== undefined && st.state[i] === MISSING
        if (wanted) st.arrive(i)
        if (pb !== undefined && sentAt !== undefined) {
          pb.out.delete(i)
          pb.outBytes -= size
          delivered += size
          count++
          firstSent = Math.min(firstSent, sentAt)
          st?.removeRequest(i)
        }
        if (wanted) {
          accepted.push(e)
          if (st.req[i]! > 0) this.withdrawLeaf(b, i, p)
        } else {
          this.stats.duplicateBlocks++
          this.stats.duplicateBytes += size
        }
      }
      if (count > 0) {
        const delay = this.now - firstSent
        p.window.delivered(delivered, count, delay, this.now)
        const before = this.typicalDelay
        this.typicalDelay = before === 0 ? delay : 0.875 * before + 0.125 * delay
        // every peer's stall time may come earlier: peerDue is a lower bound no more
        if (this.typicalDelay < before) this.peerDueStale = true
      }
    }
    if (accepted.length > 0) this.out.push({ type: 'store', peer: p.id, root: b.root, blocks: m, entries: Uint32Array.from(accepted) })
    this.toRefill.add(p)
  }

  private onStored (peer: PeerId, root: Root, indices: ArrayLike<number>, cids: readonly Uint8Array[], result: 'ok' | 'corrupt' | 'failed'): void {
    const b = this.builds.get(cidKey(root))
    if (result === 'corrupt') this.banId(peer, 'sent a block that does not match its hash')
    if (b === undefined) return
    const ok = result === 'ok'
    for (const c of cids) {
      const k = cidKey(c)
      const w = b.wants.get(k)
      if (w === undefined || !w.storing) continue
      if (ok) b.wants.delete(k)
      else {
        w.storing = false
        w.peer = undefined
        if (result === 'corrupt') w.tried.add(peer)
      }
    }
    if (!ok) this.refillEveryone = true
    if (result === 'failed') b.pausedUntil = this.now + STORE_RETRY
    if (b.phase === 'manifest' && b.wants.size === 0) {
      b.phase = 'loading'
      this.out.push({ type: 'load', root: b.root })
      return
    }
    const st = b.fetch
    if (st === undefined) return
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k]!
      if (!(i >= 0 && i < st.n) || st.state[i] !== STORING) continue
      if (ok) {
        st.stored(i)
        b.pending.push(i)
        b.quietPending.push(i)
      } else {
        st.storeFailed(i)
      }
    }
    if (st.complete) return this.finish(b)
    if (b.quietPending.length > 0) {
      if (b.quietAt === undefined) b.quietSince = this.now
      b.quietAt = this.quietDue(b)
    }
    if (b.quietAt !== undefined && b.quietAt <= this.now) this.announce(b, true)
    else if (b.pending.length >= this.tuning.announceBatch) this.announce(b, false)
    if (b.pending.length > 0 && b.announceAt === undefined) {
      // nobody to tell promptly: the quiet announcement carries them (no timer for nothing)
      if (this.anyoneWaiting(b)) b.announceAt = this.now + this.tuning.announceDelay
      else b.pending = []
    }
  }

  private onServed (peer: PeerId, root: Root, missingIndices: ArrayLike<number> | undefined, missingCids: readonly Uint8Array[] | undefined): void {
    this.ledger.served(peer, this.now)
    const b = this.builds.get(cidKey(root))
    const lost = [...new Set(Array.from(missingIndices ?? []))].filter(i => b !== undefined && i >= 0 && i < b.n).sort((x, y) => x - y)
    const lostCids = (missingCids ?? []).filter(isValidCid).map(c => c.slice())
    if (b === undefined || (lost.length === 0 && lostCids.length === 0)) return
    for (const i of lost) this.loseLeaf(b, i)
    const p = this.peers.get(peer)
    if (p !== undefined) this.send(p, { type: 'dont-have', root: b.root, indices: Uint32Array.from(lost), cids: lostCids })
  }

  private onTimer (): void {
    for (const b of this.builds.values()) {
      if (b.quietAt !== undefined && b.quietAt <= this.now) this.announce(b, true)
      else if (b.announceAt !== undefined && b.announceAt <= this.now) this.announce(b, false)
      if (b.pausedUntil > 0 && b.pausedUntil <= this.now) {
        b.pausedUntil = 0
        this.refillEveryone = true
      }
    }
    let due = Infinity
    for (const p of this.peers.values()) {
      if (p.window.blocks > 0 && !p.chokedUs && this.now >= p.lastProgress + this.stallTimeout(p)) this.stall(p)
      if (p.snubbedUntil > 0 && p.snubbedUntil <= this.now) {
        p.snubbedUntil = 0
        this.toRefill.add(p)
      }
      due = Math.min(due, this.dueOf(p))
    }
    this.peerDue = due
    this.ledger.tick(this.now)
  }

  // ---- builds ---------------------------------------------------------------

  private sortBuilds (): void {
    this.ordered = [...this.builds.values()].sort((x, y) => y.priority - x.priority || x.seq - y.seq)
  }

  private haveOf (b: Build): Have {
    if (b.complete || b.fetch === undefined) return { type: 'have', root: b.root, leaves: b.n, complete: true }
    return { type: 'have', root: b.root, leaves: b.n, complete: false, bitfield: b.fetch.have.slice() }
  }

  private ensureInterest (b: Build): void {
    if (b.interestSent) return
    b.interestSent = true
    for (const p of this.peers.values()) this.send(p, { type: 'interest', root: b.root, interested: true })
  }

  /** Every leaf is stored: tell everyone, forget what peers hold of it. */
  private finish (b: Build): void {
    for (const p of this.peers.values()) {
      const pb = p.builds.get(b.key)
      if (pb !== undefined) {
        this.releaseAll(b, p, pb, true)
        p.builds.delete(b.key)
      }
    }
    b.complete = true
    b.fetch = undefined
    b.completePeers = 0
    b.pending = []
    b.announceAt = undefined
    b.quietPending = []
    b.quietAt = undefined
    b.phase = 'ready'
    for (const p of this.peers.values()) {
      this.send(p, this.haveOf(b))
      if (b.interestSent) this.send(p, { type: 'interest', root: b.root, interested: false })
    }
    b.interestSent = false
    this.out.push({ type: 'complete', root: b.root })
  }

  private failBuild (b: Build, reason: string): void {
    this.dropBuild(b)
    this.out.push({ type: 'failed', root: b.root, reason })
  }

  private dropBuild (b: Build): void {
    for (const p of this.peers.values()) {
      const pb = p.builds.get(b.key)
      if (pb !== undefined) {
        this.releaseAll(b, p, pb, true)
        uncountPeer(b, pb)
        p.builds.delete(b.key)
      }
      if (p.interests.has(b.key) && b.phase === 'ready') this.send(p, { type: 'dont-have', root: b.root, indices: NO_INDICES, cids: [] })
      if (b.interestSent) this.send(p, { type: 'interest', root: b.root, interested: false })
    }
    this.ledger.dropBuild(b.key)
    this.builds.delete(b.key)
    this.sortBuilds()
  }

  /** The store no longer has a leaf we announced: fetch it again. */
  private loseLeaf (b: Build, i: number): void {
    if (b.complete) {
      b.complete = false
      b.fetch = new FetchState(b.sizes, fullBitfield(b.n), this.random)
      this.ensureInterest(b) // holders answer with their Have
    }
    b.fetch?.lost(i)
    this.refillEveryone = true
  }

  /** When the leaves stored since the last quiet announcement are due (see Tuning.quietAnnounceDelay). */
  private quietDue (b: Build): number {
    const t = this.tuning
    const k = b.quietPending.length
    if (k >= t.announceBatch) return this.now
    return b.quietSince + (k >= t.quietAnnounceLeaves ? t.quietAnnounceDelay : 10 * t.quietAnnounceDelay)
  }

  /**
   * Sends the leaves stored since the last announcement, in HaveUpdates:
   * promptly (announceDelay) to the interested peers we serve that have
   * nothing queued with us (they wait for something to ask); with `quiet`, every leaf stored
   * since the last quiet announcement to every interested peer (those we
   * serve get some twice: harmless). A peer between the two hears of a leaf
   * by the next quiet announcement at the latest.
   */
  private announce (b: Build, quiet: boolean): void {
    const list = quiet ? b.quietPending : b.pending
    b.announceAt = undefined
    b.pending = []
    if (quiet) {
      b.quietAt = undefined
      b.quietPending = []
    }
    if (list.length === 0) return
    const all = list.sort((x, y) => x - y)
    for (const p of this.peers.values()) {
      if (!p.interests.has(b.key) || !(quiet || this.ledger.waiting(p.id))) continue
      // what the peer told us it holds is no news to it
      const pb = p.builds.get(b.key)
      const held = pb !== undefined && pb.known && pb.leaves === b.n ? pb.bits : undefined
      if (held === null) continue
      const news = held === undefined ? all : all.filter(i => !hasBit(held, i))
      for (let s = 0; s < news.length; s += MAX_INDICES) {
        this.send(p, { type: 'have-update', root: b.root, indices: Uint32Array.from(news.slice(s, s + MAX_INDICES)) })
      }
    }
  }

  /** Some interested peer we serve has nothing queued: it would take a prompt announcement. */
  private anyoneWaiting (b: Build): boolean {
    for (const p of this.peers.values()) if (p.interests.has(b.key) && this.ledger.waiting(p.id)) return true
    return false
  }

  // ---- peers ------------------------------------------------------------------

  private send (p: Peer, message: ControlMessage): void {
    this.out.push({ type: 'send', peer: p.id, message })
  }

  private peerBuild (p: Peer, key: string): PeerBuild {
    let pb = p.builds.get(key)
    if (pb === undefined) {
      pb = newPeerBuild()
      p.builds.set(key, pb)
    }
    return pb
  }

  private removePeer (p: Peer): void {
    for (const [key, pb] of p.builds) {
      const b = this.builds.get(key)
      if (b === undefined) continue
      this.releaseAll(b, p, pb, false)
      uncountPeer(b, pb)
    }
    p.builds.clear()
    this.ledger.remove(p.id, this.now)
    this.peers.delete(p.id)
    const at = this.peerArray.indexOf(p)
    if (at >= 0) {
      this.peerArray[at] = this.peerArray[this.peerArray.length - 1]!
      this.peerArray.pop()
    }
    this.toRefill.delete(p)
    this.refillEveryone = true
  }

  private ban (p: Peer, reason: string): void {
    this.banId(p.id, reason)
  }

  private banId (id: PeerId, reason: string): void {
    const until = this.now + this.banTime
    this.bans.delete(id)
    this.bans.set(id, until)
    if (this.bans.size > MAX_BANS) {
      for (const [k, t] of this.bans) if (t <= this.now) this.bans.delete(k)
      while (this.bans.size > MAX_BANS) this.bans.delete(this.bans.keys().next().value!)
    }
    this.stats.bans++
    this.out.push({ type: 'ban', peer: id, reason, until })
    const p = this.peers.get(id)
    if (p !== undefined) this.removePeer(p)
  }

  /** True when the peer may still send `bytes` of blocks we did not ask it for (consumed). */
  private takeCredit (p: Peer, bytes: number): boolean {
    if (bytes === 0) return true
    if (bytes > p.credit) return false
    p.credit -= bytes
    return true
  }

  private addCredit (p: Peer, bytes: number): void {
    p.credit = Math.min(p.credit + bytes, this.tuning.maxWindow + MAX_FRAME_SIZE)
  }

  private stall (p: Peer): void {
    this.stats.stalls++
    this.dryStalls = Math.min(MAX_BACKOFF, this.dryStalls + 1)
    p.strikes++
    p.snubbedUntil = this.now + this.tuning.snubTime * Math.min(p.strikes, 6)
    for (const [key, pb] of p.builds) {
      const b = this.builds.get(key)
      if (b !== undefined) this.releaseAll(b, p, pb, true)
    }
    p.window.stalled()
    this.refillEveryone = true
  }

  // ---- requests -------------------------------------------------------------

  private releaseLeaf (b: Build, p: Peer, pb: PeerBuild, i: number): void {
    if (!pb.out.delete(i)) return
    const size = b.sizes[i] ?? 0
    pb.outBytes -= size
    p.window.released(size, 1)
    b.fetch?.removeRequest(i)
  }

  private releaseCid (b: Build, p: Peer, pb: PeerBuild, k: string): void {
    if (!pb.outCids.delete(k)) return
    p.window.released(0, 1)
    const w = b.wants.get(k)
    if (w !== undefined && w.peer === p.id && !w.storing) w.peer = undefined
  }

  private releaseCids (b: Build, p: Peer, pb: PeerBuild): void {
    for (const k of [...pb.outCids.keys()]) {
      this.releaseCid(b, p, pb, k)
      pb.lateCids.add(k)
    }
  }

  /**
   * Gives up every request outstanding at a peer for a build. With `cancel`,
   * tells the peer; either way, what it already sent may still arrive and is
   * not held against it.
   */
  private releaseAll (b: Build, p: Peer, pb: PeerBuild, cancel: boolean): void {
    const indices = [...pb.out.keys()].sort((x, y) => x - y)
    const cids = [...pb.outCids.keys()]
    if (indices.length === 0 && cids.length === 0) return
    let bytes = 0
    for (const i of indices) {
      bytes += b.sizes[i] ?? 0
      this.releaseLeaf(b, p, pb, i)
    }
    const cidBytes: Uint8Array[] = []
    for (const k of cids) {
      const w = b.wants.get(k)
      if (w !== undefined) cidBytes.push(w.cid)
      this.releaseCid(b, p, pb, k)
      pb.lateCids.add(k)
    }
    this.addCredit(p, bytes)
    if (!cancel || !this.peers.has(p.id)) return
    for (let s = 0; s < indices.length; s += MAX_INDICES) {
      this.send(p, { type: 'cancel', root: b.root, indices: Uint32Array.from(indices.slice(s, s + MAX_INDICES)), cids: [] })
    }
    for (let s = 0; s < cidBytes.length; s += MAX_CIDS) {
      this.send(p, { type: 'cancel', root: b.root, indices: NO_INDICES, cids: cidBytes.slice(s, s + MAX_CIDS) })
    }
  }

  /** A leaf arrived from `from`: withdraw its other (end-game) requests. */
  private withdrawLeaf (b: Build, i: number, from: Peer): void {
    for (const q of this.peers.values()) {
      if (q === from) continue
      const pb = q.builds.get(b.key)
      if (pb === undefined || !pb.out.has(i)) continue
      this.releaseLeaf(b, q, pb, i)
      this.addCredit(q, b.sizes[i]!)
      this.send(q, { type: 'cancel', root: b.root, indices: Uint32Array.of(i), cids: [] })
    }
  }

  private withdrawCid (b: Build, peer: PeerId, k: string): void {
    const q = this.peers.get(peer)
    const pb = q?.builds.get(b.key)
    if (q === undefined || pb === undefined || !pb.outCids.has(k)) return
    const w = b.wants.get(k)
    this.releaseCid(b, q, pb, k)
    pb.lateCids.add(k)
    if (w !== undefined) this.send(q, { type: 'cancel', root: b.root, indices: NO_INDICES, cids: [w.cid] })
  }

  private refillWindows (): void {
    this.bestRate = -1
    this.sources = -1
    if (!this.refillEveryone && this.toRefill.size > 0) {
      const targets = [...this.toRefill]
      this.toRefill.clear()
      for (const p of targets) if (this.peers.has(p.id)) this.fill(p)
    }
    // a peer passed over for want of a source slot is asked once a slot is free
    if (this.capSkipped && this.sourceCount() < this.sourceCap) this.refillEveryone = true
    if (!this.refillEveryone) return
    this.refillEveryone = false
    this.capSkipped = false
    this.toRefill.clear()
    const all = [...this.peers.values()]
    const n = all.length
    const start = n === 0 ? 0 : this.rotor++ % n
    for (let k = 0; k < n; k++) {
      const p = all[(start + k) % n]!
      if (this.peers.has(p.id)) this.fill(p)
    }
  }

  /**
   * How long a peer with requests outstanding may deliver nothing: its
   * window's timeout (4 × its own delay, at least stallTimeout), 4 × the
   * delay frames take here from any peer, and stallTimeout doubled for each
   * stall in a row, of this peer or of any since anything arrived (as TCP
   * backs off its retransmission timeout): a fetcher that has never received
   * a frame knows no delay yet, and on a crowded channel its first frames
   * take longer than any fixed timeout.
   */
  private stallTimeout (p: Peer): number {
    const backoff = this.tuning.stallTimeout * 2 ** Math.min(MAX_BACKOFF, Math.max(p.strikes, this.dryStalls))
    return Math.max(p.window.stallTimeout(), 4 * this.typicalDelay, backoff)
  }

  /** Peers with leaf or manifest requests outstanding (counted once per refill, then kept up to date by fillLeaves). */
  private sourceCount (): number {
    if (this.sources < 0) {
      this.sources = 0
      let best = 0
      const all = this.peerArray
      for (let k = 0; k < all.length; k++) {
        const q = all[k]!
        if (q.window.blocks > 0) this.sources++
        // a rate is a decaying maximum that decays only as frames come: a peer heard from long ago may keep one from a quieter minute
        if (this.now - q.lastProgress < CROWD_MEMORY) best = Math.max(best, q.window.rate)
      }
      // with no peer heard from lately, the last verdict stands
      if (best > 0) this.sourceCap = best < CROWDED_RATE ? 1 : this.tuning.maxSources
    }
    return this.sources
  }

  /** The fastest peer's delivery rate, bytes per ms (0: none measured), found once per refill (for the crowd window). */
  private fastestRate (): number {
    if (this.bestRate < 0) {
      this.bestRate = 0
      const all = this.peerArray
      for (let k = 0; k < all.length; k++) if (all[k]!.window.rate > this.bestRate) this.bestRate = all[k]!.window.rate
    }
    return this.bestRate
  }

  /** When a peer stalls (requests outstanding) or its snub ends, or Infinity. */
  private dueOf (p: Peer): number {
    const stall = p.window.blocks > 0 && !p.chokedUs ? p.lastProgress + this.stallTimeout(p) : Infinity
    return p.snubbedUntil > 0 ? Math.min(stall, p.snubbedUntil) : stall
  }

  /** Requests what this peer can give us, highest-priority build first, up to its window. */
  private fill (p: Peer): void {
    if (p.chokedUs || p.snubbedUntil > this.now) return
    for (const b of this.ordered) {
      if (b.pausedUntil > this.now) continue
      if (b.phase === 'manifest') this.fillManifest(b, p)
      else if (b.fetch !== undefined && !this.fillLeaves(b, p)) break
    }
    this.peerDue = Math.min(this.peerDue, this.dueOf(p))
  }

  private fillManifest (b: Build, p: Peer): void {
    const pb = p.builds.get(b.key)
    if (pb === undefined || !pb.known) return
    let room = Math.min(this.tuning.manifestWindow - pb.outCids.size, p.window.blockSpace(), MAX_CIDS)
    const cids: Uint8Array[] = []
    for (const [k, w] of b.wants) {
      if (room <= 0) break
      if (w.peer !== undefined || w.storing || w.tried.has(p.id)) continue
      w.peer = p.id
      pb.outCids.set(k, this.now)
      pb.lateCids.delete(k)
      cids.push(w.cid)
      room--
    }
    if (cids.length === 0) return
    if (p.window.blocks === 0) p.lastProgress = this.now
    p.window.sent(0, cids.length, this.now)
    this.send(p, { type: 'request', root: b.root, indices: NO_INDICES, cids })
  }

  /** Requests leaves of one build from a peer; false when the peer's window is full. */
  private fillLeaves (b: Build, p: Peer): boolean {
    const st = b.fetch!
    const pb = p.builds.get(b.key)
    if (pb === undefined || !pb.counted || pb.count === 0) return true
    const w = p.window
    const space = Math.max(w.space(), this.crowdFloor(p) - w.inflight)
    if (w.blockSpace() <= 0 || (space <= 0 && w.blocks > 0)) return false
    const limits: PickLimits = {
      peerBits: pb.bits,
      onlyUnshared: pb.bits === null && !this.starving(b, p),
      maxBytes: space,
      maxCount: Math.min(w.blockSpace(), MAX_INDICES),
      atLeastOne: w.blocks === 0
    }
    const picks: number[] = []
    const newSource = w.blocks === 0
    if (newSource && this.sourceCount() >= this.sourceCap) {
      // enough sources already: this one is asked only in end-game, below
      this.capSkipped = true
    } else if (pb.bits === null || pb.dryEpoch !== st.epoch) {
      // a partial peer that had nothing for us has nothing until a leaf is released or it announces one we lack
      const candidates = pickRarest(st, limits, picks)
      pb.dryEpoch = candidates === 0 && pb.bits !== null ? st.epoch : -1
    }
    if (picks.length === 0 && st.idle === 0) {
      // end-game: every missing leaf is requested somewhere. Ask a second peer
      // for the last few, or for those stuck at a peer far slower than this one.
      // At most endgameBlocks leaves doubled at once; the stuck rule has that many in all per build.
      const last = st.n - st.haveCount - st.storing <= this.tuning.endgameBlocks
      const budget = last ? Infinity : this.tuning.endgameBlocks - st.rescued
      const stuck = last || budget <= 0 ? undefined : this.stuckElsewhere(b, p)
      const room = Math.min(this.tuning.endgameBlocks - st.doubled, budget)
      if (room > 0 && (last || (stuck !== undefined && stuck.size > 0))) {
        pickEndgame(st, { ...limits, onlyUnshared: false, maxCount: Math.min(limits.maxCount, room) }, pb.out, picks, stuck)
        if (!last) st.rescued += picks.length
      }
      this.stats.endgameRequests += picks.length
    }
    if (picks.length === 0) return true
    picks.sort((x, y) => x - y)
    if (newSource && this.sources >= 0) this.sources++
    if (w.blocks === 0) p.lastProgress = this.now
    let bytes = 0
    for (const i of picks) {
      pb.out.set(i, this.now)
      st.addRequest(i)
      bytes += b.sizes[i]!
    }
    pb.outBytes += bytes
    w.sent(bytes, picks.length, this.now)
    this.send(p, { type: 'request', root: b.root, indices: Uint32Array.from(picks), cids: [] })
    return space > bytes && w.blockSpace() > 0
  }

  /** CROWD_WINDOW when p's measured rate is within SLOW_FACTOR of the fastest peer's, else 0. */
  private crowdFloor (p: Peer): number {
    const r = p.window.rate
    return r > 0 && r * SLOW_FACTOR >= this.fastestRate() ? CROWD_WINDOW : 0
  }

  /**
   * Leaves outstanding at peers that would take more than SLOW_FACTOR times
   * as long as p to deliver them (p's window drains in its minimum delay plus
   * its bytes over its rate; another's in its bytes over its rate, or, before
   * it has a rate, in twice the time its oldest request has waited).
   */
  private stuckElsewhere (b: Build, p: Peer): Set<number> {
    const stuck = new Set<number>()
    const w = p.window
    if (w.rate <= 0 || !Number.isFinite(w.minDelay)) return stuck
    const mine = w.minDelay + (w.inflight + b.totalBytes / Math.max(1, b.n)) / w.rate
    for (const q of this.peers.values()) {
      const pb = q.builds.get(b.key)
      if (q === p || pb === undefined || pb.out.size === 0) continue
      let theirs: number
      if (q.window.rate > 0) theirs = q.window.inflight / q.window.rate
      else {
        let oldest = this.now
        for (const at of pb.out.values()) oldest = Math.min(oldest, at)
        theirs = 2 * (this.now - oldest)
      }
      if (theirs > SLOW_FACTOR * mine + 20) for (const i of pb.out.keys()) stuck.add(i)
    }
    return stuck
  }

  /**
   * True when partial peers do not carry enough of our requests for this
   * build to keep up with what complete peer p could carry alone: only then
   * is a complete peer asked for leaves that partial peers also hold. A seed
   * thus hands out each leaf about once while the fetchers trade the rest.
   */
  private starving (b: Build, p: Peer): boolean {
    let partial = 0
    for (const q of this.peers.values()) {
      const pb = q.builds.get(b.key)
      if (pb !== undefined && pb.bits !== null && pb.counted) partial += pb.outBytes
    }
    // the window's frame allowance (window.ts) is the peer's batching, not what it carries
    return partial < p.window.cwnd - p.window.burst
  }

  // ---- uploads --------------------------------------------------------------

  private pumpUploads (): void {
    this.sendNotices()
    for (;;) {
      const batch = this.ledger.next(this.now)
      if (batch === undefined) break
      const b = this.builds.get(batch.key)
      const p = this.peers.get(batch.peer)
      if (b === undefined || p === undefined) {
        this.ledger.served(batch.peer, this.now)
        continue
      }
      this.stats.bytesServed += batch.bytes
      p.bytesOut += batch.bytes
      this.out.push({ type: 'serve', peer: p.id, root: b.root, indices: Uint32Array.from(batch.indices), cids: batch.cids })
    }
    this.sendNotices()
  }

  private sendNotices (): void {
    if (this.ledger.notices.length === 0) return
    for (const n of this.ledger.notices.splice(0)) {
      const p = this.peers.get(n.peer)
      if (p !== undefined) this.send(p, { type: n.type })
    }
  }

  private computeDeadline (): number | undefined {
    let d = Infinity
    for (const b of this.builds.values()) {
      if (b.announceAt !== undefined) d = Math.min(d, b.announceAt)
      if (b.quietAt !== undefined) d = Math.min(d, b.quietAt)
      if (b.pausedUntil > 0) d = Math.min(d, b.pausedUntil)
    }
    d = Math.min(d, this.peerDue)
    const l = this.ledger.deadline(this.now)
    if (l !== undefined) d = Math.min(d, l)
    return d === Infinity ? undefined : Math.max(d, this.now)
  }
}
