// The wire codec of /xo-mesh/election/1.0.0 (protocols/election.md):
//
//   frame = uvarint(bodyLength) Frame          0 < bodyLength ≤ MAX_FRAME_SIZE
//
// Frame holds one message (1.0.0 has one: Claims). A claim travels as the
// exact bytes its peer signed, so a relay forwards it untouched. Decoders
// throw InvalidMessageError, and nothing else, on any input; everything they
// return is within the protocol's limits.
import { InvalidMessageError } from '../wire/errors.ts'
import { LengthPrefixedReader, lengthPrefixed } from '../wire/frames.ts'
import { LEN, Reader, VARINT, Writer } from '../wire/protobuf.ts'
import { MAX_AGE_MS, MAX_CLAIMS_PER_FRAME, MAX_CLAIM_SIZE, MAX_FRAME_SIZE, MAX_HOPS, MAX_PEER_ID_LENGTH, MAX_SIGNATURE_SIZE, SIGNATURE_CONTEXT } from './constants.ts'
import type { Capability } from './capability.ts'
import type { Claim, ElectionMessage, SignedClaim } from './messages.ts'

const FRAME_CLAIMS = 1
const CONTEXT = new TextEncoder().encode(SIGNATURE_CONTEXT)

// ---- encoding ---------------------------------------------------------------

function capabilityWriter (c: Capability): Writer {
  return new Writer(48)
    .bool(1, c.pinned)
    .bool(2, c.upstream)
    .bool(3, c.ac)
    .uint32(4, c.battery)
    .uint53(5, c.freeDiskMiB)
    .uint53(6, c.uptimeS)
}

/**
 * The bytes a peer signs for a claim (and that travel as SignedClaim.claim).
 * Throws RangeError for a claim outside the protocol's limits (a bug of the
 * caller).
 */
export function encodeClaim (c: Claim): Uint8Array {
  checkClaim(c, m => { throw new RangeError(`claim: ${m}`) })
  const w = new Writer(160)
    .string(1, c.peer)
    .uint53(2, c.incarnation)
    .uint53(3, c.seq)
    .message(4, capabilityWriter(c.capability))
    .bool(5, c.serving)
    .uint53(6, c.term)
  const out = w.finish()
  if (out.length > MAX_CLAIM_SIZE) throw new RangeError(`claim of ${out.length} bytes exceeds ${MAX_CLAIM_SIZE}`)
  return out.slice()
}

/** What a signature covers: SIGNATURE_CONTEXT then the claim's bytes. */
export function signedPayload (claimBytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(CONTEXT.length + claimBytes.length)
  out.set(CONTEXT, 0)
  out.set(claimBytes, CONTEXT.length)
  return out
}

/** A whole frame, length prefix included. Throws RangeError beyond the limits (the core splits larger batches). */
export function encodeFrame (m: ElectionMessage): Uint8Array {
  if (m.claims.length > MAX_CLAIMS_PER_FRAME) throw new RangeError(`${m.claims.length} claims exceed ${MAX_CLAIMS_PER_FRAME}`)
  const inner = new Writer(m.claims.length * 200 + 8)
  for (const c of m.claims) {
    if (c.hops > MAX_HOPS) throw new RangeError(`hops ${c.hops} exceed ${MAX_HOPS}`)
    if (c.signature.length > MAX_SIGNATURE_SIZE) throw new RangeError('signature too long')
    if (!Number.isInteger(c.age) || c.age < 0 || c.age > MAX_AGE_MS) throw new RangeError(`age ${c.age} is not 0..${MAX_AGE_MS}`)
    inner.message(1, new Writer(c.bytes.length + c.signature.length + 24).bytes(1, c.bytes, true).bytes(2, c.signature, true).uint32(3, c.hops).uint32(4, c.age))
  }
  const body = new Writer(inner.length + 8).message(FRAME_CLAIMS, inner).finish()
  if (body.length > MAX_FRAME_SIZE) throw new RangeError(`frame of ${body.length} bytes exceeds ${MAX_FRAME_SIZE}`)
  return lengthPrefixed(body)
}

