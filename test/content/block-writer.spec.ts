import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BlockStore } from '../../src/content/blockstore.ts'
import { BlockWriter } from '../../src/content/block-writer.ts'
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
      // the temp directory turns into a file: every later write fails (ENOTDIR), also as root
      await rm(store.tmp, { recursive: true, force: true })
      await writeFile(store.tmp, 'in the way')
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
