// CIDs as the exchange sees them: opaque binary CIDs, checked for shape at the
// edge so that nothing a peer sends reaches the driver's CID parser unless it
// is a CID the content layer accepts (sha2-256; raw, dag-pb or dag-cbor).

const SHA2_256 = 0x12
const CODECS = new Set([0x55, 0x70, 0x71]) // raw, dag-pb, dag-cbor

/** Length of a binary CIDv1 with a sha2-256 digest and a one-byte codec. */
export const CID_V1_LENGTH = 36
/** Length of a binary CIDv0. */
export const CID_V0_LENGTH = 34

/**
 * True when bytes are a binary CID this project can verify: a CIDv0, or a
 * CIDv1 whose codec is raw, dag-pb or dag-cbor and whose multihash is a
 * 32-byte sha2-256 (minimal varints, nothing after the digest).
 */
export function isValidCid (bytes: Uint8Array): boolean {
  if (bytes.length === CID_V0_LENGTH) return bytes[0] === SHA2_256 && bytes[1] === 32
  return bytes.length === CID_V1_LENGTH && bytes[0] === 1 && CODECS.has(bytes[1]!) &&
    bytes[2] === SHA2_256 && bytes[3] === 32
}

/** True when the CID names a raw block (a leaf). */
export function isRawCid (bytes: Uint8Array): boolean {
  return bytes.length === CID_V1_LENGTH && bytes[1] === 0x55
}

// The last key made and a copy of the bytes it was made from. Nearly every
// message names one of a few roots, and a new string per call (then hashed
// again by the map it looks up) was 2.5% of a district's simulation. The
// bytes are compared, not the array's identity, so a buffer its owner reuses
// never gets a stale key.
let lastBytes = new Uint8Array(0)
let lastKey = ''

/** A compact string key for maps (one char per byte). */
export function cidKey (bytes: Uint8Array): string {
  const last = lastBytes
  if (last.length === bytes.length) {
    let i = 0
    while (i < last.length && last[i] === bytes[i]) i++
    if (i === last.length) return lastKey
  }
  lastKey = String.fromCharCode.apply(null, bytes as unknown as number[])
  lastBytes = bytes.slice()
  return lastKey
}

/** Lower-case hex of the last 8 bytes: enough to tell CIDs apart in a log line. */
export function cidLabel (bytes: Uint8Array): string {
  let s = ''
  for (let i = Math.max(0, bytes.length - 8); i < bytes.length; i++) s += bytes[i]!.toString(16).padStart(2, '0')
  return `…${s}`
}
