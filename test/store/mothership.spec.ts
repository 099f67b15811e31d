// The mothership's store: each item kept once whatever arrives twice, custody
// for receipts, clones told from duplicates, and the per-school report.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MothershipStore, NO_SCHOOL } from '../../src/store/mothership.ts'
import { encodeReport } from '../../src/store/reports.ts'
import type { Item } from '../../src/core/relay/types.ts'

const L1 = '12D3KooWLaptopOne'
const L2 = '12D3KooWLaptopTwo'
const L3 = '12D3KooWLaptopThree'
const install = (origin: string, counter: number, school: string, build: string, name: string, created: number, ok = true): Item =>
  ({ origin, counter, kind: 'install-report', created, body: encodeReport({ school, build, name, installed_at: created, ok }) })
const sample = (origin: string, counter: number, school: string | undefined, created: number): Item =>
  ({ origin, counter, kind: 'statistics', created, body: encodeReport({ school, sampled_at: created, battery: 0.8 }) })

describe('mothership store', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'xo-mothership-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('keeps each (origin, counter) once and gives custody as a contiguous prefix and counters above it', () => {
    const s = MothershipStore.open(dir, { clock: () => 5000 })
    const first = s.accept([sample(L1, 1, 'A', 1), sample(L1, 2, 'A', 2), sample(L1, 4, 'A', 4)])
    assert.ok(first.ok)
    assert.equal(first.added, 3)
    assert.deepEqual(first.custody, [{ origin: L1, contiguous: 2, above: [4] }])
    const again = s.accept([sample(L1, 4, 'A', 4), sample(L1, 3, 'A', 3)])
    assert.ok(again.ok)
    assert.equal(again.added, 1)
    assert.deepEqual(again.custody, [{ origin: L1, contiguous: 4, above: [] }])
    assert.equal(s.counts().items, 4)
    s.close()
    // Reopened: the same item is still a duplicate.
    const t = MothershipStore.open(dir)
    const third = t.accept([sample(L1, 2, 'A', 2)])
    assert.ok(third.ok && third.added === 0)
    assert.equal(t.counts().items, 4)
    t.close()
  })

  it('takes several offers in one transaction, an item in two of them kept once', () => {
    const s = MothershipStore.open(dir)
    const [a, b] = s.acceptMany([[sample(L1, 1, 'A', 1), sample(L1, 2, 'A', 2)], [sample(L1, 2, 'A', 2), sample(L2, 1, 'A', 1)]])
    assert.ok(a?.ok === true && b?.ok === true)
    assert.equal(a.added + b.added, 3)
    assert.deepEqual(b.custody, [{ origin: L1, contiguous: 2, above: [] }, { origin: L2, contiguous: 1, above: [] }])
    assert.equal(s.counts().items, 3)
    s.close()
  })

  it('records a different item under a held (origin, counter) as a conflict (a cloned identity), keeping the first', () => {
    const s = MothershipStore.open(dir)
    s.accept([sample(L1, 1, 'A', 1)])
    const clash = s.accept([sample(L1, 1, 'B', 99)])
    assert.ok(clash.ok && clash.added === 0)
    assert.equal(s.counts().conflicts, 1)
    assert.equal(s.laptops('A').length, 1, 'the first item stands')
    s.close()
  })

  it('reports per school: laptops seen, builds installed (latest report per laptop), failures, last contact', () => {
    const s = MothershipStore.open(dir)
    s.accept([
      install(L1, 1, 'Escuela 12', 'bafyOld', 'os-2026.10', 1000),
      install(L1, 2, 'Escuela 12', 'bafyNew', 'os-2026.11', 2000),
      install(L2, 1, 'Escuela 12', 'bafyNew', 'os-2026.11', 1500),
      install(L2, 2, 'Escuela 12', 'bafyBad', 'os-2026.12', 1600, false),
      sample(L3, 1, 'Escuela 40', 3000),
      sample('12D3KooWNowhere', 1, undefined, 10)
    ])
    // A report that arrives late (older created) does not replace a newer one.
    s.accept([install(L1, 3, 'Escuela 12', 'bafyOld', 'os-2026.10', 500)])
    const schools = s.schools()
    assert.deepEqual(schools.map(x => x.school), ['Escuela 12', 'Escuela 40', NO_SCHOOL])
    const e12 = schools[0]!
    assert.equal(e12.laptops, 2)
    assert.deepEqual(e12.builds, [{ build: 'bafyNew', name: 'os-2026.11', laptops: 2 }])
    assert.equal(e12.failed_installs, 1)
    assert.equal(e12.last_contact, 2000)
    assert.equal(schools[1]!.unreported, 1)
    s.close()
  })

  it('keeps an item whose body is not JSON, without unpacking it', () => {
    const s = MothershipStore.open(dir)
    const r = s.accept([{ origin: L1, counter: 1, kind: 'install-report', created: 1, body: new Uint8Array([0xff, 0x00]) }, { origin: L1, counter: 2, kind: 'backup-chunk', created: 1, body: new Uint8Array(1000) }])
    assert.ok(r.ok && r.added === 2)
    assert.deepEqual(s.counts().byKind, { statistics: 0, 'install-report': 1, 'backup-chunk': 1, registration: 0 })
    assert.equal(s.schools()[0]!.unreported, 1)
    s.close()
  })
})
