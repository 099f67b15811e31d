// Install results spread through the mesh, so a staged rollout halts in a
// school with no link (protocols/advisory.md, section 6). A result says "this
// laptop applied (or failed to apply) this build at this time" and is signed
// by the laptop's own identity key, so a peer can pass on results but never
// make them up in another laptop's name.
//
//   InstallResult { origin_key: 32-byte Ed25519 public key, build: binary CID,
//                   ok: bool, at: ms since the epoch, signature: 64 bytes }
//
// The signature covers INSTALL_RESULT_CONTEXT ‖ "\n" ‖ the encoding of fields
// 1-4 (resultBody). The core decodes records (bounded) but checks signatures
// through an injected function: it imports no cryptography.
//
// A ResultSet keeps one result per (origin, build): the one with the latest
// `at` (a laptop that failed and then succeeded counts as a success). Its
// digest is the XOR of the kept records' ids (their sha2-256, given by the
// checker), so two sets compare in one advert whatever the order they were
// learned in.
import { InvalidMessageError } from '../wire/errors.ts'
import { LEN, Reader, VARINT, Writer } from '../wire/protobuf.ts'
import { MAX_HASH_BYTES, MAX_RESULT_BYTES, MAX_RESULTS } from './constants.ts'

export const INSTALL_RESULT_CONTEXT = 'xo-mesh install-result v1'
export const ORIGIN_KEY_BYTES = 32
export const RESULT_SIGNATURE_BYTES = 64
export const RESULT_ID_BYTES = 32

export interface InstallResult {
  /** The laptop's Ed25519 public key (its peer id derives from it). */
  originKey: Uint8Array
  /** The build's binary CID. */
  build: Uint8Array
  ok: boolean
  /** When it was applied or failed, ms since the epoch (the laptop's clock). */
  at: number
  signature: Uint8Array
}

/** The bytes a result's signature covers (without the context prefix). */
export function resultBody (r: Omit<InstallResult, 'signature'>): Uint8Array {
  return new Writer(128).bytes(1, r.originKey).bytes(2, r.build).bool(3, r.ok).uint53(4, r.at).finish()
}

/** A result's record bytes. Throws RangeError when it breaks the limits (the caller's bug). */
export function encodeResult (r: InstallResult): Uint8Array {
  if (r.originKey.length !== ORIGIN_KEY_BYTES || r.signature.length !== RESULT_SIGNATURE_BYTES) throw new RangeError('an install result needs a 32-byte key and a 64-byte signature')
  if (r.build.length === 0 || r.build.length > MAX_HASH_BYTES) throw new RangeError(`a build CID of ${r.build.length} bytes`)
  if (!Number.isSafeInteger(r.at) || r.at < 0) throw new RangeError(`at ${r.at}`)
  return new Writer(200).bytes(1, r.originKey).bytes(2, r.build).bool(3, r.ok).uint53(4, r.at).bytes(5, r.signature).finish()
}

/** Parses a record. Throws InvalidMessageError, and nothing else, on anything else. */
export function decodeResult (bytes: Uint8Array): InstallResult {
  try {
    if (bytes.length > MAX_RESULT_BYTES) throw new InvalidMessageError(`install result of ${bytes.length} bytes`)
    const r = new Reader(bytes, 'install result')
    let originKey: Uint8Array | undefined
    let build: Uint8Array | undefined
    let ok = false
    let at = 0
    let signature: Uint8Array | undefined
    const KNOWN: Record<number, number> = { 1: LEN, 2: LEN, 3: VARINT, 4: VARINT, 5: LEN }
    while (!r.eof()) {
      const { field, wire } = r.tag()
      const want = KNOWN[field]
      if (want === undefined) { r.skip(wire); continue }
      if (wire !== want) r.fail(`field ${field} has wire type ${wire}, not ${want}`)
      switch (field) {
        case 1: originKey = r.bytes(); break
        case 2: build = r.bytes(); break
        case 3: ok = r.bool(); break
        case 4: at = r.uint53(); break
        case 5: signature = r.bytes(); break
      }
    }
    if (originKey?.length !== ORIGIN_KEY_BYTES) return r.fail('origin_key is not 32 bytes')
    if (build === undefined || build.length === 0 || build.length > MAX_HASH_BYTES) return r.fail('build is not 1 to 64 bytes')
    if (signature?.length !== RESULT_SIGNATURE_BYTES) return r.fail('signature is not 64 bytes')
    return { originKey, build, ok, at, signature }
  } catch (err) {
    if (err instanceof InvalidMessageError) throw err
    throw new InvalidMessageError(`install result: ${(err as Error).message}`)
  }
}

/** What the injected checker says of a record: undefined when it does not decode or its signature fails. */
export interface CheckedResult { result: InstallResult, id: Uint8Array }
export type CheckResult = (record: Uint8Array) => CheckedResult | undefined

function hex (b: Uint8Array): string {
  let s = ''
  for (let i = 0; i < b.length; i++) s += b[i]!.toString(16).padStart(2, '0')
  return s
}

function compare (a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return a.length - b.length
}

interface Kept { record: Uint8Array, result: InstallResult, id: Uint8Array }

/** Failures and successes seen for one build, one per laptop. */
export interface Tally { ok: number, failed: number }

export class ResultSet {
  private readonly kept = new Map<string, Kept>()
  private readonly digestBytes = new Uint8Array(RESULT_ID_BYTES)
  private readonly max: number

  constructor (max = MAX_RESULTS) {
    this.max = max
  }

  get size (): number { return this.kept.size }

  /** XOR of the ids kept (32 bytes), or empty when none. */
  digest (): Uint8Array {
    return this.kept.size === 0 ? new Uint8Array(0) : this.digestBytes.slice()
  }

  private flip (id: Uint8Array): void {
    for (let i = 0; i < RESULT_ID_BYTES; i++) this.digestBytes[i]! ^= id[i] ?? 0
  }

  /**
   * Adds a checked record; true when it changed the set (new, or newer than
   * the one kept for its laptop and build). Past `max`, the oldest result
   * goes (bounded memory).
   */
  add (record: Uint8Array, c: CheckedResult): boolean {
    const key = `${hex(c.result.originKey)}/${hex(c.result.build)}`
    const old = this.kept.get(key)
    if (old !== undefined) {
      const newer = c.result.at > old.result.at || (c.result.at === old.result.at && compare(c.id, old.id) < 0)
      if (!newer) return false
      this.flip(old.id)
    }
    this.kept.set(key, { record, result: c.result, id: c.id })
    this.flip(c.id)
    if (this.kept.size > this.max) {
      let oldest: [string, Kept] | undefined
      for (const e of this.kept) if (oldest === undefined || e[1].result.at < oldest[1].result.at) oldest = e
      this.kept.delete(oldest![0])
      this.flip(oldest![1].id)
      if (oldest![0] === key) return false
    }
    return true
  }

  /** Every record kept, in no particular order. */
  records (): Uint8Array[] {
    return [...this.kept.values()].map(k => k.record)
  }

  results (): InstallResult[] {
    return [...this.kept.values()].map(k => k.result)
  }

  /** Successes and failures for a build (binary CID), one per laptop. */
  tally (build: Uint8Array): Tally {
    const t: Tally = { ok: 0, failed: 0 }
    for (const k of this.kept.values()) {
      if (compare(k.result.build, build) !== 0) continue
      if (k.result.ok) t.ok++
      else t.failed++
    }
    return t
  }
}
