// The mothership's login. A laptop's API is for whoever sits at the laptop
// (loopback, no login); the mothership's pages show every school, so its
// pages and API need a session:
//
//   DATA/mothership-password  an scrypt hash (`xo-mesh mothership passwd`),
//                             mode 0600; no file, no login possible
//   POST /api/v1/login        {password} → 204 and a session cookie
//                             (HttpOnly, SameSite=Strict, Path=/); 401 on a
//                             wrong password; 429 when too many failed lately
//   POST /api/v1/logout       ends the session
//   GET  /api/v1/session      {authenticated, password_set}
//   DATA/api-token            a random token the agent writes at each start
//                             (0600): the CLI on this machine sends it as
//                             `Authorization: Bearer …` (reading the data
//                             directory already means being its owner)
//
// Without a session a page request is redirected to /login and an API
// request gets 401. The relay between agents is libp2p, not this API: a
// login never stands between a school and the mothership.
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto'
import { readFile, rename, unlink, writeFile } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'
import type { Logger } from '../net/logger.ts'
import { API_PREFIX, readJsonBody, sendJson, type Guard } from './api.ts'

export const PASSWORD_FILE = 'mothership-password'
export const TOKEN_FILE = 'api-token'
export const COOKIE = 'xo-mesh-session'
/** A session lasts this long from its login (the cookie's Max-Age too). */
export const SESSION_MS = 12 * 3600_000
/** Sessions kept at most (the oldest goes). */
export const MAX_SESSIONS = 64
/** Failed logins allowed per client address in FAILURE_WINDOW_MS, and from everyone together. */
export const MAX_FAILURES = 5
export const MAX_FAILURES_ALL = 30
export const FAILURE_WINDOW_MS = 60_000
/** Shortest password accepted by `passwd`. */
export const MIN_PASSWORD = 8
const MAX_PASSWORD = 1024

/** scrypt cost: N 2^15, r 8 (32 MiB, about 0.1 s on a server): a stolen hash is slow to guess. */
const SCRYPT = { N: 1 << 15, r: 8, p: 1, keylen: 32 }

export interface PasswordHash { algorithm: 'scrypt', N: number, r: number, p: number, salt: string, hash: string }

async function derive (password: string, salt: Buffer, params: { N: number, r: number, p: number, keylen: number }): Promise<Buffer> {
  return await new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, params.keylen, { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r }, (err, key) => {
      if (err !== null) reject(err)
      else resolve(key)
    })
  })
}

/** The scrypt hash of a password with a new random salt (`N`: the cost, a power of two; tests take a cheap one). */
export async function hashPassword (password: string, N = SCRYPT.N): Promise<PasswordHash> {
  const salt = randomBytes(16)
  const key = await derive(password, salt, { ...SCRYPT, N })
  return { algorithm: 'scrypt', N, r: SCRYPT.r, p: SCRYPT.p, salt: salt.toString('base64'), hash: key.toString('base64') }
}

/** Whether password matches the hash (constant time in the comparison). */
export async function verifyPassword (password: string, h: PasswordHash): Promise<boolean> {
  if (password.length > MAX_PASSWORD) return false
  const want = Buffer.from(h.hash, 'base64')
  const got = await derive(password, Buffer.from(h.salt, 'base64'), { N: h.N, r: h.r, p: h.p, keylen: want.length })
  return got.length === want.length && timingSafeEqual(got, want)
}

function parseHash (text: string): PasswordHash | undefined {
  try {
    const v = JSON.parse(text) as Partial<PasswordHash>
    const int = (x: unknown, lo: number, hi: number): boolean => Number.isSafeInteger(x) && (x as number) >= lo && (x as number) <= hi
    if (v.algorithm !== 'scrypt' || !int(v.N, 2, 1 << 20) || ((v.N! & (v.N! - 1)) !== 0) || !int(v.r, 1, 32) || !int(v.p, 1, 16)) return undefined
    if (typeof v.salt !== 'string' || typeof v.hash !== 'string' || v.hash.length < 16) return undefined
    return v as PasswordHash
  } catch {
    return undefined
  }
}

