// CIDs of the content layer: CIDv1, sha2-256, raw leaves and dag-pb/dag-cbor
// nodes. Hashing goes through node:crypto (OpenSSL, SHA-NI where the CPU has
// it), several times faster than a JS sha256.
import { hash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import * as raw from 'multiformats/codecs/raw'
import * as dagPb from '@ipld/dag-pb'
import * as dagCbor from '@ipld/dag-cbor'
import { CorruptBlockError, InvalidInputError, UnsupportedCidError } from './errors.ts'

export { CID }
export const SHA2_256 = 0x12
export const RAW = raw.code
export const DAG_PB = dagPb.code
export const DAG_CBOR = dagCbor.code

/** Codecs a build may contain. */
const CODECS = new Set([RAW, DAG_PB, DAG_CBOR])

/** sha2-256 of bytes, as a multihash digest. */
export function sha256Digest (bytes: Uint8Array): Digest.Digest<typeof SHA2_256, number> {
  // crypto.hash: one call, no Hash object per block
  const h = hash('sha256', bytes, 'buffer')
  return Digest.create(SHA2_256, new Uint8Array(h.buffer, h.byteOffset, h.byteLength))
}

/** The CIDv1 of bytes under a codec. */
export function cidOf (codec: number, bytes: Uint8Array): CID {
  return CID.createV1(codec, sha256Digest(bytes))
}

/** Throws unless the CID is one this store can verify (v1 or v0, sha2-256, a known codec). */
export function checkCid (cid: CID): void {
  if (cid.multihash.code !== SHA2_256) throw new UnsupportedCidError(cid.toString(), 'only sha2-256 is accepted')
  if (!CODECS.has(cid.code)) throw new UnsupportedCidError(cid.toString(), `codec 0x${cid.code.toString(16)} is not raw, dag-pb or dag-cbor`)
}

/** True when bytes hash to the CID's digest. */
export function matches (cid: CID, bytes: Uint8Array): boolean {
  const want = cid.multihash.digest
  const got = hash('sha256', bytes, 'buffer')
  return got.length === want.length && got.equals(want)
}

/** Throws CorruptBlockError unless bytes hash to the CID. */
export function verifyBlock (cid: CID, bytes: Uint8Array, where: string): void {
  checkCid(cid)
  if (!matches(cid, bytes)) throw new CorruptBlockError(cid.toString(), where)
}

/** Parses a CID typed by a user or read from a file, with a clear error. */
export function parseCid (text: string): CID {
  try {
    const cid = CID.parse(text.trim())
    checkCid(cid)
    return cid
  } catch (err) {
    if (err instanceof UnsupportedCidError) throw err
    throw new InvalidInputError(`not a CID: ${JSON.stringify(text)}`, { cause: err })
  }
}
