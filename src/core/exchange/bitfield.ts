// Bitfields over a build's leaf indices: bit i is leaf i, most significant bit
// of byte 0 first (as BitTorrent), padding bits in the last byte zero. A
// bitfield is a plain Uint8Array so that ten thousand simulated peers cost
// one byte per eight leaves each.

/** Bytes of a bitfield over n leaves. */
export function bitfieldLength (n: number): number {
  return (n + 7) >>> 3
}

/** A bitfield over n leaves, all clear. */
export function emptyBitfield (n: number): Uint8Array {
  return new Uint8Array(bitfieldLength(n))
}

/** A bitfield over n leaves, all set (padding clear). */
export function fullBitfield (n: number): Uint8Array {
  const bf = new Uint8Array(bitfieldLength(n)).fill(0xff)
  const pad = bf.length * 8 - n
  if (pad > 0) bf[bf.length - 1] = (0xff << pad) & 0xff
  return bf
}

export function hasBit (bf: Uint8Array, i: number): boolean {
  return (bf[i >>> 3]! & (0x80 >>> (i & 7))) !== 0
}

export function setBit (bf: Uint8Array, i: number): void {
  const j = i >>> 3
  bf[j] = bf[j]! | (0x80 >>> (i & 7))
}

export function clearBit (bf: Uint8Array, i: number): void {
  const j = i >>> 3
  bf[j] = bf[j]! & ~(0x80 >>> (i & 7))
}

const POPCOUNT = new Uint8Array(256)
for (let i = 1; i < 256; i++) POPCOUNT[i] = (i & 1) + POPCOUNT[i >>> 1]!

/** Number of set bits. */
export function countBits (bf: Uint8Array): number {
  let n = 0
  for (let i = 0; i < bf.length; i++) n += POPCOUNT[bf[i]!]!
  return n
}

/** Number of bits set in both (bitfields of the same length). */
export function countCommon (a: Uint8Array, b: Uint8Array): number {
  let n = 0
  for (let i = 0; i < a.length; i++) {
    const v = a[i]! & b[i]!
    if (v !== 0) n += POPCOUNT[v]!
  }
  return n
}

/** True when bf is a well-formed bitfield over n leaves: the right length, padding bits clear. */
export function isBitfieldFor (bf: Uint8Array, n: number): boolean {
  if (bf.length !== bitfieldLength(n)) return false
  const pad = bf.length * 8 - n
  return pad === 0 || (bf[bf.length - 1]! & ((1 << pad) - 1)) === 0
}
