// The body of a `backup-chunk` outbox item: one owner's encrypted blobs and
// snapshots, packed so that thousands of small journal blocks do not each
// cost an item (docs/upstream.md, "Backups"):
//
//   "XOB1" | bucket (32 bytes) | record*
//   record: type (1 byte: 1 blob, 2 snapshot) | id (32 bytes) | length (u32 BE) | bytes
//
// A pack is at most MAX_PACK_BYTES (an item's limit). Hops read packs they
// relay to keep the blobs for restore: a pack is untrusted input, so
// decodePack never throws and answers undefined for anything malformed.
import { ID_BYTES } from './crypto.ts'

/** An item's body limit (MAX_ITEM_BYTES of the relay). */
export const MAX_PACK_BYTES = 1024 * 1024
const MAGIC = [0x58, 0x4f, 0x42, 0x31] // "XOB1"
const HEADER = 4 + ID_BYTES
const RECORD_HEAD = 1 + ID_BYTES + 4
/** The largest blob a pack can carry. */
export const MAX_RECORD_BYTES = MAX_PACK_BYTES - HEADER - RECORD_HEAD

export type PackRecord = { type: 'blob' | 'snapshot', id: Uint8Array, bytes: Uint8Array }
export interface Pack { bucket: Uint8Array, records: PackRecord[] }

/** Bytes a record takes in a pack. */
export function recordSize (bytes: number): number {
  return RECORD_HEAD + bytes
}

/** Encodes a pack; throws RangeError past MAX_PACK_BYTES or on a malformed id (a bug, not input). */
export function encodePack (pack: Pack): Uint8Array {
  if (pack.bucket.length !== ID_BYTES) throw new RangeError('pack: a bucket has 32 bytes')
  const size = HEADER + pack.records.reduce((n, r) => n + recordSize(r.bytes.length), 0)
  if (size > MAX_PACK_BYTES) throw new RangeError(`pack: ${size} bytes exceed ${MAX_PACK_BYTES}`)
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  out.set(MAGIC, 0)
  out.set(pack.bucket, 4)
  let at = HEADER
  for (const r of pack.records) {
    if (r.id.length !== ID_BYTES) throw new RangeError('pack: an id has 32 bytes')
    out[at] = r.type === 'blob' ? 1 : 2
    out.set(r.id, at + 1)
    view.setUint32(at + 1 + ID_BYTES, r.bytes.length)
    out.set(r.bytes, at + RECORD_HEAD)
    at += recordSize(r.bytes.length)
  }
  return out
}

/** The pack in body, or undefined when it is not a well-formed one. Records are views of body. */
export function decodePack (body: Uint8Array): Pack | undefined {
  if (body.length < HEADER || body.length > MAX_PACK_BYTES) return undefined
  for (let i = 0; i < 4; i++) if (body[i] !== MAGIC[i]) return undefined
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength)
  const records: PackRecord[] = []
  let at = HEADER
  while (at < body.length) {
    if (body.length - at < RECORD_HEAD) return undefined
    const t = body[at]
    if (t !== 1 && t !== 2) return undefined
    const len = view.getUint32(at + 1 + ID_BYTES)
    if (len > body.length - at - RECORD_HEAD) return undefined
    records.push({ type: t === 1 ? 'blob' : 'snapshot', id: body.subarray(at + 1, at + 1 + ID_BYTES), bytes: body.subarray(at + RECORD_HEAD, at + RECORD_HEAD + len) })
    at += RECORD_HEAD + len
  }
  return { bucket: body.subarray(4, HEADER), records }
}

/** Gathers records into packs of at most MAX_PACK_BYTES, handing each full pack to `emit`. */
export class PackBuilder {
  private records: PackRecord[] = []
  private size = HEADER
  private readonly bucket: Uint8Array
  private readonly emit: (body: Uint8Array, records: PackRecord[]) => Promise<void>
  private readonly limit: number

  constructor (bucket: Uint8Array, emit: (body: Uint8Array, records: PackRecord[]) => Promise<void>, limit = MAX_PACK_BYTES) {
    this.bucket = bucket
    this.emit = emit
    this.limit = limit
  }

  async add (record: PackRecord): Promise<void> {
    if (recordSize(record.bytes.length) + HEADER > this.limit) throw new RangeError(`a backup blob of ${record.bytes.length} bytes does not fit in a pack`)
    if (this.size + recordSize(record.bytes.length) > this.limit) await this.flush()
    this.records.push(record)
    this.size += recordSize(record.bytes.length)
  }

  async flush (): Promise<void> {
    if (this.records.length === 0) return
    const records = this.records
    this.records = []
    this.size = HEADER
    await this.emit(encodePack({ bucket: this.bucket, records }), records)
  }
}
