/**
 * The sans-IO core of the school server election, /xo-mesh/election/1.0.0
 * (protocols/election.md, docs/election.md). A driver (libp2p, the simulator,
 * a test harness) creates one per peer, feeds it inputs with the time, carries
 * out the outputs and calls it again at nextDeadline():
 *
 *   const core = createElection({ self, capability, authenticator, random })
 *   for (const o of core.handle({ type: 'neighbour-up', peer }, now)) act(o)
 *
 * Inputs: neighbour-up / neighbour-down (a direct link opens or closes),
 * message (a decoded frame from a neighbour), malformed, capability (this
 * peer's facts changed), timer. Outputs: send (to one neighbour), broadcast
 * (to every neighbour, but `except`), role (the role, the server or the term
 * changed: the event the agent acts on), ban.
 *
 * The codec (encodeFrame, decodeFrame, FrameReader) is what a driver uses on
 * streams; decoders throw InvalidMessageError only. A simulator that wants no
 * keys uses checksumAuthenticator; the libp2p driver signs with Ed25519.
 */
export { Election, createElection } from './election.ts'
export { encodeFrame, decodeFrame, decodeClaim, encodeClaim, signedPayload, frameSize, FrameReader } from './codec.ts'
export { compareCapability, clearlyBetter, NO_CAPABILITY } from './capability.ts'
export { checksumAuthenticator } from './authenticator.ts'
export { InvalidMessageError } from '../wire/errors.ts'
export * from './constants.ts'
export type { Capability } from './capability.ts'
export type * from './messages.ts'
export type * from './types.ts'
