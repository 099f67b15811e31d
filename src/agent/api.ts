// The local HTTP API (node:http, no framework): JSON under /api/v1, routes
// added by the agent and by components (ApiRoutes). It has no authentication,
// so it trusts only what a browser cannot forge:
//
// - bound to loopback unless configured otherwise;
// - the Host header must name this API by loopback name or IP literal (a DNS
//   rebinding page arrives with its own host name);
// - a request with an Origin header (any browser fetch or form) must come from
//   the API's own origin: a page elsewhere cannot drive the agent (CSRF);
// - bodies are read only as application/json (an HTML form cannot send that
//   without a CORS preflight, which is never answered).
//
// Outside /api/v1 it serves the dashboard's files (a PageSource, read only
// when first asked for), under the same checks and a strict
// Content-Security-Policy.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { isIP } from 'node:net'
import { ApiError, type ApiHandler, type ApiMethod, type ApiReply, type ApiRoutes, type ServerSentEvent } from '../net/component.ts'
import type { Logger } from '../net/logger.ts'
import { ListenError } from './errors.ts'

export const API_PREFIX = '/api/v1'
/** Largest request body read (routes take small JSON commands). */
export const MAX_BODY = 64 * 1024

interface Route { method: ApiMethod, segments: string[], handler: ApiHandler }

/** A static file of the dashboard, or undefined when there is none at `pathname`. */
export type PageSource = (pathname: string) => Promise<{ type: string, body: Buffer } | undefined>

/**
 * Stands before every request that passed the Host and Origin checks (the
 * mothership's login, src/agent/session.ts): answers it itself and returns
 * true (a login, a refusal, a redirect), or returns false to let it through.
 */
export interface Guard {
  handle (req: IncomingMessage, res: ServerResponse, pathname: string): Promise<boolean>
}

export function isLoopback (host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

/** "host:port" of a Host header, brackets kept off IPv6 literals. */
function splitHost (header: string): { host: string, port: string } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(header)
  if (m === null) return undefined
  return { host: (m[1] ?? m[2]!).toLowerCase(), port: m[3] ?? '80' }
}

export class ApiServer implements ApiRoutes {
  private readonly routes: Route[] = []
  private readonly log: Logger
  private server?: Server
  private readonly closing = new AbortController()
  private bound?: { host: string, port: number }
  private readonly pages: PageSource[] = []
  private guard: Guard | undefined

  constructor (logger: Logger, options: { pages?: PageSource } = {}) {
    this.log = logger.child('api')
    if (options.pages !== undefined) this.pages.push(options.pages)
  }

  /** More pages, looked up after those already there (the mothership's overview). */
  addPages (source: PageSource): void {
    this.pages.push(source)
  }

  /** Puts a guard before every request (one at most). */
  setGuard (guard: Guard): void {
    if (this.guard !== undefined) throw new Error('the API already has a guard')
    this.guard = guard
  }

  add (method: ApiMethod, path: string, handler: ApiHandler): void {
    const segments = path.split('/').filter(s => s !== '')
    const same = (r: Route): boolean => r.method === method && r.segments.length === segments.length &&
      r.segments.every((s, i) => s === segments[i] || (s.startsWith(':') && segments[i]!.startsWith(':')))
    if (this.routes.some(same)) throw new Error(`API route ${method} ${path} is already taken`)
    this.routes.push({ method, segments, handler })
  }

  /** The route of `method` on `pathname` (relative to /api/v1) with its parameters; the methods allowed there; undefined when no route has that path. */
  private match (method: string, pathname: string): { route?: Route, params: Record<string, string>, allow: string[] } | undefined {
    let segments: string[]
    try {
      segments = pathname.split('/').filter(s => s !== '').map(decodeURIComponent)
    } catch {
      throw new ApiError(400, 'the path is not valid percent-encoding')
    }
    const matching = this.routes.filter(r => r.segments.length === segments.length && r.segments.every((s, i) => s.startsWith(':') || s === segments[i]))
    if (matching.length === 0) return undefined
    const route = matching.find(r => r.method === method)
    const params: Record<string, string> = {}
    route?.segments.forEach((s, i) => { if (s.startsWith(':')) params[s.slice(1)] = segments[i]! })
    return { ...(route !== undefined ? { route } : {}), params, allow: [...new Set(matching.map(r => r.method))] }
  }

