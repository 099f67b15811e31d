import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readdir, writeFile, mkdir, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import fc from 'fast-check'
import { BlockStore } from '../../src/content/blockstore.ts'
import { RAW, DAG_CBOR, cidOf } from '../../src/content/cid.ts'
import { BlockNotFoundError, CorruptBlockError, UnsupportedCidError } from '../../src/content/errors.ts'
import { start, tempDir } from '../support/cli.ts'
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

  it('makes every shard directory a block can fall in, once, keeping the blocks held', async () => {
    const held = new Uint8Array([1, 2, 3])
    await store.put(cidOf(RAW, held), held)
    await store.makeShards()
    await store.makeShards()
    const dirs = (await readdir(store.dir)).filter(n => n !== '.tmp')
    assert.equal(dirs.length, 1024)
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 64 }), async bytes => {
      assert.ok(dirs.includes(store.path(cidOf(RAW, bytes)).split('/').at(-2)!))
    }), { numRuns: 200 })
    assert.deepEqual(await store.get(cidOf(RAW, held)), held)
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

  it('clears temp files whose writer is gone, and lists only blocks', async () => {
    const a = cidOf(RAW, new Uint8Array([1]))
    await store.put(a, new Uint8Array([1]))
    const tmp = join(t.dir, 'blocks', '.tmp')
    const dead = await exitedPid()
    const hourAgo = new Date(Date.now() - 61 * 60 * 1000)
    await writeFile(join(tmp, `${dead}.abcd.0`), 'half-written by a process now gone')
    await writeFile(join(tmp, `${process.pid}.abcd.1`), 'a write in flight')
    await writeFile(join(tmp, `${process.pid}.abcd.2`), 'left by a writer stuck for an hour')
    await utimes(join(tmp, `${process.pid}.abcd.2`), hourAgo, hourAgo)
    await writeFile(join(tmp, 'a1b2c3-7'), 'an older version\'s name, recent')
    await writeFile(join(tmp, 'a1b2c3-8'), 'an older version\'s name, old')
    await utimes(join(tmp, 'a1b2c3-8'), hourAgo, hourAgo)
    await mkdir(join(t.dir, 'blocks', 'zz'), { recursive: true })
    await writeFile(join(t.dir, 'blocks', 'zz', 'not-a-cid'), 'xx')
    const reopened = await new BlockStore(join(t.dir, 'blocks')).open()
    assert.deepEqual((await readdir(tmp)).sort(), [`${process.pid}.abcd.1`, 'a1b2c3-7'])
    const all = []
    for await (const c of reopened.cids()) all.push(c.toString())
    assert.deepEqual(all, [a.toString()])
  })

  it('a second open of the store does not break a write in progress in another process', async function () {
    this.timeout(120_000)
    const tree = join(t.dir, 'tree')
    await mkdir(tree)
    // many small files: thousands of block writes, each a temp file renamed into place
    for (let i = 0; i < 1500; i++) await writeFile(join(tree, `f${i}`), `file ${i}\n`.repeat(1 + i % 7))
    const data = join(t.dir, 'data')
    const add = start(['--data', data, 'add', tree, '--name', 'busy'])
    let stderr = ''
    add.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
    const exited = new Promise<number | null>(resolve => add.on('close', code => { resolve(code) }))
    let done = false
    void exited.then(() => { done = true })
    let opens = 0
    const deadline = Date.now() + 100_000
    while (!done && Date.now() < deadline) {
      // what `xo-mesh ls` or import would do while the agent writes
      await new BlockStore(join(data, 'blocks')).open().catch(() => {})
      opens++
    }
    assert.equal(await exited, 0, stderr)
    assert.ok(opens > 10, `only ${opens} opens overlapped the add`)
    const check = await new BlockStore(join(data, 'blocks')).open()
    let n = 0
    for await (const c of check.cids()) { await check.get(c); n++ }
    assert.ok(n >= 1500, `${n} blocks`)
  })
})

/** The pid of a process that has exited. */
async function exitedPid (): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await new Promise(resolve => child.on('close', resolve))
  return child.pid!
}
