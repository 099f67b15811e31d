import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BlockStore } from '../../src/content/blockstore.ts'
import { BackgroundWriter, BlockWriter } from '../../src/content/block-writer.ts'
import { RAW, cidOf } from '../../src/content/cid.ts'
import { tempDir } from '../support/cli.ts'

async function list (store: BlockStore): Promise<string[]> {
  const all: string[] = []
  for await (const c of store.cids()) all.push(c.toString())
  return all.sort()
}

for (const thread of [true, false]) {
  describe(`BlockWriter (${thread ? 'writer thread' : 'inline'})`, () => {
    let t: Awaited<ReturnType<typeof tempDir>>
    let store: BlockStore
    beforeEach(async () => { t = await tempDir(); store = await new BlockStore(join(t.dir, 'blocks')).open() })
    afterEach(async () => { await t.cleanup() })

    it('stores every block intact, across many wraps of the ring and blocks too big for it', async () => {
      const w = new BlockWriter(store, { thread, threadAfterBytes: 0 })
      const blocks: Uint8Array[] = []
      // 40 MiB through an 8 MiB ring, odd sizes so records wrap at every offset; one 3 MiB block goes inline
      for (let i = 0; i < 400; i++) blocks.push(randomBytes(1 + ((i * 7919) % (200 << 10))))
      blocks.splice(200, 0, randomBytes(3 << 20))
      const buf = new Uint8Array(4 << 20)
      for (const b of blocks) {
        // the caller's buffer is reused at once: put must have taken the bytes
        buf.set(b)
        assert.equal(w.put(cidOf(RAW, b), buf.subarray(0, b.length)), true)
        buf.fill(0xee, 0, b.length)
      }
      await w.commit()
      assert.equal(w.written.length, blocks.length)
      for (const b of blocks) assert.deepEqual(await store.get(cidOf(RAW, b)), new Uint8Array(b))
      assert.deepEqual(await readdir(store.tmp), [])
    })

    it('writes nothing for a block the store holds, also when another writer put it', async () => {
      const a = randomBytes(1000)
      const b = randomBytes(2000)
      await store.put(cidOf(RAW, a), a)
      const w = new BlockWriter(store, { thread, threadAfterBytes: 0 })
      assert.equal(w.put(cidOf(RAW, a), a), false)
      assert.equal(w.put(cidOf(RAW, b), b), true)
      await w.commit()
      const again = new BlockWriter(store, { thread, threadAfterBytes: 0 })
      assert.equal(again.put(cidOf(RAW, b), b), false)
      await again.commit()
      assert.deepEqual(w.written, [cidOf(RAW, b).toString()])
      assert.deepEqual(again.written, [])
    })

    it('reports a failed write, and abort leaves the store as it was', async () => {
      const held = randomBytes(500)
      await store.put(cidOf(RAW, held), held)
      const before = await list(store)
      const w = new BlockWriter(store, { thread, threadAfterBytes: 0 })
      const blocks = Array.from({ length: 50 }, () => randomBytes(10_000))
      for (const b of blocks.slice(0, 20)) w.put(cidOf(RAW, b), b)
      // the temp directory turns into a file: every later write fails (ENOTDIR), also as root.
      // The thread, still writing the first blocks, may make the directory again in between (EISDIR): again.
      for (let k = 0; ; k++) {
        await rm(store.tmp, { recursive: true, force: true })
        try {
          await writeFile(store.tmp, 'in the way')
          break
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EISDIR' || k >= 20) throw err
        }
      }
      await assert.rejects(async () => {
        for (const b of blocks.slice(20)) w.put(cidOf(RAW, b), b)
        w.put(cidOf(RAW, held), held)
        await w.commit()
      }, /ENOTDIR|not a directory/)
      await w.abort()
      assert.deepEqual(await list(store), before)
    })
  })
}

describe('BackgroundWriter (a receiver\'s writer thread)', () => {
  let t: Awaited<ReturnType<typeof tempDir>>
  let store: BlockStore
  beforeEach(async () => { t = await tempDir(); store = await new BlockStore(join(t.dir, 'blocks')).open() })
  afterEach(async () => { await t.cleanup() })

  it('settles a batch only once its blocks are in the store, across wraps of a small ring', async () => {
    const w = new BackgroundWriter(store, { thread: true, ringBytes: 1 << 20 })
    try {
      const batches: Uint8Array[][] = []
      for (let k = 0; k < 20; k++) batches.push(Array.from({ length: 8 }, (_, i) => randomBytes(1 + ((k * 8 + i) * 7919) % (100 << 10))))
      // one shard directory missing: the thread makes it
      const gone = cidOf(RAW, batches[3]![0]!).toString()
      await rm(join(store.dir, gone.slice(-3, -1)), { recursive: true, force: true })
      let inline = 0
      const settled: Array<Promise<void>> = []
      for (const batch of batches) {
        for (const b of batch) {
          if (!w.queue(cidOf(RAW, b), b)) {
            inline++
            await store.putHashed(cidOf(RAW, b), b)
          }
        }
        settled.push(w.settled().then(async () => {
          // every block of the batch is readable and intact when its batch settles
          for (const b of batch) assert.deepEqual(await store.get(cidOf(RAW, b)), new Uint8Array(b))
        }))
      }
      await Promise.all(settled)
      assert.ok(inline < 160, 'most blocks went through the thread')
      assert.deepEqual(await readdir(store.tmp), [])
    } finally {
      await w.close()
    }
  })

  it('rejects the batches a failed write touches, and a later batch starts a fresh thread', async () => {
    const w = new BackgroundWriter(store, { thread: true })
    try {
      const first = Array.from({ length: 5 }, () => randomBytes(10_000))
      for (const b of first) assert.equal(w.queue(cidOf(RAW, b), b), true)
      await w.settled()
      // the temp directory turns into a file: writes fail (ENOTDIR), also as root
      await rm(store.tmp, { recursive: true, force: true })
      await writeFile(store.tmp, 'in the way')
      const bad = Array.from({ length: 5 }, () => randomBytes(10_000))
      for (const b of bad) w.queue(cidOf(RAW, b), b)
      await assert.rejects(w.settled(), /ENOTDIR|not a directory/)
      for (const b of bad) assert.equal(await store.has(cidOf(RAW, b)), false)
      await rm(store.tmp, { force: true })
      await mkdir(store.tmp)
      const later = Array.from({ length: 5 }, () => randomBytes(10_000))
      for (const b of later) assert.equal(w.queue(cidOf(RAW, b), b), true)
      await w.settled()
      for (const b of [...first, ...later]) assert.deepEqual(await store.get(cidOf(RAW, b)), new Uint8Array(b))
    } finally {
      await w.close()
    }
  })

  it('declines every block without a thread (one core) and after close', async () => {
    const b = randomBytes(100)
    assert.equal(new BackgroundWriter(store, { thread: false }).queue(cidOf(RAW, b), b), false)
    const w = new BackgroundWriter(store, { thread: true })
    await w.close()
    assert.equal(w.queue(cidOf(RAW, b), b), false)
  })
})
