// The root of trust of a deployment: a signed document naming, for each role,
// the keys allowed to sign for it and how many must.
//
//   { type: "xo-mesh/root", version, expires, deployment,
//     keys: { <keyid>: <32-byte Ed25519 public key> },
//     roles: { root: {keyids, threshold}, advisory: {…}, lease: {…} } }
//
// Root version N+1 must be signed by a threshold of N's root keys AND of its
// own root keys (TUF's rotation rule), so a laptop that trusts N, however
// old, walks N → N+1 → … to the newest with nothing but the documents: a
// stick carrying every root version catches up a laptop offline for months.
// Only the newest root's expiry matters (as in TUF): intermediate versions
// are stepping stones.
import * as dagCbor from '@ipld/dag-cbor'
import { checkRole, decodeEnvelope, encodeEnvelope, sealEnvelope, type Role } from './envelope.ts'
import { PUBLIC_KEY_BYTES, keyIdOf, type SigningKey } from './keys.ts'
import { reject, type Rejection } from './errors.ts'
import { MAX_VERSION, isRecord, isTime } from './limits.ts'

export const ROOT_TYPE = 'xo-mesh/root'
export const ROOT_CONTEXT = 'xo-mesh root v1'
export const ROLE_NAMES = ['root', 'advisory', 'lease'] as const
export type RoleName = typeof ROLE_NAMES[number]

/** Bytes a signed root may take; keys a root may name; keys one role may name. */
export const MAX_ROOT_BYTES = 64 * 1024
export const MAX_ROOT_KEYS = 64
export const MAX_ROLE_KEYS = 16

export interface RootDoc {
  type: typeof ROOT_TYPE
  /** 1, 2, …: each version signed by its predecessor's root keys and its own. */
  version: number
  /** Milliseconds since the epoch (UTC). */
  expires: number
  /** A name for people (the deployment), not checked. */
  deployment: string
  keys: Record<string, Uint8Array>
  roles: Record<RoleName, Role>
}

/** A verified (or provisioned) root: its document, its envelope bytes and its keys by id. */
export interface Root {
  doc: RootDoc
  /** The signed envelope as received; empty for a provisioned anchor (version 0). */
  bytes: Uint8Array
  keys: ReadonlyMap<string, Uint8Array>
}

function keyMap (doc: RootDoc): Map<string, Uint8Array> {
  return new Map(Object.entries(doc.keys))
}

/**
 * The trust anchor of a laptop provisioned with only the root public key: a
 * version 0 that names that key as the root role and nothing else, so the
 * laptop accepts root v1 signed by it and walks on from there.
 */
export function anchorRoot (publicKey: Uint8Array): Root {
  const id = keyIdOf(publicKey)
  const doc: RootDoc = {
    type: ROOT_TYPE,
    version: 0,
    expires: Number.MAX_SAFE_INTEGER,
    deployment: '(provisioned key)',
    keys: { [id]: publicKey },
    roles: { root: { keyids: [id], threshold: 1 }, advisory: { keyids: [], threshold: 1 }, lease: { keyids: [], threshold: 1 } }
  }
  return { doc, bytes: new Uint8Array(0), keys: keyMap(doc) }
}

function parseRole (v: unknown, keys: Record<string, Uint8Array>): Role | undefined {
  if (!isRecord(v) || !Array.isArray(v.keyids) || typeof v.threshold !== 'number') return undefined
  if (v.keyids.length > MAX_ROLE_KEYS || !Number.isInteger(v.threshold) || v.threshold < 1 || v.threshold > Math.max(1, v.keyids.length)) return undefined
  const keyids: string[] = []
  for (const k of v.keyids) {
    if (typeof k !== 'string' || keys[k] === undefined || keyids.includes(k)) return undefined
    keyids.push(k)
  }
  return { keyids, threshold: v.threshold }
}

/** Parses a decoded value as a root document; undefined when it is not one. */
export function parseRootDoc (v: unknown): RootDoc | undefined {
  if (!isRecord(v) || v.type !== ROOT_TYPE) return undefined
  if (typeof v.version !== 'number' || !Number.isInteger(v.version) || v.version < 1 || v.version > MAX_VERSION) return undefined
  if (!isTime(v.expires) || typeof v.deployment !== 'string' || v.deployment.length > 256) return undefined
  if (!isRecord(v.keys) || !isRecord(v.roles)) return undefined
  const entries = Object.entries(v.keys)
  if (entries.length > MAX_ROOT_KEYS) return undefined
  const keys: Record<string, Uint8Array> = {}
  for (const [id, pub] of entries) {
    if (!(pub instanceof Uint8Array) || pub.length !== PUBLIC_KEY_BYTES || keyIdOf(pub) !== id) return undefined
    keys[id] = pub
  }
  const roles: Partial<Record<RoleName, Role>> = {}
  for (const name of ROLE_NAMES) {
    const r = parseRole(v.roles[name], keys)
    if (r === undefined) return undefined
    roles[name] = r
  }
  // a root must be able to sign its successor
  if (roles.root!.keyids.length === 0) return undefined
  return { type: ROOT_TYPE, version: v.version, expires: v.expires, deployment: v.deployment, keys, roles: roles as Record<RoleName, Role> }
}

