// What a USB stick carries between a school with no link and the mothership
// (docs/upstream.md, section "The USB round trip"). Each school server has a
// directory of its own on the stick, named by its peer id, so one stick can
// serve several schools and a school never reads another's files:
//
//   STICK/xo-mesh/<school peer id>/
//     manifest.json      written last by the school: the trip, the outbox
//                        file's size and sha-256, the want-list
//     outbox-<trip>.bin  the items: relay Offer frames (the wire codec),
//                        each at most DEFAULT_BATCH_ITEMS / ~1 MiB
//     receipt.cbor       from the mothership: custody of what it stored,
//                        signed with its identity key
//     advisories.car     the deployment's snapshot and root versions, when
//                        the school's is older (src/trust/bundle.ts)
//     builds/<cid>.car   each advised build the school lacks (content/bundle.ts)
//     reply.json         written last by the mothership: the trip answered,
//                        the files above with their sizes and sha-256
//
// Every file is written to a temporary name, fsynced and renamed; the file
// that names the others comes last, so a stick pulled out mid-write shows
// either the previous trip or the new one, never half of one. Checksums
// catch what a cheap stick corrupts afterwards.
import * as dagCbor from '@ipld/dag-cbor'
import { createHash, createPrivateKey } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { isValidOrigin } from '../core/relay/origin.ts'
import type { Custody } from '../core/relay/types.ts'
import { signBytes, verifyBytes, keyIdOf, type SigningKey } from '../trust/keys.ts'

export const STICK_DIR = 'xo-mesh'
export const MANIFEST_FILE = 'manifest.json'
export const RECEIPT_FILE = 'receipt.cbor'
export const ADVISORIES_FILE = 'advisories.car'
export const BUILDS_DIR = 'builds'
export const REPLY_FILE = 'reply.json'
export const MANIFEST_FORMAT = 'xo-mesh/usb-outbox/1'
export const REPLY_FORMAT = 'xo-mesh/usb-reply/1'
export const RECEIPT_TYPE = 'xo-mesh/usb-receipt'
/** Signature context: a receipt signature can never pass for another document's. */
export const RECEIPT_CONTEXT = 'xo-mesh usb receipt v1'
/** JSON files on a stick are small; a larger one is not ours. */
const MAX_JSON_BYTES = 4 << 20
/** A receipt names at most this many origins (a school of a few hundred laptops, with room). */
export const MAX_RECEIPT_ORIGINS = 100_000
const MAX_RECEIPT_BYTES = 32 << 20
/** Counters listed above the contiguous run, per origin, at most. */
const MAX_ABOVE = 65_536

/** The school's side of a trip: what it carries and what it has. */
export interface Manifest {
  format: typeof MANIFEST_FORMAT
  /** The peer id of the school server that wrote it (= its directory's name). */
  from: string
  /** The deployment's name for the school (config advisory.school), or null. */
  school: string | null
  /** A random id of this trip; the receipt names it. */
  trip: string
  /** ms since the epoch, the school's clock. */
  written: number
  outbox: { file: string, bytes: number, sha256: string, items: number }
  /** What the school has: complete builds (CIDs), the advisory snapshot and root versions it trusts (0: none). */
  want: { builds: string[], snapshot: number, root: number }
}

/** The mothership's answer to one trip. */
export interface Reply {
  format: typeof REPLY_FORMAT
  trip: string
  files: Array<{ file: string, bytes: number, sha256: string, kind: 'receipt' | 'advisories' | 'build', cid?: string }>
}

/** Custody of a stick's items, as the mothership signs it. */
export interface StickReceipt {
  type: typeof RECEIPT_TYPE
  /** The mothership's peer id. */
  mothership: string
  /** The school server whose outbox this answers. */
  school: string
  trip: string
  /** sha-256 (hex) of the outbox file it read. */
  outbox: string
  custody: Custody[]
  issued: number
}

/** The directory of one school on a stick. */
export function schoolDir (stick: string, peerId: string): string {
  return join(stick, STICK_DIR, peerId)
}

