// The dashboard's server side in-process: its files at `/` (read on first
// request, under a strict CSP), and the live feed: a snapshot, then changes
// and bus events as server-sent events, heartbeats, a bounded number of
// clients, and the recent events as JSON.
import assert from 'node:assert/strict'
import { request, type IncomingMessage } from 'node:http'
import { ApiServer, formatEvent } from '../../src/agent/api.ts'
import { LiveFeed, MAX_RECENT } from '../../src/agent/live.ts'
import { dashboardPages } from '../../src/agent/pages.ts'
import { EventBus } from '../../src/net/events.ts'
import { silentLogger } from '../../src/net/logger.ts'

interface Reply { status: number, headers: IncomingMessage['headers'], body: string }

function call (port: number, path: string, options: { method?: string, headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers ?? {} }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }) })
    })
    req.on('error', reject)
    req.end()
  })
}

interface Sse { event?: string, data?: unknown, id?: string, comment?: string, retry?: number }

/** An open text/event-stream: parsed messages as they come, and a way to wait for one. */
class SseClient {
  readonly messages: Sse[] = []
  status = 0
  private partial = ''
  private res?: IncomingMessage
  private readonly req
  readonly ready: Promise<number>

  constructor (port: number) {
    this.req = request({ host: '127.0.0.1', port, path: '/api/v1/events', headers: { Accept: 'text/event-stream' } })
    this.ready = new Promise((resolve, reject) => {
      this.req.on('response', res => {
        this.res = res
        this.status = res.statusCode ?? 0
        res.setEncoding('utf8')
        res.on('data', (d: string) => { this.push(d) })
        res.on('error', () => {})
        resolve(this.status)
      })
      this.req.on('error', reject)
    })
    this.req.end()
  }

  private push (text: string): void {
    this.partial += text
    let i
    while ((i = this.partial.indexOf('\n\n')) >= 0) {
      const block = this.partial.slice(0, i)
      this.partial = this.partial.slice(i + 2)
      const m: Sse = {}
      for (const line of block.split('\n')) {
        if (line.startsWith(': ')) m.comment = line.slice(2)
        else if (line.startsWith('event: ')) m.event = line.slice(7)
        else if (line.startsWith('data: ')) m.data = JSON.parse(line.slice(6))
        else if (line.startsWith('id: ')) m.id = line.slice(4)
        else if (line.startsWith('retry: ')) m.retry = Number(line.slice(7))
      }
      this.messages.push(m)
    }
  }

  /** The first message (from index `from`) matching `pred`, waiting up to `ms`. */
  async next (pred: (m: Sse) => boolean, from = 0, ms = 3000): Promise<Sse> {
    const deadline = Date.now() + ms
    for (;;) {
      const m = this.messages.slice(from).find(pred)
      if (m !== undefined) return m
      if (Date.now() > deadline) throw new Error(`no such message within ${ms} ms; got ${JSON.stringify(this.messages)}`)
      await new Promise(resolve => setTimeout(resolve, 10))
    }
  }

  close (): void {
    this.res?.destroy()
    this.req.destroy()
  }
}

