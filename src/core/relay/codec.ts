// The wire codec of /xo-mesh/relay/1.0.0 (protocols/relay.md, relay.proto):
//
//   frame = uvarint(bodyLength) body        0 < bodyLength ≤ MAX_FRAME_SIZE
//   body  = a protobuf `Frame` holding exactly one Offer, Receipt or Refusal
//
// Hand-written over the exchange's protobuf primitives; the length prefix is
// split off by the exchange's FrameReader. decodeFrame throws
// InvalidMessageError, and nothing else, on any input, and checks every limit
// before it allocates.
import { InvalidMessageError } from '../wire/errors.ts'
import { LEN, Reader, VARINT, Writer, putUvarint, uvarintLength } from '../wire/protobuf.ts'
import { LengthPrefixedReader } from '../wire/frames.ts'
import { MAX_BATCH_ITEMS, MAX_BATCH_ORIGINS, MAX_COUNTER, MAX_FRAME_SIZE, MAX_ITEM_BYTES, MAX_ORIGIN_LENGTH, MAX_RETRY_AFTER_MS } from './constants.ts'
import { isValidOrigin } from './origin.ts'
import type { Custody, Item, ItemKind, Message, RefusalReason } from './types.ts'

const FIELD = { offer: 1, receipt: 2, refusal: 3 } as const
const KIND: Record<ItemKind, number> = { statistics: 1, 'install-report': 2, 'backup-chunk': 3, registration: 4 }
const KIND_OF = new Map(Object.entries(KIND).map(([k, v]) => [v, k as ItemKind]))
const REASON: Record<RefusalReason, number> = { full: 1, busy: 2, declined: 3 }
const REASON_OF = new Map(Object.entries(REASON).map(([k, v]) => [v, k as RefusalReason]))

// ---- encoding ---------------------------------------------------------------

function ascii (s: string): Uint8Array {
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
  return out
}

/** A uint64 field holding a safe integer (omitted when 0). */
function u53 (w: Writer, field: number, v: number): void {
  if (v !== 0) w.tag(field, VARINT).uvarint(v)
}

function check (ok: boolean, why: string): void {
  if (!ok) throw new RangeError(`relay message: ${why}`)
}

function checkItem (it: Item): void {
  check(isValidOrigin(it.origin), `origin ${JSON.stringify(it.origin).slice(0, 40)} is not an origin id`)
  check(Number.isSafeInteger(it.counter) && it.counter >= 1, `counter ${it.counter} is not an integer ≥ 1`)
  check(Number.isSafeInteger(it.created) && it.created >= 0, `created ${it.created} is not an integer ≥ 0`)
  check(KIND[it.kind] !== undefined, `kind ${String(it.kind)} is unknown`)
  check(it.body.length <= MAX_ITEM_BYTES, `body of ${it.body.length} bytes exceeds ${MAX_ITEM_BYTES}`)
}