/** Writes bytes (or what write() puts in the file handle) to path via a temporary file, fsync and rename, then fsyncs the directory. */
export async function writeFileAtomic (path: string, content: Uint8Array | ((fh: import('node:fs/promises').FileHandle) => Promise<void>)): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  const tmp = `${path}.${process.pid}.tmp`
  const fh = await open(tmp, 'w', 0o644)
  try {
    if (typeof content === 'function') await content(fh)
    else await fh.writeFile(content)
    await fh.sync()
  } catch (err) {
    await fh.close()
    await rm(tmp, { force: true })
    throw err
  }
  await fh.close()
  await rename(tmp, path)
  const dir = await open(dirname(path), 'r')
  try { await dir.sync() } finally { await dir.close() }
}

/** sha-256 (hex) and size of a file, streamed. */
export async function digestFile (path: string): Promise<{ sha256: string, bytes: number }> {
  const h = createHash('sha256')
  let bytes = 0
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    h.update(chunk as Buffer)
    bytes += (chunk as Buffer).length
  }
  return { sha256: h.digest('hex'), bytes }
}

/** Whether the file at path has the size and sha-256 stated; false when it is missing. */
export async function fileMatches (path: string, bytes: number, sha256: string): Promise<boolean> {
  try {
    if ((await stat(path)).size !== bytes) return false
    return (await digestFile(path)).sha256 === sha256
  } catch {
    return false
  }
}

async function readJson (path: string): Promise<unknown> {
  try {
    if ((await stat(path)).size > MAX_JSON_BYTES) return undefined
    return JSON.parse(await readFile(path, 'utf8')) as unknown
  } catch {
    return undefined
  }
}

const HEX64 = /^[0-9a-f]{64}$/
const TRIP = /^[0-9a-f]{16,64}$/
const FILE = /^[A-Za-z0-9._-]{1,200}$/
const count = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0

/** The manifest in a school's directory, or undefined when it is missing or not one (never throws). */
export async function readManifest (dir: string): Promise<Manifest | undefined> {
  const v = await readJson(join(dir, MANIFEST_FILE)) as Partial<Manifest> | undefined
  if (v === undefined || v === null || typeof v !== 'object' || v.format !== MANIFEST_FORMAT) return undefined
  const o = v.outbox
  const w = v.want
  if (typeof v.from !== 'string' || !isValidOrigin(v.from) || typeof v.trip !== 'string' || !TRIP.test(v.trip) || !count(v.written)) return undefined
  if (v.school !== null && (typeof v.school !== 'string' || v.school.length > 200)) return undefined
  if (o === undefined || o === null || typeof o.file !== 'string' || !FILE.test(o.file) || !count(o.bytes) || typeof o.sha256 !== 'string' || !HEX64.test(o.sha256) || !count(o.items)) return undefined
  if (w === undefined || w === null || !Array.isArray(w.builds) || w.builds.length > 10_000 || !w.builds.every(b => typeof b === 'string' && b.length < 200) || !count(w.snapshot) || !count(w.root)) return undefined
  return { format: MANIFEST_FORMAT, from: v.from, school: v.school ?? null, trip: v.trip, written: v.written, outbox: { file: o.file, bytes: o.bytes, sha256: o.sha256, items: o.items }, want: { builds: w.builds, snapshot: w.snapshot, root: w.root } }
}

