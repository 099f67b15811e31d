// Flushing a filesystem: what makes written files durable before something
// that points at them (a build's entry in builds/, `current`) is written.
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

/**
 * Flushes the filesystem holding path (syncfs(2) via `sync -f`: one call for
 * every file and directory entry written there, instead of an fsync per
 * file); falls back to a global sync where `sync -f` is missing.
 */
export async function syncFs (path: string): Promise<void> {
  await run('sync', ['-f', path]).catch(async () => { await run('sync') })
}

/**
 * Starts flushing the filesystem holding path without waiting for it: a
 * long write (an add) calls this every so often so that the disk works
 * while it goes on, and the flush that must be waited for at the end finds
 * little left to write. Errors are ignored: the final syncFs is what counts.
 */
export function startSyncFs (path: string): void {
  try {
    const child = spawn('sync', ['-f', path], { stdio: 'ignore' })
    child.on('error', () => {})
    child.unref()
  } catch {
    // no process to spare: the final flush does the work
  }
}
