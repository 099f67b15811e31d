// Waiting on real processes and ports: shared by the specs and the benches
// (bench/util.ts re-exports them).
import { createServer } from 'node:net'

/** Polls `check` every `everyMs` until it returns a value other than undefined; throws after `timeoutMs` with `what`. */
export async function until<T> (what: string, timeoutMs: number, check: () => T | undefined | Promise<T | undefined>, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise(resolve => server.close(resolve))
  return port
}
