// The USB round trip (src/store/usb.ts) on real files: a school with no link
// served by three trips, and the bad sticks of issue 8 (a forged receipt, a
// replayed outbox, a truncated stick, items from a laptop nobody knows, a
// stick from another school): each rejected, deduplicated or resolved, and
// nothing lost.
import assert from 'node:assert/strict'
import { copyFile, mkdir, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { applyBuild } from '../../src/content/apply.ts'
import { loadState, advisoriesFor, generateKey } from '../../src/trust/index.ts'
import { readdirSync, readlinkSync } from 'node:fs'
import { encodeFrame } from '../../src/core/relay/index.ts'
import { RECEIPT_FILE, REPLY_FILE, schoolDir, signReceipt, digestFile, type Manifest } from '../../src/store/stick.ts'
import { encodeReport } from '../../src/store/reports.ts'
import { UsbWorld, SCHOOL, newPeer } from './usb-world.ts'

describe('usb round trip', function () {
  this.timeout(60_000)
  let w: UsbWorld
  beforeEach(async () => { w = await UsbWorld.make() })
  afterEach(async () => { await w.close() })

  it('serves a school with no link in three trips: every item at the mothership once, the school on the advised build', async () => {
    w.produce(20)
    for (let trip = 1; trip <= 3; trip++) {
      const s = await w.schoolRun()
      assert.equal(s.receipt.status, trip === 1 ? 'none' : 'accepted')
      assert.equal(s.written.items, w.outbox.size.items, 'the stick carries the whole outbox')
      const m = await w.mothershipRun()
      assert.equal(m.length, 1)
      assert.equal(m[0]!.status, 'answered', m[0]!.reason)
      assert.equal(m[0]!.duplicates, 0)
      // the first answer carries the snapshot and the build; later ones nothing the school has
      assert.equal(m[0]!.advisories, trip === 1 ? 1 : null)
      assert.deepEqual(m[0]!.builds, trip === 1 ? [w.build.toString()] : [])
      if (trip < 3) w.produce(7) // the laptops keep producing while the stick travels
    }
    const last = await w.schoolRun()
    assert.equal(last.receipt.status, 'accepted')
    assert.equal(w.outbox.size.items, 0, 'the outbox is empty once the last receipt is home')
    assert.ok(w.everyItemOnce(), 'every item made is at the mothership exactly once, with its bytes')
    assert.equal(w.made.size, 3 * (20 + 7 + 7) + 3)
    // The school trusts the snapshot, holds the build and installs it.
    const state = await loadState(w.schoolDir)
    assert.equal(state?.snapshot?.doc.version, 1)
    const mine = advisoriesFor(state!.snapshot!.doc, { school: SCHOOL }).mine
    assert.deepEqual(mine.map(a => a.build.toString()), [w.build.toString()])
    assert.deepEqual((await w.schoolRepo.builds()).map(b => b.cid), [w.build.toString()])
    const root = join(w.root, 'installed')
    await applyBuild(w.schoolRepo.store, w.build, root)
    assert.equal(readlinkSync(join(root, 'current')), `versions/${w.build.toString()}`)
    // The report knows the school's laptops.
    const school = w.store.schools().find(s => s.school === SCHOOL)
    assert.equal(school?.laptops, 4)
  })

  it('refuses a forged receipt, a tampered one and one for another school server, and keeps every item', async () => {
    w.produce(10)
    const before = w.outbox.size.items
    await w.schoolRun()
    await w.mothershipRun()
    const dir = schoolDir(w.stick, w.schoolId)
    const good = await readFile(join(dir, RECEIPT_FILE))
    const claimAll = w.laptops.map(origin => ({ origin, contiguous: 1_000_000, above: [] }))
    const forge = async (bytes: Uint8Array): Promise<string | undefined> => {
      await writeFile(join(dir, RECEIPT_FILE), bytes)
      const reply = JSON.parse(await readFile(join(dir, REPLY_FILE), 'utf8')) as { files: Array<{ file: string, bytes: number, sha256: string }> }
      const d = await digestFile(join(dir, RECEIPT_FILE))
      for (const f of reply.files) if (f.file === RECEIPT_FILE) Object.assign(f, d)
      await writeFile(join(dir, REPLY_FILE), JSON.stringify(reply))
      const r = await w.schoolRun()
      assert.equal(r.receipt.status, 'refused')
      assert.equal(w.outbox.size.items, before, 'nothing left the outbox')
      await w.mothershipRun() // a fresh, genuine answer for the next case
      return r.receipt.reason
    }
    const base = { type: 'xo-mesh/usb-receipt' as const, mothership: w.mothershipId, school: w.schoolId, trip: 'f'.repeat(16), outbox: '0'.repeat(64), custody: claimAll, issued: Date.now() }
    // signed by a key that is not the mothership's
    assert.match(await forge(signReceipt(base, generateKey())) ?? '', /not signed by the configured mothership/)
    // the genuine signature over other custody
    const dagCbor = await import('@ipld/dag-cbor')
    const env = dagCbor.decode(good) as { signed: Uint8Array, sig: Uint8Array }
    const doc = dagCbor.decode(env.signed) as Record<string, unknown>
    assert.match(await forge(dagCbor.encode({ signed: dagCbor.encode({ ...doc, custody: claimAll }), sig: env.sig })) ?? '', /not signed by the configured mothership/)
    // genuinely signed, but for another school server
    assert.match(await forge(signReceipt({ ...base, school: (await newPeer()).id }, w.mothershipKey)) ?? '', /another school server/)
    // junk
    assert.match(await forge(new TextEncoder().encode('not a receipt')) ?? '', /dag-cbor|envelope/)
    // without relay.mothership configured no receipt is believed
    const unconfigured = await w.schoolRun({ trustMothership: false })
    assert.equal(unconfigured.receipt.status, 'refused')
    assert.equal(w.outbox.size.items, before)
    // and the genuine one then does its work
    await w.mothershipRun()
    const ok = await w.schoolRun()
    assert.equal(ok.receipt.status, 'accepted')
    assert.equal(w.outbox.size.items, 0)
    assert.ok(w.everyItemOnce())
  })

  it('stores a replayed stick, an old stick and items carried twice only once', async () => {
    w.produce(10)
    await w.schoolRun()
    const dir = schoolDir(w.stick, w.schoolId)
    const oldCopy = join(w.root, 'old-stick')
    await mkdir(oldCopy)
    for (const f of await readdir(dir)) await copyFile(join(dir, f), join(oldCopy, f))
    const first = await w.mothershipRun()
    assert.equal(first[0]!.added, 31)
    const again = await w.mothershipRun() // the same stick read twice
    assert.equal(again[0]!.added, 0)
    assert.equal(again[0]!.duplicates, 31)
    // the school never got its receipt (the stick was lost): next trip carries the same items and more
    await rm(dir, { recursive: true })
    w.produce(5)
    const s = await w.schoolRun()
    assert.equal(s.written.items, 31 + 16)
    const m = await w.mothershipRun()
    assert.deepEqual([m[0]!.added, m[0]!.duplicates], [16, 31])
    // an old stick turning up later changes nothing
    await rm(dir, { recursive: true })
    await mkdir(dir, { recursive: true })
    for (const f of await readdir(oldCopy)) await copyFile(join(oldCopy, f), join(dir, f))
    const old = await w.mothershipRun()
    assert.deepEqual([old[0]!.added, old[0]!.duplicates], [0, 31])
    assert.ok(w.everyItemOnce())
    const trips = w.atMothership()
    for (const l of w.laptops) assert.deepEqual(trips.get(l), [15, 1, 15])
  })

  it('loses nothing to a truncated or corrupt stick, on the way in or out', async () => {
    w.produce(10)
    const before = w.outbox.size.items
    await w.schoolRun()
    const dir = schoolDir(w.stick, w.schoolId)
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest
    // the outbox file cut short on the way to town: refused whole, no answer
    await truncate(join(dir, manifest.outbox.file), Math.floor(manifest.outbox.bytes / 2))
    const cut = await w.mothershipRun()
    assert.equal(cut[0]!.status, 'refused')
    assert.match(cut[0]!.reason ?? '', /truncated or corrupt/)
    assert.equal(w.atMothership().size, 0, 'nothing taken from a truncated file')
    // a flipped byte instead
    await w.schoolRun()
    const m2 = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest
    const bytes = await readFile(join(dir, m2.outbox.file))
    bytes[100] = bytes[100]! ^ 0xff
    await writeFile(join(dir, m2.outbox.file), bytes)
    assert.equal((await w.mothershipRun())[0]!.status, 'refused')
    // a manifest half written (the stick pulled out): not a trip
    await writeFile(join(dir, 'manifest.json'), '{"format": "xo-mesh/usb-out')
    assert.match((await w.mothershipRun())[0]!.reason ?? '', /no readable manifest/)
    // the school writes it all again; this time the answer is cut on the way home
    const s = await w.schoolRun()
    assert.equal(s.receipt.status, 'none')
    assert.equal(s.written.items, before)
    assert.equal((await w.mothershipRun())[0]!.status, 'answered')
    const buildCar = (await readdir(join(dir, 'builds')))[0]!
    await truncate(join(dir, 'builds', buildCar), 1000)
    await truncate(join(dir, RECEIPT_FILE), 10)
    const back = await w.schoolRun()
    assert.equal(back.receipt.status, 'refused')
    assert.equal(back.builds[0]!.status, 'refused')
    assert.equal(back.advisories.status, 'accepted')
    assert.equal(w.outbox.size.items, before, 'the items stay until a receipt that checks out')
    assert.deepEqual(await w.schoolRepo.builds(), [])
    // the next trip sends the build again (the want-list still lacks it) and the receipt
    const next = await w.mothershipRun()
    assert.deepEqual(next[0]!.builds, [w.build.toString()])
    assert.equal(next[0]!.added, 0)
    const home = await w.schoolRun()
    assert.equal(home.receipt.status, 'accepted')
    assert.deepEqual(home.builds.map(b => b.status), ['imported'])
    assert.equal(w.outbox.size.items, 0)
    assert.ok(w.everyItemOnce())
  })

  it('takes items of a laptop it never heard of into the stick\'s school, and skips a frame that does not decode', async () => {
    w.produce(2)
    const stranger = (await newPeer()).id
    // a laptop that says nothing of its school, unknown to the mothership
    w.outbox.accept([{ origin: stranger, counter: 1, kind: 'statistics', created: Date.now(), body: encodeReport({ battery: 0.9 }) }])
    w.made.set(`${stranger}/1`, { origin: stranger, counter: 1, kind: 'statistics', created: 0, body: encodeReport({ battery: 0.9 }) })
    await w.schoolRun()
    // a frame spliced in with a valid checksum but a body the codec refuses (an origin that is no peer id)
    const dir = schoolDir(w.stick, w.schoolId)
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest
    const good = encodeFrame({ type: 'offer', batch: 99, items: [{ origin: 'BADORIGIN', counter: 1, kind: 'statistics', created: 1, body: new Uint8Array(3) }] })
    const bad = Buffer.from(good)
    const at = bad.indexOf(Buffer.from('BADORIGIN'))
    bad[at] = '-'.charCodeAt(0)
    const file = join(dir, manifest.outbox.file)
    await writeFile(file, Buffer.concat([await readFile(file), bad]))
    Object.assign(manifest.outbox, await digestFile(file))
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest))
    const m = await w.mothershipRun()
    assert.equal(m[0]!.status, 'answered')
    assert.equal(m[0]!.skipped, 1)
    const rows = w.store.laptops(SCHOOL)
    assert.ok(rows.some(r => r.origin === stranger), 'the unknown laptop is counted in the school whose stick carried it')
    await w.schoolRun()
    assert.equal(w.outbox.size.items, 0)
    assert.ok(w.everyItemOnce())
  })

  it('keeps two schools on one stick apart: neither takes the other\'s answer', async () => {
    w.produce(4)
    await w.schoolRun()
    // a second school server (another data directory) given the same stick
    const other = await UsbWorld.make(2, 'xo-usb-other-')
    try {
      other.stick = w.stick
      other.produce(3)
      const o1 = await other.schoolRun()
      assert.equal(o1.receipt.status, 'none', 'it finds no answer of its own')
      const answers = await w.mothershipRun()
      assert.deepEqual(answers.map(a => a.status), ['answered', 'answered'])
      assert.deepEqual(new Set(answers.map(a => a.from)), new Set([w.schoolId, other.schoolId]))
      // the other school's answer copied into ours: its receipt is for another school server
      const mine = schoolDir(w.stick, w.schoolId)
      const theirs = schoolDir(w.stick, other.schoolId)
      await copyFile(join(theirs, RECEIPT_FILE), join(mine, RECEIPT_FILE))
      const reply = JSON.parse(await readFile(join(mine, REPLY_FILE), 'utf8')) as { files: Array<{ file: string, bytes: number, sha256: string }> }
      for (const f of reply.files) if (f.file === RECEIPT_FILE) Object.assign(f, await digestFile(join(mine, RECEIPT_FILE)))
      await writeFile(join(mine, REPLY_FILE), JSON.stringify(reply))
      const wrong = await w.schoolRun()
      assert.equal(wrong.receipt.status, 'refused')
      assert.match(wrong.receipt.reason ?? '', /another school server/)
      assert.equal(w.outbox.size.items, 13)
      // the other school's answer is untouched by all this and works for it
      const o2 = await other.schoolRun()
      assert.equal(o2.receipt.status, 'refused', 'the other world\'s mothership is not ours: its receipts come from w\'s mothership')
      assert.ok(readdirSync(theirs).includes('manifest.json'))
      for (const [k, v] of other.made) w.made.set(k, v) // w's mothership holds the other school's items too
    } finally {
      await other.close()
    }
    // a directory whose manifest names another school server is refused at the mothership
    const fake = join(w.stick, 'xo-mesh', (await newPeer()).id)
    await mkdir(fake, { recursive: true })
    await copyFile(join(schoolDir(w.stick, w.schoolId), 'manifest.json'), join(fake, 'manifest.json'))
    const answers = await w.mothershipRun()
    assert.ok(answers.some(a => a.status === 'refused' && /names .*not the directory/.test(a.reason ?? '')))
    await w.schoolRun()
    assert.equal(w.outbox.size.items, 0)
    assert.ok(w.everyItemOnce())
  })
})
