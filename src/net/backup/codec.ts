// The wire of /xo-mesh/backup/1.0.0 (docs/upstream.md, "Backups"): a laptop
// asks the school server for the encrypted backups it keeps of one owner
// bucket. One request and one response per stream, each one length-prefixed
// frame (core/wire/frames.ts):
//
//   request  = type (1: snapshots, 2: blobs) | bucket (32) | [count (u16 BE) | id (32)*count]   (blobs only)
//   response = answered (u16 BE) | record*      record = id (32) | length (u32 BE) | bytes
//
// A snapshots response lists every snapshot of the bucket (answered = their
// number). A blobs response answers the first `answered` ids asked, in order,
// with a record for each one the server holds (an id left out is not held);
// the asker asks again for the rest when the response would have grown past
// MAX_RESPONSE. Decoders throw InvalidMessageError and nothing else.
import { InvalidMessageError } from '../../core/wire/errors.ts'

export const PROTOCOL = '/xo-mesh/backup/1.0.0'
const ID = 32
/** Ids in one request at most. */
export const MAX_REQUEST_IDS = 512
export const MAX_REQUEST = 1 + ID + 2 + MAX_REQUEST_IDS * ID
/** A response's body at most, bytes (the server stops adding records before it). */
export const MAX_RESPONSE = 8 * 1024 * 1024

export type BackupRequest = { type: 'snapshots', bucket: Uint8Array } | { type: 'blobs', bucket: Uint8Array, ids: Uint8Array[] }
export interface BackupResponse { answered: number, records: Array<{ id: Uint8Array, bytes: Uint8Array }> }

export function encodeRequest (r: BackupRequest): Uint8Array {
  const ids = r.type === 'blobs' ? r.ids : []
  if (r.bucket.length !== ID || ids.length > MAX_REQUEST_IDS || ids.some(id => id.length !== ID)) throw new RangeError('backup request: bad bucket or ids')
  const out = new Uint8Array(1 + ID + (r.type === 'blobs' ? 2 + ids.length * ID : 0))
  out[0] = r.type === 'snapshots' ? 1 : 2
  out.set(r.bucket, 1)
  if (r.type === 'blobs') {
    new DataView(out.buffer).setUint16(1 + ID, ids.length)
    ids.forEach((id, i) => { out.set(id, 1 + ID + 2 + i * ID) })
  }
  return out
}

export function decodeRequest (b: Uint8Array): BackupRequest {
  if (b.length < 1 + ID) throw new InvalidMessageError('backup request: truncated')
  const bucket = b.subarray(1, 1 + ID)
  if (b[0] === 1) {
    if (b.length !== 1 + ID) throw new InvalidMessageError('backup request: trailing bytes')
    return { type: 'snapshots', bucket }
  }
  if (b[0] !== 2) throw new InvalidMessageError(`backup request: unknown type ${b[0]}`)
  if (b.length < 1 + ID + 2) throw new InvalidMessageError('backup request: truncated')
  const n = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint16(1 + ID)
  if (n > MAX_REQUEST_IDS) throw new InvalidMessageError(`backup request: ${n} ids exceed ${MAX_REQUEST_IDS}`)
  if (b.length !== 1 + ID + 2 + n * ID) throw new InvalidMessageError('backup request: length does not match the id count')
  const ids: Uint8Array[] = []
  for (let i = 0; i < n; i++) ids.push(b.subarray(1 + ID + 2 + i * ID, 1 + ID + 2 + (i + 1) * ID))
  return { type: 'blobs', bucket, ids }
}

export function encodeResponse (r: BackupResponse): Uint8Array {
  const size = 2 + r.records.reduce((n, x) => n + ID + 4 + x.bytes.length, 0)
  if (size > MAX_RESPONSE || r.answered > 0xffff) throw new RangeError('backup response: too large')
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  view.setUint16(0, r.answered)
  let at = 2
  for (const x of r.records) {
    if (x.id.length !== ID) throw new RangeError('backup response: an id has 32 bytes')
    out.set(x.id, at)
    view.setUint32(at + ID, x.bytes.length)
    out.set(x.bytes, at + ID + 4)
    at += ID + 4 + x.bytes.length
  }
  return out
}

export function decodeResponse (b: Uint8Array): BackupResponse {
  if (b.length < 2 || b.length > MAX_RESPONSE) throw new InvalidMessageError('backup response: bad length')
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const answered = view.getUint16(0)
  const records: BackupResponse['records'] = []
  let at = 2
  while (at < b.length) {
    if (b.length - at < ID + 4) throw new InvalidMessageError('backup response: truncated record')
    const len = view.getUint32(at + ID)
    if (len > b.length - at - ID - 4) throw new InvalidMessageError('backup response: record past the end')
    records.push({ id: b.subarray(at, at + ID), bytes: b.subarray(at + ID + 4, at + ID + 4 + len) })
    at += ID + 4 + len
  }
  if (records.length > answered) throw new InvalidMessageError('backup response: more records than answers')
  return { answered, records }
}

/** Bytes a record adds to a response. */
export function responseRecordSize (bytes: number): number {
  return ID + 4 + bytes
}
