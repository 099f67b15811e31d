// The outbox: a durable queue, in each agent's data directory (DATA/outbox.db),
// of items on their way to the mothership: this laptop's own statistics
// samples, install reports and backup chunks, and, on a school server or a
// staging agent, those it took custody of from others (docs/upstream.md).
//
// Every change is one SQLite transaction committed with synchronous=FULL, so
// what a call has returned survives a SIGKILL: an enqueued item keeps its
// counter, an accepted batch is held before the receipt leaves. Counters of
// this agent's own items come from a table of their own, never from the items
// (which are deleted once upstream holds them), so a counter is never reused.
//
// Custody is what the outbox holds now: an offered item already in it is
// dropped, one it handed on earlier is taken again. A hop must not vouch for
// what it no longer holds: the election moves the server role, so an item
// can come back down to a hop that handed it on (the restarted school server
// offers the new server's own items back to it), and a hop that answered
// "held once" would make the last holder forget it while nobody holds it.
// Duplicates that travel on are dropped at the mothership, which keeps every
// item forever. The agent's own counters are kept as intervals (HeldCounters,
// persisted as rows) apart from the items, so that none is ever reused.
//
// One process writes an outbox (the agent); others go through its API.
import { join } from 'node:path'
import { HeldCounters } from '../core/relay/held.ts'
import { isValidOrigin } from '../core/relay/origin.ts'
import { MAX_ITEM_BYTES } from '../core/relay/constants.ts'
import type { Custody, Item, ItemKind, OutboxEntry } from '../core/relay/types.ts'
import { openDatabase, transaction, type Database } from './sqlite.ts'

export const OUTBOX_FILE = 'outbox.db'
/** Bytes of item bodies an outbox holds at most, unless configured. */
export const DEFAULT_OUTBOX_BYTES = 512 * 1024 * 1024

const KIND_CODE: Record<ItemKind, number> = { statistics: 1, 'install-report': 2, 'backup-chunk': 3, registration: 4 }
const KIND_OF: Record<number, ItemKind> = { 1: 'statistics', 2: 'install-report', 3: 'backup-chunk', 4: 'registration' }

const SCHEMA = `
CREATE TABLE IF NOT EXISTS items (
  seq     INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the relay's load cursor relies on it
  origin  TEXT    NOT NULL,
  counter INTEGER NOT NULL,
  kind    INTEGER NOT NULL,
  created INTEGER NOT NULL,
  body    BLOB    NOT NULL,
  UNIQUE (origin, counter)
);
CREATE TABLE IF NOT EXISTS held (
  origin TEXT    NOT NULL,
  lo     INTEGER NOT NULL,
  hi     INTEGER NOT NULL,
  PRIMARY KEY (origin, lo)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
  origin TEXT    PRIMARY KEY,
  last   INTEGER NOT NULL
) WITHOUT ROWID;
`

/** The outbox is at its configured size: the item was not taken. */
export class OutboxFullError extends Error {
  readonly code = 'ERR_OUTBOX_FULL'
  constructor (message: string) {
    super(message)
    this.name = 'OutboxFullError'
  }
}

export interface OutboxInit {
  /** Bytes of item bodies held at most (default DEFAULT_OUTBOX_BYTES); past it, custody is refused. */
  maxBytes?: number
}

/** What accept() answers: the custody to put in the receipt, or why custody is refused. */
export type AcceptResult =
  | { ok: true, custody: Custody[], added: number, duplicates: number, left: number }
  | { ok: false, reason: 'full' }

export class Outbox {
  readonly path: string
  private readonly db: Database
  private readonly held = new HeldCounters()
  private readonly maxBytes: number
  private bytesHeld: number
  private count: number

  private readonly insertItem
  private readonly selectAfter
  private readonly deleteUpTo
  private readonly deleteOne
  private readonly selectOne
  private readonly countOrigins
  private readonly deleteHeld
  private readonly insertHeld
  private readonly selectCounter
  private readonly upsertCounter

