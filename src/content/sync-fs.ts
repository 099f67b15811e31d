// Flushing a filesystem: what makes written files durable before something
// that points at them (a build's entry in builds/, `current`) is written.
import { execFile } from 'node:child_process'
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
