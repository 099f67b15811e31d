// src/core is sans-IO (architecture.md): no files, sockets, timers, clocks or
// ambient randomness, and no libp2p. The lint rules keep libp2p out; this
// keeps the rest out.
import assert from 'node:assert/strict'
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'

const FORBIDDEN: Array<[RegExp, string]> = [
  [/from\s+['"]node:/, 'a node: module'],
  [/from\s+['"](fs|net|dgram|timers|child_process|worker_threads|crypto)(\/|['"])/, 'a Node built-in'],
  [/\bDate\.now\s*\(/, 'Date.now'],
  [/\bnew Date\s*\(/, 'new Date'],
  [/\bperformance\.now\s*\(/, 'performance.now'],
  [/\bMath\.random\s*\(/, 'Math.random'],
  [/\b(setTimeout|setInterval|setImmediate|queueMicrotask)\s*\(/, 'a timer'],
  [/\bprocess\./, 'process'],
  [/from\s+['"](libp2p|@libp2p\/|@chainsafe\/)/, 'libp2p']
]

async function files (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...await files(p))
    else if (e.name.endsWith('.ts')) out.push(p)
  }
  return out
}

describe('src/core', () => {
  it('does no I/O, reads no clock and draws no ambient randomness', async () => {
    const found: string[] = []
    for (const f of await files(new URL('../../src/core', import.meta.url).pathname)) {
      const text = (await readFile(f, 'utf8')).split('\n').filter(l => !/^\s*(\/\/|\*)/.test(l)).join('\n')
      for (const [re, what] of FORBIDDEN) if (re.test(text)) found.push(`${f}: ${what}`)
    }
    assert.deepEqual(found, [])
  })
})
