// One relay stream: frames in (FrameReader + decodeFrame, synchronously in the
// 'message' event, so a peer's bytes wait in Yamux's window, not in our
// memory) and frames out, in order, waiting for 'drain' when libp2p's buffer
// is full. The only code that touches relay streams.
import type { Stream, StreamMessageEvent } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'
import { FrameReader, InvalidMessageError, decodeFrame } from '../../core/relay/index.ts'
import type { Message } from '../../core/relay/index.ts'

export interface RelayStreamCallbacks {
  message (m: Message): void
  /** The peer sent bytes that are not a frame: the stream is aborted. */
  malformed (reason: string): void
  /** The stream closed or failed; called once. */
  ended (why: string): void
}

export class RelayStream {
  private readonly reader = new FrameReader()
  private readonly queue: Uint8Array[] = []
  private writing = false
  ended = false
  bytesIn = 0
  bytesOut = 0

  readonly peer: string
  readonly stream: Stream
  private readonly cb: RelayStreamCallbacks
  private readonly writeTimeoutMs: number

  constructor (peer: string, stream: Stream, cb: RelayStreamCallbacks, writeTimeoutMs: number) {
    this.peer = peer
    this.stream = stream
    this.cb = cb
    this.writeTimeoutMs = writeTimeoutMs
    stream.addEventListener('message', (evt: StreamMessageEvent) => { this.onData(evt.data) })
    stream.addEventListener('close', () => { this.end('the stream closed') })
    stream.addEventListener('remoteCloseWrite', () => { this.end('the peer closed its side') })
  }

  private onData (data: Uint8Array | Uint8ArrayList): void {
    if (this.ended) return
    this.bytesIn += data.byteLength
    try {
      const chunks = data instanceof Uint8Array ? [data] : [...data]
      for (const c of chunks) {
        for (const body of this.reader.push(c)) {
          if (this.ended) return
          this.cb.message(decodeFrame(body))
        }
      }
    } catch (err) {
      const reason = err instanceof InvalidMessageError ? err.message : `reading a frame failed: ${(err as Error).message}`
      this.cb.malformed(reason)
      this.end(reason, true)
    }
  }

  /** Queues a whole frame (length prefix included). */
  send (frame: Uint8Array): void {
    if (this.ended) return
    this.queue.push(frame)
    void this.writeLoop()
  }

  private async writeLoop (): Promise<void> {
    if (this.writing) return
    this.writing = true
    try {
      while (this.queue.length > 0 && !this.ended) {
        const f = this.queue.shift()!
        this.bytesOut += f.length
        this.stream.send(f)
        if (this.stream.writableNeedsDrain) await this.stream.onDrain({ signal: AbortSignal.timeout(this.writeTimeoutMs) })
      }
    } catch (err) {
      this.end(`writing failed: ${(err as Error).message}`, true)
    } finally {
      this.writing = false
    }
  }

  /** Closes (abort: resets) the stream; calls `ended` once. */
  end (why: string, abort = false): void {
    if (this.ended) return
    this.ended = true
    this.queue.length = 0
    const err = new Error(why)
    if (abort) {
      try { this.stream.abort(err) } catch { /* closed */ }
    } else {
      this.stream.close({ signal: AbortSignal.timeout(this.writeTimeoutMs) }).catch(() => {
        try { this.stream.abort(err) } catch { /* closed */ }
      })
    }
    this.cb.ended(why)
  }
}
