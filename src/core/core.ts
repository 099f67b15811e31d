// The shape every protocol core shares (architecture.md, "Sans-IO cores"): a
// value fed inputs with the current time, returning the actions to take. It
// does no I/O and reads no clock, so the libp2p driver, the simulator and the
// tests all run the very same code.

/** A sans-IO protocol state machine. */
export interface Core<In, Out> {
  /**
   * Feeds one input observed at `now` (milliseconds on the driver's monotonic
   * clock; never smaller than a previous `now`). Returns the actions to take,
   * in order. Never throws on anything a remote peer sent.
   */
  handle (input: In, now: number): Out[]
  /** When the core next wants a timer input (same clock), or undefined when it waits for nothing. */
  nextDeadline (): number | undefined
}
