// USB bundles and static deltas: export -> import round trips, updates for
// holders of an older build, and every way a bundle can be bad, which must
// leave the store exactly as it was.
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
import { computeDelta, decodeDelta, deltaIndexPath, encodeDelta, planUpdate, readFileBytes, type DeltaRecord } from '../../src/content/delta.ts'

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
    const record: DeltaRecord = decodeDelta(deltaCid, await src.get(deltaCid))
    assert.equal(record.files.length, 2)
    assert.ok(record.files.every(e => e.base !== undefined))
    assert.equal(record.solid?.targets.length, 1)

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
    await rejects(empty, delta, InvalidInputError, /lacks file .*import a full bundle/)
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

  it('never uses a base that zstd would take for a formatted dictionary', async () => {
    const dir = join(tmp, 'magic')
    const magic = Buffer.concat([Buffer.from([0x37, 0xa4, 0x30, 0xec]), Buffer.from(text(30, 5000))])
    await writeTree(join(dir, 'old'), { 'm.bin': magic })
    await writeTree(join(dir, 'new'), { 'm.bin': Buffer.concat([magic, Buffer.from(' and a bit more')]) })
    const store = await openStore(join(dir, 'src'))
    const a = await add(store, join(dir, 'old'))
    const b = await add(store, join(dir, 'new'))
    const record = decodeDelta(await computeDelta(store, [a], b), await store.get(await computeDelta(store, [a], b)))
    assert.equal(record.files.length, 0)
    assert.equal(record.solid?.targets.length, 1)
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

    /** The delta bundle with the patch of big.bin replaced by one that decodes to `wrong`. */
    async function forgedDelta (name: string, wrong: (good: Buffer) => Buffer): Promise<string> {
      const reader = await CarReader.fromBytes(deltaCar)
      const [root, deltaCid] = await reader.getRoots()
      const record = decodeDelta(deltaCid!, (await reader.get(deltaCid!))!.bytes)
      const entry = record.files.find(e => e.base !== undefined && e.leaves > 10)!
      const base = await readFileBytes(src, entry.base!)
      const good = await readFileBytes(src, entry.target)
      const patch = zlib.zstdCompressSync(wrong(good), { dictionary: base, params: { [zlib.constants.ZSTD_c_compressionLevel]: 3, [zlib.constants.ZSTD_c_windowLog]: 23 } })
      const patchCid = cidOf(RAW, patch)
      const forged = encodeDelta({ ...record, files: record.files.map(e => e === entry ? { ...e, patch: [patchCid] } : e) })
      const dropped = new Set([deltaCid!.toString(), ...entry.patch.map(String)])
      const blocks: Array<{ cid: CID, bytes: Uint8Array }> = []
      for await (const b of reader.blocks()) if (!dropped.has(b.cid.toString())) blocks.push(b)
      blocks.push(forged, { cid: patchCid, bytes: patch })
      const path = join(tmp, `${name}.car`)
      await writeCar(path, [root!, forged.cid], blocks)
      return path
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
      const reader = await CarReader.fromBytes(deltaCar)
      const [root, deltaCid] = await reader.getRoots()
      const record = decodeDelta(deltaCid!, (await reader.get(deltaCid!))!.bytes)
      const junk = prng(11, 500)
      const junkCid = cidOf(RAW, junk)
      const blocks: Array<{ cid: CID, bytes: Uint8Array }> = []
      for await (const b of reader.blocks()) if (!b.cid.equals(deltaCid!)) blocks.push(b)
      const notZstd = encodeDelta({ ...record, files: record.files.map((e, i) => i === 0 ? { ...e, patch: [junkCid] } : e) })
      await writeCar(join(tmp, 'not-zstd.car'), [root!, notZstd.cid], [...blocks, notZstd, { cid: junkCid, bytes: junk }])
      await rejects(holder, join(tmp, 'not-zstd.car'), InvalidInputError, /not a valid zstd stream/)
      const otherBuild = encodeDelta({ ...record, to: v1 })
      await writeCar(join(tmp, 'other-to.car'), [root!, otherBuild.cid], [...blocks, otherBuild])
      await rejects(holder, join(tmp, 'other-to.car'), InvalidInputError, /rebuilds build/)
      const dagCbor = await import('@ipld/dag-cbor')
      const notDeltaBytes = dagCbor.encode({ type: 'something else' })
      const notDelta = { cid: cidOf(0x71, notDeltaBytes), bytes: notDeltaBytes }
      await writeCar(join(tmp, 'not-delta.car'), [root!, notDelta.cid], [...blocks, notDelta])
      await rejects(holder, join(tmp, 'not-delta.car'), InvalidInputError, /not a delta record/)
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