describe('the dashboard\'s files and live feed', () => {
  let api: ApiServer
  let feed: LiveFeed
  let bus: EventBus
  let port: number
  let status: { peerId: string, term: number }
  const clients: SseClient[] = []
  const open = async (): Promise<SseClient> => {
    const c = new SseClient(port)
    clients.push(c)
    await c.ready
    return c
  }

  beforeEach(async () => {
    status = { peerId: 'me', term: 0 }
    api = new ApiServer(silentLogger, { pages: dashboardPages() })
    bus = new EventBus()
    api.add('GET', '/status', () => ({ body: status }))
    api.add('GET', '/peers', () => ({ body: { peers: [] } }))
    // no /builds: a feed without the block exchange sends what exists
    feed = new LiveFeed({ events: bus, read: async path => await api.get(path), logger: silentLogger, tickMs: 30, heartbeatMs: 150, maxClients: 2 })
    feed.addRoutes(api)
    feed.start()
    port = (await api.listen('127.0.0.1', 0)).port
  })

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close()
    feed.stop()
    await api.close()
  })

  it('serves the page, its script and style, under a CSP that forbids inline script and other origins', async () => {
    const page = await call(port, '/')
    assert.equal(page.status, 200)
    assert.match(String(page.headers['content-type']), /text\/html/)
    assert.match(page.body, /<script src="\/dashboard.js" defer><\/script>/)
    const csp = String(page.headers['content-security-policy'])
    assert.match(csp, /script-src 'self'/)
    assert.match(csp, /connect-src 'self'/)
    assert.match(csp, /frame-ancestors 'none'/)
    assert.doesNotMatch(csp, /unsafe/)
    assert.match(String((await call(port, '/dashboard.js')).headers['content-type']), /javascript/)
    assert.match(String((await call(port, '/dashboard.css')).headers['content-type']), /text\/css/)
    const head = await call(port, '/', { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(head.body, '')
    assert.equal((await call(port, '/', { method: 'POST' })).status, 405)
    for (const path of ['/../package.json', '/dashboard/', '/%2e%2e/api.ts', '/pages.ts', '/favicon.ico']) assert.equal((await call(port, path)).status, 404, path)
  })

  it('sends a snapshot, then bus events and the states that change', async () => {
    bus.emit('build:added', { cid: 'bafy-early', name: 'before anyone watched' })
    const c = await open()
    assert.equal(c.status, 200)
    assert.deepEqual(await c.next(m => m.retry !== undefined), { retry: 3000 })
    assert.deepEqual((await c.next(m => m.event === 'status')).data, { peerId: 'me', term: 0 })
    assert.deepEqual((await c.next(m => m.event === 'peers')).data, { peers: [] })
    const recent = await c.next(m => m.event === 'recent')
    assert.equal((recent.data as { events: Array<{ name: string }> }).events[0]!.name, 'build:added')
    assert.ok(!c.messages.some(m => m.event === 'builds'), 'no builds state without a /builds route')

    const mark = c.messages.length
    bus.emit('peer:connect', { peerId: 'other', remoteAddr: '/ip4/127.0.0.1/tcp/1', direction: 'inbound' })
    const e = await c.next(m => m.event === 'mesh', mark)
    assert.equal(e.id, '2')
    assert.deepEqual((e.data as { name: string, detail: unknown }).detail, { peerId: 'other', remoteAddr: '/ip4/127.0.0.1/tcp/1', direction: 'inbound' })

    status = { peerId: 'me', term: 7 }
    assert.deepEqual((await c.next(m => m.event === 'status' && (m.data as { term: number }).term === 7, mark)).data, { peerId: 'me', term: 7 })
    // an unchanged state is not sent again, a quiet stream gets heartbeats
    const quiet = c.messages.length
    await c.next(m => m.comment === 'heartbeat', quiet, 1000)
    assert.ok(!c.messages.slice(quiet).some(m => m.event === 'status' || m.event === 'peers'), JSON.stringify(c.messages.slice(quiet)))
  })

  it('takes a bounded number of clients and frees a place when one leaves', async () => {
    const [c1] = [await open(), await open()]
    const third = await open()
    assert.equal(third.status, 503)
    c1!.close()
    await new Promise(resolve => setTimeout(resolve, 100))
    assert.equal(feed.clientCount, 1)
    assert.equal((await open()).status, 200)
  })

  it('keeps the last MAX_RECENT events, cutting long details', async () => {
    for (let i = 0; i < MAX_RECENT + 50; i++) bus.emit('build:added', { cid: `c${i}`, name: i === MAX_RECENT + 49 ? 'x'.repeat(10_000) : 'n' })
    const r = await call(port, '/api/v1/events/recent')
    const events = (JSON.parse(r.body) as { events: Array<{ seq: number, detail: unknown }> }).events
    assert.equal(events.length, MAX_RECENT)
    assert.equal(events[0]!.seq, 51)
    assert.equal(events.at(-1)!.seq, MAX_RECENT + 50)
    assert.ok(JSON.stringify(events.at(-1)!.detail).length < 2200)
  })

  it('refuses the stream to another origin', async () => {
    const r = await call(port, '/api/v1/events', { headers: { Origin: 'http://evil.example' } })
    assert.equal(r.status, 403)
    assert.equal(feed.clientCount, 0)
  })

  it('formats each event on lines of its own, whatever the data holds', () => {
    const text = formatEvent({ event: 'x\ny', id: '1\n2', data: { name: 'a\n\nb\r\nc' } })
    assert.equal(text, 'id: 12\nevent: xy\ndata: {"name":"a\\n\\nb\\r\\nc"}\n\n')
    assert.equal(formatEvent({ comment: 'heartbeat' }), ': heartbeat\n\n')
  })
})