  /**
   * Answers GET `path` (relative to /api/v1, e.g. "/status") in-process, as
   * a client would get it: the live feed reads the same routes the CLI does.
   * Throws ApiError as the route does, 404 for no route, 500 for a stream.
   */
  async get (path: string, signal: AbortSignal = this.closing.signal): Promise<unknown> {
    const url = new URL(path, 'http://localhost')
    const m = this.match('GET', url.pathname)
    if (m?.route === undefined) throw new ApiError(404, `no such endpoint: ${API_PREFIX}${url.pathname}`)
    const reply = await m.route.handler({ params: m.params, query: url.searchParams, body: undefined, signal })
    if (!('body' in reply)) throw new ApiError(500, `${url.pathname} is a stream`)
    return reply.body
  }

  /** Listens; resolves with the address actually bound (port 0 picks one). */
  async listen (host: string, port: number): Promise<{ host: string, port: number, url: string }> {
    const server = createServer((req, res) => { void this.handle(req, res) })
    server.keepAliveTimeout = 5_000
    server.headersTimeout = 10_000
    server.requestTimeout = 30_000
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, host, () => { server.off('error', reject); resolve() })
      })
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      const why = code === 'EADDRINUSE' ? 'the address is in use (another agent? give --api 127.0.0.1:0 or another port)' : (err as Error).message
      throw new ListenError(`cannot listen for the API on ${host}:${port}: ${why}`, { cause: err })
    }
    server.on('error', err => { this.log.error('server error', { error: err }) })
    this.server = server
    const addr = server.address()
    if (addr === null || typeof addr === 'string') throw new ListenError('the API server has no TCP address')
    this.bound = { host, port: addr.port }
    return { host, port: addr.port, url: apiUrl(host, addr.port) }
  }

  /** Stops listening, ends open requests (NDJSON streams see their signal abort). */
  async close (): Promise<void> {
    this.closing.abort()
    const server = this.server
    if (server === undefined) return
    await new Promise<void>(resolve => {
      server.close(() => { resolve() })
      server.closeAllConnections()
    })
  }

  /** Why this request may not be served, or undefined. */
  private refuse (req: IncomingMessage): string | undefined {
    const bound = this.bound!
    const hostHeader = req.headers.host
    const host = hostHeader !== undefined ? splitHost(hostHeader) : undefined
    if (host === undefined || host.port !== String(bound.port)) return 'unexpected Host header'
    const boundHost = bound.host.toLowerCase()
    const hostOk = isLoopback(boundHost)
      ? isLoopback(host.host)
      // bound to every interface: a loopback name or any IP literal, never a DNS name (rebinding)
      : boundHost === '0.0.0.0' || boundHost === '::'
        ? isLoopback(host.host) || isIP(host.host) !== 0
        : host.host === boundHost
    if (!hostOk) return 'unexpected Host header'
    const origin = req.headers.origin
    if (origin !== undefined && origin !== `http://${hostHeader!.toLowerCase()}`) return `origin ${origin} may not use this API`
    return undefined
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const controller = new AbortController()
    const onClose = (): void => { if (!res.writableFinished) controller.abort() }
    res.on('close', onClose)
    const stopListening = (): void => { controller.abort() }
    this.closing.signal.addEventListener('abort', stopListening, { once: true })
    try {
      const why = this.refuse(req)
      if (why !== undefined) {
        this.log.warn('refused a request', { why, origin: req.headers.origin, host: req.headers.host, url: req.url })
        return sendJson(res, 403, { error: why })
      }
      const url = new URL(req.url ?? '/', 'http://localhost')
      if (this.guard !== undefined && await this.guard.handle(req, res, url.pathname)) return
      if (!url.pathname.startsWith(API_PREFIX + '/')) return await this.page(req, res, url.pathname)
      const m = this.match(req.method ?? 'GET', url.pathname.slice(API_PREFIX.length))
      if (m === undefined) return sendJson(res, 404, { error: `no such endpoint: ${url.pathname}` })
      if (m.route === undefined) {
        res.setHeader('Allow', m.allow.join(', '))
        return sendJson(res, 405, { error: `${req.method} is not allowed on ${url.pathname}` })
      }
      const body = await readJsonBody(req)
      const reply = await m.route.handler({ params: m.params, query: url.searchParams, body, signal: controller.signal })
      await this.reply(res, reply, controller.signal)
    } catch (err) {
      if (err instanceof ApiError) return sendJson(res, err.status, { error: err.message })
      this.log.error('request failed', { url: req.url, error: err })
      if (!res.headersSent) sendJson(res, 500, { error: (err as Error).message })
      else res.destroy()
    } finally {
      this.closing.signal.removeEventListener('abort', stopListening)
    }
  }

  /** A file of the dashboard (GET or HEAD outside /api/v1), or 404. */
  private async page (req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> {
    let file: { type: string, body: Buffer } | undefined
    for (const source of this.pages) if ((file = await source(pathname)) !== undefined) break
    if (file === undefined) return sendJson(res, 404, { error: `no such page (the API is under ${API_PREFIX}/)` })
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD')
      return sendJson(res, 405, { error: `${req.method} is not allowed on ${pathname}` })
    }
    res.writeHead(200, { ...HEADERS, ...PAGE_HEADERS, 'Content-Type': file.type, 'Content-Length': file.body.length })
    res.end(req.method === 'HEAD' ? undefined : file.body)
  }

  private async reply (res: ServerResponse, reply: ApiReply, signal: AbortSignal): Promise<void> {
    if ('body' in reply) return sendJson(res, reply.status ?? 200, reply.body)
    if ('events' in reply) {
      // no Content-Length, no compression, no proxy buffering: each event goes out as written
      res.writeHead(reply.status ?? 200, { ...HEADERS, 'Content-Type': 'text/event-stream; charset=utf-8', 'X-Accel-Buffering': 'no' })
      res.flushHeaders()
      for await (const m of reply.events) {
        if (signal.aborted) break
        if (!res.write(formatEvent(m))) await drained(res)
      }
      res.end()
      return
    }
    res.writeHead(reply.status ?? 200, { ...HEADERS, 'Content-Type': 'application/x-ndjson; charset=utf-8' })
    for await (const value of reply.stream) {
      if (signal.aborted) break
      if (!res.write(JSON.stringify(value) + '\n')) await drained(res)
    }
    res.end()
  }
}

