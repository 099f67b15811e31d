// One agent per data directory: DATA/agent.lock holds the owner's pid and the
// kernel's start time of that process, so a lock left by a crash (or a pid
// reused after a reboot) is recognised as stale and taken over.
import { readFileSync } from 'node:fs'
import { readFile, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { LOCK_FILE } from './constants.ts'
import { AgentRunningError } from './errors.ts'

interface LockContent { pid: number, start: string | null }

/** The process's start time in clock ticks since boot (/proc/PID/stat field 22), or null without /proc. */
function startTime (pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // the command name (field 2) may hold spaces and parentheses: count from the last ')'
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null
  } catch {
    return null
  }
}

function alive (lock: LockContent): boolean {
  try {
    process.kill(lock.pid, 0)
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
  return lock.start === null || startTime(lock.pid) === lock.start
}

export class DataDirLock {
  readonly path: string
  private readonly content: string

  private constructor (path: string, content: string) {
    this.path = path
    this.content = content
  }

  /** Takes the lock; throws AgentRunningError while another live agent holds it. */
  static async acquire (dataDir: string): Promise<DataDirLock> {
    const path = join(dataDir, LOCK_FILE)
    const content = JSON.stringify({ pid: process.pid, start: startTime(process.pid) }) + '\n'
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await writeFile(path, content, { flag: 'wx', mode: 0o644 })
        return new DataDirLock(path, content)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      let held: LockContent | undefined
      try {
        const v = JSON.parse(await readFile(path, 'utf8')) as Partial<LockContent>
        if (Number.isSafeInteger(v.pid)) held = { pid: v.pid!, start: typeof v.start === 'string' ? v.start : null }
      } catch {
        // unreadable or half-written: a crash while taking it, stale
      }
      if (held !== undefined && alive(held)) throw new AgentRunningError(dataDir, held.pid)
      await unlink(path).catch(() => {})
    }
    throw new AgentRunningError(dataDir, -1)
  }

  /** Gives the lock up (only if it is still ours). */
  async release (): Promise<void> {
    try {
      if (await readFile(this.path, 'utf8') === this.content) await unlink(this.path)
    } catch {
      // already gone
    }
  }
}
