// One question, one answer, one stream: the shape of the small protocols
// (lease renewal, registration). The asker opens a stream, writes one
// length-prefixed frame and closes its side; the answerer reads that frame,
// writes one frame back and closes. Every wait is bounded; a frame past its
// limit, or a second frame, ends the stream. The only code that touches
// these protocols' streams.
import { peerIdFromString } from '@libp2p/peer-id'
import type { Libp2p, Stream, StreamMessageEvent } from '@libp2p/interface'
import { LengthPrefixedReader, lengthPrefixed } from '../core/wire/frames.ts'

/** Reads exactly one frame from a stream (its body), or throws after timeoutMs / on a malformed prefix / on a close before it. */
async function readOne (stream: Stream, maxFrame: number, timeoutMs: number): Promise<Uint8Array> {
  const reader = new LengthPrefixedReader(maxFrame)
  return await new Promise<Uint8Array>((resolve, reject) => {
    const done = (err?: Error, body?: Uint8Array): void => {
      clearTimeout(timer)
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('remoteCloseWrite', onClose)
      stream.removeEventListener('close', onClose)
      if (err !== undefined) reject(err)
      else resolve(body!)
    }
    const onMessage = (evt: StreamMessageEvent): void => {
      try {
        const chunks = evt.data instanceof Uint8Array ? [evt.data] : [...evt.data]
        for (const c of chunks) {
          const bodies = reader.push(c)
          if (bodies.length > 0) { done(undefined, bodies[0]!.slice()); return }
        }
      } catch (err) {
        done(err as Error)
      }
    }
    const onClose = (): void => { done(new Error('the stream closed before a whole frame')) }
    const timer = setTimeout(() => { done(new Error(`no answer within ${timeoutMs} ms`)) }, timeoutMs)
    stream.addEventListener('message', onMessage)
    stream.addEventListener('remoteCloseWrite', onClose)
    stream.addEventListener('close', onClose)
  })
}

async function writeAndClose (stream: Stream, body: Uint8Array, timeoutMs: number): Promise<void> {
  stream.send(lengthPrefixed(body))
  await stream.close({ signal: AbortSignal.timeout(timeoutMs) })
}

/**
 * Asks peer one question over `protocol`; resolves with the answer's body.
 * Throws on a dial failure, a timeout, or an answer that is not one frame
 * within maxAnswer bytes (the caller decodes it).
 */
export async function ask (node: Libp2p, peer: string, protocol: string, body: Uint8Array, maxAnswer: number, timeoutMs: number): Promise<Uint8Array> {
  const stream = await node.dialProtocol(peerIdFromString(peer), protocol, { signal: AbortSignal.timeout(timeoutMs) })
  try {
    const answer = readOne(stream, maxAnswer, timeoutMs)
    stream.send(lengthPrefixed(body))
    const out = await answer
    await stream.close({ signal: AbortSignal.timeout(timeoutMs) }).catch(() => {})
    return out
  } catch (err) {
    try { stream.abort(err as Error) } catch { /* closed */ }
    throw err
  }
}

/**
 * Answers questions on `protocol`: each inbound stream's one frame goes to
 * `answer` with the remote peer's id; what it returns is written back.
 * `answer` returning undefined, throwing, or a malformed question abort the
 * stream (the handler logs why through `onError`).
 */
export async function serve (
  node: Libp2p,
  protocol: string,
  maxQuestion: number,
  timeoutMs: number,
  answer: (body: Uint8Array, peer: string) => Promise<Uint8Array | undefined>,
  onError: (peer: string, err: Error) => void,
  maxInboundStreams = 8
): Promise<void> {
  await node.handle(protocol, (stream, connection) => {
    const peer = connection.remotePeer.toString()
    void (async () => {
      try {
        const question = await readOne(stream, maxQuestion, timeoutMs)
        const reply = await answer(question, peer)
        if (reply === undefined) throw new Error('no answer')
        await writeAndClose(stream, reply, timeoutMs)
      } catch (err) {
        onError(peer, err as Error)
        try { stream.abort(err as Error) } catch { /* closed */ }
      }
    })()
  }, { maxInboundStreams, maxOutboundStreams: 4 })
}
