// A signed document: the dag-cbor bytes of the document, kept as bytes, and
// signatures over exactly those bytes.
//
//   { signed: bytes, signatures: [{ keyid: string, sig: bytes }] }   (dag-cbor)
//
// Keeping the signed part as bytes (as DSSE does) means a verifier checks
// signatures on what it received, never on a re-encoding, and decodes the
// document only after the signatures hold.
import * as dagCbor from '@ipld/dag-cbor'
import { SIGNATURE_BYTES, keyIdOf, signBytes, verifyBytes, type SigningKey } from './keys.ts'
import { reject, type Rejection } from './errors.ts'

/** Signatures an envelope may carry (more is malformed: bounded verify work). */
export const MAX_SIGNATURES = 16

export interface Signature { keyid: string, sig: Uint8Array }
export interface Envelope { signed: Uint8Array, signatures: Signature[] }

/** Keys named by a root for one role, and how many must sign. */
export interface Role { keyids: string[], threshold: number }

export function encodeEnvelope (env: Envelope): Uint8Array {
  return dagCbor.encode({ signed: env.signed, signatures: env.signatures.map(s => ({ keyid: s.keyid, sig: s.sig })) })
}

/** Signs document bytes with every key given, under a context string. */
export function sealEnvelope (signed: Uint8Array, context: string, keys: SigningKey[]): Envelope {
  return { signed, signatures: keys.map(k => ({ keyid: k.keyid, sig: signBytes(k, context, signed) })) }
}

function isRecord (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)
}

/** Parses untrusted bytes as an envelope; a Rejection ('malformed') on anything else. Never throws. */
export function decodeEnvelope (bytes: Uint8Array, maxBytes: number): Envelope | Rejection {
  if (bytes.length > maxBytes) return reject('too-large', `${bytes.length} bytes, more than ${maxBytes}`)
  let v: unknown
  try {
    v = dagCbor.decode(bytes)
  } catch (err) {
    return reject('malformed', `not dag-cbor: ${(err as Error).message}`)
  }
  if (!isRecord(v) || !(v.signed instanceof Uint8Array) || !Array.isArray(v.signatures)) return reject('malformed', 'not a signed envelope {signed, signatures}')
  if (v.signatures.length > MAX_SIGNATURES) return reject('malformed', `more than ${MAX_SIGNATURES} signatures`)
  const signatures: Signature[] = []
  for (const s of v.signatures) {
    if (!isRecord(s) || typeof s.keyid !== 'string' || !(s.sig instanceof Uint8Array) || s.keyid.length > 128 || s.sig.length !== SIGNATURE_BYTES) return reject('malformed', 'a signature is not {keyid, sig of 64 bytes}')
    signatures.push({ keyid: s.keyid, sig: s.sig })
  }
  return { signed: v.signed, signatures }
}

/**
 * Undefined when at least `role.threshold` distinct keys of the role signed
 * the envelope's bytes under `context`; otherwise why not. A signature by a
 * key the role does not name counts for nothing; each key counts once.
 */
export function checkRole (env: Envelope, context: string, role: Role, keys: ReadonlyMap<string, Uint8Array>, what: string): Rejection | undefined {
  const named = new Set(role.keyids)
  const good = new Set<string>()
  let bad = 0
  let unnamed = 0
  for (const s of env.signatures) {
    const pub = keys.get(s.keyid)
    if (!named.has(s.keyid) || pub === undefined || keyIdOf(pub) !== s.keyid) { unnamed++; continue }
    if (good.has(s.keyid)) continue
    if (verifyBytes(pub, context, env.signed, s.sig)) good.add(s.keyid)
    else bad++
  }
  if (good.size >= role.threshold) return undefined
  if (bad > 0) return reject('bad-signature', `${what}: ${bad} signature(s) by named keys do not verify (forged or tampered)`)
  if (good.size === 0) return reject('unknown-key', `${what}: no signature by a key the trusted root names for this role (${unnamed} by other keys)`)
  return reject('threshold', `${what}: signed by ${good.size} of the ${role.threshold} keys required`)
}
