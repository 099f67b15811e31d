// Named errors of the exchange. Decoders throw InvalidMessageError and nothing
// else, whatever bytes they are given: the driver catches exactly this class,
// bans the sender and goes on. The class lives in src/core/wire, shared with
// the other protocols' codecs.
export { InvalidMessageError } from '../wire/errors.ts'
