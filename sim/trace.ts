// The trace hash: sha256 over every event the engine runs, in order, as
// (time, sequence, kind, node, argument) float64 records. Equal scenarios and
// seeds give equal hashes; this is what the determinism tests compare.
import { createHash, type Hash } from 'node:crypto'
import type { TraceSink } from './engine.ts'

const RECORDS = 8192

export class TraceHash implements TraceSink {
  private readonly hash: Hash = createHash('sha256')
  private readonly buf = new Float64Array(RECORDS * 5)
  private at = 0

  event (time: number, seq: number, kind: number, node: number, a: number): void {
    const b = this.buf
    let k = this.at
    b[k++] = time
    b[k++] = seq
    b[k++] = kind
    b[k++] = node
    b[k++] = a
    this.at = k
    if (k === b.length) this.flush()
  }

  private flush (): void {
    this.hash.update(new Uint8Array(this.buf.buffer, 0, this.at * 8))
    this.at = 0
  }

  /** The hex digest (ends the hash). */
  digest (): string {
    this.flush()
    return this.hash.digest('hex')
  }
}
