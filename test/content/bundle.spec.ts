// USB bundles and static deltas: export -> import round trips, updates for
// holders of an older build (patches and the node pack), and every way a
// bundle can be bad, which must leave the store exactly as it was: damaged
// framing, forged patches, tampered, padded or oversized node packs.
import assert from 'node:assert/strict'
import { createCipheriv, createHash } from 'node:crypto'
import { cp, mkdir, mkdtemp, readFile, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import zlib from 'node:zlib'
import fc from 'fast-check'
import { CarReader } from '@ipld/car'
import { CarWriter } from '@ipld/car/writer'
import { exporter } from 'ipfs-unixfs-exporter'
import { BlockStore } from '../../src/content/blockstore.ts'
import { CID, RAW, cidOf } from '../../src/content/cid.ts'
import { ContentError, CorruptBlockError, IncompleteBuildError, InvalidInputError } from '../../src/content/errors.ts'
import { addDirectory } from '../../src/content/add.ts'
import { buildCids, readRecord, walkTree } from '../../src/content/build.ts'
import { exportBundle, importBundle } from '../../src/content/bundle.ts'
import { computeDelta, decodeDelta, decodeManifest, deltaFileCount, deltaIndexPath, encodeDelta, encodeManifest, nodeDictionary, planUpdate, readFileBytes, type DeltaRecord, type PackManifest } from '../../src/content/delta.ts'

const CREATED = new Date('2024-03-01T00:00:00Z')
const T = 1_700_000_000

/** Deterministic pseudo-random bytes (AES-CTR over zeros). */
function prng (seed: number, size: number): Buffer {
  const key = createHash('sha256').update(`bundle-${seed}`).digest().subarray(0, 16)
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size))
}

/** Text that compresses like source code: words from a small vocabulary. */
function text (seed: number, size: number): string {
  const words = ['def', 'return', 'self', 'import', 'olpc', 'sugar', 'activity', 'journal', 'the', 'laptop', 'mesh', '=', '(', ')', ':', '\n    ']
  const r = prng(seed, size)
  let s = ''
  for (let i = 0; s.length < size; i++) s += words[r[i % r.length]! % words.length] + ' '
  return s.slice(0, size)
}

async function tempDir (): Promise<string> {
  return await mkdtemp(join(tmpdir(), 'xo-mesh-bundle-'))
}

async function openStore (dir: string): Promise<BlockStore> {
  return await new BlockStore(join(dir, 'blocks')).open()
}

async function blockNames (store: BlockStore): Promise<Set<string>> {
  const out = new Set<string>()
  for await (const c of store.cids()) out.add(c.toString())
  return out
}

/**
 * A block store that keeps the set of its blocks up to date as it goes, so
 * the fuzz test can check after every input that nothing was left behind
 * without listing the directory 2000 times (it lists it now and then too).
 */
class TrackingStore extends BlockStore {
  readonly live = new Set<string>()
  override async put (cid: CID, bytes: Uint8Array, where?: string): Promise<boolean> {
    const wrote = await super.put(cid, bytes, where)
    if (wrote) this.live.add(cid.toString())
    return wrote
  }

  override async delete (cid: CID): Promise<void> {
    await super.delete(cid)
    this.live.delete(cid.toString())
  }
}

/** Writes files (path -> content) under dir with fixed mtimes, so two adds of the same tree give the same CIDs. */
async function writeTree (dir: string, files: Record<string, string | Uint8Array>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true })
    await writeFile(join(dir, path), content)
    await utimes(join(dir, path), T, T)
  }
}

async function add (store: BlockStore, dir: string, name = 'test'): Promise<CID> {
  return (await addDirectory(store, dir, { name, kind: 'content', created: CREATED })).cid
}

/** Path -> bytes of every file of a build, read (verified) from the store. */
async function filesOf (store: BlockStore, build: CID): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>()
  for await (const e of walkTree(store, (await readRecord(store, build)).tree)) {
    if (e.node.type === 'file') out.set(e.path, await readFileBytes(store, e.cid, Number.MAX_SAFE_INTEGER))
  }
  return out
}

/** Writes a CAR of the given roots and blocks. */
async function writeCar (path: string, roots: CID[], blocks: Array<{ cid: CID, bytes: Uint8Array }>): Promise<void> {
  const { writer, out } = CarWriter.create(roots)
  const chunks: Uint8Array[] = []
  const collecting = (async () => { for await (const c of out) chunks.push(c) })()
  for (const b of blocks) await writer.put(b)
  await writer.close()
  await collecting
  await writeFile(path, Buffer.concat(chunks))
}

/** LEB128, as the node pack frames its items. */
function varint (n: number): Buffer {
  const out: number[] = []
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n & 0x7f) | 0x80)
  out.push(n)
  return Buffer.from(out)
}

/** The items of a decoded node pack. */
function parseItems (body: Uint8Array): Uint8Array[] {
  const items: Uint8Array[] = []
  for (let at = 0; at < body.length;) {
    let length = 0
    for (let shift = 0; ; shift += 7) {
      const b = body[at++]!
      length += (b & 0x7f) * 2 ** shift
      if ((b & 0x80) === 0) break
    }
    items.push(body.subarray(at, at + length))
    at += length
  }
  return items
}

/** Runs an import expected to fail and checks the store's block set did not change. */
async function rejects (store: BlockStore, file: string, want: new (...args: never[]) => ContentError, pattern: RegExp, options: { expect?: CID } = {}): Promise<void> {
  const before = await blockNames(store)
  await assert.rejects(importBundle(store, file, options), (err: unknown) => {
    assert.ok(err instanceof want, `expected ${want.name}, got ${String(err)}`)
    assert.match((err as Error).message, pattern)
    return true
  })
  assert.deepEqual(await blockNames(store), before, 'a failed import must leave the store as it was')
}

