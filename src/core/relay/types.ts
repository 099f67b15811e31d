// The values of the relay: items, custody, messages, and what the core takes
// and gives (protocols/relay.md).

/** What an item carries: a statistics sample, an install report, an (encrypted) backup chunk, a laptop's registration (made by its school server). */
export type ItemKind = 'statistics' | 'install-report' | 'backup-chunk' | 'registration'

/**
 * One outbox item. (origin, counter) names it everywhere: the origin (the
 * laptop's peer id) numbers its items 1, 2, 3, … and never reuses a number,
 * so every hop and the mothership can drop what they already hold.
 */
export interface Item {
  origin: string
  /** ≥ 1, per origin, increasing. */
  counter: number
  kind: ItemKind
  /** When the origin made it, ms since the epoch on the origin's clock (informational: laptop clocks drift). */
  created: number
  /** Opaque to the relay; at most MAX_ITEM_BYTES. */
  body: Uint8Array
}

/** An item in this agent's outbox, with its local position (the order items are offered in). */
export interface OutboxEntry extends Item {
  seq: number
}

/**
 * What a hop holds of one origin, as a receipt states it: every counter from
 * 1 to `contiguous`, and each counter listed in `above` (ascending, each
 * greater than `contiguous`). "Holds" means: stored durably, or handed on
 * under another receipt.
 */
export interface Custody {
  origin: string
  contiguous: number
  above: number[]
}

export type RefusalReason = 'full' | 'busy' | 'declined'

export interface Offer { type: 'offer', batch: number, items: Item[] }
export interface Receipt { type: 'receipt', batch: number, custody: Custody[] }
export interface Refusal { type: 'refusal', batch: number, reason: RefusalReason, retryAfterMs: number }
export type Message = Offer | Receipt | Refusal

/** What a driver feeds the core. Peer ids are the authenticated remote peers of the streams. */
export type RelayInput =
  /** The next hop towards the mothership (config, later the election); null: none. */
  | { type: 'upstream', peer: string | null }
  /** A stream to or from this peer is open / has closed. */
  | { type: 'connected', peer: string }
  | { type: 'disconnected', peer: string }
  /** The outbox has new items (after a `load` that found no more). */
  | { type: 'enqueued' }
  /** The answer to `load`: items after `after`, in seq order; `more` when the limit cut the answer short. */
  | { type: 'loaded', request: number, items: OutboxEntry[], more: boolean }
  /** A decoded frame from peer. */
  | { type: 'message', peer: string, message: Message }
  /** The store took custody of a `persist`'s items (durably) and holds this of their origins. */
  | { type: 'persisted', peer: string, batch: number, custody: Custody[] }
  /** The store could not take them (out of space, or this agent does not relay). */
  | { type: 'refused', peer: string, batch: number, reason: RefusalReason }
  | { type: 'timer' }

/** What the core asks the driver to do. */
export type RelayOutput =
  /** Read up to maxItems / maxBytes outbox items with seq > after; answer with `loaded` (same request). */
  | { type: 'load', request: number, after: number, maxItems: number, maxBytes: number }
  /** Write a message to peer. */
  | { type: 'send', peer: string, message: Message }
  /** Take custody of items offered by peer: store them durably (dropping those already held), then answer `persisted` or `refused`. */
  | { type: 'persist', peer: string, batch: number, items: Item[] }
  /** The upstream holds these: delete the covered items from the outbox (idempotent). */
  | { type: 'forget', peer: string, custody: Custody[] }
  /** Something worth a log line or a counter; changes nothing. */
  | { type: 'event', event: RelayEvent }

export type RelayEvent =
  | { type: 'receipt-ignored', peer: string, batch: number, reason: 'unknown-batch' | 'wrong-peer' }
  | { type: 'refused-by', peer: string, batch: number, reason: RefusalReason, retryAfterMs: number }
  | { type: 'receipt-timeout', peer: string, batch: number }
  | { type: 'offer-refused', peer: string, batch: number, reason: RefusalReason }

/** The core's counters (for status and tests). */
export interface RelayStats {
  batchesSent: number
  itemsSent: number
  receipts: number
  itemsForgotten: number
  receiptsIgnored: number
  refusalsReceived: number
  timeouts: number
  offersReceived: number
  itemsOffered: number
  receiptsSent: number
  refusalsSent: number
}
