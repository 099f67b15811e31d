import assert from 'node:assert/strict'
import { readdir, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import fc from 'fast-check'
import { BlockStore } from '../../src/content/blockstore.ts'
import { RAW, DAG_CBOR, cidOf } from '../../src/content/cid.ts'
import { BlockNotFoundError, CorruptBlockError, UnsupportedCidError } from '../../src/content/errors.ts'
import { tempDir } from '../support/cli.ts'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'

describe('BlockStore', () => {
  let t: Awaited<ReturnType<typeof tempDir>>
  let store: BlockStore
  beforeEach(async () => { t = await tempDir(); store = await new BlockStore(join(t.dir, 'blocks')).open() })
  afterEach(async () => { await t.cleanup() })

  it('returns what was put, and says whether it wrote', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 5000 }), async bytes => {
      const cid = cidOf(RAW, bytes)
      const first = await store.has(cid) ? false : true
      assert.equal(await store.put(cid, bytes), first)
      assert.equal(await store.put(cid, bytes), false)
      assert.deepEqual(await store.get(cid), bytes)
      assert.equal(await store.size(cid), bytes.length)
    }), { numRuns: 100 })
  })

  it('refuses bytes that do not match the CID, writing nothing', async () => {
    const cid = cidOf(RAW, new Uint8Array([1, 2, 3]))
    await assert.rejects(store.put(cid, new Uint8Array([1, 2, 4])), CorruptBlockError)
    assert.equal(await store.has(cid), false)
    assert.deepEqual((await readdir(join(t.dir, 'blocks', '.tmp'))), [])
  })

  it('refuses hashes it cannot verify', async () => {
    const bytes = new Uint8Array([9])
    const cid = CID.createV1(RAW, identity.digest(bytes))
    await assert.rejects(store.put(cid, bytes), UnsupportedCidError)
  })

  it('detects a block that rotted on disk', async () => {
    const bytes = new Uint8Array(1000).fill(7)
    const cid = cidOf(RAW, bytes)
    await store.put(cid, bytes)
    await writeFile(store.path(cid), new Uint8Array(1000).fill(8))
    await assert.rejects(store.get(cid), CorruptBlockError)
  })

  it('replaces a rotted copy when good bytes arrive again', async () => {
    const bytes = new Uint8Array(1000).fill(5)
    const cid = cidOf(RAW, bytes)
    await store.put(cid, bytes)
    await writeFile(store.path(cid), new Uint8Array(1000).fill(6))
    assert.equal(await store.put(cid, bytes), true)
    assert.deepEqual(await store.get(cid), bytes)
  })

  it('reports a missing block by name', async () => {
    await assert.rejects(store.get(cidOf(DAG_CBOR, new Uint8Array([0xa0]))), BlockNotFoundError)
  })

  it('clears temp files a crash left behind, and lists only blocks', async () => {
    const a = cidOf(RAW, new Uint8Array([1]))
    await store.put(a, new Uint8Array([1]))
    await writeFile(join(t.dir, 'blocks', '.tmp', 'half-written'), 'xx')
    await mkdir(join(t.dir, 'blocks', 'zz'), { recursive: true })
    await writeFile(join(t.dir, 'blocks', 'zz', 'not-a-cid'), 'xx')
    const reopened = await new BlockStore(join(t.dir, 'blocks')).open()
    assert.deepEqual(await readdir(join(t.dir, 'blocks', '.tmp')), [])
    const all = []
    for await (const c of reopened.cids()) all.push(c.toString())
    assert.deepEqual(all, [a.toString()])
  })
})
