// The sans-IO core of /xo-mesh/relay/1.0.0 (protocols/relay.md). One value
// per agent plays both ends:
//
//   sender    offers outbox items to the upstream in batches (a window of
//             them in flight), forgets only what a receipt from that very
//             peer covers, offers again after a timeout, a lost link or a
//             refusal (with backoff and jitter from the injected random);
//   receiver  hands each offer to the store (`persist`) and answers with the
//             store's custody receipt only once the store says it is durable,
//             or with a refusal (out of space, busy, not a relay).
//
// Exactly-once rests on (origin, counter): the store drops what it holds, so
// an item offered twice (lost receipt, retransmission, duplicate frame) is
// kept once, and a sender forgets an item only when a receipt says the next
// hop holds it. The core keeps nothing durable: a crash loses only what was
// never persisted, and the new core starts by offering the outbox again.
//
// Routes can loop: the election moves the server role, and for a moment two
// agents may each take the other for its next hop, so an item can travel
// back down while a receipt for it is on its way up. Two rules keep a loop
// from losing it: a receipt makes the sender forget only the items of that
// batch (never others by a contiguous prefix), and once this agent has
// vouched for an item in a receipt of its own, no receipt it awaits may make
// it forget that item (nor may one arriving while the item is being stored
// for a peer): it keeps it and offers it again. Otherwise each of the two
// could forget the item on the strength of the other's receipt.
import type { Core } from '../core.ts'
import {
  DEFAULT_BACKOFF_MAX_MS, DEFAULT_BACKOFF_MIN_MS, DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ITEMS, DEFAULT_BUSY_RETRY_MS, DEFAULT_FULL_RETRY_MS,
  DEFAULT_PERSISTS, DEFAULT_PERSISTS_PER_PEER, DEFAULT_RECEIPT_TIMEOUT_MS, DEFAULT_WINDOW, MAX_BATCH_ITEMS, MAX_BATCH_ORIGINS,
  MAX_RETRY_AFTER_MS, RETIRED_BATCHES
} from './constants.ts'
import type { Custody, Item, Message, OutboxEntry, RelayInput, RelayOutput, RelayStats, RefusalReason } from './types.ts'

export interface RelayInit {
  /** Uniform numbers in [0, 1), seeded by the driver (jitter, first batch id). */
  random: () => number
  /** Whether this agent takes custody of others' items (a hop or the mothership); default true. */
  accept?: boolean
  window?: number
  batchItems?: number
  batchBytes?: number
  receiptTimeoutMs?: number
  backoffMinMs?: number
  backoffMaxMs?: number
  persistsPerPeer?: number
  persists?: number
}

/** A batch offered and not yet answered. */
interface Batch {
  peer: string
  /** origin → counters offered. */
  counters: Map<string, number[]>
  items: number
  deadline: number
  /** Some of its items were vouched for since it was offered: they are kept, so the outbox is offered again. */
  withheld: boolean
}

export class Relay implements Core<RelayInput, RelayOutput> {
  private readonly random: () => number
  private readonly accept: boolean
  private readonly window: number
  private readonly batchItems: number
  private readonly batchBytes: number
  private readonly receiptTimeoutMs: number
  private readonly backoffMinMs: number
  private readonly backoffMaxMs: number
  private readonly persistsPerPeer: number
  private readonly persists: number

  // ---- sender ----
  private upstream: string | null = null
  private readonly connected = new Set<string>()
  private readonly inFlight = new Map<number, Batch>()
  /** Batches given up on, whose late receipt still counts (insertion order = age). */
  private readonly retired = new Map<number, Batch>()
  private nextBatch: number
  /** Highest outbox seq loaded since the last reset. */
  private cursor = 0
  private loadRequest = 0
  private loading = false
  /** The last load found nothing more: wait for `enqueued`. */
  private drained = false
  private pausedUntil = 0
  private backoff: number

  // ---- receiver ----
  /** peer → batches being persisted → their counters by origin (none of them may be forgotten meanwhile). */
  private readonly persisting = new Map<string, Map<number, Map<string, number[]>>>()
  private persistingCount = 0

  readonly stats: RelayStats = {
    batchesSent: 0, itemsSent: 0, receipts: 0, itemsForgotten: 0, receiptsIgnored: 0, refusalsReceived: 0,
    timeouts: 0, offersReceived: 0, itemsOffered: 0, receiptsSent: 0, refusalsSent: 0
  }