  private constructor (path: string, init: OutboxInit) {
    this.path = path
    this.maxBytes = init.maxBytes ?? DEFAULT_OUTBOX_BYTES
    this.db = openDatabase(path)
    this.db.exec(SCHEMA)
    this.insertItem = this.db.prepare('INSERT OR IGNORE INTO items (origin, counter, kind, created, body) VALUES (?, ?, ?, ?, ?)')
    this.selectAfter = this.db.prepare('SELECT seq, origin, counter, kind, created, body FROM items WHERE seq > ? ORDER BY seq LIMIT ?')
    this.deleteUpTo = this.db.prepare('DELETE FROM items WHERE origin = ? AND counter <= ? RETURNING length(body) AS n')
    this.deleteOne = this.db.prepare('DELETE FROM items WHERE origin = ? AND counter = ? RETURNING length(body) AS n')
    this.countOrigins = this.db.prepare('SELECT count(DISTINCT origin) AS n FROM items')
    this.selectOne = this.db.prepare('SELECT 1 AS one FROM items WHERE origin = ? AND counter = ?')
    this.deleteHeld = this.db.prepare('DELETE FROM held WHERE origin = ?')
    this.insertHeld = this.db.prepare('INSERT INTO held (origin, lo, hi) VALUES (?, ?, ?)')
    this.selectCounter = this.db.prepare('SELECT last FROM counters WHERE origin = ?')
    this.upsertCounter = this.db.prepare('INSERT INTO counters (origin, last) VALUES (?, ?) ON CONFLICT (origin) DO UPDATE SET last = excluded.last')
    const totals = this.db.prepare('SELECT count(*) AS n, coalesce(sum(length(body)), 0) AS bytes FROM items').get() as { n: number, bytes: number }
    this.count = totals.n
    this.bytesHeld = totals.bytes
    this.loadHeld()
  }

  /** Opens (creating) the outbox of a data directory. */
  static open (dataDir: string, init: OutboxInit = {}): Outbox {
    return new Outbox(join(dataDir, OUTBOX_FILE), init)
  }

  private loadHeld (): void {
    for (const row of this.db.prepare('SELECT origin, lo, hi FROM held ORDER BY origin, lo').iterate() as Iterable<{ origin: string, lo: number, hi: number }>) {
      this.held.addRange(row.origin, row.lo, row.hi)
    }
  }

  /** Writes the intervals of the given origins from next (inside a transaction). */
  private saveHeld (next: HeldCounters, origins: Iterable<string>): void {
    for (const origin of origins) {
      this.deleteHeld.run(origin)
      for (const [lo, hi] of next.intervals(origin)) this.insertHeld.run(origin, lo, hi)
    }
  }

  /** Items held, their body bytes and how many origins they are of. */
  get size (): { items: number, bytes: number, origins: number } {
    const origins = this.count === 0 ? 0 : (this.countOrigins.get() as { n: number }).n
    return { items: this.count, bytes: this.bytesHeld, origins }
  }

  /**
   * Adds an item of this agent's own (origin = its peer id) under the next
   * counter, durably, and returns it. Throws OutboxFullError past maxBytes,
   * RangeError on a bad origin or an oversize body.
   */
  enqueue (origin: string, kind: ItemKind, body: Uint8Array, created: number): Item {
    if (!isValidOrigin(origin)) throw new RangeError(`outbox: ${JSON.stringify(origin)} is not an origin id`)
    if (body.length > MAX_ITEM_BYTES) throw new RangeError(`outbox: an item of ${body.length} bytes exceeds ${MAX_ITEM_BYTES}`)
    if (this.bytesHeld + body.length > this.maxBytes) throw new OutboxFullError(`outbox: full (${this.bytesHeld} of ${this.maxBytes} bytes)`)
    const next = this.held.clone([origin])
    const item = transaction(this.db, () => {
      const row = this.selectCounter.get(origin) as { last: number } | undefined
      // Never below what is held of this origin: a data directory whose counters table was lost must not reuse numbers.
      const counter = Math.max(row?.last ?? 0, this.held.highest(origin)) + 1
      this.upsertCounter.run(origin, counter)
      this.insertItem.run(origin, counter, KIND_CODE[kind], created, body)
      if (!next.add(origin, counter)) throw new RangeError('outbox: own counters are fragmented (cannot happen: they only grow)')
      this.saveHeld(next, [origin])
      return { origin, counter, kind, created, body }
    })
    this.held.adopt(next, [origin])
    this.count++
    this.bytesHeld += body.length
    return item
  }

