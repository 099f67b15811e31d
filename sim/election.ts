// The slot for the election core (src/core/election/, built on its own
// branch): how the engine tells an election model what happens to nodes and
// links, and asks it whom each node takes for its school server. Until the
// core is wired in, `noElection` answers nothing and the summary reports the
// election as absent (elected: [], split_brain_s: null).

/** What the engine needs of an election, one instance for the whole run. */
export interface ElectionModel {
  /** A short name for the summary. */
  readonly name: string
  /** A node's agent started or woke (its capability may have changed). */
  up (node: number, now: number): void
  /** A node left or slept. */
  down (node: number, now: number): void
  connected (a: number, b: number, now: number): void
  disconnected (a: number, b: number, now: number): void
  /** A message of the election protocol arrived (sent with the engine's `sendElection`). */
  message (to: number, from: number, message: unknown, now: number): void
  /** The node's deadline (from nextDeadline) came due. */
  timer (node: number, now: number): void
  /** When the node next wants timer(), or undefined. */
  nextDeadline (node: number): number | undefined
  /** The node this one takes for its school server now, or undefined. */
  serverOf (node: number): number | undefined
}

export const noElection: ElectionModel | undefined = undefined
