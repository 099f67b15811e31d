// Activation leases (OATS's anti-theft service): one signed document per
// laptop serial number, valid until its expiry, signed by the lease role the
// deployment's root names.
//
//   { type: "xo-mesh/lease", serial, issued, expires, school? }   (an envelope, envelope.ts)
//
// Each lease is signed on its own, so a school server can hand one laptop its
// lease without the others, and a batch is only a list of leases. A laptop
// accepts a lease only when: the roots carried with it (if any) follow from
// the root it trusts; that root has not expired; a threshold of the lease
// role's keys signed it (a key the root never named, or one rotated out,
// counts for nothing); it names this laptop's serial; and it expires after
// the highest clock the laptop has seen (Uptane's time rule: a reset clock
// does not revive an expired lease).
import * as dagCbor from '@ipld/dag-cbor'
import { checkRole, decodeEnvelope, encodeEnvelope, sealEnvelope } from './envelope.ts'
import type { SigningKey } from './keys.ts'
import { walkRoots, type Root } from './root.ts'
import { reject, type Rejection } from './errors.ts'
import { isRecord, isTime } from './limits.ts'

export const LEASE_TYPE = 'xo-mesh/lease'
export const LEASE_CONTEXT = 'xo-mesh lease v1'
/** Bytes a signed lease may take. */
export const MAX_LEASE_BYTES = 4096
/** Characters of a serial number or school name. */
export const MAX_SERIAL = 64
export const MAX_SCHOOL = 256

export interface LeaseDoc {
  type: typeof LEASE_TYPE
  /** The laptop's serial number, as the firmware reports it ("SHC0123456A"). */
  serial: string
  /** When it was signed, ms since the epoch: a verified lease raises a laptop's clock floor to it. */
  issued: number
  /** ms since the epoch: after it, the laptop is no longer activated. */
  expires: number
  /** The school whose server holds it (informational: the serial is what binds). */
  school?: string
}

/** A lease whose signatures were checked (or read back from this machine's own store). */
export interface Lease {
  doc: LeaseDoc
  /** The signed envelope. */
  bytes: Uint8Array
  /** The key ids that signed it (the lease keys of the root that verified it). */
  signers: string[]
}

/** Whether text may be a serial number: 1 to 64 printable ASCII characters, no spaces. */
export function isSerial (text: string): boolean {
  return text.length > 0 && text.length <= MAX_SERIAL && /^[\x21-\x7e]+$/.test(text)
}

/** Parses a decoded value as a lease document; undefined when it is not one. */
export function parseLeaseDoc (v: unknown): LeaseDoc | undefined {
  if (!isRecord(v) || v.type !== LEASE_TYPE) return undefined
  if (typeof v.serial !== 'string' || !isSerial(v.serial)) return undefined
  if (!isTime(v.issued) || !isTime(v.expires) || v.expires <= v.issued) return undefined
  if (v.school !== undefined && (typeof v.school !== 'string' || v.school.length === 0 || v.school.length > MAX_SCHOOL)) return undefined
  return { type: LEASE_TYPE, serial: v.serial, issued: v.issued, expires: v.expires, ...(v.school !== undefined ? { school: v.school } : {}) }
}

/** Signs a lease with the lease keys. Throws RangeError on a document out of limits (the publisher's mistake). */
export function signLease (doc: LeaseDoc, keys: SigningKey[]): Lease {
  if (parseLeaseDoc(doc) === undefined) throw new RangeError(`not a valid lease: serial ${JSON.stringify(doc.serial)}, issued ${doc.issued}, expires ${doc.expires}`)
  const plain = { type: doc.type, serial: doc.serial, issued: doc.issued, expires: doc.expires, ...(doc.school !== undefined ? { school: doc.school } : {}) }
  const bytes = encodeEnvelope(sealEnvelope(dagCbor.encode(plain), LEASE_CONTEXT, keys))
  if (bytes.length > MAX_LEASE_BYTES) throw new RangeError(`the lease takes ${bytes.length} bytes, more than ${MAX_LEASE_BYTES}`)
  return { doc, bytes, signers: keys.map(k => k.keyid) }
}

