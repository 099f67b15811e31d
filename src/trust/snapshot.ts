// The advisory snapshot: the whole current set of advisories, signed as one
// document by the advisory role, with a version and an expiry.
//
//   { type: "xo-mesh/advisories", version, issued, expires,
//     advisories: [ { build: CID, name, kind, size, priority,
//                     targets: { schools, groups, models, builds, serials },
//                     rollout: { waves: [{ percent, after_s }], max_failed_percent? } } ] }
//
// Signing the set as a whole is what makes mix-and-match impossible: no one
// can combine an entry of one snapshot with the entries of another, because
// only whole snapshots carry signatures. Snapshots are dag-cbor, so a
// snapshot is also a block (its CID is the sha2-256 of the envelope) that
// travels in CAR bundles like any other.
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { checkCid, DAG_CBOR, cidOf } from '../content/cid.ts'
import { decodeEnvelope, encodeEnvelope, sealEnvelope, checkRole } from './envelope.ts'
import type { SigningKey } from './keys.ts'
import type { Root } from './root.ts'
import { reject, type Rejection } from './errors.ts'
import { MAX_VERSION, isRecord, isTime } from './limits.ts'

export const SNAPSHOT_TYPE = 'xo-mesh/advisories'
export const SNAPSHOT_CONTEXT = 'xo-mesh advisories v1'

/** Bytes a signed snapshot may take (10,000 serial numbers fit several times). */
export const MAX_SNAPSHOT_BYTES = 1024 * 1024
export const MAX_ADVISORIES = 1024
/** Entries in one target list (serials are the long ones). */
export const MAX_TARGET_ENTRIES = 50_000
export const MAX_WAVES = 16
export const MAX_NAME = 256

export const ADVISORY_KINDS = ['os', 'activity', 'content', 'config'] as const
export type AdvisoryKind = typeof ADVISORY_KINDS[number]
export const PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const
export type Priority = typeof PRIORITIES[number]

/** Who an advisory is for. An absent or empty list matches everyone. */
export interface Targets {
  schools?: string[]
  groups?: string[]
  /** Hardware models as the laptop reports them: "XO-1.5", "XO-1.75", "XO-4", … */
  models?: string[]
  /** Builds a laptop must be running now (CIDs): "from these, go to this one". */
  builds?: CID[]
  serials?: string[]
}

/** One wave of a staged rollout: `percent` of the targeted laptops may start `after_s` seconds after `issued`. */
export interface Wave { percent: number, after_s: number }

export interface Advisory {
  /** The build record's CID. */
  build: CID
  name: string
  kind: AdvisoryKind
  /** Total bytes of every block of the build: a fetch stops past it (endless data). */
  size: number
  priority: Priority
  targets: Targets
  /** Staged rollout: waves, and the failure percent of the install results seen at which a laptop not yet installed holds back (1-100; absent: 10). */
  rollout?: { waves: Wave[], max_failed_percent?: number }
}

export interface SnapshotDoc {
  type: typeof SNAPSHOT_TYPE
  version: number
  /** When the snapshot was signed, ms since the epoch: a verified snapshot raises a laptop's clock floor to it. */
  issued: number
  expires: number
  advisories: Advisory[]
}

/** A verified snapshot: its document, envelope bytes, and the envelope's CID (its hash). */
export interface Snapshot {
  doc: SnapshotDoc
  bytes: Uint8Array
  cid: CID
}

function strings (v: unknown, max: number): string[] | undefined {
  if (v === undefined) return []
  if (!Array.isArray(v) || v.length > max) return undefined
  for (const s of v) if (typeof s !== 'string' || s.length === 0 || s.length > MAX_NAME) return undefined
  return v as string[]
}

function parseTargets (v: unknown): Targets | undefined {
  if (v === undefined) return {}
  if (!isRecord(v)) return undefined
  const t: Targets = {}
  for (const k of ['schools', 'groups', 'models', 'serials'] as const) {
    const s = strings(v[k], MAX_TARGET_ENTRIES)
    if (s === undefined) return undefined
    if (s.length > 0) t[k] = s
  }
  if (v.builds !== undefined) {
    if (!Array.isArray(v.builds) || v.builds.length > MAX_TARGET_ENTRIES) return undefined
    const builds: CID[] = []
    for (const b of v.builds) {
      const c = CID.asCID(b)
      if (c === null) return undefined
      try { checkCid(c) } catch { return undefined }
      builds.push(c)
    }
    if (builds.length > 0) t.builds = builds
  }
  return t
}

