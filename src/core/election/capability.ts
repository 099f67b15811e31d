// What makes a peer a good school server, and the orders the election uses.
// The lexicographic order is the issue's: pinned in the config, then a working
// upstream link, then AC power over battery, then battery level, then free
// disk, then uptime; the peer id breaks ties.

/** A peer's facts, as it states them in its claim. */
export interface Capability {
  /** `election.pinned: true` in its config: the school wants this one. */
  pinned: boolean
  /** Its configured upstream answered the last reachability check. */
  upstream: boolean
  /** On mains power (or has no battery at all). */
  ac: boolean
  /** Battery charge, percent 0..100 (100 when there is no battery). */
  battery: number
  /** Free space of its data directory, MiB. */
  freeDiskMiB: number
  /** Seconds since the agent started. */
  uptimeS: number
}

/** A capability that wins nothing: what a peer states before it has read its facts. */
export const NO_CAPABILITY: Readonly<Capability> = Object.freeze({ pinned: false, upstream: false, ac: false, battery: 0, freeDiskMiB: 0, uptimeS: 0 })

/** Compares capabilities: > 0 when a is the better server, < 0 when b is, 0 when equal. */
export function compareCapability (a: Capability, b: Capability): number {
  if (a.pinned !== b.pinned) return a.pinned ? 1 : -1
  if (a.upstream !== b.upstream) return a.upstream ? 1 : -1
  if (a.ac !== b.ac) return a.ac ? 1 : -1
  if (a.battery !== b.battery) return a.battery - b.battery
  if (a.freeDiskMiB !== b.freeDiskMiB) return a.freeDiskMiB - b.freeDiskMiB
  return a.uptimeS - b.uptimeS
}

/**
 * Whether candidate c is better than server s by a clear margin: a higher
 * class (pinned, upstream, AC), or both on battery in the same class and c
 * ahead by at least `batteryMargin` points. Free disk and uptime never make a
 * clear margin: they drift all the time. If c is clearly better than x and x
 * is at least as good as y, c is clearly better than y (the proof is in
 * docs/election.md); a takeover therefore never chains.
 */
export function clearlyBetter (c: Capability, s: Capability, batteryMargin: number): boolean {
  if (c.pinned !== s.pinned) return c.pinned
  if (c.upstream !== s.upstream) return c.upstream
  if (c.ac !== s.ac) return c.ac
  if (c.ac) return false
  return c.battery >= s.battery + batteryMargin
}

/** Compares peer ids as strings (code unit order): the last tie-break, the same on every peer. */
export function comparePeerId (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
