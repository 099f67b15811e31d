// The one error every wire decoder of src/core throws, whatever bytes it is
// given: a driver catches exactly this class, penalises the sender and goes
// on. Shared by the protocols so `instanceof` means the same thing everywhere.

/** A frame or message that breaks its protocol (malformed, oversize, out of limits). */
export class InvalidMessageError extends Error {
  readonly code = 'ERR_INVALID_MESSAGE'
  constructor (message: string) {
    super(message)
    this.name = 'InvalidMessageError'
  }
}
