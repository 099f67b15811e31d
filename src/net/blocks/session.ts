// One peer's exchange on libp2p streams (protocols/blocks.md, 4.1): the
// stream we opened carries our frames, the stream the peer opened carries
// theirs; each is used in one direction only. This is the only code that
// reads or writes those streams.
//
// Reading: every chunk goes through a FrameReader (which holds at most one
// frame, MAX_FRAME_SIZE bytes, per peer) and decodeFrame, synchronously in the
// stream's 'message' event, so what the peer sends waits in the kernel and in
// Yamux's window, not in our memory. Anything a chunk makes us throw is the
// peer's fault: reported as malformed (the core bans), never raised.
//
// Writing: one queue per peer, in order. Control frames queued in the same
// tick go out in one send; a data frame is its head and the blocks' buffers
// handed to the stream as one list (no concatenation). When the stream says
// it is full we wait for 'drain' (bounded by writeTimeoutMs) before the next
// item, so at most about one frame waits in libp2p's buffer.
import { Uint8ArrayList } from 'uint8arraylist'
import { FrameReader, InvalidMessageError } from '../../core/exchange/index.ts'
import { FrameScratch } from './scratch.ts'
import type { Message } from '../../core/exchange/index.ts'
import type { Stream, StreamMessageEvent } from '@libp2p/interface'

/** Control bytes queued for a peer at most; beyond, the peer is not reading and the session ends. */
export const MAX_QUEUED_CONTROL_BYTES = 8 * 1024 * 1024

/** A data frame (or several) to write: the job writes with `w` and resolves when done. */
export type WriteJob = (w: Writer) => Promise<void>

/** What a write job may do. */
export interface Writer {
  /** Hands bytes to the stream (no copy). */
  send (data: Uint8Array | Uint8ArrayList): void
  /** Resolves when the stream can take more (at once unless it said it is full). Rejects when the stream closes or the wait exceeds the write timeout. */
  drain (): Promise<void>
  /** True once the session has ended: stop writing. */
  readonly ended: boolean
}

export interface SessionCallbacks {
  /** A decoded frame from the peer. A data frame's payload may be reused once this returns: read it (or copy it) here. */
  frame (s: Session, m: Message): void
  /** The peer sent bytes that are not a valid frame (or reading them threw). */
  malformed (s: Session, reason: string): void
  /** The session ended (a stream closed, a write failed, or end() was called); called once. */
  ended (s: Session, why: string): void
  /** Bytes on the wire (frames, not Noise/Yamux overhead). */
  wire (s: Session, sent: number, received: number): void
}

export interface SessionInit {
  /** A drain may take this long before the peer is deemed gone, ms. */
  writeTimeoutMs: number
  /** Bytes the peer may send ahead of what we have read (the muxer's receive window), at most. */
  receiveWindow: number
}

/** Default receive window: ample for a classroom link (3 MB/s × 20 ms is 60 KB) and for loopback. */
export const DEFAULT_RECEIVE_WINDOW = 2 * 1024 * 1024

/**
 * Caps how far the muxer lets the peer write ahead of what we read. Yamux
 * grows a stream's window to 16 MiB on a fast link: that much can sit in
 * kernel buffers between us, and is lost (sent twice) when a fetcher is
 * killed. Only Yamux streams have the knob; others are left alone.
 */
function capReceiveWindow (stream: Stream, bytes: number): void {
  const s = stream as unknown as { maxStreamWindowSize?: unknown, recvWindow?: unknown }
  if (typeof s.maxStreamWindowSize === 'number' && typeof s.recvWindow === 'number') {
    s.maxStreamWindowSize = Math.max(Math.min(s.maxStreamWindowSize, bytes), s.recvWindow)
  }
}

type Item = Uint8Array | WriteJob

/** The reassembly buffer every session's reader shares (scratch.ts). */
const scratch = new FrameScratch()

/** Frees the reassembly buffer if it went unused since the last call (the driver calls it every second). */
export function trimFrameScratch (): void {
  scratch.trim()
}

