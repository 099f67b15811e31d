// The index space of a build as the block exchange sees it (protocols/blocks.md,
// section 3): the order of buildCids, the manifest frontier when interior
// nodes are missing, and the bitfield of leaves on disk (what a fetch resumes
// from), where a torn leaf counts as missing.
import assert from 'node:assert/strict'
import { truncateSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from '../support/cli.ts'
import { makeTree } from './support.ts'
import { Repo } from '../../src/content/repo.ts'
import { addDirectory } from '../../src/content/add.ts'
import { buildCids, encodeRecord, type BuildRecord } from '../../src/content/build.ts'
import { CID, DAG_PB, RAW, cidOf } from '../../src/content/cid.ts'
import { dirNode } from '../../src/content/unixfs.ts'
import { leafCid, leavesHeld, readIndexSpace } from '../../src/content/index-space.ts'
import { mkdir, readFile, writeFile } from 'node:fs/promises'

describe('index space of a build in the store', function () {
  this.timeout(30_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  let repo: Repo
  let root: CID

  before(async () => {
    t = await tempDir('xo-mesh-index-')
    const tree = join(t.dir, 'tree')
    await makeTree(tree, 6 << 20, 'index-space')
    // the same content twice: its leaves are one index each, at their first visit
    await mkdir(join(tree, 'zcopy'))
    await writeFile(join(tree, 'zcopy', 'again.bin'), await readFile(join(tree, 'dir0', 'file0.bin')))
    repo = await Repo.open(join(t.dir, 'data'))
    root = (await addDirectory(repo.store, tree, { name: 'six', kind: 'content', created: new Date(0) })).cid
  })

  after(async () => { await t.cleanup() })

  it('lists leaves and manifest in the order of buildCids, each leaf once, with the sizes parents state', async () => {
    const r = await readIndexSpace(repo.store, root)
    assert.equal(r.status, 'ready')
    if (r.status !== 'ready') return
    const s = r.space
    const { present, missing } = await buildCids(repo.store, root)
    assert.deepEqual(missing, [])
    assert.deepEqual(Array.from({ length: s.leaves }, (_, i) => leafCid(s, i).toString()), present.filter(c => c.code === RAW).map(String))
    assert.deepEqual(s.manifest.map(String), present.filter(c => c.code !== RAW).map(String))
    assert.equal(s.manifest[0]!.toString(), root.toString())
    assert.equal(s.record.name, 'six')
    let total = 0
    for (let i = 0; i < s.leaves; i++) {
      assert.equal(s.sizes[i], (await repo.store.get(leafCid(s, i))).length)
      total += s.sizes[i]!
    }
    assert.equal(s.totalBytes, total)
    assert.ok(total < s.record.meta.bytes, 'the duplicate file is counted once')
    const held = await leavesHeld(repo.store, s)
    assert.equal(held.count, s.leaves)
    assert.equal(held.bytes, total)
    assert.ok(held.bitfield.every((b, i) => i < held.bitfield.length - 1 ? b === 0xff : true))
    const small = await readIndexSpace(repo.store, root, { maxLeaves: 3 })
    assert.deepEqual(small, { status: 'failed', reason: 'more than 3 leaves' })
  })

  it('reports a leaf deleted or torn on disk as missing', async () => {
    const r = await readIndexSpace(repo.store, root)
    if (r.status !== 'ready') return assert.fail(r.status)
    const s = r.space
    unlinkSync(repo.store.path(leafCid(s, 0)))
    truncateSync(repo.store.path(leafCid(s, 5)), 10)
    const held = await leavesHeld(repo.store, s)
    assert.equal(held.count, s.leaves - 2)
    assert.equal(held.bitfield[0]! & 0x80, 0)
    assert.equal(held.bitfield[0]! & 0x04, 0)
    assert.equal(held.bitfield[0]! & 0x40, 0x40)
  })

  it('names the frontier of a manifest with missing interior nodes', async () => {
    const r = await readIndexSpace(repo.store, root)
    if (r.status !== 'ready') return assert.fail(r.status)
    // drop the tree's top directory: everything under it is unknown
    const top = r.space.manifest[1]!
    await repo.store.delete(top)
    const m = await readIndexSpace(repo.store, root)
    assert.deepEqual(m.status === 'manifest-missing' ? m.missing.map(String) : m, [top.toString()])
    // with nothing at all, the record itself
    const empty = await Repo.open(join(t.dir, 'empty'))
    const e = await readIndexSpace(empty.store, root)
    assert.deepEqual(e.status === 'manifest-missing' ? e.missing.map(String) : e, [root.toString()])
  })

  it('takes a raw leaf linked from a directory at its Tsize', async () => {
    const store = (await Repo.open(join(t.dir, 'raw'))).store
    const bytes = new Uint8Array(1000).fill(9)
    const leaf = cidOf(RAW, bytes)
    await store.put(leaf, bytes)
    const dir = dirNode([{ name: 'blob', node: { cid: leaf, size: 1000, tsize: 1000 } }], 0o755, undefined)
    await store.put(dir.block.cid, dir.block.bytes)
    const record: BuildRecord = { name: 'raw', kind: 'content', created: new Date(0).toISOString(), tree: dir.block.cid, meta: { bytes: 1000, files: 1, owner: [0, 0], owners: {}, special: {} } }
    const enc = encodeRecord(record)
    await store.put(enc.cid, enc.bytes)
    const r = await readIndexSpace(store, enc.cid)
    if (r.status !== 'ready') return assert.fail(JSON.stringify(r))
    assert.equal(r.space.leaves, 1)
    assert.equal(r.space.sizes[0], 1000)
    assert.equal(leafCid(r.space, 0).toString(), leaf.toString())
  })

  it('fails for what is not a build', async () => {
    const store = (await Repo.open(join(t.dir, 'raw'))).store
    const notRecord = cidOf(DAG_PB, new Uint8Array([1, 2, 3]))
    const r = await readIndexSpace(store, notRecord)
    assert.equal(r.status, 'failed')
    const cbor = encodeRecord({ name: 'x' } as unknown as BuildRecord)
    await store.put(cbor.cid, cbor.bytes)
    const bad = await readIndexSpace(store, cbor.cid)
    assert.equal(bad.status, 'failed')
  })
})