/** Bytes a message takes on the wire, length prefix included (for simulators). */
export function frameSize (m: ElectionMessage): number {
  return encodeFrame(m).length
}

// ---- decoding ---------------------------------------------------------------

function checkClaim (c: Claim, fail: (why: string) => never): void {
  if (c.peer.length === 0) fail('no peer')
  if (new TextEncoder().encode(c.peer).length > MAX_PEER_ID_LENGTH) fail(`peer id exceeds ${MAX_PEER_ID_LENGTH} bytes`)
  for (const [k, v] of [['incarnation', c.incarnation], ['seq', c.seq], ['term', c.term], ['freeDiskMiB', c.capability.freeDiskMiB], ['uptimeS', c.capability.uptimeS]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) fail(`${k} ${v} is not a non-negative safe integer`)
  }
  if (!Number.isInteger(c.capability.battery) || c.capability.battery < 0 || c.capability.battery > 100) fail(`battery ${c.capability.battery} is not 0..100`)
}

function decodeCapability (r: Reader): Capability {
  const c: Capability = { pinned: false, upstream: false, ac: false, battery: 0, freeDiskMiB: 0, uptimeS: 0 }
  const seen = new Set<number>()
  while (!r.eof()) {
    const { field, wire } = r.tag()
    if (field >= 1 && field <= 6) {
      if (wire !== VARINT) r.fail(`field ${field} has wire type ${wire}`)
      if (seen.has(field)) r.fail(`field ${field} given twice`)
      seen.add(field)
    }
    switch (field) {
      case 1: c.pinned = r.bool(); break
      case 2: c.upstream = r.bool(); break
      case 3: c.ac = r.bool(); break
      case 4: c.battery = r.uint32(); if (c.battery > 100) r.fail(`battery ${c.battery} exceeds 100`); break
      case 5: c.freeDiskMiB = r.uint53(); break
      case 6: c.uptimeS = r.uint53(); break
      default: r.skip(wire)
    }
  }
  return c
}

/**
 * Decodes the signed bytes of a claim. Throws InvalidMessageError, and only
 * that, when they are not a valid Claim within the limits.
 */
export function decodeClaim (bytes: Uint8Array): Claim {
  if (bytes.length > MAX_CLAIM_SIZE) throw new InvalidMessageError(`claim: ${bytes.length} bytes exceed ${MAX_CLAIM_SIZE}`)
  const r = new Reader(bytes, 'claim')
  let peer: string | undefined
  let capability: Capability | undefined
  const c = { incarnation: 0, seq: 0, serving: false, term: 0 }
  const seen = new Set<number>()
  while (!r.eof()) {
    const { field, wire } = r.tag()
    if (field >= 1 && field <= 6) {
      if (wire !== ((field === 1 || field === 4) ? LEN : VARINT)) r.fail(`field ${field} has wire type ${wire}`)
      if (seen.has(field)) r.fail(`field ${field} given twice`)
      seen.add(field)
    }
    switch (field) {
      case 1: peer = r.string(MAX_PEER_ID_LENGTH); break
      case 2: c.incarnation = r.uint53(); break
      case 3: c.seq = r.uint53(); break
      case 4: {
        const inner = r.bytes()
        const start = inner.byteOffset - bytes.byteOffset
        capability = decodeCapability(new Reader(bytes, 'capability', start, start + inner.length))
        break
      }
      case 5: c.serving = r.bool(); break
      case 6: c.term = r.uint53(); break
      default: r.skip(wire)
    }
  }
  if (peer === undefined || peer.length === 0) return r.fail('no peer')
  if (capability === undefined) return r.fail('no capability')
  return { peer, ...c, capability }
}

