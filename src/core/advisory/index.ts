/**
 * The sans-IO core of the advisory protocol, /xo-mesh/advisory/1.0.0
 * (protocols/advisory.md): Trickle adverts of the snapshot each agent holds,
 * pull on mismatch, adopt only what the injected verify accepts at a higher
 * version. A driver (libp2p, the simulator, a test harness) creates one
 * Advisory per agent and frames messages with encodeMessage/decodeMessage.
 */
export { Advisory } from './advisory.ts'
export type { AdvisoryInit, AdvisoryInput, AdvisoryOutput, Held, Verify, VerifyResult } from './advisory.ts'
export { Trickle } from './trickle.ts'
export type { TrickleParams } from './trickle.ts'
export { encodeMessage, decodeMessage } from './codec.ts'
export { InvalidMessageError } from '../wire/errors.ts'
export type * from './messages.ts'
export * from './constants.ts'
export { ResultSet, encodeResult, decodeResult, resultBody, INSTALL_RESULT_CONTEXT, ORIGIN_KEY_BYTES, RESULT_SIGNATURE_BYTES, RESULT_ID_BYTES } from './results.ts'
export type { InstallResult, CheckedResult, CheckResult, Tally } from './results.ts'
export { rolloutPosition, rolloutDecision } from './rollout.ts'
export type { RolloutPlan, RolloutWave, RolloutDecision } from './rollout.ts'
