import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BlockStore } from '../../src/content/blockstore.ts'
import { BackgroundReader } from '../../src/content/block-reader.ts'
import { RAW, cidOf } from '../../src/content/cid.ts'
import { tempDir } from '../support/cli.ts'

for (const thread of [true, false]) {
  describe(`BackgroundReader (${thread ? 'reader thread' : 'inline'})`, () => {
    let t: Awaited<ReturnType<typeof tempDir>>
    let store: BlockStore
    beforeEach(async () => { t = await tempDir(); store = await new BlockStore(join(t.dir, 'blocks')).open() })
    afterEach(async () => { await t.cleanup() })

    it('returns each block intact, and nothing for a missing, cut, grown or rotten one', async () => {
      const blocks = Array.from({ length: 12 }, (_, i) => randomBytes(1 + ((i * 7919) % (100 << 10))))
      for (const b of blocks) await store.putHashed(cidOf(RAW, b), b)
      const cids = blocks.map(b => cidOf(RAW, b))
      await rm(store.path(cids[2]!))
      await writeFile(store.path(cids[4]!), blocks[4]!.subarray(1))
      await writeFile(store.path(cids[6]!), Buffer.concat([blocks[6]!, Buffer.of(0)]))
      const rotten = Buffer.from(blocks[8]!)
      rotten[rotten.length >> 1]! ^= 1
      await writeFile(store.path(cids[8]!), rotten)
      const r = new BackgroundReader(store, { thread, idleMs: 50 })
      try {
        const got = await r.read(blocks.map((b, i) => ({ cid: cids[i]!, size: b.length })))
        assert.equal(got.length, blocks.length)
        for (let i = 0; i < blocks.length; i++) {
          if ([2, 4, 6, 8].includes(i)) assert.equal(got[i], undefined, `block ${i}`)
          else assert.deepEqual(got[i], new Uint8Array(blocks[i]!), `block ${i}`)
        }
        // the length the caller expects is checked too (a manifest that says otherwise)
        assert.deepEqual(await r.read([{ cid: cids[0]!, size: blocks[0]!.length + 1 }]), [undefined])
        // reads after the idle thread ended start it again
        await new Promise(resolve => setTimeout(resolve, 150))
        const again = await r.read([{ cid: cids[1]!, size: blocks[1]!.length }])
        assert.deepEqual(again[0], new Uint8Array(blocks[1]!))
      } finally {
        await r.close()
      }
    })

    it('answers many reads in flight at once, each with its own blocks', async () => {
      const blocks = Array.from({ length: 64 }, (_, i) => randomBytes(4096 + i))
      for (const b of blocks) await store.putHashed(cidOf(RAW, b), b)
      const r = new BackgroundReader(store, { thread })
      try {
        const reads = Array.from({ length: 16 }, (_, k) => r.read(blocks.slice(4 * k, 4 * k + 4).map(b => ({ cid: cidOf(RAW, b), size: b.length }))))
        const got = (await Promise.all(reads)).flat()
        for (let i = 0; i < blocks.length; i++) assert.deepEqual(got[i], new Uint8Array(blocks[i]!))
      } finally {
        await r.close()
      }
    })
  })
}

describe('BackgroundReader when its thread dies', () => {
  it('reads on the event loop instead, losing no read', async () => {
    const t = await tempDir()
    try {
      const store = await new BlockStore(join(t.dir, 'blocks')).open()
      const b = randomBytes(10_000)
      await store.putHashed(cidOf(RAW, b), b)
      const r = new BackgroundReader(store, { thread: true })
      const first = r.read([{ cid: cidOf(RAW, b), size: b.length }])
      // the thread is killed while the read may be in flight
      await (r as unknown as { worker: { terminate: () => Promise<number> } }).worker.terminate()
      assert.deepEqual((await first)[0], new Uint8Array(b))
      assert.deepEqual((await r.read([{ cid: cidOf(RAW, b), size: b.length }]))[0], new Uint8Array(b))
      await r.close()
    } finally {
      await t.cleanup()
    }
  })
})
