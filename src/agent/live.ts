// The dashboard's live feed (Syncthing's model: one event bus the GUI and the
// CLI both read):
//
//   GET /api/v1/events          server-sent events: a snapshot (status, peers,
//                               builds, recent), then each of them again when
//                               it changes, and every bus event as it happens
//   GET /api/v1/events/recent   the last MAX_RECENT bus events as JSON (the
//                               page's polling fallback, `xo-mesh events`)
//
// The states are the API's own routes read in-process (ApiServer.get), so the
// page shows exactly what `xo-mesh status --json` prints. They are read once
// a tick for all clients together, and only while a client is connected: an
// agent nobody watches does no work here beyond keeping the recent events.
import { ApiError, type ApiRoutes, type ServerSentEvent } from '../net/component.ts'
import type { EventBus, Unsubscribe } from '../net/events.ts'
import type { Logger } from '../net/logger.ts'

/** One bus event as the feed keeps it. */
export interface RecentEvent {
  /** Increasing from 1 since the agent started (the SSE id). */
  seq: number
  time: string
  /** The bus event's name ("peer:connect", "build:added", …). */
  name: string
  detail: unknown
}

/** GET /api/v1/events/recent */
export interface RecentReply { events: RecentEvent[] }

export const MAX_RECENT = 100
/** Browsers open one stream per tab; a handful of tabs is plenty on one laptop. */
export const MAX_CLIENTS = 8
export const TICK_MS = 1000
/** A comment this often keeps idle connections (and proxies) from timing out, and finds dead clients. */
export const HEARTBEAT_MS = 15_000
/** How long a browser waits before reconnecting a dropped stream. */
export const RETRY_MS = 3000
/** An event detail longer than this (as JSON) is cut: a peer may name things at length. */
const MAX_DETAIL_CHARS = 2048

/** The states pushed to clients, by SSE event name, and the route each is read from. */
export const STATES: Record<string, string> = { status: '/status', peers: '/peers', builds: '/builds' }

export interface LiveInit {
  events: EventBus
  /** GET of an API route in-process (ApiServer.get). */
  read: (path: string) => Promise<unknown>
  logger: Logger
  tickMs?: number
  heartbeatMs?: number
  maxClients?: number
}

interface Client {
  /** Latest state not yet sent, by name: a slow client skips intermediate ones. */
  states: Map<string, unknown>
  events: RecentEvent[]
  wake: (() => void) | undefined
}

function boundedDetail (detail: unknown): unknown {
  let text: string
  try {
    text = JSON.stringify(detail) ?? 'null'
  } catch {
    return null
  }
  return text.length <= MAX_DETAIL_CHARS ? detail : { truncated: text.slice(0, MAX_DETAIL_CHARS) }
}

export class LiveFeed {
  private readonly init: Required<Omit<LiveInit, 'logger'>>
  private readonly log: Logger
  private readonly recent: RecentEvent[] = []
  private readonly clients = new Set<Client>()
  private readonly last = new Map<string, string>()
  private seq = 0
  private timer: NodeJS.Timeout | undefined
  private ticking = false
  private unsubscribe: Unsubscribe | undefined

  constructor (init: LiveInit) {
    this.init = { tickMs: TICK_MS, heartbeatMs: HEARTBEAT_MS, maxClients: MAX_CLIENTS, ...init }
    this.log = init.logger.child('live')
  }

  /** Starts keeping the recent events (before the components start, so their first events are kept). */
  start (): void {
    this.unsubscribe = this.init.events.onAny((name, detail) => { this.note(name, detail) })
  }

  stop (): void {
    this.unsubscribe?.()
    clearTimeout(this.timer)
    this.timer = undefined
    for (const c of this.clients) c.wake?.()
    this.clients.clear()
  }

  /** Clients connected now (tests). */
  get clientCount (): number {
    return this.clients.size
  }

  addRoutes (api: ApiRoutes): void {
    api.add('GET', '/events/recent', () => ({ body: { events: [...this.recent] } satisfies RecentReply }))
    api.add('GET', '/events', req => {
      if (this.clients.size >= this.init.maxClients) throw new ApiError(503, `${this.init.maxClients} clients already follow the events; close one (the dashboard falls back to polling)`)
      const client: Client = { states: new Map(), events: [], wake: undefined }
      this.clients.add(client)
      const gone = (): void => { this.clients.delete(client); client.wake?.() }
      req.signal.addEventListener('abort', gone, { once: true })
      this.schedule()
      return { events: this.stream(client, req.signal, gone) }
    })
  }

  private note (name: string, detail: unknown): void {
    const e: RecentEvent = { seq: ++this.seq, time: new Date().toISOString(), name, detail: boundedDetail(detail) }
    this.recent.push(e)
    if (this.recent.length > MAX_RECENT) this.recent.shift()
    for (const c of this.clients) {
      c.events.push(e)
      if (c.events.length > MAX_RECENT) c.events.shift()
      c.wake?.()
    }
  }

  /** Reads every state; undefined for a route that is absent or fails (a component not running). */
  private async readStates (): Promise<Map<string, unknown>> {
    const out = new Map<string, unknown>()
    for (const [name, path] of Object.entries(STATES)) {
      try {
        out.set(name, await this.init.read(path))
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) this.log.debug('cannot read a state for the live feed', { path, error: err })
      }
    }
    return out
  }

  private schedule (): void {
    if (this.timer !== undefined || this.clients.size === 0) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      void this.tick()
    }, this.init.tickMs)
  }

  /** Reads the states once for every client; queues those that changed since the last tick. */
  private async tick (): Promise<void> {
    if (this.ticking) return
    this.ticking = true
    try {
      if (this.clients.size === 0) {
        this.last.clear()
        return
      }
      for (const [name, value] of await this.readStates()) {
        const text = JSON.stringify(value)
        if (this.last.get(name) === text) continue
        this.last.set(name, text)
        for (const c of this.clients) {
          c.states.set(name, value)
          c.wake?.()
        }
      }
    } finally {
      this.ticking = false
      this.schedule()
    }
  }

  private async * stream (client: Client, signal: AbortSignal, gone: () => void): AsyncGenerator<ServerSentEvent> {
    try {
      yield { retry: RETRY_MS }
      const snapshot = await this.readStates()
      // a tick during the snapshot may queue a state again: sent twice, harmless
      for (const [name, value] of snapshot) yield { event: name, data: value }
      client.events.length = 0
      yield { event: 'recent', data: { events: [...this.recent] } satisfies RecentReply }
      while (!signal.aborted && this.clients.has(client)) {
        if (client.states.size === 0 && client.events.length === 0) {
          const woken = await new Promise<boolean>(resolve => {
            const timer = setTimeout(() => { client.wake = undefined; resolve(false) }, this.init.heartbeatMs)
            client.wake = () => { clearTimeout(timer); client.wake = undefined; resolve(true) }
          })
          if (!woken) {
            yield { comment: 'heartbeat' }
            continue
          }
        }
        if (signal.aborted || !this.clients.has(client)) break
        for (const e of client.events.splice(0)) yield { event: 'mesh', id: String(e.seq), data: e }
        const states = [...client.states]
        client.states.clear()
        for (const [name, value] of states) yield { event: name, data: value }
      }
    } finally {
      gone()
    }
  }
}
