// How the CLI reaches the agent of a data directory: DATA/api holds the API's
// URL (written by the agent once it listens, removed when it stops). Plain
// node:http, nothing else loaded: `xo-mesh status` stays quick.
import { request } from 'node:http'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { API_FILE } from './constants.ts'
import { AgentError, NoAgentError } from './errors.ts'

/** DATA/api-token (the mothership's API wants it: src/agent/session.ts); the same name as session.ts's, not imported to keep this file light. */
const TOKEN_FILE = 'api-token'

/** The Authorization header for the agent of dataDir: its token when it wrote one, else nothing. */
export async function authHeader (dataDir: string): Promise<Record<string, string>> {
  try {
    const token = (await readFile(join(dataDir, TOKEN_FILE), 'utf8')).trim()
    return token === '' ? {} : { Authorization: `Bearer ${token}` }
  } catch {
    return {}
  }
}

export const DEFAULT_TIMEOUT_MS = 10_000

/** The agent's API URL for this data directory; NoAgentError when none is running. */
export async function apiUrlOf (dataDir: string): Promise<string> {
  let text: string
  try {
    text = await readFile(join(dataDir, API_FILE), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NoAgentError(`no agent is running on ${dataDir} (start one with: xo-mesh --data ${dataDir} agent)`)
    throw err
  }
  const url = text.trim()
  if (!/^http:\/\/[^/]+$/.test(url)) throw new NoAgentError(`${join(dataDir, API_FILE)} does not hold an API address`)
  return url
}

/** GETs (or POSTs `body` to) /api/v1<path> of the agent on `dataDir`; resolves with the parsed JSON. */
export async function callAgent (dataDir: string, path: string, options: { body?: unknown, timeoutMs?: number } = {}): Promise<unknown> {
  const base = await apiUrlOf(dataDir)
  const url = new URL('/api/v1' + path, base)
  const payload = options.body !== undefined ? JSON.stringify(options.body) : undefined
  const auth = await authHeader(dataDir)
  return await new Promise((resolve, reject) => {
    const req = request(url, {
      method: payload !== undefined ? 'POST' : 'GET',
      headers: { Accept: 'application/json', ...auth, ...(payload !== undefined ? { 'Content-Type': 'application/json' } : {}) },
      timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    }, res => {
      const parts: Buffer[] = []
      res.on('data', (d: Buffer) => parts.push(d))
      res.on('error', reject)
      res.on('end', () => {
        let value: unknown
        try {
          value = JSON.parse(Buffer.concat(parts).toString('utf8'))
        } catch {
          reject(new AgentError('ERR_API', `the agent on ${dataDir} sent something that is not JSON (HTTP ${res.statusCode})`, { exitCode: 2 }))
          return
        }
        if ((res.statusCode ?? 500) >= 400) {
          const message = (value as { error?: unknown } | null)?.error
          reject(new AgentError('ERR_API', `the agent refused: ${typeof message === 'string' ? message : `HTTP ${res.statusCode}`}`, { exitCode: 1 }))
          return
        }
        resolve(value)
      })
    })
    req.on('timeout', () => { req.destroy(new AgentError('ERR_API', `the agent on ${dataDir} did not answer within ${(options.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000} s`, { exitCode: 2 })) })
    req.on('error', err => {
      const code = (err as NodeJS.ErrnoException).code
      // the file outlived its agent (killed with SIGKILL, power cut)
      if (code === 'ECONNREFUSED' || code === 'ECONNRESET') reject(new NoAgentError(`no agent is running on ${dataDir} (${join(dataDir, API_FILE)} is left from one that stopped uncleanly; start one with: xo-mesh --data ${dataDir} agent)`))
      else reject(err)
    })
    req.end(payload)
  })
}

/** One server-sent event as followAgent hands it on (data parsed as JSON). */
export interface AgentEvent { event: string, data: unknown, id?: string }

/**
 * Follows GET /api/v1<path> of the agent on `dataDir` as server-sent events,
 * calling `onEvent` for each (heartbeats and unparsable data are skipped).
 * Resolves when the agent ends the stream or `signal` aborts; rejects like
 * callAgent when there is no agent or it refuses.
 */
export async function followAgent (dataDir: string, path: string, onEvent: (e: AgentEvent) => void, signal?: AbortSignal): Promise<void> {
  const base = await apiUrlOf(dataDir)
  const auth = await authHeader(dataDir)
  await new Promise<void>((resolve, reject) => {
    const req = request(new URL('/api/v1' + path, base), { headers: { Accept: 'text/event-stream', ...auth }, ...(signal !== undefined ? { signal } : {}) }, res => {
      if ((res.statusCode ?? 500) >= 400) {
        res.resume()
        reject(new AgentError('ERR_API', `the agent refused: HTTP ${res.statusCode}`, { exitCode: 1 }))
        return
      }
      let partial = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => {
        partial += d.replace(/\r\n?/g, '\n')
        let i: number
        while ((i = partial.indexOf('\n\n')) >= 0) {
          const block = partial.slice(0, i)
          partial = partial.slice(i + 2)
          let event = 'message'
          let id: string | undefined
          const data: string[] = []
          for (const line of block.split('\n')) {
            const m = /^([a-z]+): ?(.*)$/.exec(line)
            if (m === null) continue
            if (m[1] === 'event') event = m[2]!
            else if (m[1] === 'data') data.push(m[2]!)
            else if (m[1] === 'id') id = m[2]!
          }
          if (data.length === 0) continue
          try {
            onEvent({ event, data: JSON.parse(data.join('\n')), ...(id !== undefined ? { id } : {}) })
          } catch {
            // not JSON: not ours to show
          }
        }
      })
      res.on('end', () => { resolve() })
      res.on('error', err => { if (signal?.aborted === true) resolve(); else reject(err) })
    })
    req.on('error', err => {
      if (signal?.aborted === true) return resolve()
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ECONNREFUSED' || code === 'ECONNRESET') reject(new NoAgentError(`no agent is running on ${dataDir} (start one with: xo-mesh --data ${dataDir} agent)`))
      else reject(err)
    })
    req.end()
  })
}
