// The mothership's login in-process: the password file, the session cookie,
// what needs a session and what does not, the CLI's token, rate-limited
// failures; and the API's loopback default.
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { networkInterfaces, tmpdir } from 'node:os'
import { join } from 'node:path'
import { ApiServer } from '../../src/agent/api.ts'
import { defaultConfig, parseHostPort } from '../../src/agent/config.ts'
import { COOKIE, LoginLimiter, PASSWORD_FILE, SessionGuard, TOKEN_FILE, hashPassword, readPasswordHash, setPassword, verifyPassword } from '../../src/agent/session.ts'
import { authHeader } from '../../src/agent/client.ts'
import { silentLogger } from '../../src/net/logger.ts'

interface Reply { status: number, headers: Record<string, string | string[] | undefined>, body: string }

function call (port: number, path: string, options: { method?: string, headers?: Record<string, string>, body?: string, host?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: options.host ?? '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers ?? {}, timeout: 20_000 }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }) })
    })
    req.on('timeout', () => { req.destroy(new Error('timed out')) })
    req.on('error', reject)
    req.end(options.body)
  })
}

const PASSWORD = 'correct horse battery'
/** A cheap scrypt cost for the tests of the login's flow (a loaded machine runs several at once); the first test checks the real one. */
const CHEAP = 1 << 10
const json = { 'Content-Type': 'application/json' }
const login = (port: number, password: string, headers: Record<string, string> = {}): Promise<Reply> =>
  call(port, '/api/v1/login', { method: 'POST', headers: { ...json, ...headers }, body: JSON.stringify({ password }) })