/** The reply in a school's directory, or undefined (never throws). */
export async function readReply (dir: string): Promise<Reply | undefined> {
  const v = await readJson(join(dir, REPLY_FILE)) as Partial<Reply> | undefined
  if (v === undefined || v === null || typeof v !== 'object' || v.format !== REPLY_FORMAT || typeof v.trip !== 'string' || !TRIP.test(v.trip) || !Array.isArray(v.files) || v.files.length > 10_000) return undefined
  const files: Reply['files'] = []
  for (const f of v.files as unknown[]) {
    const e = f as Reply['files'][number]
    if (e === null || typeof e !== 'object' || typeof e.file !== 'string' || !/^(builds\/)?[A-Za-z0-9._-]{1,200}$/.test(e.file) || e.file.includes('..')) return undefined
    if (!count(e.bytes) || typeof e.sha256 !== 'string' || !HEX64.test(e.sha256) || !['receipt', 'advisories', 'build'].includes(e.kind)) return undefined
    files.push({ file: e.file, bytes: e.bytes, sha256: e.sha256, kind: e.kind, ...(typeof e.cid === 'string' ? { cid: e.cid } : {}) })
  }
  return { format: REPLY_FORMAT, trip: v.trip, files }
}

/** The identity key of an agent (a libp2p Ed25519 key's 32-byte seed and public key) as a key that signs receipts. */
export function receiptKey (seed: Uint8Array, publicKey: Uint8Array): SigningKey {
  const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: Buffer.from(seed).toString('base64url'), x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' })
  return { keyid: keyIdOf(publicKey), publicKey, privateKey }
}

/** A signed receipt: dag-cbor {signed, sig}. */
export function signReceipt (r: StickReceipt, key: SigningKey): Uint8Array {
  const signed = dagCbor.encode(r)
  return dagCbor.encode({ signed, sig: signBytes(key, RECEIPT_CONTEXT, signed) })
}

function custodyOf (v: unknown): Custody | undefined {
  const c = v as Custody
  if (c === null || typeof c !== 'object' || typeof c.origin !== 'string' || !isValidOrigin(c.origin) || !count(c.contiguous) || !Array.isArray(c.above) || c.above.length > MAX_ABOVE) return undefined
  let last = c.contiguous
  for (const a of c.above) {
    if (!Number.isSafeInteger(a) || a <= last) return undefined
    last = a
  }
  return { origin: c.origin, contiguous: c.contiguous, above: [...c.above] }
}

export type ReceiptCheck = { ok: true, receipt: StickReceipt } | { ok: false, reason: string }

/**
 * Opens a receipt and checks it: signed by `mothershipKey` (the public key of
 * the configured mothership's peer id), for `school`, well formed. Never
 * throws on the bytes.
 */
export function openReceipt (bytes: Uint8Array, mothershipKey: Uint8Array, school: string): ReceiptCheck {
  if (bytes.length > MAX_RECEIPT_BYTES) return { ok: false, reason: 'the receipt is too large' }
  let env: unknown
  try { env = dagCbor.decode(bytes) } catch { return { ok: false, reason: 'the receipt is not dag-cbor' } }
  const e = env as { signed?: unknown, sig?: unknown }
  if (e === null || typeof e !== 'object' || !(e.signed instanceof Uint8Array) || !(e.sig instanceof Uint8Array)) return { ok: false, reason: 'the receipt is not a signed envelope' }
  if (!verifyBytes(mothershipKey, RECEIPT_CONTEXT, e.signed, e.sig)) return { ok: false, reason: 'the receipt is not signed by the configured mothership' }
  let doc: unknown
  try { doc = dagCbor.decode(e.signed) } catch { return { ok: false, reason: 'the signed receipt is not dag-cbor' } }
  const r = doc as StickReceipt
  if (r === null || typeof r !== 'object' || r.type !== RECEIPT_TYPE || typeof r.school !== 'string' || typeof r.mothership !== 'string' || typeof r.trip !== 'string' || typeof r.outbox !== 'string' || !count(r.issued) || !Array.isArray(r.custody) || r.custody.length > MAX_RECEIPT_ORIGINS) return { ok: false, reason: 'the receipt is malformed' }
  if (r.school !== school) return { ok: false, reason: `the receipt answers another school server (${r.school})` }
  const custody: Custody[] = []
  for (const c of r.custody) {
    const ok = custodyOf(c)
    if (ok === undefined) return { ok: false, reason: 'the receipt holds a malformed custody entry' }
    custody.push(ok)
  }
  return { ok: true, receipt: { ...r, custody } }
}
