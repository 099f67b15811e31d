// The mothership's overview queries: schools with backlog, rollout progress
// against waves, statistics per time bucket.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MothershipStore, NO_SCHOOL } from '../../src/store/mothership.ts'
import { Overview, type AdvisoryInput } from '../../src/store/overview.ts'
import { encodeReport } from '../../src/store/reports.ts'
import type { Item } from '../../src/core/relay/types.ts'

const H = 3_600_000
const T0 = Date.UTC(2026, 10, 26, 0, 0)
const install = (origin: string, counter: number, school: string, build: string, created: number, ok = true): Item =>
  ({ origin, counter, kind: 'install-report', created, body: encodeReport({ school, build, name: build === 'bafyNew' ? 'os-new' : 'os-old', installed_at: created, ok }) })
const sample = (origin: string, counter: number, school: string | undefined, created: number, extra: Record<string, unknown> = {}): Item =>
  ({ origin, counter, kind: 'statistics', created, body: encodeReport({ school, sampled_at: created, ...extra }) })
const advisory = (over: Partial<AdvisoryInput> = {}): AdvisoryInput =>
  ({ name: 'os-new', kind: 'os', build: 'bafyNew', priority: 'normal', schools: [], narrowed_by: [], waves: [], ...over })

describe('mothership overview', () => {
  let dir: string
  let now = T0
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'xo-overview-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  function fill (): void {
    const s = MothershipStore.open(dir, { clock: () => now })
    now = T0 + 1 * H
    s.accept([install('L1', 1, 'A', 'bafyOld', T0), install('L1', 2, 'A', 'bafyNew', T0 + H)])
    s.accept([install('L2', 1, 'A', 'bafyNew', T0, false), sample('L2', 2, 'A', T0 + H, { battery: 40, outbox_items: 3 })])
    now = T0 + 3 * H
    // L3 numbered 1..5, only 1 and 5 here: three on their way
    s.accept([sample('L3', 1, 'B', T0 + 3 * H, { battery: 80 }), sample('L3', 5, 'B', T0 + 3 * H, { battery: 60, outbox_items: 7 })])
    s.accept([sample('L4', 1, undefined, T0 + 3 * H)])
    s.close()
  }

  it('says whether a data directory holds a store, and refuses to open one that does not', () => {
    assert.equal(Overview.present(dir), false)
    assert.throws(() => Overview.open(dir), /no mothership store/)
    fill()
    assert.equal(Overview.present(dir), true)
  })

  it('lists schools with the report\'s fields, last arrival and backlog (gaps and the latest outbox each laptop reported)', () => {
    fill()
    const o = Overview.open(dir, () => now)
    try {
      const r = o.overview()
      assert.deepEqual(r.schools.map(s => s.school), ['A', 'B', NO_SCHOOL])
      const [a, b, none] = r.schools
      assert.equal(a!.laptops, 2)
      assert.deepEqual(a!.builds, [{ build: 'bafyNew', name: 'os-new', laptops: 1 }])
      assert.equal(a!.failed_installs, 1)
      assert.deepEqual(a!.backlog, { missing: 0, reported: 3 })
      assert.equal(a!.last_received, T0 + H)
      assert.deepEqual(b!.backlog, { missing: 3, reported: 7 })
      assert.equal(b!.last_received, T0 + 3 * H)
      assert.deepEqual(none!.backlog, { missing: 0, reported: null })
      assert.equal(r.items.items, 7)
      assert.deepEqual(o.laptops('B').map(l => l.origin), ['L3'])
    } finally {
      o.close()
    }
  })

  it('counts an advisory\'s rollout over its target schools, and the share its waves allow by now', () => {
    fill()
    const o = Overview.open(dir, () => now)
    try {
      const [all] = o.rollout([advisory()], T0)
      assert.equal(all!.laptops, 4)
      assert.equal(all!.installed, 1)
      assert.equal(all!.failed, 1, 'L2 failed and runs nothing else')
      assert.equal(all!.allowed_percent, 100)
      assert.equal(all!.wave, null)
      const [onlyA] = o.rollout([advisory({ schools: ['A'], waves: [{ percent: 10, after_s: 0 }, { percent: 50, after_s: 2 * 3600 }, { percent: 100, after_s: 24 * 3600 }] })], T0)
      assert.equal(onlyA!.laptops, 2)
      assert.deepEqual(onlyA!.by_school.map(s => s.school), ['A'])
      assert.equal(onlyA!.allowed_percent, 50, 'three hours after issue: the second wave')
      assert.equal(onlyA!.wave, 1)
      const [notYet] = o.rollout([advisory({ waves: [{ percent: 10, after_s: 5 * 3600 }] })], T0)
      assert.equal(notYet!.allowed_percent, 0)
      assert.equal(notYet!.wave, null)
    } finally {
      o.close()
    }
  })

  it('buckets arrivals by kind, laptops heard and installs, and a sample field\'s mean, by time', () => {
    fill()
    const o = Overview.open(dir, () => now)
    try {
      const r = o.statistics({ bucketS: 3600, buckets: 4, field: 'battery' })
      assert.equal(r.buckets.length, 4)
      assert.equal(r.to - r.from, 4 * H)
      assert.equal(r.buckets[0]!.start, T0)
      assert.deepEqual(r.buckets.map(b => b.install_reports), [0, 3, 0, 0])
      assert.deepEqual(r.buckets.map(b => b.statistics), [0, 1, 0, 3])
      assert.deepEqual(r.buckets.map(b => b.laptops), [0, 2, 0, 2])
      assert.deepEqual(r.buckets.map(b => b.installs_ok), [0, 2, 0, 0])
      assert.deepEqual(r.buckets.map(b => b.installs_failed), [0, 1, 0, 0])
      assert.deepEqual(r.buckets.map(b => b.field_mean), [null, 40, null, 70])
      assert.deepEqual(r.fields, ['battery', 'outbox_items'])
      assert.equal(r.field, 'battery')
      // a field name that is not one is ignored, never put into SQL
      assert.equal(o.statistics({ bucketS: 3600, buckets: 4, field: 'x") OR 1=1 --' }).field, null)
      assert.equal(o.statistics({ bucketS: 1, buckets: 1e9 }).buckets.length, 400)
    } finally {
      o.close()
    }
  })
})
