// Which uncaught errors are a connection going away, not a broken agent.
//
// libp2p writes from inside its own event listeners and timers (a Yamux
// window update or ping, Noise re-encrypting a queued chunk): when the TCP
// socket under them has just closed, `send` throws a StreamStateError there,
// where no caller of ours can catch it, and Node reports a throw in an
// EventTarget listener as an uncaught exception. Such an error ends one
// connection; the agent's cores hear of it through the connection's close
// and carry on. Exiting on it would take the school server down each time a
// laptop's lid closes mid-write (an agent of the ten-laptop test did).
// Anything else uncaught is a fault of ours: the agent still stops.

/** The libp2p errors that speak of one stream or connection only (@libp2p/interface's names). */
const CONNECTION_ERRORS = new Set([
  'StreamStateError', 'StreamResetError', 'StreamAbortedError', 'StreamBufferError',
  'ConnectionClosedError', 'ConnectionClosingError', 'MuxerClosedError'
])

/** Socket errors of a peer that went away. */
const SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END'])

/** True when `err` is one connection failing, which the agent survives. */
export function isConnectionFault (err: unknown): boolean {
  if (!(err instanceof Error)) return false
  if (CONNECTION_ERRORS.has(err.name)) return true
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && SOCKET_CODES.has(code)
}