function body (m: Message): Writer {
  const w = new Writer(256)
  w.uint32(1, m.batch)
  switch (m.type) {
    case 'offer': {
      check(m.items.length > 0 && m.items.length <= MAX_BATCH_ITEMS, `${m.items.length} items (1 to ${MAX_BATCH_ITEMS})`)
      // Items are grouped into runs by origin, in order of first appearance.
      const runs = new Map<string, Item[]>()
      for (const it of m.items) {
        checkItem(it)
        const run = runs.get(it.origin)
        if (run === undefined) runs.set(it.origin, [it])
        else run.push(it)
      }
      check(runs.size <= MAX_BATCH_ORIGINS, `${runs.size} origins exceed ${MAX_BATCH_ORIGINS}`)
      for (const [origin, items] of runs) {
        const run = new Writer(64)
        run.bytes(1, ascii(origin))
        for (const it of items) {
          const e = new Writer(it.body.length + 32)
          u53(e, 1, it.counter)
          e.uint32(2, KIND[it.kind])
          u53(e, 3, it.created)
          e.bytes(4, it.body)
          run.message(2, e)
        }
        w.message(2, run)
      }
      break
    }
    case 'receipt': {
      check(m.custody.length <= MAX_BATCH_ORIGINS, `${m.custody.length} origins exceed ${MAX_BATCH_ORIGINS}`)
      let counters = 0
      for (const c of m.custody) {
        check(isValidOrigin(c.origin), 'an origin is not an origin id')
        check(Number.isSafeInteger(c.contiguous) && c.contiguous >= 0, `contiguous ${c.contiguous} is not an integer ≥ 0`)
        counters += c.above.length
        const h = new Writer(64 + c.above.length * 4)
        h.bytes(1, ascii(c.origin))
        u53(h, 2, c.contiguous)
        if (c.above.length > 0) {
          let len = 0
          let prev = c.contiguous
          for (const a of c.above) {
            check(Number.isSafeInteger(a) && a > prev, 'above is not ascending past contiguous')
            prev = a
            len += uvarintLength(a)
          }
          h.tag(3, LEN).uvarint(len)
          for (const a of c.above) h.uvarint(a)
        }
        w.message(2, h)
      }
      check(counters <= MAX_BATCH_ITEMS, `${counters} counters above contiguous exceed ${MAX_BATCH_ITEMS}`)
      break
    }
    case 'refusal':
      check(Number.isSafeInteger(m.retryAfterMs) && m.retryAfterMs >= 0 && m.retryAfterMs <= MAX_RETRY_AFTER_MS, `retryAfterMs ${m.retryAfterMs} is out of range`)
      w.uint32(2, REASON[m.reason])
      w.uint32(3, m.retryAfterMs)
      break
  }
  return w
}

/**
 * A whole frame, length prefix included, ready to write. Throws RangeError on
 * a message outside the protocol's limits (a bug of the caller).
 */
export function encodeFrame (m: Message): Uint8Array {
  check(Number.isInteger(m.batch) && m.batch >= 0 && m.batch <= 0xffffffff, `batch ${m.batch} is not a uint32`)
  const inner = body(m)
  const frame = new Writer(inner.length + 8).message(FIELD[m.type], inner).finish()
  check(frame.length <= MAX_FRAME_SIZE, `frame of ${frame.length} bytes exceeds ${MAX_FRAME_SIZE}`)
  const out = new Uint8Array(uvarintLength(frame.length) + frame.length)
  out.set(frame, putUvarint(out, 0, frame.length))
  return out
}

// ---- decoding ---------------------------------------------------------------

/** A uvarint below 2^53, minimal, in at most 8 bytes. */
function u53Read (r: Reader): number {
  let v = 0
  let mul = 1
  for (let i = 0; i < 8; i++) {
    if (r.pos >= r.end) r.fail('truncated varint')
    const b = r.buf[r.pos++]!
    v += (b & 0x7f) * mul
    if (b < 0x80) {
      if (b === 0 && i > 0) r.fail('non-minimal varint')
      if (v > MAX_COUNTER) r.fail('integer exceeds 2^53 - 1')
      return v
    }
    mul *= 128
  }
  return r.fail('integer exceeds 2^53 - 1')
}

function want (r: Reader, wire: number, expected: number, name: string): void {
  if (wire !== expected) r.fail(`${name} has wire type ${wire}`)
}

function originRead (r: Reader): string {
  const b = r.bytes()
  if (b.length === 0 || b.length > MAX_ORIGIN_LENGTH) r.fail(`origin of ${b.length} bytes (1 to ${MAX_ORIGIN_LENGTH})`)
  let s = ''
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!
    const ok = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
    if (!ok) r.fail('origin holds a character other than a letter or digit')
    s += String.fromCharCode(c)
  }
  return s
}

/** A sub-reader over the next length-delimited field. */
function sub (r: Reader, what: string): Reader {
  const b = r.bytes()
  const start = b.byteOffset - r.buf.byteOffset
  return new Reader(r.buf, what, start, start + b.length)
}

