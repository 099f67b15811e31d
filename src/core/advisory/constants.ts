// Defaults and limits of /xo-mesh/advisory/1.0.0 (protocols/advisory.md).

export const PROTOCOL = '/xo-mesh/advisory/1.0.0'

/** Trickle's smallest interval: after any news, a room hears of it within about a second. */
export const DEFAULT_IMIN_MS = 1000
/** Doublings of Imin to the largest interval: 1 s · 2^10 ≈ 17 min between adverts in a quiet room. */
export const DEFAULT_IMAX_DOUBLINGS = 10
/** Trickle's redundancy constant: stay quiet in an interval once k consistent adverts were heard. */
export const DEFAULT_K = 1
/** A pull not answered within this is dropped; the next advert of a newer snapshot starts another. */
export const DEFAULT_PULL_TIMEOUT_MS = 10_000
/** A peer is sent the snapshot at most once per this interval, however often it asks. */
export const DEFAULT_SERVE_INTERVAL_MS = 2_000

/** A signed snapshot's largest size (the trust layer's MAX_SNAPSHOT_BYTES). */
export const MAX_SNAPSHOT_BYTES = 1024 * 1024
/** A signed root version's largest size (the trust layer's MAX_ROOT_BYTES). */
export const MAX_ROOT_BYTES = 64 * 1024
/** Root versions one Snapshot message carries; a laptop further behind takes the rest on its next pull or from a stick. */
export const MAX_ROOTS_PER_MESSAGE = 16
/** The snapshot's hash as advertised (its binary CID). */
export const MAX_HASH_BYTES = 64
/** A whole message (protobuf) at most. */
export const MAX_MESSAGE_SIZE = MAX_SNAPSHOT_BYTES + MAX_ROOTS_PER_MESSAGE * MAX_ROOT_BYTES + 1024
/** Hashes of refused snapshots remembered, so a peer advertising one is not pulled from again and again. */
export const MAX_REFUSED = 64

/** An install result record's largest size (a 32-byte key, a CID, a time, a 64-byte signature and room to grow). */
export const MAX_RESULT_BYTES = 512
/** Install results one Results message carries; a set larger than this goes in several. */
export const MAX_RESULTS_PER_MESSAGE = 256
/** Install results an agent keeps (one per laptop and build; the oldest go first). */
export const MAX_RESULTS = 4096
/** The digest of a set of install results (the XOR of their sha2-256 ids). */
export const RESULTS_DIGEST_BYTES = 32
/**
 * A staged rollout halts for a laptop that has not installed yet when at
 * least this percent of the install results it has seen for the build
 * failed, unless the advisory says otherwise (rollout.max_failed_percent).
 */
export const DEFAULT_MAX_FAILED_PERCENT = 10
/**
 * A wave after the first starts only once the laptop holds at least this many
 * install results for the build (rollout.ts): the earlier waves' outcome, not
 * the clock alone, lets it go.
 */
export const MIN_RESULTS_FOR_NEXT_WAVE = 1
