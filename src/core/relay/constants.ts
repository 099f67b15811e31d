// Limits and defaults of /xo-mesh/relay/1.0.0 (protocols/relay.md). Every
// length a peer sends is checked against these before anything is allocated.

export const PROTOCOL = '/xo-mesh/relay/1.0.0'

/** A frame body, bytes (the length prefix's limit; the same as the block exchange's). */
export const MAX_FRAME_SIZE = 4 * 1024 * 1024
/** One item's body, bytes (a backup chunk is at most 256 KiB before encryption). */
export const MAX_ITEM_BYTES = 1024 * 1024
/** Items in one offer, and counters in one receipt. */
export const MAX_BATCH_ITEMS = 1024
/** Origins in one offer or receipt. */
export const MAX_BATCH_ORIGINS = 256
/** An origin id: a peer id's text (base58btc or base32), at most this many characters. */
export const MAX_ORIGIN_LENGTH = 128
/** Counters and times are integers below 2^53 (they travel as uint64). */
export const MAX_COUNTER = Number.MAX_SAFE_INTEGER
/** A refusal asks to wait at most this long, ms. */
export const MAX_RETRY_AFTER_MS = 3_600_000

// ---- defaults of the core ----------------------------------------------------

/** Batches in flight to the upstream at once. */
export const DEFAULT_WINDOW = 4
/** Items and bytes the sender packs into one offer. */
export const DEFAULT_BATCH_ITEMS = 256
export const DEFAULT_BATCH_BYTES = 1024 * 1024
/** A batch with no receipt after this long is offered again, ms. */
export const DEFAULT_RECEIPT_TIMEOUT_MS = 30_000
/** Wait after a timeout or a lost link: first and most, ms (doubles, with jitter). */
export const DEFAULT_BACKOFF_MIN_MS = 1_000
export const DEFAULT_BACKOFF_MAX_MS = 60_000
/** Offers being persisted at once: from one peer, and from all. */
export const DEFAULT_PERSISTS_PER_PEER = 4
export const DEFAULT_PERSISTS = 64
/** What a busy receiver asks a sender to wait, ms. */
export const DEFAULT_BUSY_RETRY_MS = 1_000
/** What a full receiver asks a sender to wait, ms (a hop drains as soon as its own uplink is back). */
export const DEFAULT_FULL_RETRY_MS = 60_000
/** Batches whose receipt is still honoured after they were given up on. */
export const RETIRED_BATCHES = 64
