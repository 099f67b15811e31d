// Giving back what malloc keeps after a transfer (src/agent/memory.ts): the
// trimmer trims only once the agent has gone quiet after some work, and the
// native module it calls is built beside the bundle and works.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { MemoryTrimmer, loadMallocTrim } from '../../src/agent/memory.ts'
import { buildMallocTrim } from '../../scripts/build-agentd.ts'

describe('the memory trimmer', () => {
  function trimmer (): { t: MemoryTrimmer, traffic: { bytes: number }, calls: number[] } {
    const traffic = { bytes: 0 }
    const calls: number[] = []
    let tick = 0
    const t = new MemoryTrimmer({ activity: () => traffic.bytes, trim: () => { calls.push(tick); return 1 } })
    const orig = t.tick.bind(t)
    t.tick = () => { tick++; orig() }
    return { t, traffic, calls }
  }

  it('never trims an agent that has not worked, nor for control traffic', () => {
    const { t, traffic, calls } = trimmer()
    for (let i = 0; i < 20; i++) { traffic.bytes += 10_000; t.tick() }
    assert.deepEqual(calls, [])
  })

  it('trims a few times once quiet after work (2, 4, 8 and 12 quiet ticks), never while working, again after new work', () => {
    const { t, traffic, calls } = trimmer()
    for (let i = 0; i < 5; i++) { traffic.bytes += 50 << 20; t.tick() } // ticks 1-5: a transfer
    assert.deepEqual(calls, [])
    for (let i = 0; i < 15; i++) { traffic.bytes += 2_000; t.tick() } // ticks 6-20: quiet
    assert.deepEqual(calls, [7, 9, 13, 17])
    traffic.bytes += 8 << 20; t.tick() // tick 21: work again
    for (let i = 0; i < 3; i++) t.tick() // 22-24
    assert.deepEqual(calls, [7, 9, 13, 17, 23])
    assert.equal(t.trims, 5)
  })

  it('the native module builds with the C compiler and calls malloc_trim', async function () {
    this.timeout(30_000)
    const dir = await mkdtemp(join(tmpdir(), 'xo-mesh-trim-'))
    try {
      const out = join(dir, 'malloc-trim.node')
      if (!buildMallocTrim(out)) return this.skip() // no C compiler: the agent runs without trimming
      const trim = loadMallocTrim(pathToFileURL(out))
      assert.equal(typeof trim, 'function')
      const r = trim!()
      assert.ok(r === 0 || r === 1, String(r))
      assert.equal(loadMallocTrim(pathToFileURL(join(dir, 'absent.node'))), undefined)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