/** Resolves when `res` can take more, or is closed (a client that stopped reading must not hold us for ever). */
async function drained (res: ServerResponse): Promise<void> {
  await new Promise<void>(resolve => {
    const done = (): void => { res.off('drain', done); res.off('close', done); resolve() }
    res.once('drain', done)
    res.once('close', done)
  })
}

/** One server-sent event in the text/event-stream format (data as one line of JSON). */
export function formatEvent (m: ServerSentEvent): string {
  let text = ''
  if (m.comment !== undefined) text += `: ${m.comment.replace(/[\r\n]+/g, ' ')}\n`
  if (m.retry !== undefined) text += `retry: ${Math.max(0, Math.round(m.retry))}\n`
  if (m.id !== undefined) text += `id: ${m.id.replace(/[\r\n\0]+/g, '')}\n`
  if (m.event !== undefined) text += `event: ${m.event.replace(/[\r\n]+/g, '')}\n`
  // JSON.stringify escapes CR and LF inside strings: the data is always one line
  if (m.data !== undefined) text += `data: ${JSON.stringify(m.data)}\n`
  return text + '\n'
}

const HEADERS = { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' }
/** The dashboard loads nothing from elsewhere, runs no inline script, and may not be framed. */
const PAGE_HEADERS = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer'
}

/** Sends a JSON reply with the API's headers. */
export function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n'
  res.writeHead(status, { ...HEADERS, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

/** The JSON body of a POST/PUT, or undefined for other methods; ApiError (400, 413, 415) when it is not one. */
export async function readJsonBody (req: IncomingMessage): Promise<unknown> {
  if (req.method !== 'POST' && req.method !== 'PUT') return undefined
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
  if (req.headers['content-length'] === '0' || (type === '' && req.headers['transfer-encoding'] === undefined && req.headers['content-length'] === undefined)) return undefined
  if (type !== 'application/json') throw new ApiError(415, 'send the body as application/json')
  const parts: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY) throw new ApiError(413, `body larger than ${MAX_BODY} bytes`)
    parts.push(chunk)
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'))
  } catch {
    throw new ApiError(400, 'the body is not valid JSON')
  }
}

/** The URL a local client uses for an API bound to `host:port` (a wildcard bind is reached on loopback). */
export function apiUrl (host: string, port: number): string {
  const h = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}`
}