describe('bundles (CARv1) and static deltas', function () {
  this.timeout(20_000)
  let tmp: string
  let src: BlockStore
  let v1: CID
  let v2: CID
  let v1Dir: string
  let v2Dir: string
  const big = prng(1, 2 << 20)

  before(async () => {
    tmp = await tempDir()
    src = await openStore(join(tmp, 'src'))
    v1Dir = join(tmp, 'v1')
    v2Dir = join(tmp, 'v2')
    await writeTree(v1Dir, {
      'big.bin': big,
      'notes.txt': text(2, 6000),
      'docs/readme.txt': text(3, 3000),
      'docs/old.txt': text(4, 2000),
      'lib/a.py': text(5, 9000),
      'lib/b.py': text(6, 500)
    })
    // v2: a few bytes inserted into the big file, one small text edited, one file added, one removed
    await cp(v1Dir, v2Dir, { recursive: true, preserveTimestamps: true })
    await writeTree(v2Dir, {
      'big.bin': Buffer.concat([big.subarray(0, 1_000_000), Buffer.from('inserted!'), big.subarray(1_000_000)]),
      'notes.txt': text(2, 6000).replace('laptop', 'LAPTOP'),
      'lib/new.py': text(7, 4000)
    })
    await unlink(join(v2Dir, 'docs/old.txt'))
    v1 = await add(src, v1Dir, 'v1')
    v2 = await add(src, v2Dir, 'v2')
  })

  after(async () => { await rm(tmp, { recursive: true, force: true }) })

  /** A store holding v1 and nothing else, made by importing a full bundle. */
  async function storeWithV1 (name: string): Promise<BlockStore> {
    const car = join(tmp, `${name}-v1.car`)
    await exportBundle(src, v1, car)
    const store = await openStore(join(tmp, name))
    await importBundle(store, car, { expect: v1 })
    return store
  }

  it('exports a full build as a standard CAR that imports into a fresh store and reads back with ipfs-unixfs-exporter', async () => {
    const car = join(tmp, 'full.car')
    const result = await exportBundle(src, v2, car)
    const { present } = await buildCids(src, v2)
    assert.equal(result.blocks, present.length)
    assert.equal(result.deltaFiles, 0)
    assert.equal(result.bytes, (await stat(car)).size)
    await assert.rejects(stat(car + '.partial'), 'no partial file left behind')

    // any IPFS tool can read it: the CAR's blocks alone give the file back
    const reader = await CarReader.fromBytes(await readFile(car))
    assert.deepEqual((await reader.getRoots()).map(String), [v2.toString()])
    const blocks = { async * get (cid: CID) { const b = await reader.get(cid); if (b === undefined) throw new Error(`no ${cid}`); yield b.bytes } }
    const tree = (await readRecord(src, v2)).tree
    const entry = await exporter(`${tree}/lib/a.py`, blocks)
    assert.equal(entry.type, 'file')
    const parts: Uint8Array[] = []
    for await (const p of entry.content()) parts.push(p)
    assert.deepEqual(Buffer.concat(parts), await readFile(join(v2Dir, 'lib/a.py')))
    const bigEntry = await exporter(`${tree}/big.bin`, blocks)
    assert.equal(bigEntry.type, 'file')
    const bigParts: Uint8Array[] = []
    for await (const p of bigEntry.content()) bigParts.push(p)
    assert.deepEqual(Buffer.concat(bigParts), await readFile(join(v2Dir, 'big.bin')))

    // blocks come parents first, record first: a streaming reader never sees a child before its parent
    const order: string[] = []
    for await (const b of reader.blocks()) order.push(b.cid.toString())
    assert.deepEqual(order, present.map(String))

    const dest = await openStore(join(tmp, 'fresh'))
    const imported = await importBundle(dest, car, { expect: v2 })
    assert.deepEqual(imported.roots.map(String), [v2.toString()])
    assert.equal(imported.blocks, present.length)
    assert.equal(imported.rebuilt, 0)
    assert.deepEqual((await buildCids(dest, v2)).missing, [])
    assert.deepEqual(await blockNames(dest), new Set(present.map(String)))
  })

  it('sends a holder of v1 only what it lacks, and far less with a delta', async () => {
    const full = join(tmp, 'v2-full.car')
    const have = join(tmp, 'v2-have.car')
    const delta = join(tmp, 'v2-delta.car')
    const f = await exportBundle(src, v2, full)
    const h = await exportBundle(src, v2, have, { have: [v1], delta: false })
    const t0 = Date.now()
    const d = await exportBundle(src, v2, delta, { have: [v1] })
    const firstDelta = Date.now() - t0
    console.log(`      sizes: full ${f.bytes} B (${f.blocks} blocks), --have ${h.bytes} B (${h.blocks} blocks), --have+delta ${d.bytes} B (${d.blocks} blocks, ${d.deltaFiles} files as deltas); delta computed in ${firstDelta} ms`)
    assert.ok(h.bytes < f.bytes * 0.15, `--have bundle ${h.bytes} B vs full ${f.bytes} B`)
    assert.ok(d.bytes < f.bytes * 0.05, `delta bundle ${d.bytes} B vs full ${f.bytes} B`)
    assert.ok(d.bytes * 5 < h.bytes, `delta bundle ${d.bytes} B vs --have ${h.bytes} B`)
    // big.bin and notes.txt patched against v1's copies, lib/new.py in the solid stream
    assert.equal(d.deltaFiles, 3)

    // the delta is stored and reused: the index names it, a second export does not recompute
    const index = deltaIndexPath(src, [v1], v2)
    const deltaCid = CID.parse((await readFile(index, 'utf8')).trim())
    const inode = (await stat(index)).ino
    assert.ok(deltaCid.equals(await computeDelta(src, [v1], v2)))
    const d2 = await exportBundle(src, v2, join(tmp, 'v2-delta-again.car'), { have: [v1] })
    assert.equal((await stat(index)).ino, inode, 'a recomputed delta would have rewritten the index entry')
    assert.equal(d2.bytes, d.bytes)
    assert.deepEqual(await readFile(join(tmp, 'v2-delta-again.car')), await readFile(delta))
    const manifest = decodeManifest(deltaCid, await src.get(deltaCid))
    assert.ok(manifest.delta !== undefined && manifest.size > 0 && manifest.pack.length === 1)
    const record: DeltaRecord = decodeDelta(manifest.delta, await src.get(manifest.delta))
    // one frame: the three files in path order, against the two old files they change
    assert.equal(record.patches.length, 1)
    assert.equal(deltaFileCount(record), 3)
    assert.equal(record.patches[0]!.bases.length, 2)

    // both update bundles complete v2 for a holder of v1
    for (const [name, file, rebuilt] of [['have', have, 0], ['delta', delta, 3]] as const) {
      const dest = await storeWithV1(`holder-${name}`)
      const result = await importBundle(dest, file, { expect: v2 })
      assert.equal(result.rebuilt, rebuilt)
      assert.equal(result.roots.length, name === 'delta' ? 2 : 1)
      assert.deepEqual((await buildCids(dest, v2)).missing, [])
      const got = await filesOf(dest, v2)
      assert.deepEqual([...got.keys()].sort(), ['big.bin', 'docs/readme.txt', 'lib/a.py', 'lib/b.py', 'lib/new.py', 'notes.txt'])
      for (const [path, bytes] of got) assert.deepEqual(bytes, await readFile(join(v2Dir, path)), path)
      // the holder can pass the same update on without recomputing it
      if (name === 'delta') assert.equal((await readFile(deltaIndexPath(dest, [v1], v2), 'utf8')).trim(), deltaCid.toString())
    }

    // a store without v1 cannot use an update bundle, and keeps nothing of it
    const empty = await openStore(join(tmp, 'no-v1'))
    await rejects(empty, delta, InvalidInputError, /lacks .*import a full bundle/)
    await rejects(empty, have, IncompleteBuildError, /missing/)
  })

  it('plans an update: files changed, added, removed, and its cost with and without the stored delta', async () => {
    const plan = await planUpdate(src, v1, v2)
    assert.deepEqual(plan.filesChanged, ['big.bin', 'notes.txt'])
    assert.deepEqual(plan.filesAdded, ['lib/new.py'])
    assert.deepEqual(plan.filesRemoved, ['docs/old.txt'])
    const h = await exportBundle(src, v2, join(tmp, 'plan-have.car'), { have: [v1], delta: false })
    assert.equal(plan.blocks, h.blocks)
    assert.ok(plan.rawBytes < h.bytes && plan.rawBytes > h.bytes - 60 * h.blocks - 200)
    await computeDelta(src, [v1], v2)
    const again = await planUpdate(src, v1, v2)
    assert.ok(again.deltaBytes !== undefined && again.deltaBytes < plan.rawBytes / 5, `deltaBytes ${again.deltaBytes}`)
    // no delta stored for the reverse direction: none is computed for a plan
    assert.equal((await planUpdate(src, v2, v1)).deltaBytes, undefined)
  })

  it('refuses to export an incomplete build, for an unknown --have build, or to a path it cannot write', async () => {
    const unknown = cidOf(0x71, new TextEncoder().encode('no such build'))
    await assert.rejects(exportBundle(src, unknown, join(tmp, 'x.car')), IncompleteBuildError)
    await assert.rejects(exportBundle(src, v2, join(tmp, 'x.car'), { have: [unknown] }), IncompleteBuildError)
    await assert.rejects(exportBundle(src, v2, join(tmp, 'no/such/dir/x.car')), (err: unknown) => err instanceof InvalidInputError && /cannot write/.test(err.message))
    await assert.rejects(stat(join(tmp, 'x.car.partial')))
    await assert.rejects(stat(join(tmp, 'x.car')))
  })

  it('updates a tree of many small files in deep directories: nodes through the pack, every file back, the same bundle passed on', async function () {
    this.timeout(60_000)
    const dir = join(tmp, 'deep')
    // 400 files under a/b/c/d/e<i%4>/f<i%3>/: twelve directories of ~33 files, six levels down
    const files: Record<string, string> = {}
    for (let i = 0; i < 400; i++) files[`a/b/c/d/e${i % 4}/f${i % 3}/file-${i}.py`] = text(1000 + i, 300 + (i * 37) % 2500)
    const updated: Record<string, string> = { ...files }
    let changed = 0
    for (const [n, path] of Object.keys(files).entries()) {
      if (n % 41 === 0) delete updated[path]
      else if (n % 3 === 0) { updated[path] = files[path]!.replace('sugar', 'SUGAR') + '\n# v2\n'; changed++ }
    }
    for (let i = 0; i < 30; i++) updated[`a/b/c/d/e${i % 4}/new/new-${i}.py`] = text(5000 + i, 800)
    await writeTree(join(dir, 'v1'), files)
    await writeTree(join(dir, 'v2'), updated)
    const store = await openStore(join(dir, 'src'))
    const a = await add(store, join(dir, 'v1'))
    const b = await add(store, join(dir, 'v2'))
    await exportBundle(store, a, join(dir, 'v1.car'))
    const h = await exportBundle(store, b, join(dir, 'have.car'), { have: [a], delta: false })
    const d = await exportBundle(store, b, join(dir, 'delta.car'), { have: [a] })
    console.log(`      deep tree: --have ${h.bytes} B (${h.blocks} blocks), --have+delta ${d.bytes} B (${d.blocks} blocks, ${d.deltaFiles} files as deltas)`)
    assert.equal(d.deltaFiles, changed + 30)
    assert.ok(d.bytes * 8 < h.bytes, `delta bundle ${d.bytes} B vs --have ${h.bytes} B`)

    // the pack carries every node the holder lacks, and costs little more than their new CIDs (32 random bytes each, twice: in the file node and in its directory)
    const manifestCid = await computeDelta(store, [a], b)
    const manifest = decodeManifest(manifestCid, await store.get(manifestCid))
    const record = decodeDelta(manifest.delta!, await store.get(manifest.delta!))
    const v1Blocks = new Set((await buildCids(store, a)).present.map(String))
    const newNodes = (await buildCids(store, b)).present.filter(c => c.code !== RAW && !v1Blocks.has(c.toString()))
    let nodeBytes = 0
    for (const c of newNodes) nodeBytes += (await store.get(c)).length
    let packBytes = 0
    for (const c of manifest.pack) packBytes += (await store.get(c)).length
    assert.ok(packBytes * 2 < nodeBytes && packBytes < 64 * newNodes.length * 1.5, `pack ${packBytes} B for ${newNodes.length} nodes of ${nodeBytes} B`)

    const holder = await openStore(join(dir, 'holder'))
    await importBundle(holder, join(dir, 'v1.car'), { expect: a })
    const result = await importBundle(holder, join(dir, 'delta.car'), { expect: b })
    assert.equal(result.blocks, d.blocks)
    assert.equal(result.unpacked, newNodes.length + 1)
    assert.equal(result.rebuilt, changed + 30)
    const got = await filesOf(holder, b)
    assert.deepEqual([...got.keys()].sort(), Object.keys(updated).sort())
    for (const [path, content] of Object.entries(updated)) assert.deepEqual(got.get(path), Buffer.from(content), path)
    // the holder holds the two builds and the delta, nothing else
    const want = new Set([...v1Blocks, ...(await buildCids(store, b)).present.map(String), manifestCid.toString(), ...manifest.pack.map(String), manifest.delta!.toString(), ...record.patches.flatMap(p => p.patch.map(String))])
    assert.deepEqual(await blockNames(holder), want)

    // the holder passes the same update on, byte for byte, without computing anything
    await exportBundle(holder, b, join(dir, 'again.car'), { have: [a] })
    assert.deepEqual(await readFile(join(dir, 'again.car')), await readFile(join(dir, 'delta.car')))

    // a laptop that added v1's tree itself holds another record of it, and the same nodes: enough for the pack;
    // and a raw block in the CAR that nothing refers to is not kept
    const reader = await CarReader.fromBytes(await readFile(join(dir, 'delta.car')))
    const stray = { cid: cidOf(RAW, Buffer.from('stray block')), bytes: Buffer.from('stray block') }
    const blocks: Array<{ cid: CID, bytes: Uint8Array }> = []
    for await (const blk of reader.blocks()) blocks.push(blk)
    await writeCar(join(dir, 'stray.car'), await reader.getRoots(), [...blocks, stray])
    const other = await openStore(join(dir, 'other'))
    const own = (await addDirectory(other, join(dir, 'v1'), { name: 'mine', kind: 'content', created: new Date('2025-01-01T00:00:00Z') })).cid
    assert.ok(own.toString() !== a.toString() && (await readRecord(other, own)).tree.equals((await readRecord(store, a)).tree))
    assert.equal((await importBundle(other, join(dir, 'stray.car'), { expect: b })).rebuilt, changed + 30)
    assert.equal(await other.has(stray.cid), false)
    assert.deepEqual(await blockNames(other), new Set([...want, own.toString()].filter(c => c !== a.toString())))
  })

  it('ships an update that only changes metadata as a pack with no patches, and one against several old builds', async () => {
    const dir = join(tmp, 'touch')
    const files = { 'x/a.txt': text(40, 3000), 'x/b.txt': text(41, 2000), 'y/c.txt': text(42, 1000) }
    await writeTree(join(dir, 'v1'), files)
    await writeTree(join(dir, 'v2'), files)
    await utimes(join(dir, 'v2', 'x/a.txt'), T + 60, T + 60) // same bytes, new mtime: a new file node and new directories, no new leaf
    await writeTree(join(dir, 'other'), { 'z.txt': text(43, 1500) })
    const store = await openStore(join(dir, 'src'))
    const a = await add(store, join(dir, 'v1'))
    const b = await add(store, join(dir, 'v2'))
    const o = await add(store, join(dir, 'other'))
    const d = await exportBundle(store, b, join(dir, 'touch.car'), { have: [a] })
    assert.equal(d.deltaFiles, 0)
    const reader = await CarReader.fromBytes(await readFile(join(dir, 'touch.car')))
    const manifestCid = (await reader.getRoots())[1]!
    const manifest = decodeManifest(manifestCid, await store.get(manifestCid))
    assert.equal(manifest.delta, undefined)
    assert.ok(manifest.size > 0)
    const m = await exportBundle(store, b, join(dir, 'multi.car'), { have: [o, a] })
    assert.equal(m.deltaFiles, 0)
    for (const [car, have] of [['touch.car', [a]], ['multi.car', [a, o]]] as const) {
      const dest = await openStore(join(dir, `dest-${car}`))
      for (const h of have) {
        await exportBundle(store, h, join(dir, 'h.car'))
        await importBundle(dest, join(dir, 'h.car'))
      }
      const result = await importBundle(dest, join(dir, car), { expect: b })
      assert.equal(result.rebuilt, 0)
      assert.ok(result.unpacked >= 4, `${result.unpacked} items`) // record, root, x/, the file node
      assert.deepEqual((await buildCids(dest, b)).missing, [])
    }
    // the two deltas are kept apart: one index entry per set of old builds
    assert.notEqual(deltaIndexPath(store, [a], b), deltaIndexPath(store, [o, a], b))
    assert.equal(deltaIndexPath(store, [o, a], b), deltaIndexPath(store, [a, o], b))
  })

  it('never uses a base that zstd would take for a formatted dictionary', async () => {
    const dir = join(tmp, 'magic')
    const magic = Buffer.concat([Buffer.from([0x37, 0xa4, 0x30, 0xec]), Buffer.from(text(30, 5000))])
    await writeTree(join(dir, 'old'), { 'm.bin': magic })
    await writeTree(join(dir, 'new'), { 'm.bin': Buffer.concat([magic, Buffer.from(' and a bit more')]) })
    const store = await openStore(join(dir, 'src'))
    const a = await add(store, join(dir, 'old'))
    const b = await add(store, join(dir, 'new'))
    const manifestCid = await computeDelta(store, [a], b)
    const manifest = decodeManifest(manifestCid, await store.get(manifestCid))
    const record = decodeDelta(manifest.delta!, await store.get(manifest.delta!))
    assert.equal(record.patches.length, 1)
    assert.deepEqual(record.patches[0]!.bases, [])
    assert.equal(record.patches[0]!.targets.length, 1)
    await exportBundle(store, a, join(dir, 'a.car'))
    await exportBundle(store, b, join(dir, 'b.car'), { have: [a] })
    const dest = await openStore(join(dir, 'dest'))
    await importBundle(dest, join(dir, 'a.car'))
    assert.equal((await importBundle(dest, join(dir, 'b.car'))).rebuilt, 1)
    assert.deepEqual((await filesOf(dest, b)).get('m.bin'), await readFile(join(dir, 'new', 'm.bin')))
  })

  describe('bad bundles leave the store untouched', () => {
    let holder: BlockStore
    let full: Buffer
    let deltaCar: Buffer
    before(async () => {
      holder = await storeWithV1('bad-holder')
      await exportBundle(src, v2, join(tmp, 'bad-full.car'))
      await exportBundle(src, v2, join(tmp, 'bad-delta.car'), { have: [v1] })
      full = await readFile(join(tmp, 'bad-full.car'))
      deltaCar = await readFile(join(tmp, 'bad-delta.car'))
    })

    it('a flipped byte in a block', async () => {
      // flip a byte inside big.bin's data, far into the bundle: earlier blocks were already stored and must go again
      const at = full.indexOf(big.subarray(1_500_000, 1_500_032)) + 10
      assert.ok(at > 1_000_000)
      const bad = Buffer.from(full)
      bad[at]! ^= 0x40
      await writeFile(join(tmp, 'flipped.car'), bad)
      const store = await openStore(join(tmp, 'flip-store'))
      await rejects(store, join(tmp, 'flipped.car'), CorruptBlockError, /does not match its hash/)
      assert.equal((await blockNames(store)).size, 0)
      await rejects(holder, join(tmp, 'flipped.car'), CorruptBlockError, /does not match its hash/)
    })

    it('a truncated file', async () => {
      for (const cut of [full.length - 1000, full.length - 1, 5, 100]) {
        await writeFile(join(tmp, 'truncated.car'), full.subarray(0, cut))
        await rejects(holder, join(tmp, 'truncated.car'), InvalidInputError, /truncated|not a CAR/)
      }
    })

    it('a bundle of another build than expected', async () => {
      await rejects(holder, join(tmp, 'bad-full.car'), InvalidInputError, /not the expected/, { expect: v1 })
    })

    it('a file that is not a CAR', async () => {
      const cases: Array<[string, Uint8Array]> = [
        ['text', Buffer.from('this is not a CAR file, just some text\n'.repeat(50))],
        ['random', prng(9, 100_000)],
        ['empty', new Uint8Array(0)],
        ['huge length', Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3])]
      ]
      for (const [name, bytes] of cases) {
        await writeFile(join(tmp, `${name}.car`), bytes)
        await rejects(holder, join(tmp, `${name}.car`), InvalidInputError, /not a CAR|truncated/)
      }
      await rejects(holder, join(tmp, 'does-not-exist.car'), InvalidInputError, /cannot read/)
      await rejects(holder, tmp, InvalidInputError, /cannot read/)
    })

    it('a CAR with no roots, or with blocks of another hash or codec', async () => {
      await writeCar(join(tmp, 'no-roots.car'), [], [])
      await rejects(holder, join(tmp, 'no-roots.car'), InvalidInputError, /no root/)
      const bytes = new TextEncoder().encode('hello')
      const { sha512 } = await import('multiformats/hashes/sha2')
      const json = CID.createV1(0x0200, await sha512.digest(bytes))
      await writeCar(join(tmp, 'other-hash.car'), [v2], [{ cid: v2, bytes: await src.get(v2) }, { cid: json, bytes }])
      await rejects(holder, join(tmp, 'other-hash.car'), InvalidInputError, /not a block a build can hold/)
    })

    /** An update bundle taken apart: its roots, manifest, the node pack's items and the CAR's other blocks. */
    interface Unpacked { root: CID, manifest: PackManifest, dictionary: Buffer, items: Uint8Array[], blocks: Array<{ cid: CID, bytes: Uint8Array }> }

    async function unpack (car: Buffer): Promise<Unpacked> {
      const reader = await CarReader.fromBytes(car)
      const [root, manifestCid] = await reader.getRoots()
      const manifest = decodeManifest(manifestCid!, (await reader.get(manifestCid!))!.bytes)
      const packKeys = new Set(manifest.pack.map(String))
      const blocks: Array<{ cid: CID, bytes: Uint8Array }> = []
      for await (const b of reader.blocks()) if (!b.cid.equals(manifestCid!) && !packKeys.has(b.cid.toString())) blocks.push(b)
      const pack = Buffer.concat(await Promise.all(manifest.pack.map(async c => (await reader.get(c))!.bytes)))
      const dictionary = await nodeDictionary(src, manifest.trees, manifest.dict)
      return { root: root!, manifest, dictionary, items: parseItems(zlib.zstdDecompressSync(pack, { dictionary })), blocks }
    }

    /** Writes an update bundle from parts: the items packed again against the same dictionary, the manifest made to match, then edited. */
    async function repack (name: string, u: Unpacked, items: Uint8Array[], blocks = u.blocks, edit: (m: PackManifest) => PackManifest = m => m): Promise<string> {
      const body = Buffer.concat(items.flatMap(i => [varint(i.length), i]))
      const pack = zlib.zstdCompressSync(body, { dictionary: u.dictionary, params: { [zlib.constants.ZSTD_c_compressionLevel]: 3 } })
      const packCid = cidOf(RAW, pack)
      const manifest = encodeManifest(edit({ ...u.manifest, size: body.length, pack: [packCid] }))
      const path = join(tmp, `${name}.car`)
      await writeCar(path, [u.root, manifest.cid], [manifest, { cid: packCid, bytes: pack }, ...blocks])
      return path
    }

    /** Index of the pack item that is the patch record. */
    function recordItem (u: Unpacked): number {
      const want = Buffer.from(u.manifest.delta!.multihash.digest).toString('hex')
      return u.items.findIndex(i => createHash('sha256').update(i).digest('hex') === want)
    }

    /** The delta bundle with its patch record replaced (in the pack, and in the manifest). */
    async function withRecord (name: string, record: unknown, blocks?: Array<{ cid: CID, bytes: Uint8Array }>): Promise<string> {
      const u = await unpack(deltaCar)
      const bytes = (await import('@ipld/dag-cbor')).encode(record)
      const cid = cidOf(0x71, bytes)
      const items = u.items.map((item, i) => i === recordItem(u) ? bytes : item)
      return await repack(name, u, items, blocks ?? u.blocks, m => ({ ...m, delta: cid }))
    }

    /** The delta bundle with the frame of big.bin's group replaced by one that decodes to `wrong`. */
    async function forgedDelta (name: string, wrong: (good: Buffer) => Buffer): Promise<string> {
      const u = await unpack(deltaCar)
      const record = decodeDelta(u.manifest.delta!, u.items[recordItem(u)]!)
      const entry = record.patches.find(p => p.bases.length > 0 && p.leaves > 10)!
      const base = Buffer.concat(await Promise.all(entry.bases.map(async b => await readFileBytes(src, b))))
      const good = Buffer.concat(await Promise.all(entry.targets.map(async t => await readFileBytes(src, t))))
      const patch = zlib.zstdCompressSync(wrong(good), { dictionary: base, params: { [zlib.constants.ZSTD_c_compressionLevel]: 3, [zlib.constants.ZSTD_c_windowLog]: 23 } })
      const patchCid = cidOf(RAW, patch)
      const forged = { ...record, patches: record.patches.map(p => p === entry ? { ...p, patch: [patchCid] } : p) }
      const dropped = new Set(entry.patch.map(String))
      return await withRecord(name, forged, [...u.blocks.filter(b => !dropped.has(b.cid.toString())), { cid: patchCid, bytes: patch }])
    }

    it('a delta whose patch decodes to wrong bytes', async () => {
      const flipped = await forgedDelta('forged-flip', good => { const b = Buffer.from(good); b[1_200_000]! ^= 1; return b })
      await rejects(holder, flipped, CorruptBlockError, /does not match its hash/)
      const longer = await forgedDelta('forged-long', good => Buffer.concat([good, Buffer.from('more')]))
      await rejects(holder, longer, InvalidInputError, /decodes to more than/)
      const shorter = await forgedDelta('forged-short', good => good.subarray(0, good.length - 1))
      await rejects(holder, shorter, InvalidInputError, /short of/)
    })

    it('a delta whose patch is not zstd, or whose record is malformed', async () => {
      const u = await unpack(deltaCar)
      const record = decodeDelta(u.manifest.delta!, u.items[recordItem(u)]!)
      const junk = prng(11, 500)
      const junkCid = cidOf(RAW, junk)
      const notZstd = await withRecord('not-zstd', { ...record, patches: record.patches.map((p, i) => i === 0 ? { ...p, patch: [junkCid] } : p) }, [...u.blocks, { cid: junkCid, bytes: junk }])
      await rejects(holder, notZstd, InvalidInputError, /not a valid zstd stream/)
      await rejects(holder, await withRecord('other-to', { ...record, to: v1 }), InvalidInputError, /rebuilds build/)
      await rejects(holder, await withRecord('not-delta', { type: 'something else' }), InvalidInputError, /not a delta record/)
      // a record that is not the one the manifest names is an item nothing refers to
      const u2 = await unpack(deltaCar)
      const other = encodeDelta({ ...record, patches: [] })
      await rejects(holder, await repack('unnamed-record', u2, u2.items.map((item, i) => i === recordItem(u2) ? other.bytes : item)), InvalidInputError, /not a block the build or the manifest refers to/)
    })

    it('a tampered node pack: a flipped byte in its blocks or in an item', async () => {
      const u = await unpack(deltaCar)
      assert.ok(u.items.length >= 4, `${u.items.length} items`) // record, root, lib/, file nodes..., patch record
      // a byte of a pack block: the block no longer matches its CID
      const reader = await CarReader.fromBytes(deltaCar)
      const packBlock = (await reader.get(u.manifest.pack[0]!))!.bytes
      const at = deltaCar.indexOf(Buffer.from(packBlock.subarray(8, 40))) + 4
      assert.ok(at > 8)
      const bad = Buffer.from(deltaCar)
      bad[at]! ^= 0x10
      await writeFile(join(tmp, 'pack-flipped.car'), bad)
      await rejects(holder, join(tmp, 'pack-flipped.car'), CorruptBlockError, /does not match its hash/)
      // a byte of an item, packed again into valid zstd under a matching manifest: the item's hash is nothing the build refers to
      for (const which of [0, 1, u.items.length - 2]) {
        const items = u.items.map((item, i) => { if (i !== which) return item; const b = Buffer.from(item); b[b.length >> 1]! ^= 1; return b })
        await rejects(holder, await repack(`item-flipped-${which}`, u, items), InvalidInputError, /item \d+ of the node pack .* is not a block the build or the manifest refers to/)
      }
    })

    it('a node pack with an item nothing refers to: refused, and nothing of it stored', async () => {
      const u = await unpack(deltaCar)
      const dagPb = await import('@ipld/dag-pb')
      const stray = dagPb.encode(dagPb.prepare({ Data: new Uint8Array([8, 1]), Links: [] }))
      for (const at of [0, 2, u.items.length]) {
        const items = [...u.items.slice(0, at), stray, ...u.items.slice(at)]
        await rejects(holder, await repack(`stray-${at}`, u, items), InvalidInputError, /not a block the build or the manifest refers to/)
        assert.equal(await holder.has(cidOf(0x70, stray)), false)
      }
      // a real item twice: the second copy is referenced by nothing any more
      await rejects(holder, await repack('repeated', u, [...u.items.slice(0, 3), u.items[2]!, ...u.items.slice(3)]), InvalidInputError, /not a block the build or the manifest refers to/)
      // a block of v1 the holder has, or a raw leaf of v2: not what the pack may carry either
      const v1Record = await src.get(v1)
      await rejects(holder, await repack('old-record', u, [v1Record, ...u.items]), InvalidInputError, /not a block the build or the manifest refers to/)
    })

    it('a node pack that decodes to more or fewer bytes than its manifest declares, or declares too much', async () => {
      const u = await unpack(deltaCar)
      const size = u.items.reduce((n, i) => n + varint(i.length).length + i.length, 0)
      await rejects(holder, await repack('pack-over', u, u.items, u.blocks, m => ({ ...m, size: size - 1 })), InvalidInputError, /decodes to more than the \d+ bytes its manifest declares/)
      await rejects(holder, await repack('pack-under', u, u.items, u.blocks, m => ({ ...m, size: size + 1 })), InvalidInputError, /short of/)
      await rejects(holder, await repack('pack-huge', u, u.items, u.blocks, m => ({ ...m, size: 2 ** 40 })), InvalidInputError, /over the \d+ a pack may hold/)
      await rejects(holder, await repack('dict-huge', u, u.items, u.blocks, m => ({ ...m, dict: 2 ** 30 })), InvalidInputError, /dictionary of \d+ bytes, over/)
      // a dictionary longer than the old builds' nodes: the holder cannot have what it starts from
      await rejects(holder, await repack('dict-long', u, u.items, u.blocks, m => ({ ...m, dict: u.dictionary.length + 1 })), InvalidInputError, /lacks .*import a full bundle/)
      // the pack ends inside an item: the last one's length says more than follows
      const last = u.items[u.items.length - 1]!
      const body = Buffer.concat([...u.items.slice(0, -1).flatMap(i => [varint(i.length), i]), varint(last.length), last.subarray(0, 5)])
      const pack = zlib.zstdCompressSync(body, { dictionary: u.dictionary })
      const manifest = encodeManifest({ ...u.manifest, size: body.length, pack: [cidOf(RAW, pack)] })
      await writeCar(join(tmp, 'pack-cut.car'), [u.root, manifest.cid], [manifest, { cid: cidOf(RAW, pack), bytes: pack }, ...u.blocks])
      await rejects(holder, join(tmp, 'pack-cut.car'), InvalidInputError, /ends inside an item/)
    })

    it('a manifest for another build, or a delta record from other builds', async () => {
      const u = await unpack(deltaCar)
      await rejects(holder, await repack('manifest-other', u, u.items, u.blocks, m => ({ ...m, to: v1 })), InvalidInputError, /pack manifest is for build/)
      const record = decodeDelta(u.manifest.delta!, u.items[recordItem(u)]!)
      await rejects(holder, await withRecord('record-from', { ...record, from: [v2] }), InvalidInputError, /other builds than its pack manifest/)
    })
  })

  it('round-trips random small trees (property)', async () => {
    const names = ['a', 'b.txt', 'c.bin']
    const arbTree = fc.dictionary(
      fc.tuple(fc.constantFrom('', 'd/', 'd/e/', 'f/'), fc.constantFrom(...names)).map(([d, n]) => d + n),
      fc.oneof(fc.uint8Array({ maxLength: 2000 }), fc.string({ maxLength: 3000 })),
      { minKeys: 1, maxKeys: 4 }
    )
    let run = 0
    const store = await openStore(join(tmp, 'prop-src'))
    await fc.assert(fc.asyncProperty(arbTree, async files => {
      const dir = join(tmp, `prop-${run++}`)
      await writeTree(join(dir, 'tree'), files)
      const cid = await add(store, join(dir, 'tree'))
      await exportBundle(store, cid, join(dir, 'b.car'))
      const dest = await openStore(join(dir, 'dest'))
      const result = await importBundle(dest, join(dir, 'b.car'), { expect: cid })
      assert.deepEqual(result.roots.map(String), [cid.toString()])
      assert.deepEqual(await blockNames(dest), new Set((await buildCids(store, cid)).present.map(String)))
      const got = await filesOf(dest, cid)
      assert.deepEqual([...got.keys()].sort(), Object.keys(files).sort())
      for (const [path, content] of Object.entries(files)) assert.deepEqual(got.get(path), Buffer.from(content))
      await rm(dir, { recursive: true, force: true })
    }), { numRuns: 50 })
  })

  it('updates random small trees through deltas (property)', async () => {
    const arbFile = fc.oneof(fc.uint8Array({ maxLength: 3000 }), fc.string({ maxLength: 4000 }))
    const arbTree = fc.dictionary(fc.constantFrom('a', 'b.txt', 'd/c.txt', 'd/e/f', 'g/b.txt'), arbFile, { minKeys: 1, maxKeys: 5 })
    const arbEdit = fc.record({ at: fc.nat(), insert: fc.string({ minLength: 1, maxLength: 20 }) })
    let run = 0
    await fc.assert(fc.asyncProperty(arbTree, fc.array(arbEdit, { maxLength: 3 }), arbTree, async (old, edits, extra) => {
      const dir = join(tmp, `dprop-${run++}`)
      // the new tree: the old one with small edits, plus files of another random tree
      const updated: Record<string, string | Uint8Array> = { ...extra, ...old }
      for (const [i, e] of edits.entries()) {
        const path = Object.keys(updated)[i % Object.keys(updated).length]!
        const b = Buffer.from(updated[path]!)
        const at = e.at % (b.length + 1)
        updated[path] = Buffer.concat([b.subarray(0, at), Buffer.from(e.insert), b.subarray(at)])
      }
      await writeTree(join(dir, 'old'), old)
      await writeTree(join(dir, 'new'), updated)
      const store = await openStore(join(dir, 'src'))
      const a = await add(store, join(dir, 'old'))
      const b = await add(store, join(dir, 'new'))
      await exportBundle(store, b, join(dir, 'u.car'), { have: [a] })
      await exportBundle(store, a, join(dir, 'old.car'))
      const dest = await openStore(join(dir, 'dest'))
      await importBundle(dest, join(dir, 'old.car'), { expect: a })
      await importBundle(dest, join(dir, 'u.car'), { expect: b })
      assert.deepEqual((await buildCids(dest, b)).missing, [])
      const got = await filesOf(dest, b)
      for (const [path, content] of Object.entries(updated)) assert.deepEqual(got.get(path), Buffer.from(content))
      await rm(dir, { recursive: true, force: true })
    }), { numRuns: 15 })
  })

  it('survives ~2000 random and mutated bundles: only content errors, never a crash or a block left behind', async function () {
    this.timeout(60_000) // ~10 s on an idle machine; the limit only has to catch a hang
    const dir = join(tmp, 'fuzz')
    // small trees (few blocks): each input costs a few block writes at most, so 2000 of them fit the time
    await writeTree(join(dir, 'old'), { 'a.txt': text(20, 3000), 'b.bin': prng(21, 4000) })
    await writeTree(join(dir, 'new'), { 'a.txt': text(20, 3000).replace('mesh', 'MESH'), 'b.bin': Buffer.concat([Buffer.from('x'), prng(21, 4000)]), 'c.txt': text(23, 900) })
    const store = await openStore(join(dir, 'src'))
    const a = await add(store, join(dir, 'old'))
    const b = await add(store, join(dir, 'new'))
    await exportBundle(store, b, join(dir, 'full.car'))
    assert.equal((await exportBundle(store, b, join(dir, 'delta.car'), { have: [a] })).deltaFiles, 3)
    const seeds = [await readFile(join(dir, 'full.car')), await readFile(join(dir, 'delta.car'))]

    const holder = await new TrackingStore(join(dir, 'holder', 'blocks')).open()
    await add(holder, join(dir, 'old'))
    const baseline = await blockNames(holder)
    for (const name of baseline) holder.live.add(name)
    let run = 0
    const file = join(dir, 'input.car')
    const errors = new Map<string, number>()
    let successes = 0
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 5 }), fc.tuple(fc.nat(), fc.nat(), fc.nat(), fc.nat()), fc.uint8Array({ minLength: 1, maxLength: 64 }),
      async (which, kind, [p, q, r, s], noise) => {
        const seed = seeds[which]!
        let input: Uint8Array
        switch (kind) {
          case 0: { // flip a few bits
            const m = Buffer.from(seed)
            for (const x of [p, q, r].slice(0, 1 + (s % 3))) m[x % m.length]! ^= 1 << (s % 8)
            input = m
            break
          }
          case 1: input = seed.subarray(0, p % seed.length); break // truncate
          case 2: input = Buffer.concat([seed.subarray(0, p % seed.length), noise, seed.subarray(p % seed.length)]); break // insert
          case 3: input = Buffer.concat([seed.subarray(0, p % seed.length), seed.subarray((p % seed.length) + (q % 200))]); break // delete
          case 4: { // overwrite with noise (lengths and CIDs included)
            const m = Buffer.from(seed)
            m.set(noise.subarray(0, Math.max(0, m.length - (p % m.length))), p % m.length)
            input = m
            break
          }
          default: input = Buffer.concat([noise, prng(q, r % 5000)]) // not a CAR at all
        }
        await writeFile(file, input)
        try {
          await importBundle(holder, file)
          successes++
          // a mutation that left the bundle valid: put the store back for the next input
          for (const name of [...holder.live]) if (!baseline.has(name)) await holder.delete(CID.parse(name))
        } catch (err) {
          assert.ok(err instanceof ContentError, `not a content error: ${(err as Error).stack}`)
          errors.set(err.code, (errors.get(err.code) ?? 0) + 1)
        }
        assert.deepEqual(holder.live, baseline)
        if (++run % 200 === 0) assert.deepEqual(await blockNames(holder), baseline)
      }
    ), { numRuns: 2000 })
    assert.deepEqual(await blockNames(holder), baseline)
    console.log(`      fuzz: ${successes} imports succeeded, errors: ${JSON.stringify(Object.fromEntries(errors))}`)
  })
})
