// Limits and defaults of /xo-mesh/election/1.0.0. The MAX_* limits are part of
// the protocol (protocols/election.md): a frame beyond one is malformed. The
// DEFAULT_* timers are local configuration; every peer of a school should use
// the same ones (the agent's config), but nothing breaks if they differ a little.

export const PROTOCOL = '/xo-mesh/election/1.0.0'

/** Largest frame body (after the length prefix), bytes. */
export const MAX_FRAME_SIZE = 32 * 1024
/** Most claims in one frame. */
export const MAX_CLAIMS_PER_FRAME = 64
/** Largest encoded claim (the signed bytes), bytes. */
export const MAX_CLAIM_SIZE = 512
/** Longest peer id in a claim, UTF-8 bytes. */
export const MAX_PEER_ID_LENGTH = 128
/** Longest signature, bytes (Ed25519's is 64). */
export const MAX_SIGNATURE_SIZE = 128
/** Most relays a claim may have passed; a claim with more is dropped. */
export const MAX_HOPS = 64
/** Largest age a claim may state, ms (a day; any claim older than the failure timeout is dropped anyway). */
export const MAX_AGE_MS = 86_400_000
/** What a signature covers, before the claim's bytes: keeps a claim signature from being any other signature of the same key. */
export const SIGNATURE_CONTEXT = 'xo-mesh/election/1.0.0 claim:'

/** Interval of a peer's own claim (the heartbeat), ms. */
export const DEFAULT_HEARTBEAT_MS = 2000
/** A claim not refreshed for this long is dropped: its peer has left (the lease), ms. */
export const DEFAULT_FAILURE_TIMEOUT_MS = 7000
/** With no server in view, the best candidate waits this long before it takes the role (views settle), ms. */
export const DEFAULT_SETTLE_MS = 2000
/** A peer takes no role this long after it starts (discovery finds the group first), ms. */
export const DEFAULT_STARTUP_GRACE_MS = 6000
/** A candidate clearly better than the sitting server takes over after being so this long, ms. */
export const DEFAULT_HOLD_MS = 30000
/** Battery points by which a candidate on battery must beat a server on battery to be clearly better. */
export const DEFAULT_BATTERY_MARGIN = 25
/** Best candidates every peer relays (besides serving claims); at least 2 so the runner-up is known everywhere when the best leaves. */
export const DEFAULT_RELAY_TOP = 3
/** Peers whose claims a core keeps at most. */
export const DEFAULT_MAX_KNOWN = 256
/** How long (incarnation, seq) of a departed peer is remembered against replays, ms. */
export const DEFAULT_FORGET_MS = 30 * 60 * 1000
/** A term more than this above the highest term seen is absurd: the claim is dropped. */
export const DEFAULT_MAX_TERM_STEP = 1_000_000
/** How long a peer that sent a malformed frame or a bad signature is ignored, ms. */
export const DEFAULT_BAN_MS = 10 * 60 * 1000
/** Fresh claims accepted per origin: a bucket of this many, refilled at two per heartbeat. */
export const DEFAULT_CLAIM_BURST = 6

/** Timers and limits of one core; every field has a DEFAULT_* value. */
export interface ElectionConfig {
  heartbeatMs: number
  failureTimeoutMs: number
  settleMs: number
  startupGraceMs: number
  holdMs: number
  batteryMargin: number
  relayTop: number
  maxKnown: number
  forgetMs: number
  maxTermStep: number
  banMs: number
  claimBurst: number
}

export const DEFAULT_CONFIG: Readonly<ElectionConfig> = Object.freeze({
  heartbeatMs: DEFAULT_HEARTBEAT_MS,
  failureTimeoutMs: DEFAULT_FAILURE_TIMEOUT_MS,
  settleMs: DEFAULT_SETTLE_MS,
  startupGraceMs: DEFAULT_STARTUP_GRACE_MS,
  holdMs: DEFAULT_HOLD_MS,
  batteryMargin: DEFAULT_BATTERY_MARGIN,
  relayTop: DEFAULT_RELAY_TOP,
  maxKnown: DEFAULT_MAX_KNOWN,
  forgetMs: DEFAULT_FORGET_MS,
  maxTermStep: DEFAULT_MAX_TERM_STEP,
  banMs: DEFAULT_BAN_MS,
  claimBurst: DEFAULT_CLAIM_BURST
})
