/**
 * The sans-IO core of the block exchange, /xo-mesh/blocks/1.0.0
 * (protocols/blocks.md). A driver (libp2p, the simulator, a test harness)
 * creates one Exchange per agent, feeds it inputs with the time, carries out
 * the outputs and calls it again at nextDeadline():
 *
 *   const core = new Exchange({ random: seededRandom })
 *   for (const o of core.handle({ type: 'hold', root }, now)) act(o)
 *
 * The codec (encodeFrame, encodeBlocksHead, decodeFrame, FrameReader) is what
 * the driver uses on streams; decoders throw InvalidMessageError only.
 */
export { Exchange } from './exchange.ts'
export { decodeFrame, encodeFrame, encodeBlocksHead, frameSize, blocksHeadSize, FrameReader } from './codec.ts'
export { InvalidMessageError } from './errors.ts'
export { isValidCid, cidKey } from './cid-bytes.ts'
export { bitfieldLength, emptyBitfield, fullBitfield, hasBit, setBit, clearBit, countBits, isBitfieldFor } from './bitfield.ts'
export * from './constants.ts'
export type * from './messages.ts'
export type * from './types.ts'