  constructor (init: RelayInit) {
    this.random = init.random
    this.accept = init.accept ?? true
    this.window = Math.max(1, init.window ?? DEFAULT_WINDOW)
    this.batchItems = Math.min(MAX_BATCH_ITEMS, Math.max(1, init.batchItems ?? DEFAULT_BATCH_ITEMS))
    this.batchBytes = Math.max(1, init.batchBytes ?? DEFAULT_BATCH_BYTES)
    this.receiptTimeoutMs = init.receiptTimeoutMs ?? DEFAULT_RECEIPT_TIMEOUT_MS
    this.backoffMinMs = init.backoffMinMs ?? DEFAULT_BACKOFF_MIN_MS
    this.backoffMaxMs = init.backoffMaxMs ?? DEFAULT_BACKOFF_MAX_MS
    this.persistsPerPeer = init.persistsPerPeer ?? DEFAULT_PERSISTS_PER_PEER
    this.persists = init.persists ?? DEFAULT_PERSISTS
    this.backoff = this.backoffMinMs
    // A random first batch id, so a restarted sender's ids do not repeat the last run's.
    this.nextBatch = Math.floor(this.random() * 0x7fffffff)
  }

  /** The next hop, null when there is none. */
  get next (): string | null { return this.upstream }
  /** Batches awaiting a receipt. */
  get batchesInFlight (): number { return this.inFlight.size }

  handle (input: RelayInput, now: number): RelayOutput[] {
    const out: RelayOutput[] = []
    switch (input.type) {
      case 'upstream':
        if (input.peer !== this.upstream) {
          this.reset(false)
          this.upstream = input.peer
          this.pausedUntil = 0
          this.backoff = this.backoffMinMs
        }
        break
      case 'connected':
        this.connected.add(input.peer)
        if (input.peer === this.upstream) this.drained = false
        break
      case 'disconnected':
        this.connected.delete(input.peer)
        this.dropPersisting(input.peer)
        if (input.peer === this.upstream && this.inFlight.size > 0) this.reset(true, now)
        break
      case 'enqueued':
        this.drained = false
        break
      case 'loaded':
        this.loaded(input.request, input.items, input.more, now, out)
        break
      case 'message':
        this.message(input.peer, input.message, now, out)
        break
      case 'persisted':
        // What the store took sits in our outbox now, on its way up (a hop): look again.
        this.drained = false
        if (this.donePersisting(input.peer, input.batch) !== undefined) {
          // We vouch for these now: a receipt we await must not make us forget them.
          this.withhold(input.custody)
          this.stats.receiptsSent++
          out.push({ type: 'send', peer: input.peer, message: { type: 'receipt', batch: input.batch, custody: input.custody } })
        }
        break
      case 'refused':
        if (this.donePersisting(input.peer, input.batch) !== undefined) this.refuse(input.peer, input.batch, input.reason, out)
        break
      case 'timer':
        this.timer(now, out)
        break
    }
    this.pump(now, out)
    return out
  }

  nextDeadline (): number | undefined {
    let d: number | undefined
    for (const b of this.inFlight.values()) if (d === undefined || b.deadline < d) d = b.deadline
    if (this.pausedUntil > 0 && this.upstream !== null && (d === undefined || this.pausedUntil < d)) d = this.pausedUntil
    return d
  }

  // ---- sender ---------------------------------------------------------------

  /** Forgets the batches in flight (kept as retired) and starts over from the outbox's beginning. */
  private reset (pause: boolean, now = 0): void {
    for (const [id, b] of this.inFlight) this.retire(id, b)
    this.inFlight.clear()
    this.cursor = 0
    this.loading = false
    this.loadRequest++
    this.drained = false
    if (pause) {
      // Jittered between half and all of the backoff, so many senders cut off together do not return together.
      this.pausedUntil = now + Math.ceil(this.backoff * (0.5 + 0.5 * this.random()))
      this.backoff = Math.min(this.backoffMaxMs, this.backoff * 2)
    }
  }

  private retire (id: number, b: Batch): void {
    this.retired.set(id, b)
    if (this.retired.size > RETIRED_BATCHES) this.retired.delete(this.retired.keys().next().value!)
  }

