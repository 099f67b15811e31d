// Giving back what malloc keeps after a transfer (src/agent/memory.ts): the
// trimmer trims only once the agent has gone quiet after some work, and the
// native module it calls is built beside the bundle and works.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { MemoryTrimmer, loadCollect, loadMallocTrim } from '../../src/agent/memory.ts'
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

  it('collects V8\'s heap before each trim, and works with either alone', () => {
    const order: string[] = []
    let bytes = 0
    const both = new MemoryTrimmer({ activity: () => bytes, trim: () => { order.push('trim'); return 1 }, collect: () => { order.push('collect') } })
    bytes += 4 << 20; both.tick()
    both.tick(); both.tick()
    assert.deepEqual(order, ['collect', 'trim'])
    const collects: number[] = []
    const alone = new MemoryTrimmer({ activity: () => bytes, collect: () => { collects.push(1) } })
    bytes += 4 << 20; alone.tick()
    for (let i = 0; i < 12; i++) alone.tick()
    assert.equal(collects.length, 4)
    assert.equal(alone.trims, 4)
  })

  it('a full collection can be had without --expose-gc, and frees what only it can', async function () {
    this.timeout(20_000)
    const collect = loadCollect()
    assert.equal(typeof collect, 'function')
    // an object promoted to the old generation, then dropped: only a full collection finalises it
    const registry = new FinalizationRegistry<string>(() => { finalised = true })
    let finalised = false
    let big: Uint8Array[] | undefined = Array.from({ length: 64 }, () => new Uint8Array(1024))
    registry.register(big, 'rings')
    for (let i = 0; i < 4; i++) { collect!(); await new Promise(resolve => setImmediate(resolve)) }
    big = undefined
    collect!()
    for (let i = 0; i < 50 && !finalised; i++) await new Promise(resolve => setTimeout(resolve, 10))
    assert.ok(finalised, 'the dropped object was not collected')
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