function decodeLease (bytes: Uint8Array): { doc: LeaseDoc, signers: string[], env: Exclude<ReturnType<typeof decodeEnvelope>, Rejection> } | Rejection {
  const env = decodeEnvelope(bytes, MAX_LEASE_BYTES)
  if ('ok' in env) return env
  let doc: LeaseDoc | undefined
  try {
    doc = parseLeaseDoc(dagCbor.decode(env.signed))
  } catch {
    doc = undefined
  }
  if (doc === undefined) return reject('malformed', 'not a lease document')
  return { doc, signers: env.signatures.map(s => s.keyid), env }
}

/** Checks a lease's signatures against the lease role of a root, and its shape. Never throws. */
export function openLease (root: Root, bytes: Uint8Array): Lease | Rejection {
  const env = decodeEnvelope(bytes, MAX_LEASE_BYTES)
  if ('ok' in env) return env
  const bad = checkRole(env, LEASE_CONTEXT, root.doc.roles.lease, root.keys, 'lease')
  if (bad !== undefined) return bad
  const d = decodeLease(bytes)
  if ('ok' in d) return reject('malformed', 'lease: signed, but not a valid lease document')
  return { doc: d.doc, bytes, signers: d.signers.filter(id => root.doc.roles.lease.keyids.includes(id)) }
}

/** Reads a lease back from this machine's own store (verified when stored), without checking signatures. */
export function readTrustedLease (bytes: Uint8Array): Lease | undefined {
  const d = decodeLease(bytes)
  return 'ok' in d ? undefined : { doc: d.doc, bytes, signers: d.signers }
}

/** The serial a lease claims, before any check (to sort a batch, to log a refusal); undefined if unreadable. */
export function claimedSerial (bytes: Uint8Array): string | undefined {
  const d = decodeLease(bytes)
  return 'ok' in d ? undefined : d.doc.serial
}

export interface LeaseCheck {
  /** The root the lease was checked against (the trusted one, walked up through the carried roots). */
  root: Root
  /** Root versions adopted on the way (in memory: the advisory channel owns the persisted trust state). */
  adopted: Root[]
  /** The clock used: the highest of the laptop's floor and now. */
  clock: number
}

export type LeaseVerdict = ({ ok: true, lease: Lease } | Rejection) & LeaseCheck

/**
 * Decides on a lease for `serial` (undefined: any serial, a school server
 * taking a batch) against the trusted root, walking up through `roots`
 * first, at clock max(floor, now). Never throws.
 */
export function verifyLease (trusted: Root, bytes: Uint8Array, roots: Uint8Array[], serial: string | undefined, floor: number, now: number): LeaseVerdict {
  const clock = Math.max(floor, now)
  const walk = roots.length > 0 ? walkRoots(trusted, roots) : { root: trusted, adopted: [] }
  const base = { root: walk.root, adopted: walk.adopted, clock }
  const root = walk.root
  if (root.doc.expires <= clock) return { ...reject('root-expired', `the trusted root v${root.doc.version} expired at ${iso(root.doc.expires)}: a newer root is needed`), ...base }
  const lease = openLease(root, bytes)
  if ('ok' in lease) return { ...lease, ...base }
  if (serial !== undefined && lease.doc.serial !== serial) return { ...reject('wrong-serial', `the lease is for serial ${JSON.stringify(lease.doc.serial)}, this laptop is ${JSON.stringify(serial)}`), ...base }
  if (lease.doc.expires <= clock) return { ...reject('expired', `the lease for ${lease.doc.serial} expired at ${iso(lease.doc.expires)} (clock ${iso(clock)})`), ...base }
  return { ok: true, lease, ...base }
}

/** True when `a` is a better lease to hold than `b` for the same serial: it lasts longer. */
export function newerLease (a: Lease, b: Lease | undefined): boolean {
  return b === undefined || a.doc.expires > b.doc.expires || (a.doc.expires === b.doc.expires && a.doc.issued > b.doc.issued)
}

function iso (ms: number): string {
  return ms >= 8.64e15 ? 'never' : new Date(ms).toISOString()
}