/** Signs a root document with the given keys (the predecessor's root keys and its own). */
export function signRoot (doc: RootDoc, keys: SigningKey[]): Root {
  const signed = dagCbor.encode(doc)
  const bytes = encodeEnvelope(sealEnvelope(signed, ROOT_CONTEXT, keys))
  return { doc, bytes, keys: keyMap(doc) }
}

/** The version a signed root claims, before any check (to order candidates); undefined if unreadable. */
export function claimedRootVersion (bytes: Uint8Array): number | undefined {
  const env = decodeEnvelope(bytes, MAX_ROOT_BYTES)
  if ('ok' in env) return undefined
  try {
    return parseRootDoc(dagCbor.decode(env.signed))?.version
  } catch {
    return undefined
  }
}

/**
 * Verifies root version trusted+1: signed by a threshold of the trusted
 * root's root keys and of its own. Never throws.
 */
export function verifyNextRoot (trusted: Root, bytes: Uint8Array): Root | Rejection {
  const env = decodeEnvelope(bytes, MAX_ROOT_BYTES)
  if ('ok' in env) return env
  const what = `root v${trusted.doc.version + 1}`
  const byOld = checkRole(env, ROOT_CONTEXT, trusted.doc.roles.root, trusted.keys, `${what} (keys of root v${trusted.doc.version})`)
  if (byOld !== undefined) return byOld
  let doc: RootDoc | undefined
  try {
    doc = parseRootDoc(dagCbor.decode(env.signed))
  } catch {
    doc = undefined
  }
  if (doc === undefined) return reject('malformed', `${what}: not a root document`)
  if (doc.version !== trusted.doc.version + 1) return reject('root-chain', `root v${doc.version} does not follow the trusted v${trusted.doc.version}`)
  const keys = keyMap(doc)
  const byNew = checkRole(env, ROOT_CONTEXT, doc.roles.root, keys, `${what} (its own keys)`)
  if (byNew !== undefined) return byNew
  return { doc, bytes, keys }
}

export interface RootWalk {
  /** The newest root reached (the trusted one when nothing followed). */
  root: Root
  /** Versions adopted, in order. */
  adopted: Root[]
  /** Candidates refused on the way (older or equal versions are skipped silently). */
  rejections: Rejection[]
}

/**
 * Walks from the trusted root through as many of the candidates as follow
 * from it, one version at a time, in any order given; stops at the first
 * version no candidate supplies. A forged candidate for a version does not
 * stop a genuine one for the same version from being used.
 */
export function walkRoots (trusted: Root, candidates: Uint8Array[]): RootWalk {
  const byVersion = new Map<number, Uint8Array[]>()
  for (const c of candidates) {
    const v = claimedRootVersion(c)
    if (v === undefined || v <= trusted.doc.version) continue
    const list = byVersion.get(v) ?? []
    list.push(c)
    byVersion.set(v, list)
  }
  const adopted: Root[] = []
  const rejections: Rejection[] = []
  let root = trusted
  for (;;) {
    const list = byVersion.get(root.doc.version + 1)
    if (list === undefined) break
    let next: Root | undefined
    for (const c of list) {
      const r = verifyNextRoot(root, c)
      if ('ok' in r) rejections.push(r)
      else { next = r; break }
    }
    if (next === undefined) break
    adopted.push(next)
    root = next
  }
  if (adopted.length === 0 && byVersion.size > 0 && rejections.length === 0) {
    rejections.push(reject('root-chain', `root versions ${[...byVersion.keys()].sort((a, b) => a - b).join(', ')} do not follow the trusted v${trusted.doc.version} (a version is missing)`))
  }
  return { root, adopted, rejections }
}

/** True when the two roots name the same keys and threshold for a role. */
export function sameRole (a: RootDoc, b: RootDoc, role: RoleName): boolean {
  const x = a.roles[role]
  const y = b.roles[role]
  return x.threshold === y.threshold && x.keyids.length === y.keyids.length && [...x.keyids].sort().join() === [...y.keyids].sort().join()
}

/** Decodes a trusted root read back from this machine's own state (already verified when stored). */
export function readTrustedRoot (bytes: Uint8Array): Root | undefined {
  const env = decodeEnvelope(bytes, MAX_ROOT_BYTES)
  if ('ok' in env) return undefined
  try {
    const doc = parseRootDoc(dagCbor.decode(env.signed))
    return doc === undefined ? undefined : { doc, bytes, keys: keyMap(doc) }
  } catch {
    return undefined
  }
}