/** The password hash of a data directory, or undefined when none is set (or the file is not one). */
export async function readPasswordHash (dataDir: string): Promise<PasswordHash | undefined> {
  try {
    return parseHash(await readFile(join(dataDir, PASSWORD_FILE), 'utf8'))
  } catch {
    return undefined
  }
}

/** Sets the password of a data directory (atomically, mode 0600). Throws on one shorter than MIN_PASSWORD. */
export async function setPassword (dataDir: string, password: string, N = SCRYPT.N): Promise<void> {
  if (password.length < MIN_PASSWORD) throw new RangeError(`a password needs at least ${MIN_PASSWORD} characters`)
  if (password.length > MAX_PASSWORD) throw new RangeError(`a password has at most ${MAX_PASSWORD} characters`)
  const path = join(dataDir, PASSWORD_FILE)
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, JSON.stringify(await hashPassword(password, N)) + '\n', { mode: 0o600 })
  await rename(tmp, path)
}

/**
 * Failed logins in a sliding window, per client and in all: past the limit,
 * logins are refused (429) until the oldest failure leaves the window,
 * whatever password is sent, so guessing costs minutes per handful.
 */
export class LoginLimiter {
  private readonly failures = new Map<string, number[]>()
  private all: number[] = []
  // plain fields, not parameter properties: the agent also runs under Node's type stripping (agentd)
  private readonly clock: () => number
  private readonly limits: { perClient: number, all: number, windowMs: number }

  constructor (clock: () => number = Date.now, limits = { perClient: MAX_FAILURES, all: MAX_FAILURES_ALL, windowMs: FAILURE_WINDOW_MS }) {
    this.clock = clock
    this.limits = limits
  }

  /** Ms until client may try again, 0 when it may now. */
  wait (client: string): number {
    const now = this.clock()
    const cut = now - this.limits.windowMs
    this.all = this.all.filter(t => t > cut)
    const mine = (this.failures.get(client) ?? []).filter(t => t > cut)
    if (mine.length === 0) this.failures.delete(client)
    else this.failures.set(client, mine)
    let until = 0
    if (mine.length >= this.limits.perClient) until = Math.max(until, mine[mine.length - this.limits.perClient]! + this.limits.windowMs)
    if (this.all.length >= this.limits.all) until = Math.max(until, this.all[this.all.length - this.limits.all]! + this.limits.windowMs)
    return Math.max(0, until - now)
  }

  fail (client: string): void {
    const now = this.clock()
    const mine = this.failures.get(client) ?? []
    mine.push(now)
    if (mine.length > this.limits.perClient * 2) mine.shift()
    this.failures.set(client, mine)
    this.all.push(now)
    if (this.all.length > this.limits.all * 2) this.all.shift()
    // bounded: a storm of client addresses cannot grow the map without end
    if (this.failures.size > 1024) this.failures.delete(this.failures.keys().next().value!)
  }
}

function cookieValue (req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=')
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim()
  }
  return undefined
}

