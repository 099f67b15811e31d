// How a protocol driver plugs into the agent, in js-libp2p's
// `(components, init)` style. A driver module exports a factory:
//
//   export function blocks (init: BlocksInit = {}): ComponentFactory {
//     return components => new BlocksDriver(components, init)
//   }
//
// and the agent's component list (src/agent/components.ts) gets one more
// line. The agent builds `MeshComponents` once, calls every factory in list
// order, then runs the lifecycle: beforeStart (libp2p created, not yet
// listening: register protocol handlers here), start (listening, the API not
// yet open), stop (reverse order, before libp2p stops). This file holds only
// types and ApiError, so a driver in src/net needs nothing from src/agent.
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import type { Repo } from '../content/repo.ts'
import type { Dialer } from './dialer.ts'
import type { EventBus } from './events.ts'
import type { Logger } from './logger.ts'

/** What every component gets. Owned by the agent: a component never stops or closes them. */
export interface MeshComponents {
  /**
   * The libp2p node (TCP, Noise, Yamux, identify). Drivers call
   * `node.handle(protocol, (stream, connection) => …)` in beforeStart and
   * `node.dialProtocol(peerId, protocol)` to open streams.
   */
  node: Libp2p
  /** The data directory's block store and build index. */
  repo: Repo
  /** The agent's logger; take `logger.child('<name>')`. */
  logger: Logger
  /** Events between components, the API and the logs (see events.ts). */
  events: EventBus
  /** Adds routes under /api/v1 to the local HTTP API. Only during construction and beforeStart. */
  api: ApiRoutes
  /** Keeps peers connected, redialling with backoff: `dialer.want(key, {peerId, addrs, via})`. */
  dialer: Dialer
  /** Per-peer byte counters shown by `xo-mesh peers` (libp2p 3 keeps none). */
  traffic: Traffic
  /** The data directory (absolute). */
  dataDir: string
  /** This agent's identity key (the election signs its claims with it). Never sent anywhere. */
  privateKey: PrivateKey
}

/** A started piece of the agent: discovery, the static dialer, a protocol driver. */
export interface MeshComponent {
  /** Short name: log component and error messages ("mdns", "blocks"). */
  readonly name: string
  /** libp2p exists but does not listen yet: register protocol handlers and routes. */
  beforeStart?(): void | Promise<void>
  /** libp2p listens; peers may connect at any moment. */
  start?(): void | Promise<void>
  /** Shutdown, in reverse order, before libp2p stops: close streams, flush state. Must not throw. */
  stop?(): void | Promise<void>
  /** What this component adds to `GET /api/v1/status` (called on every request: keep it cheap). */
  status?(): StatusPart | Promise<StatusPart>
  /** What this component adds to a peer's entry in `GET /api/v1/peers`, under its name (undefined: nothing). */
  peerInfo?(peerId: string): Record<string, unknown> | undefined
}

/** Creates a component from the shared components; `init` is closed over by the exporting function. */
export type ComponentFactory<C extends MeshComponent = MeshComponent> = (components: MeshComponents) => C

/** One build as `xo-mesh status` shows it. */
export interface BuildStatus {
  cid: string
  name: string
  /** Bytes of file content in the build. */
  bytes: number
  /** Bytes of it on disk here. */
  have_bytes: number
  complete: boolean
}

/**
 * A component's contribution to the status. Builds are merged by CID over the
 * build index (a driver reports builds in progress); role/server/term come
 * from the election when it lands (until then: "peer", null, 0).
 */
export interface StatusPart {
  builds?: BuildStatus[]
  role?: 'server' | 'peer'
  server?: string | null
  term?: number
  /** Anything else is shown under status[<component name>]. */
  extra?: Record<string, unknown>
}

export type ApiMethod = 'GET' | 'POST' | 'PUT' | 'DELETE'

/** A request as a route handler sees it: already checked for origin, body parsed as JSON. */
export interface ApiRequest {
  /** `:name` segments of the route's path. */
  params: Record<string, string>
  query: URLSearchParams
  /** The parsed JSON body (POST/PUT with Content-Type application/json), else undefined. Untrusted: validate it. */
  body: unknown
  /** Aborted when the client goes away or the agent stops. */
  signal: AbortSignal
}

/** One message of a server-sent event stream: `event`/`data` (JSON), or a `comment` (a heartbeat). */
export interface ServerSentEvent {
  event?: string
  data?: unknown
  id?: string
  /** Reconnection delay the browser should use, ms. */
  retry?: number
  comment?: string
}

/**
 * A handler's answer: a JSON body, a stream of JSON values sent as NDJSON
 * (one per line, flushed as produced: progress for `fetch --wait`), or
 * server-sent events (text/event-stream: the dashboard's live feed). A
 * stream's iterator should end when the request's signal aborts.
 */
export type ApiReply =
  | { status?: number, body: unknown }
  | { status?: number, stream: AsyncIterable<unknown> }
  | { status?: number, events: AsyncIterable<ServerSentEvent> }

export type ApiHandler = (req: ApiRequest) => ApiReply | Promise<ApiReply>

/** Route registration. Paths are relative to /api/v1 ("/builds/:cid"). */
export interface ApiRoutes {
  /** Adds a route; throws if the method and path are taken. */
  add (method: ApiMethod, path: string, handler: ApiHandler): void
}

/** Errors a handler throws on purpose: sent as {error: message} with this status. */
export class ApiError extends Error {
  readonly status: number
  constructor (status: number, message: string) {
    super(message)
    this.status = status
    this.name = 'ApiError'
  }
}

/** Byte counters per peer, fed by drivers for the bytes they move. */
export interface Traffic {
  add (peerId: string, sent: number, received: number): void
  get (peerId: string): { sent: number, received: number }
}