function parseAdvisory (v: unknown): Advisory | undefined {
  if (!isRecord(v)) return undefined
  const build = CID.asCID(v.build)
  if (build === null) return undefined
  try { checkCid(build) } catch { return undefined }
  if (typeof v.name !== 'string' || v.name.length === 0 || v.name.length > MAX_NAME) return undefined
  if (!ADVISORY_KINDS.includes(v.kind as AdvisoryKind) || !PRIORITIES.includes(v.priority as Priority)) return undefined
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0) return undefined
  const targets = parseTargets(v.targets)
  if (targets === undefined) return undefined
  const a: Advisory = { build, name: v.name, kind: v.kind as AdvisoryKind, size: v.size, priority: v.priority as Priority, targets }
  if (v.rollout !== undefined) {
    if (!isRecord(v.rollout) || !Array.isArray(v.rollout.waves) || v.rollout.waves.length > MAX_WAVES) return undefined
    const waves: Wave[] = []
    for (const w of v.rollout.waves) {
      if (!isRecord(w) || typeof w.percent !== 'number' || typeof w.after_s !== 'number') return undefined
      if (!Number.isInteger(w.percent) || w.percent < 1 || w.percent > 100 || !Number.isSafeInteger(w.after_s) || w.after_s < 0) return undefined
      waves.push({ percent: w.percent, after_s: w.after_s })
    }
    a.rollout = { waves }
    const f = v.rollout.max_failed_percent
    if (f !== undefined) {
      if (typeof f !== 'number' || !Number.isInteger(f) || f < 1 || f > 100) return undefined
      a.rollout.max_failed_percent = f
    }
  }
  return a
}

/** Parses a decoded value as a snapshot document; undefined when it is not one. */
export function parseSnapshotDoc (v: unknown): SnapshotDoc | undefined {
  if (!isRecord(v) || v.type !== SNAPSHOT_TYPE) return undefined
  if (typeof v.version !== 'number' || !Number.isInteger(v.version) || v.version < 1 || v.version > MAX_VERSION) return undefined
  if (!isTime(v.issued) || !isTime(v.expires) || v.expires <= v.issued) return undefined
  if (!Array.isArray(v.advisories) || v.advisories.length > MAX_ADVISORIES) return undefined
  const advisories: Advisory[] = []
  for (const e of v.advisories) {
    const a = parseAdvisory(e)
    if (a === undefined) return undefined
    advisories.push(a)
  }
  return { type: SNAPSHOT_TYPE, version: v.version, issued: v.issued, expires: v.expires, advisories }
}

/** A plain object of the document for dag-cbor (no undefined fields). */
function encodable (doc: SnapshotDoc): unknown {
  return {
    ...doc,
    advisories: doc.advisories.map(a => {
      const targets: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(a.targets)) if (Array.isArray(v) && v.length > 0) targets[k] = v
      return { build: a.build, name: a.name, kind: a.kind, size: a.size, priority: a.priority, targets, ...(a.rollout !== undefined ? { rollout: a.rollout } : {}) }
    })
  }
}

/** Signs a snapshot with the advisory keys. Throws RangeError when it exceeds the limits (the publisher's mistake). */
export function signSnapshot (doc: SnapshotDoc, keys: SigningKey[]): Snapshot {
  const signed = dagCbor.encode(encodable(doc))
  const bytes = encodeEnvelope(sealEnvelope(signed, SNAPSHOT_CONTEXT, keys))
  if (bytes.length > MAX_SNAPSHOT_BYTES) throw new RangeError(`the snapshot takes ${bytes.length} bytes, more than ${MAX_SNAPSHOT_BYTES}`)
  return { doc, bytes, cid: cidOf(DAG_CBOR, bytes) }
}

/**
 * Checks a snapshot's signatures against the advisory role of a root and
 * parses it. Only the signatures and the shape: versions, expiry and the
 * persisted state are policy.ts's. Never throws.
 */
export function openSnapshot (root: Root, bytes: Uint8Array): Snapshot | Rejection {
  const env = decodeEnvelope(bytes, MAX_SNAPSHOT_BYTES)
  if ('ok' in env) return env
  const bad = checkRole(env, SNAPSHOT_CONTEXT, root.doc.roles.advisory, root.keys, 'advisory snapshot')
  if (bad !== undefined) return bad
  let doc: SnapshotDoc | undefined
  try {
    doc = parseSnapshotDoc(dagCbor.decode(env.signed))
  } catch {
    doc = undefined
  }
  if (doc === undefined) return reject('malformed', 'advisory snapshot: signed, but not a valid snapshot document')
  return { doc, bytes, cid: cidOf(DAG_CBOR, bytes) }
}

/** Reads a snapshot back from this machine's own trust state (verified when stored), without signatures. */
export function readTrustedSnapshot (bytes: Uint8Array): Snapshot | undefined {
  const env = decodeEnvelope(bytes, MAX_SNAPSHOT_BYTES)
  if ('ok' in env) return undefined
  try {
    const doc = parseSnapshotDoc(dagCbor.decode(env.signed))
    return doc === undefined ? undefined : { doc, bytes, cid: cidOf(DAG_CBOR, bytes) }
  } catch {
    return undefined
  }
}
