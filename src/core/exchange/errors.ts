// Named errors of the exchange. Decoders throw InvalidMessageError and nothing
// else, whatever bytes they are given: the driver catches exactly this class,
// bans the sender and goes on.

/** A frame or message that breaks /xo-mesh/blocks/1.0.0 (malformed, oversize, out of limits). */
export class InvalidMessageError extends Error {
  readonly code = 'ERR_INVALID_MESSAGE'
  constructor (message: string) {
    super(message)
    this.name = 'InvalidMessageError'
  }
}
