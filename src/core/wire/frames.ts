// Length-prefixed framing shared by the core's protocols:
//
//   frame = uvarint(bodyLength) body          0 < bodyLength ≤ maxFrameSize
//
// A reader buffers at most one frame, and refuses a prefix above the limit
// before buffering anything of its body.
import { InvalidMessageError } from './errors.ts'
import { putUvarint, uvarintLength } from './protobuf.ts'

/** Prefixes a body with its length. */
export function lengthPrefixed (body: Uint8Array): Uint8Array {
  const out = new Uint8Array(uvarintLength(body.length) + body.length)
  out.set(body, putUvarint(out, 0, body.length))
  return out
}

/**
 * Splits a byte stream into frame bodies. Feed it chunks as they arrive;
 * it returns every frame completed so far (views into the chunks when a frame
 * lies within one chunk, else a copy). Throws InvalidMessageError on a length
 * prefix that is malformed, zero or above maxFrameSize, before buffering
 * the body: the driver then penalises the sender and closes the stream.
 */
export class LengthPrefixedReader {
  private chunks: Uint8Array[] = []
  private buffered = 0
  /** Body length of the frame being read, once its prefix is complete. */
  private need = -1
  private readonly maxFrameSize: number
  private readonly maxPrefixBytes: number

  /** maxFrameSize: the largest body accepted, bytes (below 2^28). */
  constructor (maxFrameSize: number) {
    this.maxFrameSize = maxFrameSize
    this.maxPrefixBytes = uvarintLength(maxFrameSize)
  }

  /** Bytes held, waiting for the rest of a frame. */
  get pending (): number { return this.buffered }

  push (chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = []
    if (chunk.length > 0) {
      this.chunks.push(chunk)
      this.buffered += chunk.length
    }
    for (;;) {
      if (this.need < 0) {
        const len = this.prefix()
        if (len === undefined) return out
        this.need = len
      }
      if (this.buffered < this.need) return out
      out.push(this.take(this.need))
      this.need = -1
    }
  }

  /** Parses and consumes a length prefix if it is complete. */
  private prefix (): number | undefined {
    let v = 0
    let mul = 1
    let n = 0
    for (const c of this.chunks) {
      for (let i = 0; i < c.length; i++) {
        const b = c[i]!
        v += (b & 0x7f) * mul
        n++
        if (b < 0x80) {
          if (b === 0 && n > 1) throw new InvalidMessageError('frame: non-minimal length prefix')
          if (v === 0) throw new InvalidMessageError('frame: zero length')
          if (v > this.maxFrameSize) throw new InvalidMessageError(`frame: ${v} bytes exceed ${this.maxFrameSize}`)
          this.take(n)
          return v
        }
        if (n >= this.maxPrefixBytes) throw new InvalidMessageError(`frame: length prefix exceeds ${this.maxFrameSize}`)
        mul *= 128
      }
    }
    return undefined
  }

  /** Removes n buffered bytes, as one array. */
  private take (n: number): Uint8Array {
    const first = this.chunks[0]!
    if (first.length >= n) {
      const out = first.subarray(0, n)
      if (first.length === n) this.chunks.shift()
      else this.chunks[0] = first.subarray(n)
      this.buffered -= n
      return out
    }
    const out = new Uint8Array(n)
    let pos = 0
    while (pos < n) {
      const c = this.chunks[0]!
      const k = Math.min(c.length, n - pos)
      out.set(c.subarray(0, k), pos)
      pos += k
      if (k === c.length) this.chunks.shift()
      else this.chunks[0] = c.subarray(k)
    }
    this.buffered -= n
    return out
  }
}
