// The memory a frame split over several chunks is reassembled in (a 1 MiB
// data frame arrives as ~17 chunks of Noise), lent to one frame at a time
// and reused. A fresh megabyte per frame cost more than the copy itself:
// with the unit's malloc settings (MALLOC_MMAP_THRESHOLD_) each is an mmap,
// its pages faulted in and zeroed, then an munmap, ~0.2 CPU s per 256 MiB
// received. Frames are handled synchronously, one after another, so one
// buffer per process serves every session; a frame completed while it is
// lent (two split frames ending in one chunk) gets memory of its own.
//
// Whoever is handed a frame in it must not keep its bytes past the frame
// callback: decode() copies out what a message keeps (a data frame's root
// and CIDs; any other message whole), and the driver reads a data frame's
// payload (hash, copy into the writer's ring) before it returns.
import { decodeFrame, type Message } from '../../core/exchange/index.ts'

export class FrameScratch {
  private buffer: Buffer | undefined
  private lent = false
  private depth = 0
  private usedSince = false

  /** n bytes for the reader to fill: the shared buffer when free (grown to n), else fresh memory. Not zeroed. */
  take (n: number): Uint8Array {
    if (this.lent) return Buffer.allocUnsafe(n)
    this.lent = true
    this.usedSince = true
    if (this.buffer === undefined || this.buffer.length < n) this.buffer = Buffer.allocUnsafeSlow(n)
    return this.buffer.subarray(0, n)
  }

  /** True when bytes lie in the shared buffer. */
  holds (bytes: Uint8Array): boolean {
    return this.buffer !== undefined && bytes.buffer === this.buffer.buffer
  }

  /**
   * Brackets the reading and handling of a chunk's frames: the buffer lent
   * in between is free again when the outermost bracket closes (a chunk of
   * another session read while a frame is handled, were that to happen,
   * does not free it under the frame).
   */
  beginChunk (): void {
    this.depth++
  }

  endChunk (): void {
    if (--this.depth === 0) this.lent = false
  }

  /** Lets the buffer go when no frame needed it since the last call (an idle agent keeps no megabytes for it). */
  trim (): void {
    if (!this.usedSince && !this.lent) this.buffer = undefined
    this.usedSince = false
  }

  /**
   * decodeFrame, and for a body in the shared buffer, what the message keeps
   * copied out of it: a data frame's root and CIDs (its payload stays a view,
   * valid until the bracket closes), any other message decoded from a copy (control
   * frames are small and seldom split).
   */
  decode (body: Uint8Array): Message {
    if (!this.holds(body)) return decodeFrame(body)
    const m = decodeFrame(body)
    if (m.type !== 'blocks') return decodeFrame(copyOf(body))
    return { ...m, root: copyOf(m.root), cids: m.cids.map(copyOf) }
  }
}

/** A copy of bytes in memory of their own (a Buffer's slice() is a view). */
export function copyOf (bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes)
}
