// Real agent processes for the tests: started like a user would (through
// bin/xo-mesh.js, optionally inside a network namespace), their JSON-lines
// log read as it comes, and every wait bounded in time.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { request } from 'node:http'
import { join } from 'node:path'
import { BIN } from '../support/cli.ts'
import { until } from '../support/wait.ts'

export interface LogRecord { time: string, level: string, component: string, msg: string, [k: string]: unknown }

export { until }

/** The command line that runs `node BIN …args`, inside `netns` when given. */
function command (args: string[], netns?: string, entry = BIN): [string, string[]] {
  return netns !== undefined ? ['ip', ['netns', 'exec', netns, process.execPath, entry, ...args]] : [process.execPath, [entry, ...args]]
}

export class AgentProcess {
  readonly dataDir: string
  readonly netns: string | undefined
  readonly child: ChildProcess
  readonly logs: LogRecord[] = []
  stderrText = ''
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>

  /**
   * options.env: variables added to the test process's environment (XO_MESH_POWER, …);
   * options.entry: the script to run instead of bin/xo-mesh.js (a bundle of src/cli/agentd.ts starts with far less CPU).
   */
  constructor (dataDir: string, args: string[], options: { netns?: string, env?: Record<string, string>, entry?: string } = {}) {
    this.dataDir = dataDir
    this.netns = options.netns
    const [cmd, argv] = command(['--data', dataDir, 'agent', ...args], options.netns, options.entry)
    this.child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, XO_MESH_NO_PROGRESS: '1', ...options.env } })
    let partial = ''
    this.child.stderr!.setEncoding('utf8')
    this.child.stderr!.on('data', (d: string) => {
      this.stderrText += d
      partial += d
      const lines = partial.split('\n')
      partial = lines.pop()!
      for (const line of lines) {
        try { this.logs.push(JSON.parse(line) as LogRecord) } catch { /* not a log line */ }
      }
    })
    this.exited = new Promise(resolve => this.child.on('exit', (code, signal) => { resolve({ code, signal }) }))
  }

  /** Log records matching `pred`. */
  find (pred: (r: LogRecord) => boolean): LogRecord[] {
    return this.logs.filter(pred)
  }

  /** Waits until the agent has written DATA/api and logged "agent started" (the pipe may lag the file); returns the API URL. */
  async started (timeoutMs = 20_000): Promise<string> {
    let exited = false
    void this.exited.then(() => { exited = true })
    return await until(`the agent on ${this.dataDir} to start`, timeoutMs, async () => {
      if (exited) throw new Error(`the agent on ${this.dataDir} exited during start: ${this.stderrText}`)
      if (!this.logs.some(l => l.msg === 'agent started')) return undefined
      try { return (await readFile(join(this.dataDir, 'api'), 'utf8')).trim() } catch { return undefined }
    })
  }

  get peerId (): string {
    const r = this.logs.find(l => l.msg === 'agent started')
    if (r === undefined) throw new Error('agent not started')
    return r.peerId as string
  }

  /** Peer ids this agent logged as connected and not disconnected since. */
  connectedPeers (): Set<string> {
    const s = new Set<string>()
    for (const l of this.logs) {
      if (l.msg === 'peer connected') s.add(l.peerId as string)
      if (l.msg === 'peer disconnected') s.delete(l.peerId as string)
    }
    return s
  }

  /** Sends `signal` and waits (bounded) for the exit. */
  async stop (signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal)
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`the agent on ${this.dataDir} did not exit within ${timeoutMs} ms`)) }, timeoutMs) })
    try {
      return await Promise.race([this.exited, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /** For after hooks: SIGTERM, then SIGKILL if it lingers. Never throws. */
  async kill (): Promise<void> {
    try {
      await this.stop('SIGTERM', 5_000)
    } catch {
      this.child.kill('SIGKILL')
      await this.exited
    }
  }
}

export interface CliResult { code: number | null, stdout: string, stderr: string }

/** Runs `xo-mesh …args` to the end (inside `netns` when given), bounded by `timeoutMs`. */
export async function xo (args: string[], options: { netns?: string, timeoutMs?: number } = {}): Promise<CliResult> {
  const [cmd, argv] = command(args, options.netns)
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, XO_MESH_NO_PROGRESS: '1' } })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const timer = setTimeout(() => { child.kill('SIGKILL') }, options.timeoutMs ?? 20_000)
  const code = await new Promise<number | null>(resolve => child.on('close', c => { resolve(c) }))
  clearTimeout(timer)
  return { code, stdout, stderr }
}

/** `xo-mesh --data DIR --json status`, parsed. */
export async function statusOf (dataDir: string, netns?: string): Promise<{ peerId: string, role: string, server: string | null, term: number, peers: Array<{ peerId: string, addrs: string[] }>, builds: Array<{ cid: string, name: string, bytes: number, have_bytes: number, complete: boolean }> }> {
  const r = await xo(['--data', dataDir, '--json', 'status'], netns !== undefined ? { netns } : {})
  if (r.code !== 0) throw new Error(`status on ${dataDir} exited ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

/** GET on the API straight from the test process (fast polling; loopback agents only). */
export async function apiGet (url: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number, body: unknown }> {
  return await new Promise((resolve, reject) => {
    const req = request(new URL('/api/v1' + path, url), { headers, timeout: 5_000 }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { text += d })
      res.on('end', () => {
        try { resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }) } catch (err) { reject(err) }
      })
    })
    req.on('timeout', () => { req.destroy(new Error('API request timed out')) })
    req.on('error', reject)
    req.end()
  })
}

/**
 * Bundles src/cli/agentd.ts into DIR/agentd.mjs and returns its path, for
 * AgentProcess's `entry`: an agent started from the bundle costs a fraction
 * of the CPU tsx needs to load the sources (tests that run many agents).
 */
export async function agentdBundle (dir: string): Promise<string> {
  const entry = join(dir, 'agentd.mjs')
  const { buildAgentd } = await import('../../scripts/build-agentd.ts')
  await buildAgentd(entry)
  return entry
}

/** The last warnings and errors of each agent on stderr (an afterEach of a failed test). */
export function printWarnings (agents: AgentProcess[], last = 5): void {
  for (const x of agents) for (const l of x.find(l => l.level === 'warn' || l.level === 'error').slice(-last)) console.error(x.dataDir.split('/').pop(), JSON.stringify(l).slice(0, 300))
}