function decodeSignedClaim (r: Reader): SignedClaim {
  let bytes: Uint8Array | undefined
  let signature: Uint8Array | undefined
  let hops: number | undefined
  let age: number | undefined
  while (!r.eof()) {
    const { field, wire } = r.tag()
    if (field === 1) {
      if (wire !== LEN || bytes !== undefined) r.fail('claim given twice or with a wrong wire type')
      bytes = r.bytes()
      if (bytes.length > MAX_CLAIM_SIZE) r.fail(`claim of ${bytes.length} bytes exceeds ${MAX_CLAIM_SIZE}`)
    } else if (field === 2) {
      if (wire !== LEN || signature !== undefined) r.fail('signature given twice or with a wrong wire type')
      signature = r.bytes()
      if (signature.length > MAX_SIGNATURE_SIZE) r.fail(`signature of ${signature.length} bytes exceeds ${MAX_SIGNATURE_SIZE}`)
    } else if (field === 3) {
      if (wire !== VARINT || hops !== undefined) r.fail('hops given twice or with a wrong wire type')
      hops = r.uint32()
      if (hops > MAX_HOPS) r.fail(`hops ${hops} exceed ${MAX_HOPS}`)
    } else if (field === 4) {
      if (wire !== VARINT || age !== undefined) r.fail('age given twice or with a wrong wire type')
      age = r.uint32()
      if (age > MAX_AGE_MS) r.fail(`age ${age} exceeds ${MAX_AGE_MS}`)
    } else r.skip(wire)
  }
  if (bytes === undefined) return r.fail('no claim')
  if (signature === undefined || signature.length === 0) return r.fail('no signature')
  // copies: the frame's buffer is the stream's, and a relay keeps these
  const own = bytes.slice()
  return { claim: decodeClaim(own), bytes: own, signature: signature.slice(), hops: hops ?? 0, age: age ?? 0 }
}

/**
 * Decodes a frame body (the bytes after the length prefix, as FrameReader
 * yields them). Throws InvalidMessageError, and only that, when the body is
 * not a valid frame.
 */
export function decodeFrame (body: Uint8Array): ElectionMessage {
  if (!(body instanceof Uint8Array)) throw new InvalidMessageError('frame: not bytes')
  if (body.length === 0) throw new InvalidMessageError('frame: empty')
  if (body.length > MAX_FRAME_SIZE) throw new InvalidMessageError(`frame: ${body.length} bytes exceed ${MAX_FRAME_SIZE}`)
  const r = new Reader(body, 'frame')
  let message: ElectionMessage | undefined
  while (!r.eof()) {
    const { field, wire } = r.tag()
    if (field !== FRAME_CLAIMS) return r.fail(`unknown message type ${field}`)
    if (wire !== LEN) r.fail(`message claims has wire type ${wire}`)
    if (message !== undefined) r.fail('more than one message in a frame')
    const inner = r.bytes()
    const start = inner.byteOffset - body.byteOffset
    const mr = new Reader(body, 'claims', start, start + inner.length)
    const claims: SignedClaim[] = []
    while (!mr.eof()) {
      const { field: f, wire: w } = mr.tag()
      if (f !== 1) { mr.skip(w); continue }
      if (w !== LEN) mr.fail(`claim has wire type ${w}`)
      if (claims.length >= MAX_CLAIMS_PER_FRAME) mr.fail(`more than ${MAX_CLAIMS_PER_FRAME} claims`)
      const sb = mr.bytes()
      const s = sb.byteOffset - body.byteOffset
      claims.push(decodeSignedClaim(new Reader(body, 'signed claim', s, s + sb.length)))
    }
    if (claims.length === 0) mr.fail('no claims')
    message = { type: 'claims', claims }
  }
  if (message === undefined) return r.fail('no message')
  return message
}

/** Splits a byte stream into frame bodies of at most MAX_FRAME_SIZE (see LengthPrefixedReader). */
export class FrameReader extends LengthPrefixedReader {
  constructor () {
    super(MAX_FRAME_SIZE)
  }
}
