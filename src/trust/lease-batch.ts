// Leases in batches: issued by the deployment team for a school's serials,
// written to a CAR bundle for a stick, and held in a data directory (the
// school server's batch, a laptop's own lease).
//
//   DEPLOYMENT/leases/<serial>.cbor   the newest lease issued for each serial
//   bundle.car                        root block { type: "xo-mesh/leases", leases: [envelope] }
//                                     + every root version (dag-cbor blocks)
//   DATA/lease/leases.cbor            { leases: [envelope], roots: [root envelope], clock }
//
// The batch block itself is not signed: each lease in it is. A tampered
// block fails its CID; a lease swapped for another fails its signature or
// its serial.
import * as dagCbor from '@ipld/dag-cbor'
import { CarReader, CarWriter } from '@ipld/car'
import { mkdir, readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { DAG_CBOR, cidOf, matches } from '../content/cid.ts'
import { claimedRootVersion, walkRoots, type Root } from './root.ts'
import { LEASE_TYPE, claimedSerial, isSerial, newerLease, readTrustedLease, signLease, verifyLease, type Lease } from './lease.ts'
import { signers, type Deployment } from './publisher.ts'
import { writeAtomic } from './store.ts'
import { TrustError, reject, type Rejection } from './errors.ts'
import { isRecord } from './limits.ts'

export const LEASE_BATCH_TYPE = 'xo-mesh/leases'
/** Leases one batch (a bundle, a store, a reply) may carry: a large school's serials several times over. */
export const MAX_BATCH_LEASES = 20_000
export const MAX_BATCH_ROOTS = 1024
export const MAX_LEASE_BUNDLE_BYTES = 64 * 1024 * 1024
export const LEASE_DIR = 'lease'
export const LEASE_FILE = 'leases.cbor'

/** What a stick or a store carries: leases and the root versions they may need. */
export interface LeaseBatch {
  leases: Uint8Array[]
  roots: Uint8Array[]
}

export interface IssueOptions {
  now: number
  expiresMs: number
  school?: string
}

/**
 * Signs one lease per serial with the deployment's lease keys and keeps each
 * as DIR/leases/<serial>.cbor (replacing an older one). Throws TrustError on
 * a malformed serial or missing keys.
 */
export async function issueLeases (d: Deployment, serials: string[], options: IssueOptions): Promise<Lease[]> {
  const root = d.roots[d.roots.length - 1]!
  const keys = signers(d, root.doc, 'lease')
  const out: Lease[] = []
  await mkdir(join(d.dir, 'leases'), { recursive: true })
  for (const serial of new Set(serials)) {
    if (!isSerial(serial)) throw new TrustError('ERR_BAD_SERIAL', `not a serial number: ${JSON.stringify(serial)} (1 to 64 printable characters, no spaces)`)
    const lease = signLease({ type: LEASE_TYPE, serial, issued: options.now, expires: options.now + options.expiresMs, ...(options.school !== undefined ? { school: options.school } : {}) }, keys)
    await writeAtomic(join(d.dir, 'leases', `${serial.replace(/[^A-Za-z0-9._-]/g, '_')}.cbor`), lease.bytes)
    out.push(lease)
  }
  return out
}

/** Every lease a deployment directory holds (DIR/leases/*.cbor). */
export async function issuedLeases (d: Deployment): Promise<Lease[]> {
  const out: Lease[] = []
  for (const n of (await readdir(join(d.dir, 'leases')).catch(() => [] as string[])).sort()) {
    if (!n.endsWith('.cbor')) continue
    const l = readTrustedLease(await readFile(join(d.dir, 'leases', n)))
    if (l !== undefined) out.push(l)
  }
  return out
}

/** Writes a batch as a CAR file (atomically); returns its size in bytes. */
export async function writeLeaseBundle (path: string, batch: LeaseBatch): Promise<number> {
  const block = dagCbor.encode({ type: LEASE_BATCH_TYPE, leases: batch.leases })
  const rootCid = cidOf(DAG_CBOR, block)
  const { writer, out } = CarWriter.create([rootCid])
  const chunks: Uint8Array[] = []
  const collect = (async () => { for await (const c of out) chunks.push(c) })()
  await writer.put({ cid: rootCid, bytes: block })
  for (const r of batch.roots) await writer.put({ cid: cidOf(DAG_CBOR, r), bytes: r })
  await writer.close()
  await collect
  const bytes = Buffer.concat(chunks)
  await writeAtomic(path, bytes)
  return bytes.length
}

function parseBatchBlock (v: unknown): Uint8Array[] | undefined {
  if (!isRecord(v) || v.type !== LEASE_BATCH_TYPE || !Array.isArray(v.leases) || v.leases.length > MAX_BATCH_LEASES) return undefined
  for (const l of v.leases) if (!(l instanceof Uint8Array)) return undefined
  return v.leases as Uint8Array[]
}

/**
 * Reads a lease bundle, or a single lease file (DEPLOYMENT/leases/S.cbor).
 * Every CAR block must hash to its CID. Nothing is verified here beyond the
 * shape: each lease is checked by verifyLease. Never throws on the content.
 */
export async function readLeaseFile (path: string): Promise<LeaseBatch | Rejection> {
  const size = (await stat(path)).size
  if (size > MAX_LEASE_BUNDLE_BYTES) return reject('too-large', `${size} bytes, more than a lease bundle may take (${MAX_LEASE_BUNDLE_BYTES})`)
  const bytes = await readFile(path)
  if (readTrustedLease(bytes) !== undefined) return { leases: [bytes], roots: [] }
  let reader: CarReader
  try {
    reader = await CarReader.fromBytes(bytes)
  } catch (err) {
    return reject('malformed', `neither a lease nor a CAR file: ${(err as Error).message}`)
  }
  const roots = await reader.getRoots()
  if (roots.length !== 1) return reject('malformed', `a lease bundle has one root (the batch), this one has ${roots.length}`)
  let leases: Uint8Array[] | undefined
  const rootVersions: Uint8Array[] = []
  try {
    for await (const { cid, bytes: b } of reader.blocks()) {
      if (!matches(cid, b)) return reject('tampered', `block ${cid} does not match its hash`)
      if (cid.code !== DAG_CBOR) continue
      if (cid.equals(roots[0])) leases = parseBatchBlock(dagCbor.decode(b))
      else if (claimedRootVersion(b) !== undefined && rootVersions.length < MAX_BATCH_ROOTS) rootVersions.push(b)
    }
  } catch (err) {
    return reject('malformed', (err as Error).message)
  }
  if (leases === undefined) return reject('malformed', 'the bundle\'s root is not a lease batch')
  return { leases, roots: rootVersions }
}

/** What a data directory holds: verified leases, the roots that came with them, the clock floor. */
export interface LeaseStore extends LeaseBatch {
  clock: number
}

export function leaseStorePath (dataDir: string): string {
  return join(dataDir, LEASE_DIR, LEASE_FILE)
}

/** Saves the lease store atomically. */
export async function saveLeaseStore (dataDir: string, s: LeaseStore): Promise<void> {
  await writeAtomic(leaseStorePath(dataDir), dagCbor.encode({ leases: s.leases, roots: s.roots, clock: s.clock }))
}

/** Loads the lease store of a data directory (empty when there is none). Throws TrustError when it is corrupt. */
export async function loadLeaseStore (dataDir: string): Promise<LeaseStore> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(leaseStorePath(dataDir))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { leases: [], roots: [], clock: 0 }
    throw err
  }
  let v: unknown
  try { v = dagCbor.decode(bytes) } catch { v = undefined }
  if (!isRecord(v) || !Array.isArray(v.leases) || !Array.isArray(v.roots) || typeof v.clock !== 'number' ||
    !v.leases.every(l => l instanceof Uint8Array) || !v.roots.every(r => r instanceof Uint8Array)) {
    throw new TrustError('ERR_LEASE_STORE', `${leaseStorePath(dataDir)} is not a lease store (remove it: leases are fetched again)`)
  }
  return { leases: v.leases as Uint8Array[], roots: v.roots as Uint8Array[], clock: v.clock }
}

