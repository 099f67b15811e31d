// The local HTTP API server in-process: routing, JSON, NDJSON streams, and
// the checks that keep a web page from driving the agent.
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { ApiServer } from '../../src/agent/api.ts'
import { ApiError } from '../../src/net/component.ts'
import { silentLogger } from '../../src/net/logger.ts'

interface Reply { status: number, headers: Record<string, string | string[] | undefined>, body: string }

function call (port: number, path: string, options: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers ?? {} }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }) })
    })
    req.on('error', reject)
    req.end(options.body)
  })
}

describe('local HTTP API server', () => {
  let api: ApiServer
  let port: number
  before(async () => {
    api = new ApiServer(silentLogger)
    api.add('GET', '/hello/:name', ({ params }) => ({ body: { hello: params.name } }))
    api.add('POST', '/echo', ({ body }) => ({ body: { got: body } }))
    api.add('GET', '/teapot', () => { throw new ApiError(418, 'short and stout') })
    api.add('GET', '/count', () => ({ stream: (async function * () { for (let i = 0; i < 3; i++) yield { i } })() }))
    port = (await api.listen('127.0.0.1', 0)).port
  })
  after(async () => { await api.close() })

  it('routes with parameters and answers JSON', async () => {
    const r = await call(port, '/api/v1/hello/world')
    assert.equal(r.status, 200)
    assert.match(String(r.headers['content-type']), /application\/json/)
    assert.deepEqual(JSON.parse(r.body), { hello: 'world' })
  })

  it('answers 404 outside the API and for unknown routes, 405 with Allow for a wrong method', async () => {
    assert.equal((await call(port, '/')).status, 404)
    assert.equal((await call(port, '/api/v1/nothing')).status, 404)
    assert.equal((await call(port, '/api/v1/hello/%E0%A4%A')).status, 400)
    const r = await call(port, '/api/v1/echo')
    assert.equal(r.status, 405)
    assert.equal(r.headers.allow, 'POST')
  })

  it('sends an ApiError as its status and message', async () => {
    const r = await call(port, '/api/v1/teapot')
    assert.equal(r.status, 418)
    assert.deepEqual(JSON.parse(r.body), { error: 'short and stout' })
  })

  it('streams NDJSON', async () => {
    const r = await call(port, '/api/v1/count')
    assert.match(String(r.headers['content-type']), /ndjson/)
    assert.deepEqual(r.body.trim().split('\n').map(l => JSON.parse(l) as unknown), [{ i: 0 }, { i: 1 }, { i: 2 }])
  })

  it('reads JSON bodies only as application/json', async () => {
    const ok = await call(port, '/api/v1/echo', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"a":1}' })
    assert.deepEqual(JSON.parse(ok.body), { got: { a: 1 } })
    // what an HTML form can send without a CORS preflight
    const form = await call(port, '/api/v1/echo', { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: '{"a":1}' })
    assert.equal(form.status, 415)
    const bad = await call(port, '/api/v1/echo', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{' })
    assert.equal(bad.status, 400)
  })

  it('refuses a foreign Origin and accepts its own', async () => {
    const foreign = await call(port, '/api/v1/hello/x', { headers: { Origin: 'http://evil.example' } })
    assert.equal(foreign.status, 403)
    assert.match(JSON.parse(foreign.body).error, /origin/)
    assert.equal((await call(port, '/api/v1/hello/x', { headers: { Origin: 'null' } })).status, 403)
    assert.equal((await call(port, '/api/v1/hello/x', { headers: { Origin: `http://127.0.0.1:${port + 1}` } })).status, 403)
    assert.equal((await call(port, '/api/v1/hello/x', { headers: { Origin: `http://127.0.0.1:${port}` } })).status, 200)
    assert.equal((await call(port, '/api/v1/hello/x', { headers: { Host: `localhost:${port}`, Origin: `http://localhost:${port}` } })).status, 200)
  })

  it('refuses a Host that is not a loopback name (DNS rebinding)', async () => {
    assert.equal((await call(port, '/api/v1/hello/x', { headers: { Host: `evil.example:${port}` } })).status, 403)
    assert.equal((await call(port, '/api/v1/hello/x', { headers: { Host: `10.0.0.1:${port}` } })).status, 403)
    assert.equal((await call(port, '/api/v1/hello/x', { headers: { Host: `[::1]:${port}` } })).status, 200)
  })

  it('refuses to add a route twice', () => {
    assert.throws(() => { api.add('GET', '/hello/:other', () => ({ body: null })) }, /already taken/)
  })
})