describe('the mothership\'s login', function () {
  this.timeout(30_000)
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'xo-session-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('keeps an scrypt hash, never the password, in a file only its owner reads', async () => {
    await assert.rejects(setPassword(dir, 'short'), /at least 8/)
    assert.equal(await readPasswordHash(dir), undefined)
    await setPassword(dir, PASSWORD)
    const text = await readFile(join(dir, PASSWORD_FILE), 'utf8')
    assert.ok(!text.includes(PASSWORD))
    assert.equal((await stat(join(dir, PASSWORD_FILE))).mode & 0o777, 0o600)
    const h = (await readPasswordHash(dir))!
    assert.equal(h.algorithm, 'scrypt')
    assert.ok(h.N >= 1 << 15)
    assert.equal(await verifyPassword(PASSWORD, h), true)
    assert.equal(await verifyPassword(PASSWORD + ' ', h), false)
    assert.notEqual((await hashPassword(PASSWORD)).salt, h.salt, 'a new salt each time')
    await writeFile(join(dir, PASSWORD_FILE), '{"algorithm":"none"}')
    assert.equal(await readPasswordHash(dir), undefined, 'a file that is not a hash is no password')
  })

  it('limits failed logins per client and in all, in a sliding window', () => {
    let now = 0
    const l = new LoginLimiter(() => now, { perClient: 3, all: 5, windowMs: 60_000 })
    for (let i = 0; i < 3; i++) { assert.equal(l.wait('a'), 0); l.fail('a'); now += 1000 }
    assert.equal(l.wait('a'), 57_000, 'until the first failure leaves the window')
    assert.equal(l.wait('b'), 0, 'another client may still try')
    l.fail('b'); l.fail('b')
    assert.ok(l.wait('c') > 0, 'five failures in all close the door for everyone')
    now = 62_000
    assert.equal(l.wait('a'), 0)
  })

  describe('on an API', () => {
    let api: ApiServer
    let guard: SessionGuard
    let port: number
    let now: number

    beforeEach(async () => {
      now = 1_000_000
      api = new ApiServer(silentLogger, { pages: async p => (p === '/' || p === '/login' ? { type: 'text/html', body: Buffer.from('<p>page') } : undefined) })
      api.add('GET', '/status', () => ({ body: { ok: true } }))
      guard = new SessionGuard({ dataDir: dir, logger: silentLogger, clock: () => now, limiter: new LoginLimiter(() => now, { perClient: 3, all: 100, windowMs: 60_000 }) })
      await guard.start()
      api.setGuard(guard)
      port = (await api.listen('127.0.0.1', 0)).port
    })
    afterEach(async () => {
      await api.close()
      await guard.stop()
    })

    it('asks for a session on pages (a redirect to /login) and routes (401), not on the login page', async () => {
      const page = await call(port, '/')
      assert.equal(page.status, 303)
      assert.equal(page.headers.location, '/login?next=%2F')
      assert.equal((await call(port, '/api/v1/status')).status, 401)
      assert.equal((await call(port, '/login')).status, 200)
      const s = await call(port, '/api/v1/session')
      assert.deepEqual(JSON.parse(s.body), { authenticated: false, password_set: false })
    })

    it('logs in with the password: an HttpOnly SameSite=Strict cookie that opens pages and routes until logout', async () => {
      assert.equal((await login(port, PASSWORD)).status, 409, 'no password set yet')
      await setPassword(dir, PASSWORD, CHEAP)
      assert.equal((await login(port, 'not the password')).status, 401)
      const r = await login(port, PASSWORD)
      assert.equal(r.status, 204)
      const cookie = String(r.headers['set-cookie'])
      assert.match(cookie, new RegExp(`^${COOKIE}=[A-Za-z0-9_-]{43};`))
      assert.match(cookie, /; HttpOnly/)
      assert.match(cookie, /; SameSite=Strict/)
      assert.match(cookie, /; Path=\//)
      const jar = { Cookie: cookie.split(';')[0]! }
      assert.equal((await call(port, '/api/v1/status', { headers: jar })).status, 200)
      assert.equal((await call(port, '/', { headers: jar })).status, 200)
      assert.equal(JSON.parse((await call(port, '/api/v1/session', { headers: jar })).body).authenticated, true)
      assert.equal((await call(port, '/api/v1/status', { headers: { Cookie: `${COOKIE}=forged` } })).status, 401)
      // later than a session lasts
      now += 13 * 3600_000
      assert.equal((await call(port, '/api/v1/status', { headers: jar })).status, 401)
      const again = String((await login(port, PASSWORD)).headers['set-cookie']).split(';')[0]!
      assert.equal((await call(port, '/api/v1/logout', { method: 'POST', headers: { Cookie: again } })).status, 204)
      assert.equal((await call(port, '/api/v1/status', { headers: { Cookie: again } })).status, 401)
    })

    it('refuses logins after repeated failures, even with the right password, until the window passes', async () => {
      await setPassword(dir, PASSWORD, CHEAP)
      for (let i = 0; i < 3; i++) assert.equal((await login(port, `guess ${i}`)).status, 401)
      const refused = await login(port, PASSWORD)
      assert.equal(refused.status, 429)
      assert.equal(refused.headers['retry-after'], '60')
      now += 61_000
      assert.equal((await login(port, PASSWORD)).status, 204)
    })

    it('lets the CLI in with the token of DATA/api-token, a new one at each start', async () => {
      const token = (await readFile(join(dir, TOKEN_FILE), 'utf8')).trim()
      assert.equal((await stat(join(dir, TOKEN_FILE))).mode & 0o777, 0o600)
      assert.deepEqual(await authHeader(dir), { Authorization: `Bearer ${token}` })
      assert.equal((await call(port, '/api/v1/status', { headers: await authHeader(dir) })).status, 200)
      assert.equal((await call(port, '/api/v1/status', { headers: { Authorization: `Bearer ${token.slice(1)}x` } })).status, 401)
      await guard.start()
      assert.equal((await call(port, '/api/v1/status', { headers: { Authorization: `Bearer ${token}` } })).status, 401, 'the old token is gone')
    })

    it('takes a login only from its own origin (another page cannot log a browser in or out)', async () => {
      await setPassword(dir, PASSWORD, CHEAP)
      const r = await login(port, PASSWORD, { Origin: 'http://evil.example' })
      assert.equal(r.status, 403)
      assert.equal(r.headers['set-cookie'], undefined)
      assert.equal((await login(port, PASSWORD, { Origin: `http://127.0.0.1:${port}` })).status, 204)
      const form = await call(port, '/api/v1/login', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: `password=${PASSWORD}` })
      assert.equal(form.status, 415)
    })
  })

  it('an agent\'s API is bound to loopback unless configured otherwise', async () => {
    const { host } = parseHostPort(defaultConfig().api)
    assert.equal(host, '127.0.0.1')
    const api = new ApiServer(silentLogger)
    api.add('GET', '/status', () => ({ body: { ok: true } }))
    const { port } = await api.listen(host, 0)
    try {
      assert.equal((await call(port, '/api/v1/status')).status, 200)
      // from any other address of this machine, nothing listens
      const others = Object.values(networkInterfaces()).flat().filter(a => a !== undefined && a.family === 'IPv4' && !a.internal)
      for (const a of others) await assert.rejects(call(port, '/api/v1/status', { host: a!.address }), /ECONNREFUSED/)
    } finally {
      await api.close()
    }
  })
})