  private pump (now: number, out: RelayOutput[]): void {
    if (this.pausedUntil > 0) {
      if (now < this.pausedUntil) return
      this.pausedUntil = 0 // cleared here, so nextDeadline never names a past time
    }
    const up = this.upstream
    if (up === null || !this.connected.has(up) || this.loading || this.drained || this.inFlight.size >= this.window) return
    this.loading = true
    out.push({ type: 'load', request: ++this.loadRequest, after: this.cursor, maxItems: this.batchItems, maxBytes: this.batchBytes })
  }

  private loaded (request: number, entries: OutboxEntry[], more: boolean, now: number, out: RelayOutput[]): void {
    if (request !== this.loadRequest || !this.loading) return // answer to a load made before a reset
    this.loading = false
    const up = this.upstream
    if (entries.length === 0 || up === null || !this.connected.has(up)) {
      if (entries.length === 0) this.drained = !more
      return
    }
    // Take what fits one offer; whatever is left is loaded again next time.
    const items: Item[] = []
    const counters = new Map<string, number[]>()
    let bytes = 0
    for (const e of entries) {
      if (items.length >= Math.min(this.batchItems, MAX_BATCH_ITEMS)) break
      if (items.length > 0 && bytes + e.body.length > this.batchBytes) break
      let c = counters.get(e.origin)
      if (c === undefined) {
        if (counters.size >= MAX_BATCH_ORIGINS) break
        c = []
        counters.set(e.origin, c)
      }
      if (c.includes(e.counter)) { this.cursor = Math.max(this.cursor, e.seq); continue } // a store bug; never send a frame the codec refuses
      c.push(e.counter)
      items.push({ origin: e.origin, counter: e.counter, kind: e.kind, created: e.created, body: e.body })
      bytes += e.body.length
      this.cursor = Math.max(this.cursor, e.seq)
    }
    if (items.length === 0) return
    const id = this.nextBatch
    this.nextBatch = (this.nextBatch + 1) >>> 0
    this.retired.delete(id)
    this.inFlight.set(id, { peer: up, counters, items: items.length, deadline: now + this.receiptTimeoutMs, withheld: false })
    this.stats.batchesSent++
    this.stats.itemsSent += items.length
    out.push({ type: 'send', peer: up, message: { type: 'offer', batch: id, items } })
  }

  private receipt (peer: string, batch: number, custody: Custody[], out: RelayOutput[]): void {
    const b = this.inFlight.get(batch) ?? this.retired.get(batch)
    if (b === undefined || b.peer !== peer) {
      // Only the peer a batch was handed to can vouch for it; anything else is ignored (forged, or stale).
      this.stats.receiptsIgnored++
      out.push({ type: 'event', event: { type: 'receipt-ignored', peer, batch, reason: b === undefined ? 'unknown-batch' : 'wrong-peer' } })
      return
    }
    const wasInFlight = this.inFlight.delete(batch)
    this.retired.delete(batch)
    this.stats.receipts++
    // Coverage counts only for the items of this batch: a receipt speaks of what was offered.
    const covered: Custody[] = []
    let uncovered = 0
    let withheld = b.withheld
    const storing = this.beingPersisted()
    for (const [origin, counters] of b.counters) {
      const c = custody.find(x => x.origin === origin)
      if (c === undefined) { uncovered += counters.length; continue }
      const above = new Set(c.above)
      const kept = storing.get(origin)
      const gone: number[] = []
      for (const n of counters) {
        if (n > c.contiguous && !above.has(n)) uncovered++
        else if (kept?.has(n) === true) withheld = true // being stored for a peer, whose receipt will vouch for it
        else gone.push(n)
      }
      if (gone.length > 0) covered.push({ origin, contiguous: 0, above: gone.sort((x, y) => x - y) })
      this.stats.itemsForgotten += gone.length
    }
    if (covered.length > 0) out.push({ type: 'forget', peer, custody: covered })
    this.backoff = this.backoffMinMs
    // An honest hop covers all it was offered; what it did not, and what we kept, is offered again from the start.
    if ((uncovered > 0 || withheld) && wasInFlight) this.reset(false)
  }

