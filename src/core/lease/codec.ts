// The wire codec of /xo-mesh/lease/1.0.0 (protocols/lease.md, lease.proto):
// one stream per question, one frame each way.
//
//   frame = uvarint(bodyLength) body        0 < bodyLength ≤ MAX_FRAME_SIZE
//   body  = LeaseMessage { oneof { LeaseRequest request = 1; LeaseReply reply = 2; } }
//
// The leases and roots a reply carries are opaque bytes here: the trust
// layer verifies each. decodeLeaseMessage throws InvalidMessageError, and
// nothing else, on any input, and checks every count and length before it
// keeps anything.
import { InvalidMessageError } from '../wire/errors.ts'
import { LEN, Reader, Writer } from '../wire/protobuf.ts'

export const PROTOCOL = '/xo-mesh/lease/1.0.0'
/** A frame body, bytes. */
export const MAX_FRAME_SIZE = 8 * 1024 * 1024
/** Serials one request may name, and leases one reply may carry. */
export const MAX_SERIALS = 20_000
/** Characters of a serial number on the wire. */
export const MAX_SERIAL_BYTES = 64
/** Bytes of one signed lease (trust/lease.ts MAX_LEASE_BYTES). */
export const MAX_LEASE_BYTES = 4096
/** Root versions one reply may carry, and bytes of each (trust/root.ts MAX_ROOT_BYTES). */
export const MAX_ROOTS = 32
export const MAX_ROOT_BYTES = 64 * 1024

/** Asks for the leases of these serials; an empty list asks for every lease the peer holds (a server taking over). */
export interface LeaseRequest { type: 'request', serials: string[] }
/** Signed leases and the root versions a laptop may need to verify them. */
export interface LeaseReply { type: 'reply', leases: Uint8Array[], roots: Uint8Array[] }
export type LeaseMessage = LeaseRequest | LeaseReply

const UTF8 = new TextEncoder()

function check (ok: boolean, why: string): void {
  if (!ok) throw new RangeError(`lease message: ${why}`)
}

/** Encodes a message body. Throws RangeError when it breaks a limit (our own mistake). */
export function encodeLeaseMessage (m: LeaseMessage): Uint8Array {
  const inner = new Writer(256)
  if (m.type === 'request') {
    check(m.serials.length <= MAX_SERIALS, `${m.serials.length} serials`)
    for (const s of m.serials) {
      check(s.length > 0 && UTF8.encode(s).length <= MAX_SERIAL_BYTES, `serial ${JSON.stringify(s).slice(0, 80)}`)
      inner.string(1, s)
    }
  } else {
    check(m.leases.length <= MAX_SERIALS && m.roots.length <= MAX_ROOTS, `${m.leases.length} leases, ${m.roots.length} roots`)
    for (const l of m.leases) { check(l.length > 0 && l.length <= MAX_LEASE_BYTES, `a lease of ${l.length} bytes`); inner.bytes(1, l, true) }
    for (const r of m.roots) { check(r.length > 0 && r.length <= MAX_ROOT_BYTES, `a root of ${r.length} bytes`); inner.bytes(2, r, true) }
  }
  const out = new Writer(inner.length + 8).message(m.type === 'request' ? 1 : 2, inner).finish()
  check(out.length <= MAX_FRAME_SIZE, `${out.length} bytes`)
  return out
}

function want (r: Reader, wire: number, what: string): void {
  if (wire !== LEN) r.fail(`${what} has wire type ${wire}`)
}

/** Decodes a message body. Throws InvalidMessageError on anything else. */
export function decodeLeaseMessage (body: Uint8Array): LeaseMessage {
  if (body.length > MAX_FRAME_SIZE) throw new InvalidMessageError(`lease message: ${body.length} bytes exceeds ${MAX_FRAME_SIZE}`)
  const r = new Reader(body, 'lease message')
  let out: LeaseMessage | undefined
  while (!r.eof()) {
    const { field, wire } = r.tag()
    if (field !== 1 && field !== 2) { r.skip(wire); continue }
    want(r, wire, field === 1 ? 'request' : 'reply')
    if (out !== undefined) r.fail('more than one message in a frame')
    const m = r.sub(field === 1 ? 'lease request' : 'lease reply')
    if (field === 1) {
      const serials: string[] = []
      while (!m.eof()) {
        const t = m.tag()
        if (t.field !== 1) { m.skip(t.wire); continue }
        want(m, t.wire, 'serial')
        if (serials.length >= MAX_SERIALS) m.fail(`more than ${MAX_SERIALS} serials`)
        const s = m.string(MAX_SERIAL_BYTES)
        if (s.length === 0) m.fail('an empty serial')
        serials.push(s)
      }
      out = { type: 'request', serials }
    } else {
      const leases: Uint8Array[] = []
      const roots: Uint8Array[] = []
      while (!m.eof()) {
        const t = m.tag()
        if (t.field !== 1 && t.field !== 2) { m.skip(t.wire); continue }
        want(m, t.wire, t.field === 1 ? 'lease' : 'root')
        const b = m.bytes()
        if (t.field === 1) {
          if (leases.length >= MAX_SERIALS) m.fail(`more than ${MAX_SERIALS} leases`)
          if (b.length === 0 || b.length > MAX_LEASE_BYTES) m.fail(`a lease of ${b.length} bytes (1 to ${MAX_LEASE_BYTES})`)
          leases.push(b)
        } else {
          if (roots.length >= MAX_ROOTS) m.fail(`more than ${MAX_ROOTS} roots`)
          if (b.length === 0 || b.length > MAX_ROOT_BYTES) m.fail(`a root of ${b.length} bytes (1 to ${MAX_ROOT_BYTES})`)
          roots.push(b)
        }
      }
      out = { type: 'reply', leases, roots }
    }
  }
  if (out === undefined) return r.fail('no request or reply')
  return out
}
