// Limits shared by the trust documents, and small checks on decoded values.

/** Versions are positive integers below 2^32 (the wire carries them as uint32). */
export const MAX_VERSION = 0xffffffff

/**
 * The largest step an advisory snapshot's version may take above the trusted
 * one. A publisher adds one per snapshot; 2^20 (a million snapshots) is far
 * beyond any honest gap, yet keeps a signed but absurd version (a leaked key
 * signing 2^32-1, TUF's fast-forward attack) from pinning every laptop at the
 * top of the range for ever.
 */
export const MAX_VERSION_JUMP = 2 ** 20

/** Times are integer milliseconds since the epoch (UTC), between 2000 and 2^53. */
export const MIN_TIME = Date.UTC(2000, 0, 1)

export function isRecord (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)
}

export function isTime (v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= MIN_TIME
}