interface Counts { items: number, origins: number }

function entryRead (r: Reader, origin: string): Item {
  let counter: number | undefined
  let kind: number | undefined
  let created: number | undefined
  let body: Uint8Array | undefined
  while (!r.eof()) {
    const { field, wire } = r.tag()
    if (field === 1) {
      want(r, wire, VARINT, 'counter'); if (counter !== undefined) r.fail('counter given twice')
      counter = u53Read(r)
    } else if (field === 2) {
      want(r, wire, VARINT, 'kind'); if (kind !== undefined) r.fail('kind given twice')
      kind = r.uint32()
    } else if (field === 3) {
      want(r, wire, VARINT, 'created'); if (created !== undefined) r.fail('created given twice')
      created = u53Read(r)
    } else if (field === 4) {
      want(r, wire, LEN, 'body'); if (body !== undefined) r.fail('body given twice')
      const b = r.bytes()
      if (b.length > MAX_ITEM_BYTES) r.fail(`body of ${b.length} bytes exceeds ${MAX_ITEM_BYTES}`)
      body = b
    } else r.skip(wire)
  }
  if (counter === undefined || counter < 1) return r.fail('an item has no counter ≥ 1')
  const k = KIND_OF.get(kind ?? 0)
  if (k === undefined) return r.fail(`unknown item kind ${kind ?? 0}`)
  return { origin, counter, kind: k, created: created ?? 0, body: body ?? new Uint8Array(0) }
}

function runRead (r: Reader, out: Item[], counts: Counts, origins: Set<string>): void {
  let origin: string | undefined
  const entries: Reader[] = []
  while (!r.eof()) {
    const { field, wire } = r.tag()
    if (field === 1) {
      want(r, wire, LEN, 'origin'); if (origin !== undefined) r.fail('origin given twice')
      origin = originRead(r)
    } else if (field === 2) {
      want(r, wire, LEN, 'item')
      if (++counts.items > MAX_BATCH_ITEMS) r.fail(`more than ${MAX_BATCH_ITEMS} items`)
      entries.push(sub(r, 'item'))
    } else r.skip(wire)
  }
  if (origin === undefined) return r.fail('a run has no origin')
  if (origins.has(origin)) r.fail('an origin has two runs')
  origins.add(origin)
  if (entries.length === 0) r.fail('a run has no items')
  const seen = new Set<number>()
  for (const e of entries) {
    const it = entryRead(e, origin)
    if (seen.has(it.counter)) r.fail('a counter appears twice')
    seen.add(it.counter)
    out.push(it)
  }
}

function custodyRead (r: Reader, counts: Counts): Custody {
  let origin: string | undefined
  let contiguous: number | undefined
  const above: number[] = []
  while (!r.eof()) {
    const { field, wire } = r.tag()
    if (field === 1) {
      want(r, wire, LEN, 'origin'); if (origin !== undefined) r.fail('origin given twice')
      origin = originRead(r)
    } else if (field === 2) {
      want(r, wire, VARINT, 'contiguous'); if (contiguous !== undefined) r.fail('contiguous given twice')
      contiguous = u53Read(r)
    } else if (field === 3) {
      const push = (v: number): void => {
        if (++counts.items > MAX_BATCH_ITEMS) r.fail(`more than ${MAX_BATCH_ITEMS} counters above contiguous`)
        above.push(v)
      }
      if (wire === LEN) {
        const p = sub(r, 'above')
        while (!p.eof()) push(u53Read(p))
      } else if (wire === VARINT) push(u53Read(r))
      else r.fail(`above has wire type ${wire}`)
    } else r.skip(wire)
  }
  if (origin === undefined) return r.fail('a custody entry has no origin')
  const c = contiguous ?? 0
  let prev = c
  for (const a of above) {
    if (a <= prev) r.fail('above is not strictly ascending past contiguous')
    prev = a
  }
  return { origin, contiguous: c, above }
}

