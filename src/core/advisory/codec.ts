// The wire codec of /xo-mesh/advisory/1.0.0: one protobuf `AdvisoryFrame`
// (advisory.proto) per length-prefixed frame, the prefix being the driver's
// (uvarint, at most MAX_MESSAGE_SIZE). Hand-written over the exchange's
// bounded protobuf helpers; decodeMessage throws InvalidMessageError, and
// nothing else, on any input.
import { InvalidMessageError } from '../wire/errors.ts'
import { LEN, Reader, VARINT, Writer } from '../wire/protobuf.ts'
import { MAX_HASH_BYTES, MAX_MESSAGE_SIZE, MAX_RESULTS_PER_MESSAGE, MAX_RESULT_BYTES, MAX_ROOTS_PER_MESSAGE, MAX_ROOT_BYTES, MAX_SNAPSHOT_BYTES, RESULTS_DIGEST_BYTES } from './constants.ts'
import type { AdvisoryMessage } from './messages.ts'

const FIELD = { state: 1, request: 2, snapshot: 3, results: 4 } as const

/** The protobuf bytes of a message. Throws RangeError when it breaks the limits (the caller's bug). */
export function encodeMessage (m: AdvisoryMessage): Uint8Array {
  const inner = new Writer(m.type === 'snapshot' ? m.snapshot.length + 64 : 64)
  switch (m.type) {
    case 'state':
      if (m.hash.length > MAX_HASH_BYTES) throw new RangeError('hash too long')
      if ((m.resultsDigest?.length ?? 0) !== 0 && m.resultsDigest!.length !== RESULTS_DIGEST_BYTES) throw new RangeError('results digest is not 32 bytes')
      inner.uint32(1, m.version).bytes(2, m.hash).uint32(3, m.rootVersion).bytes(4, m.resultsDigest ?? new Uint8Array(0)).uint32(5, m.resultsCount ?? 0)
      break
    case 'results':
      if (m.records.length === 0 || m.records.length > MAX_RESULTS_PER_MESSAGE) throw new RangeError(`${m.records.length} results`)
      for (const r of m.records) {
        if (r.length === 0 || r.length > MAX_RESULT_BYTES) throw new RangeError(`a result of ${r.length} bytes`)
        inner.bytes(1, r, true)
      }
      break
    case 'request':
      inner.uint32(1, m.version).uint32(2, m.rootVersion)
      break
    case 'snapshot':
      if (m.snapshot.length === 0 || m.snapshot.length > MAX_SNAPSHOT_BYTES) throw new RangeError(`snapshot of ${m.snapshot.length} bytes`)
      if (m.roots.length > MAX_ROOTS_PER_MESSAGE) throw new RangeError(`${m.roots.length} roots`)
      inner.bytes(1, m.snapshot)
      for (const r of m.roots) {
        if (r.length === 0 || r.length > MAX_ROOT_BYTES) throw new RangeError(`root of ${r.length} bytes`)
        inner.bytes(2, r, true)
      }
      break
  }
  const out = new Writer(inner.length + 8).message(FIELD[m.type], inner).finish()
  if (out.length > MAX_MESSAGE_SIZE) throw new RangeError(`message of ${out.length} bytes`)
  return out
}

/** Field numbers each message knows, with their wire types; other fields are skipped. */
const KNOWN: Record<AdvisoryMessage['type'], Record<number, number>> = {
  state: { 1: VARINT, 2: LEN, 3: VARINT, 4: LEN, 5: VARINT },
  request: { 1: VARINT, 2: VARINT },
  snapshot: { 1: LEN, 2: LEN },
  results: { 1: LEN }
}