/** A frame reader copying split frames into the shared scratch buffer (or unzeroed memory when it is lent). */
function newReader (): FrameReader {
  return new FrameReader(n => scratch.take(n))
}

export class Session {
  readonly peer: string
  outbound: Stream | undefined
  inbound: Stream | undefined
  /** Our stream is being opened. */
  opening = false
  /** The core has been told `connected` (and is told `disconnected` when the session ends). */
  coreConnected = false
  /** Our stream is open and the core knows the peer: reading and writing run. */
  open = false
  ended = false
  /** Do not reopen after the end (the peer does not speak the protocol). */
  noReopen = false
  readonly startedAt = Date.now()
  private reader = newReader()
  private readonly cb: SessionCallbacks
  private readonly init: SessionInit
  private readonly queue: Item[] = []
  private queuedControl = 0
  private writing = false
  private kickScheduled = false
  private readonly cleanups: Array<() => void> = []
  /** Removes our listeners from the current inbound stream. */
  private detachInbound: (() => void) | undefined

  constructor (peer: string, callbacks: SessionCallbacks, init: SessionInit) {
    this.peer = peer
    this.cb = callbacks
    this.init = init
  }

  /** Bytes held waiting for the rest of a frame (at most MAX_FRAME_SIZE plus a chunk). */
  get pendingBytes (): number {
    return this.reader.pending
  }

  /** When the frame being read began to arrive (Date.now()), or undefined between frames. */
  partialSince: number | undefined