  /**
   * Takes custody of items offered by a peer: stores, in one durable
   * transaction, those it does not hold now (dropping the rest) and returns
   * the receipt's custody for every origin offered: the offered counters it
   * holds once the transaction has committed. When not all fit in maxBytes,
   * takes those that fit, in offer order, and the custody says which; when
   * none fits, refuses and changes nothing. An item handed on earlier is
   * taken again (its route looped back; the mothership drops the duplicate).
   */
  accept (items: Item[]): AcceptResult {
    const fresh: Item[] = []
    const seen = new Set<string>()
    const holding = new Map<string, number[]>()
    for (const it of items) if (!holding.has(it.origin)) holding.set(it.origin, [])
    let bytes = 0
    let wanting = 0
    for (const it of items) {
      const key = `${it.origin}\n${it.counter}`
      if (seen.has(key)) continue
      seen.add(key)
      if (this.selectOne.get(it.origin, it.counter) !== undefined) { holding.get(it.origin)!.push(it.counter); continue }
      // As many as fit are taken, in offer order; the receipt covers those and the sender keeps the rest.
      if (wanting > 0 || this.bytesHeld + bytes + it.body.length > this.maxBytes) { wanting++; continue }
      fresh.push(it)
      holding.get(it.origin)!.push(it.counter)
      bytes += it.body.length
    }
    if (fresh.length === 0 && wanting > 0) return { ok: false, reason: 'full' }
    if (fresh.length > 0) {
      transaction(this.db, () => {
        for (const it of fresh) this.insertItem.run(it.origin, it.counter, KIND_CODE[it.kind], it.created, it.body)
      })
      this.count += fresh.length
      this.bytesHeld += bytes
    }
    const custody = [...holding].map(([origin, counters]) => ({ origin, contiguous: 0, above: counters.sort((a, b) => a - b) }))
    return { ok: true, custody, added: fresh.length, duplicates: items.length - fresh.length - wanting, left: wanting }
  }

  /** Up to maxItems items (and about maxBytes of bodies, at least one item) with seq > after, in seq order. */
  load (after: number, maxItems: number, maxBytes: number): { items: OutboxEntry[], more: boolean } {
    const rows = this.selectAfter.all(after, maxItems + 1) as Array<{ seq: number, origin: string, counter: number, kind: number, created: number, body: Uint8Array }>
    const items: OutboxEntry[] = []
    let bytes = 0
    for (const r of rows) {
      if (items.length >= maxItems || (items.length > 0 && bytes + r.body.length > maxBytes)) return { items, more: true }
      const kind = KIND_OF[r.kind]
      if (kind === undefined) continue // a row from a later version: leave it
      items.push({ seq: r.seq, origin: r.origin, counter: r.counter, kind, created: r.created, body: r.body })
      bytes += r.body.length
    }
    return { items, more: false }
  }

  /** Deletes the items a receipt covers; returns how many went. Idempotent. */
  forget (custody: Custody[]): number {
    let n = 0
    let bytes = 0
    transaction(this.db, () => {
      for (const c of custody) {
        if (c.contiguous > 0) for (const r of this.deleteUpTo.all(c.origin, c.contiguous) as Array<{ n: number }>) { n++; bytes += r.n }
        for (const a of c.above) for (const r of this.deleteOne.all(c.origin, a) as Array<{ n: number }>) { n++; bytes += r.n }
      }
    })
    this.count -= n
    this.bytesHeld -= bytes
    return n
  }

  /** Whether the outbox holds (origin, counter) now. */
  holds (origin: string, counter: number): boolean {
    return this.selectOne.get(origin, counter) !== undefined
  }

  /** The last counter this agent gave an item of its own under origin (0: none). */
  lastCounter (origin: string): number {
    const row = this.selectCounter.get(origin) as { last: number } | undefined
    return Math.max(row?.last ?? 0, this.held.highest(origin))
  }

  close (): void {
    if (this.db.isOpen) this.db.close()
  }
}