  private message (peer: string, m: Message, now: number, out: RelayOutput[]): void {
    switch (m.type) {
      case 'receipt':
        this.receipt(peer, m.batch, m.custody, out)
        return
      case 'refusal': {
        const b = this.inFlight.get(m.batch)
        if (b === undefined || b.peer !== peer) {
          this.stats.receiptsIgnored++
          out.push({ type: 'event', event: { type: 'receipt-ignored', peer, batch: m.batch, reason: b === undefined ? 'unknown-batch' : 'wrong-peer' } })
          return
        }
        this.stats.refusalsReceived++
        out.push({ type: 'event', event: { type: 'refused-by', peer, batch: m.batch, reason: m.reason, retryAfterMs: m.retryAfterMs } })
        this.reset(false)
        const wait = Math.min(MAX_RETRY_AFTER_MS, Math.max(m.retryAfterMs, this.backoffMinMs))
        this.pausedUntil = now + Math.ceil(wait * (1 + 0.25 * this.random()))
        return
      }
      case 'offer':
        this.offer(peer, m.batch, m.items, out)
    }
  }

  private timer (now: number, out: RelayOutput[]): void {
    for (const [id, b] of this.inFlight) {
      if (b.deadline <= now) {
        this.stats.timeouts++
        out.push({ type: 'event', event: { type: 'receipt-timeout', peer: b.peer, batch: id } })
        this.reset(true, now)
        return
      }
    }
  }

  // ---- receiver -------------------------------------------------------------

  private offer (peer: string, batch: number, items: Item[], out: RelayOutput[]): void {
    this.stats.offersReceived++
    this.stats.itemsOffered += items.length
    const mine = this.persisting.get(peer)
    if (mine?.has(batch) === true) return // a duplicate frame: the receipt is on its way
    if (!this.accept) { this.refuse(peer, batch, 'declined', out); return }
    if ((mine?.size ?? 0) >= this.persistsPerPeer || this.persistingCount >= this.persists) { this.refuse(peer, batch, 'busy', out); return }
    const counters = new Map<string, number[]>()
    for (const it of items) {
      const c = counters.get(it.origin)
      if (c === undefined) counters.set(it.origin, [it.counter])
      else c.push(it.counter)
    }
    if (mine === undefined) this.persisting.set(peer, new Map([[batch, counters]]))
    else mine.set(batch, counters)
    this.persistingCount++
    out.push({ type: 'persist', peer, batch, items })
  }

  private refuse (peer: string, batch: number, reason: RefusalReason, out: RelayOutput[]): void {
    this.stats.refusalsSent++
    const retryAfterMs = reason === 'busy' ? DEFAULT_BUSY_RETRY_MS : reason === 'full' ? DEFAULT_FULL_RETRY_MS : MAX_RETRY_AFTER_MS
    out.push({ type: 'event', event: { type: 'offer-refused', peer, batch, reason } })
    out.push({ type: 'send', peer, message: { type: 'refusal', batch, reason, retryAfterMs } })
  }

  /** Ends a persist and returns its counters; undefined when it was not pending (the peer went away meanwhile: send nothing). */
  private donePersisting (peer: string, batch: number): Map<string, number[]> | undefined {
    const mine = this.persisting.get(peer)
    const counters = mine?.get(batch)
    if (mine === undefined || counters === undefined) return undefined
    mine.delete(batch)
    this.persistingCount--
    if (mine.size === 0) this.persisting.delete(peer)
    return counters
  }

  /** The counters of every batch being persisted, by origin. */
  private beingPersisted (): Map<string, Set<number>> {
    const out = new Map<string, Set<number>>()
    for (const batches of this.persisting.values()) {
      for (const counters of batches.values()) {
        for (const [origin, cs] of counters) {
          let set = out.get(origin)
          if (set === undefined) out.set(origin, (set = new Set()))
          for (const c of cs) set.add(c)
        }
      }
    }
    return out
  }

  /**
   * This agent is about to vouch for `custody` in a receipt: the batches it
   * awaits receipts for (in flight, or retired whose late receipt would still
   * count) no longer name those items, so no receipt makes it forget them.
   * The peer that receives our receipt forgets them; we keep them and offer
   * them again.
   */
  private withhold (custody: Custody[]): void {
    for (const b of [...this.inFlight.values(), ...this.retired.values()]) {
      for (const c of custody) {
        const counters = b.counters.get(c.origin)
        if (counters === undefined) continue
        const above = new Set(c.above)
        const left = counters.filter(n => n > c.contiguous && !above.has(n))
        if (left.length === counters.length) continue
        b.withheld = true
        if (left.length > 0) b.counters.set(c.origin, left)
        else b.counters.delete(c.origin)
      }
    }
  }

  private dropPersisting (peer: string): void {
    const mine = this.persisting.get(peer)
    if (mine === undefined) return
    this.persistingCount -= mine.size
    this.persisting.delete(peer)
  }
}