  /** The peer's stream to us. A second one replaces the first (which is reset). Reading waits until the session is open. */
  attachInbound (stream: Stream): void {
    capReceiveWindow(stream, this.init.receiveWindow)
    const old = this.inbound
    this.inbound = stream
    this.reader = newReader() // a new stream starts at a frame boundary
    if (old !== undefined) {
      this.detachInbound?.()
      try { old.abort(new Error('replaced by a newer stream')) } catch { /* already closed */ }
    }
    const onMessage = (evt: StreamMessageEvent): void => { this.onData(evt.data) }
    const onEnd = (): void => { this.end('the peer closed its stream') }
    stream.addEventListener('message', onMessage)
    stream.addEventListener('close', onEnd)
    stream.addEventListener('remoteCloseWrite', onEnd)
    this.detachInbound = () => {
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onEnd)
      stream.removeEventListener('remoteCloseWrite', onEnd)
      this.detachInbound = undefined
    }
    if (!this.open) this.pause(stream)
  }

  /** Our stream to the peer, just opened. */
  attachOutbound (stream: Stream): void {
    this.outbound = stream
    // the accepting side never writes on it: drop whatever arrives instead of buffering it
    const onMessage = (evt: StreamMessageEvent): void => { this.cb.wire(this, 0, evt.data.byteLength) }
    const onClose = (): void => { this.end('our stream closed') }
    stream.addEventListener('message', onMessage)
    stream.addEventListener('close', onClose)
    this.cleanups.push(() => {
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
    })
  }

  /** The core knows the peer: start reading, start writing. */
  markOpen (): void {
    this.open = true
    if (this.inbound !== undefined) this.resume(this.inbound)
    this.kick()
  }

  /** Queues a control frame. */
  sendFrame (bytes: Uint8Array): void {
    if (this.ended) return
    this.queue.push(bytes)
    this.queuedControl += bytes.length
    if (this.queuedControl > MAX_QUEUED_CONTROL_BYTES) {
      this.end(`more than ${MAX_QUEUED_CONTROL_BYTES} bytes of frames wait for the peer to read`)
      return
    }
    this.kick()
  }

  /** Queues a data frame job, written in order with the control frames. */
  sendJob (job: WriteJob): void {
    if (this.ended) return
    this.queue.push(job)
    this.kick()
  }

  /**
   * Ends the session: closes both streams (reset with `reset`, else our
   * stream is closed gracefully after what is queued in libp2p), drops what
   * is queued here, and calls `ended` once.
   */
  end (why: string, options: { reset?: boolean } = {}): void {
    if (this.ended) return
    this.ended = true
    this.queue.length = 0
    this.detachInbound?.()
    for (const c of this.cleanups.splice(0)) c()
    const err = new Error(why)
    if (this.inbound !== undefined) {
      try { this.inbound.abort(err) } catch { /* closed */ }
    }
    const out = this.outbound
    if (out !== undefined) {
      if (options.reset === true) {
        try { out.abort(err) } catch { /* closed */ }
      } else {
        out.close({ signal: AbortSignal.timeout(this.init.writeTimeoutMs) }).catch(() => {
          try { out.abort(err) } catch { /* closed */ }
        })
      }
    }
    this.cb.ended(this, why)
  }

  private pause (stream: Stream): void {
    try { stream.pause() } catch { /* closing: 'close' follows */ }
  }

  private resume (stream: Stream): void {
    try { stream.resume() } catch { /* closing: 'close' follows */ }
  }

  private onData (data: Uint8Array | Uint8ArrayList): void {
    if (this.ended) return
    this.cb.wire(this, 0, data.byteLength)
    try {
      let frames = 0
      if (data instanceof Uint8Array) frames += this.push(data)
      else {
        for (const chunk of data) {
          frames += this.push(chunk)
          if (this.ended) return
        }
      }
      // the frame now being read began in this chunk if one ended in it
      if (this.reader.pending === 0) this.partialSince = undefined
      else if (frames > 0 || this.partialSince === undefined) this.partialSince = Date.now()
    } catch (err) {
      if (this.ended) return
      this.cb.malformed(this, err instanceof InvalidMessageError ? err.message : `reading a frame failed: ${(err as Error).message}`)
    }
  }

  /** Feeds a chunk to the reader and the frames it completes to the callback; returns how many. */
  private push (chunk: Uint8Array): number {
    let bodies: Uint8Array[]
    scratch.beginChunk()
    try {
      bodies = this.reader.push(chunk)
      for (const body of bodies) {
        if (this.ended) break
        this.cb.frame(this, scratch.decode(body))
      }
    } finally {
      scratch.endChunk()
    }
    return bodies.length
  }

  /** Starts the write loop after the current tick, so frames queued together go out together. */
  private kick (): void {
    if (this.writing || this.kickScheduled || !this.open || this.ended) return
    this.kickScheduled = true
    queueMicrotask(() => {
      this.kickScheduled = false
      void this.writeLoop()
    })
  }

  private write (data: Uint8Array | Uint8ArrayList): void {
    if (this.ended || this.outbound === undefined) throw new Error('the session has ended')
    this.cb.wire(this, data.byteLength, 0)
    this.outbound.send(data)
  }

  private async drain (): Promise<void> {
    const out = this.outbound
    if (out === undefined || this.ended) throw new Error('the session has ended')
    if (!out.writableNeedsDrain) return
    await out.onDrain({ signal: AbortSignal.timeout(this.init.writeTimeoutMs) })
  }

  private async writeLoop (): Promise<void> {
    if (this.writing || this.ended || !this.open) return
    this.writing = true
    const isEnded = (): boolean => this.ended
    const writer: Writer = {
      send: data => { this.write(data) },
      drain: async () => { await this.drain() },
      get ended () { return isEnded() }
    }
    try {
      while (this.queue.length > 0 && !this.ended) {
        const first = this.queue[0]!
        if (first instanceof Uint8Array) {
          // every control frame queued now, in one send
          const list = new Uint8ArrayList()
          while (this.queue.length > 0 && this.queue[0] instanceof Uint8Array) {
            const f = this.queue.shift() as Uint8Array
            this.queuedControl -= f.length
            list.append(f)
          }
          this.write(list)
        } else {
          this.queue.shift()
          await first(writer)
        }
        if (!this.ended) await this.drain()
      }
    } catch (err) {
      if (!this.ended) this.end(`writing to the peer failed: ${(err as Error).message}`, { reset: true })
    } finally {
      this.writing = false
    }
  }
}