function decodeInner (type: AdvisoryMessage['type'], r: Reader): AdvisoryMessage {
  let a = 0
  let b = 0
  let hash: Uint8Array = new Uint8Array(0)
  let snapshot: Uint8Array | undefined
  const roots: Uint8Array[] = []
  let digest: Uint8Array = new Uint8Array(0)
  let count = 0
  const records: Uint8Array[] = []
  while (!r.eof()) {
    const { field, wire } = r.tag()
    const want = KNOWN[type][field]
    if (want === undefined) { r.skip(wire); continue }
    if (wire !== want) r.fail(`field ${field} has wire type ${wire}, not ${want}`)
    if (type === 'results') {
      if (records.length >= MAX_RESULTS_PER_MESSAGE) r.fail(`more than ${MAX_RESULTS_PER_MESSAGE} results`)
      const rec = r.bytes()
      if (rec.length === 0 || rec.length > MAX_RESULT_BYTES) r.fail(`a result of ${rec.length} bytes`)
      records.push(rec)
    } else if (type === 'state' && field === 4) {
      digest = r.bytes()
      if (digest.length !== 0 && digest.length !== RESULTS_DIGEST_BYTES) r.fail(`results digest of ${digest.length} bytes`)
    } else if (type === 'state' && field === 5) count = r.uint32()
    else if (field === 1 && type !== 'snapshot') a = r.uint32()
    else if (field === 3 || (field === 2 && type === 'request')) b = r.uint32()
    else if (type === 'state') {
      hash = r.bytes()
      if (hash.length > MAX_HASH_BYTES) r.fail(`hash of ${hash.length} bytes`)
    } else if (field === 1) {
      if (snapshot !== undefined) r.fail('two snapshots')
      snapshot = r.bytes()
      if (snapshot.length === 0 || snapshot.length > MAX_SNAPSHOT_BYTES) r.fail(`snapshot of ${snapshot.length} bytes`)
    } else {
      if (roots.length >= MAX_ROOTS_PER_MESSAGE) r.fail(`more than ${MAX_ROOTS_PER_MESSAGE} roots`)
      const root = r.bytes()
      if (root.length === 0 || root.length > MAX_ROOT_BYTES) r.fail(`root of ${root.length} bytes`)
      roots.push(root)
    }
  }
  switch (type) {
    case 'state':
      if ((a === 0) !== (hash.length === 0)) r.fail('a version without a hash, or a hash without a version')
      if ((count === 0) !== (digest.length === 0)) r.fail('a results count without a digest, or a digest without a count')
      return { type, version: a, hash, rootVersion: b, ...(count > 0 ? { resultsDigest: digest, resultsCount: count } : {}) }
    case 'request':
      return { type, version: a, rootVersion: b }
    case 'snapshot':
      if (snapshot === undefined) return r.fail('a Snapshot without its snapshot')
      return { type, snapshot, roots }
    case 'results':
      if (records.length === 0) return r.fail('a Results without results')
      return { type, records }
  }
}

/**
 * Parses one message (a frame's body). Throws InvalidMessageError, and
 * nothing else, when it breaks advisory.proto or the limits; byte fields of
 * the result are views into `body`.
 */
export function decodeMessage (body: Uint8Array): AdvisoryMessage {
  try {
    if (body.length > MAX_MESSAGE_SIZE) throw new InvalidMessageError(`advisory: message of ${body.length} bytes exceeds ${MAX_MESSAGE_SIZE}`)
    const r = new Reader(body, 'advisory')
    let out: AdvisoryMessage | undefined
    while (!r.eof()) {
      const { field, wire } = r.tag()
      const type = field === 1 ? 'state' : field === 2 ? 'request' : field === 3 ? 'snapshot' : field === 4 ? 'results' : undefined
      if (type === undefined) return r.fail(`unknown message ${field}`)
      if (wire !== LEN) r.fail('a message is not length-delimited')
      if (out !== undefined) r.fail('more than one message in a frame')
      const inner = r.bytes()
      out = decodeInner(type, new Reader(inner, `advisory ${type}`))
    }
    if (out === undefined) return r.fail('an empty frame')
    return out
  } catch (err) {
    if (err instanceof InvalidMessageError) throw err
    throw new InvalidMessageError(`advisory: ${(err as Error).message}`)
  }
}
