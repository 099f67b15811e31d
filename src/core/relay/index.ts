/**
 * The sans-IO core of the upstream relay, /xo-mesh/relay/1.0.0
 * (protocols/relay.md): outbox items carried hop by hop towards the
 * mothership under custody receipts, delivered exactly once.
 *
 *   const core = new Relay({ random: seededRandom })
 *   for (const o of core.handle({ type: 'upstream', peer }, now)) act(o)
 *
 * The codec (encodeFrame, decodeFrame; its FrameReader splits the
 * stream) is what a driver uses on streams; decodeFrame throws
 * InvalidMessageError only.
 */
export { Relay, type RelayInit } from './relay.ts'
export { FrameReader, decodeFrame, encodeFrame, frameSize } from './codec.ts'
export { isValidOrigin } from './origin.ts'
export { HeldCounters, MAX_INTERVALS } from './held.ts'
export { InvalidMessageError } from '../wire/errors.ts'
export * from './constants.ts'
export type * from './types.ts'