function same (a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** Paths anyone may fetch: the login page and what it loads, and the routes it calls. */
const OPEN_PAGES = new Set(['/login', '/login.js', '/dashboard.css'])
const OPEN_ROUTES = new Set([`${API_PREFIX}/login`, `${API_PREFIX}/logout`, `${API_PREFIX}/session`])

export interface SessionGuardInit {
  dataDir: string
  logger: Logger
  clock?: () => number
  limiter?: LoginLimiter
}

/** The ApiServer's guard on the mothership (see the top of this file). */
export class SessionGuard implements Guard {
  private readonly sessions = new Map<string, number>()
  private readonly init: SessionGuardInit
  private readonly clock: () => number
  private readonly limiter: LoginLimiter
  private readonly log: Logger
  private token = ''

  constructor (init: SessionGuardInit) {
    this.init = init
    this.clock = init.clock ?? Date.now
    this.limiter = init.limiter ?? new LoginLimiter(this.clock)
    this.log = init.logger.child('session')
  }

  /** Writes DATA/api-token for the CLI (a new one at each start). */
  async start (): Promise<void> {
    this.token = randomBytes(32).toString('base64url')
    const path = join(this.init.dataDir, TOKEN_FILE)
    const tmp = `${path}.${process.pid}.tmp`
    await writeFile(tmp, this.token + '\n', { mode: 0o600 })
    await rename(tmp, path)
  }

  async stop (): Promise<void> {
    this.sessions.clear()
    await unlink(join(this.init.dataDir, TOKEN_FILE)).catch(() => {})
  }

  private valid (req: IncomingMessage): boolean {
    const auth = req.headers.authorization
    if (auth !== undefined && this.token !== '' && auth.startsWith('Bearer ') && same(auth.slice(7).trim(), this.token)) return true
    const id = cookieValue(req, COOKIE)
    if (id === undefined) return false
    const expires = this.sessions.get(id)
    const now = this.clock()
    if (expires === undefined || expires <= now) {
      this.sessions.delete(id ?? '')
      return false
    }
    return true
  }

  async handle (req: IncomingMessage, res: ServerResponse, pathname: string): Promise<boolean> {
    if (pathname === `${API_PREFIX}/login`) return await this.login(req, res)
    if (pathname === `${API_PREFIX}/logout`) {
      if (req.method !== 'POST') return this.methodNotAllowed(res, 'POST')
      const id = cookieValue(req, COOKIE)
      if (id !== undefined) this.sessions.delete(id)
      res.setHeader('Set-Cookie', `${COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`)
      res.writeHead(204, { 'Cache-Control': 'no-store' }).end()
      return true
    }
    if (pathname === `${API_PREFIX}/session`) {
      if (req.method !== 'GET') return this.methodNotAllowed(res, 'GET')
      sendJson(res, 200, { authenticated: this.valid(req), password_set: await readPasswordHash(this.init.dataDir) !== undefined })
      return true
    }
    if (OPEN_PAGES.has(pathname) || OPEN_ROUTES.has(pathname) || this.valid(req)) return false
    if (pathname.startsWith(API_PREFIX + '/')) {
      sendJson(res, 401, { error: 'log in first (POST /api/v1/login), or send the token of DATA/api-token' })
    } else {
      res.writeHead(303, { Location: `/login?next=${encodeURIComponent(pathname)}`, 'Cache-Control': 'no-store' }).end()
    }
    return true
  }

  private methodNotAllowed (res: ServerResponse, allow: string): true {
    res.setHeader('Allow', allow)
    sendJson(res, 405, { error: `only ${allow} here` })
    return true
  }

  private async login (req: IncomingMessage, res: ServerResponse): Promise<true> {
    if (req.method !== 'POST') return this.methodNotAllowed(res, 'POST')
    const client = req.socket.remoteAddress ?? '?'
    const wait = this.limiter.wait(client)
    if (wait > 0) {
      res.setHeader('Retry-After', String(Math.ceil(wait / 1000)))
      sendJson(res, 429, { error: `too many failed logins: try again in ${Math.ceil(wait / 1000)} s` })
      return true
    }
    const body = await readJsonBody(req) as { password?: unknown } | undefined
    const password = body?.password
    if (typeof password !== 'string' || password.length === 0) {
      sendJson(res, 400, { error: 'send {"password": "…"} as JSON' })
      return true
    }
    const hash = await readPasswordHash(this.init.dataDir)
    if (hash === undefined) {
      sendJson(res, 409, { error: 'no password is set: run xo-mesh mothership passwd on the mothership' })
      return true
    }
    if (!await verifyPassword(password, hash)) {
      this.limiter.fail(client)
      this.log.warn('failed login', { client })
      sendJson(res, 401, { error: 'wrong password' })
      return true
    }
    const id = randomBytes(32).toString('base64url')
    const now = this.clock()
    for (const [k, exp] of this.sessions) if (exp <= now) this.sessions.delete(k)
    while (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!)
    this.sessions.set(id, now + SESSION_MS)
    this.log.info('logged in', { client })
    res.setHeader('Set-Cookie', `${COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_MS / 1000}`)
    res.writeHead(204, { 'Cache-Control': 'no-store' }).end()
    return true
  }
}