function messageRead (r: Reader, type: Message['type']): Message {
  let batch: number | undefined
  let reason: number | undefined
  let retry: number | undefined
  const items: Item[] = []
  const custody: Custody[] = []
  const counts: Counts = { items: 0, origins: 0 }
  const origins = new Set<string>()
  while (!r.eof()) {
    const { field, wire } = r.tag()
    if (field === 1) {
      want(r, wire, VARINT, 'batch'); if (batch !== undefined) r.fail('batch given twice')
      batch = r.uint32()
    } else if (field === 2 && type !== 'refusal') {
      want(r, wire, LEN, type === 'offer' ? 'run' : 'custody')
      if (++counts.origins > MAX_BATCH_ORIGINS) r.fail(`more than ${MAX_BATCH_ORIGINS} origins`)
      const s = sub(r, type === 'offer' ? 'run' : 'custody')
      if (type === 'offer') runRead(s, items, counts, origins)
      else {
        const c = custodyRead(s, counts)
        if (origins.has(c.origin)) r.fail('an origin appears twice')
        origins.add(c.origin)
        custody.push(c)
      }
    } else if (field === 2 && type === 'refusal') {
      want(r, wire, VARINT, 'reason'); if (reason !== undefined) r.fail('reason given twice')
      reason = r.uint32()
    } else if (field === 3 && type === 'refusal') {
      want(r, wire, VARINT, 'retry_after_ms'); if (retry !== undefined) r.fail('retry_after_ms given twice')
      retry = r.uint32()
    } else r.skip(wire)
  }
  const b = batch ?? 0
  switch (type) {
    case 'offer':
      if (items.length === 0) r.fail('an offer has no items')
      return { type, batch: b, items }
    case 'receipt':
      return { type, batch: b, custody }
    case 'refusal': {
      const why = REASON_OF.get(reason ?? 0)
      if (why === undefined) return r.fail(`unknown refusal reason ${reason ?? 0}`)
      const after = retry ?? 0
      if (after > MAX_RETRY_AFTER_MS) r.fail(`retry_after_ms ${after} exceeds ${MAX_RETRY_AFTER_MS}`)
      return { type, batch: b, reason: why, retryAfterMs: after }
    }
  }
}

/**
 * Decodes a frame body (the bytes after the length prefix). Item bodies are
 * views into `body`. Throws InvalidMessageError, and only that, when the body
 * is not a valid frame.
 */
export function decodeFrame (body: Uint8Array): Message {
  if (!(body instanceof Uint8Array)) throw new InvalidMessageError('relay frame: not bytes')
  if (body.length === 0) throw new InvalidMessageError('relay frame: empty')
  if (body.length > MAX_FRAME_SIZE) throw new InvalidMessageError(`relay frame: ${body.length} bytes exceed ${MAX_FRAME_SIZE}`)
  const r = new Reader(body, 'relay frame')
  let message: Message | undefined
  while (!r.eof()) {
    const { field, wire } = r.tag()
    const type = field === FIELD.offer ? 'offer' : field === FIELD.receipt ? 'receipt' : field === FIELD.refusal ? 'refusal' : undefined
    if (type === undefined) return r.fail(`unknown message type ${field}`)
    want(r, wire, LEN, type)
    if (message !== undefined) r.fail('more than one message in a frame')
    message = messageRead(sub(r, type), type)
  }
  if (message === undefined) return r.fail('no message')
  return message
}

/** Bytes a message takes on the wire, length prefix included (for simulators). */
export function frameSize (m: Message): number {
  return encodeFrame(m).length
}

/** Splits a relay stream into frame bodies (length-prefixed, at most MAX_FRAME_SIZE). */
export class FrameReader extends LengthPrefixedReader {
  constructor () {
    super(MAX_FRAME_SIZE)
  }
}