export interface LeaseRefusal { serial: string | null, code: string, reason: string }

export interface LeasesAccepted {
  /** The store to persist (before anything is acted on). */
  store: LeaseStore
  /** Leases newly held (better than what was held for their serial). */
  accepted: Lease[]
  refused: LeaseRefusal[]
}

/**
 * Verifies each lease of a batch against the trusted root (walked up through
 * the batch's and the store's roots) and keeps, per serial, the one that
 * lasts longest. `serial` restricts what is kept to one laptop's (undefined:
 * a school server keeps every serial). Leases already held that no longer
 * verify (expired, their key rotated out) are dropped, but for a laptop's own
 * expired lease (kept to report since when). Never throws.
 */
export function acceptLeases (trusted: Root, store: LeaseStore, batch: LeaseBatch, serial: string | undefined, now: number): LeasesAccepted {
  const roots = [...store.roots, ...batch.roots]
  const held = new Map<string, Lease>()
  let clock = Math.max(store.clock, now)
  let top = trusted
  for (const bytes of store.leases) {
    const v = verifyLease(trusted, bytes, roots, serial, clock, now)
    top = v.root
    if ('lease' in v) held.set(v.lease.doc.serial, v.lease)
    // a laptop keeps its own expired lease, so it can still say since when it has expired
    else if (serial !== undefined && v.code === 'expired') {
      const l = readTrustedLease(bytes)
      if (l !== undefined) held.set(l.doc.serial, l)
    }
  }
  const accepted: Lease[] = []
  const refused: LeaseRefusal[] = []
  for (const bytes of batch.leases.slice(0, MAX_BATCH_LEASES)) {
    const v = verifyLease(trusted, bytes, roots, serial, clock, now)
    top = v.root
    if (!('lease' in v)) {
      refused.push({ serial: claimedSerial(bytes) ?? null, code: v.code, reason: v.reason })
      continue
    }
    const had = held.get(v.lease.doc.serial)
    if (!newerLease(v.lease, had)) continue
    held.set(v.lease.doc.serial, v.lease)
    accepted.push(v.lease)
    clock = Math.max(clock, v.lease.doc.issued)
  }
  // the roots a laptop behind us needs: those above the trusted one that verified
  const chain = rootsAbove(trusted, top, roots)
  return { store: { leases: [...held.values()].map(l => l.bytes), roots: chain, clock }, accepted, refused }
}

/** The envelopes of root versions trusted+1 … top found among candidates, in order. */
function rootsAbove (trusted: Root, top: Root, candidates: Uint8Array[]): Uint8Array[] {
  if (top.doc.version <= trusted.doc.version) return []
  return walkRoots(trusted, candidates).adopted.filter(r => r.doc.version <= top.doc.version).map(r => r.bytes)
}
