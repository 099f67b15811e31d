// Runs the real xo-mesh command in a child process, as a user would.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '../../..')
export const BIN = join(REPO_ROOT, 'bin', 'xo-mesh.js')

export interface RunResult { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string, maxRssKb?: number }

/** Starts `xo-mesh ...args` without waiting. */
export function start (args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], { env: { ...process.env, XO_MESH_NO_PROGRESS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Runs `xo-mesh ...args` to the end. With rss, reports the child's peak RSS (kB, VmHWM from /proc). */
export async function run (args: string[], options: { env?: Record<string, string>, rss?: boolean } = {}): Promise<RunResult> {
  const child = start(args, options.env)
  let stdout = ''
  let stderr = ''
  let maxRssKb: number | undefined
  child.stdout!.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  let timer: NodeJS.Timeout | undefined
  if (options.rss === true) {
    const { readFile } = await import('node:fs/promises')
    const sample = async (): Promise<void> => {
      try {
        const status = await readFile(`/proc/${child.pid}/status`, 'utf8')
        const m = /VmHWM:\s+(\d+)/.exec(status)
        if (m !== null) maxRssKb = Math.max(maxRssKb ?? 0, Number(m[1]))
      } catch {
        // exited
      }
    }
    timer = setInterval(() => { void sample() }, 50)
  }
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>(resolve => child.on('close', (c, s) => { resolve([c, s]) }))
  if (timer !== undefined) clearInterval(timer)
  return { code, signal, stdout, stderr, ...(maxRssKb !== undefined ? { maxRssKb } : {}) }
}

/** The last line of stdout (where add prints the root CID). */
export function lastLine (text: string): string {
  const lines = text.trim().split('\n')
  return lines[lines.length - 1]!.trim()
}

/** A fresh temp directory, removed by the returned cleanup. */
export async function tempDir (prefix = 'xo-mesh-test-'): Promise<{ dir: string, cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  return { dir, cleanup: async () => { await rm(dir, { recursive: true, force: true }) } }
}
