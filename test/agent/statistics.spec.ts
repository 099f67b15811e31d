// Statistics samples from fixtures: a Sugar journal, a power-supply tree as
// the kernel lays it out, an installed build. Sessions are counted in their
// window only, each field obeys its switch, and nothing that names a child
// (titles, activity ids, file names) ever reaches a sample.
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir } from '../support/cli.ts'
import { ACTIVITIES, makeJournal, type JournalEntry } from '../support/journal.ts'
import { StatisticsSampler, readBattery, readJournal, takeSample, type SampleSources } from '../../src/agent/statistics.ts'
import { defaultConfig } from '../../src/agent/config.ts'
import { silentLogger } from '../../src/net/logger.ts'
import { parseStatisticsSample } from '../../src/store/reports.ts'
import type { MeshComponents } from '../../src/net/component.ts'

const T0 = 1_790_000_000

async function powerSupply (dir: string): Promise<void> {
  const bat = join(dir, 'olpc-battery')
  const ac = join(dir, 'olpc-ac')
  await mkdir(bat, { recursive: true })
  await mkdir(ac, { recursive: true })
  const files: Record<string, string> = { type: 'Battery', capacity: '87', status: 'Discharging', health: 'Good', charge_full: '2700000', charge_full_design: '3000000', cycle_count: '412', serial_number: 'BAT-SECRET-123', manufacturer: 'BYD' }
  for (const [k, v] of Object.entries(files)) await writeFile(join(bat, k), v + '\n')
  await writeFile(join(ac, 'type'), 'Mains\n')
  await writeFile(join(ac, 'online'), '0\n')
}

describe('statistics samples', function () {
  this.timeout(30_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  let entries: JournalEntry[]
  let src: SampleSources

  before(async () => {
    t = await tempDir('xo-mesh-stats-')
    entries = await makeJournal(join(t.dir, 'datastore'), { entries: 12, bytes: 300_000, t0: T0 })
    await powerSupply(join(t.dir, 'power_supply'))
    src = { journal: join(t.dir, 'datastore'), powerSupply: join(t.dir, 'power_supply'), installRoot: null, fields: { ...defaultConfig().statistics.fields }, school: 'Escuela 12', serial: 'SHC12345678' }
  })
  after(async () => { await t.cleanup() })

  it('counts the sessions launched in the window per activity, with the time spent in them', async () => {
    // entries i launch at T0 + i h (+10 min, +20 min for the 2nd and 3rd sessions): the window holds entries 2..5
    const from = (T0 + 2 * 3600) * 1000
    const to = (T0 + 6 * 3600) * 1000
    const j = await readJournal(src.journal, from, to)
    assert.ok(j !== undefined)
    assert.equal(j.entries, 12)
    assert.equal(j.bytes, entries.reduce((n, e) => n + e.dataBytes, 0))
    const want = new Map<string, { launches: number, seconds: number }>()
    for (const e of entries) {
      e.launches.forEach((l, k) => {
        if (l * 1000 < from || l * 1000 >= to) return
        const a = want.get(e.activity) ?? { launches: 0, seconds: 0 }
        a.launches++
        a.seconds += e.spent[k]!
        want.set(e.activity, a)
      })
    }
    assert.deepEqual(j.activities, [...want].sort(([a], [b]) => a < b ? -1 : 1).map(([activity, a]) => ({ activity, ...a })))
    assert.ok(j.activities.reduce((n, a) => n + a.launches, 0) >= 4)
    assert.equal(j.new_entries, 4)
    // an empty window
    assert.deepEqual((await readJournal(src.journal, 0, 1000))!.activities, [])
  })

  it('reads battery charge, wear and cycles, and nothing like a serial number', async () => {
    const b = await readBattery(src.powerSupply)
    assert.deepEqual(b, { capacity_pct: 87, status: 'Discharging', health: 'Good', wear_pct: 10, cycles: 412 })
    assert.equal(await readBattery(join(t.dir, 'nowhere')), undefined)
  })

  it('sends only the fields switched on, serial off by default, and never a title or an activity id', async () => {
    const from = T0 * 1000
    const to = (T0 + 24 * 3600) * 1000
    const sample = await takeSample(src, from, to)
    const text = JSON.stringify(sample)
    assert.equal(sample.school, 'Escuela 12')
    assert.equal(sample.serial, undefined)
    assert.ok(sample.disk !== undefined && (sample.disk as { total_bytes: number }).total_bytes > 0)
    assert.ok(sample.battery !== undefined)
    assert.equal((sample.activities as unknown[]).length, ACTIVITIES.length)
    for (const e of entries) {
      assert.ok(!text.includes(e.title), 'a title in a sample')
      assert.ok(!text.includes(e.uid), 'an entry uid in a sample')
    }
    assert.ok(!text.includes('BAT-SECRET'))
    assert.ok(!text.includes('Ana María'))
    // the mothership reads it back
    const parsed = parseStatisticsSample(new TextEncoder().encode(text))
    assert.equal(parsed?.sampled_at, to)
    assert.equal(parsed?.school, 'Escuela 12')

    const off = await takeSample({ ...src, fields: { activities: false, journal: false, disk: false, battery: false, build: false, school: false, serial: true } }, from, to)
    assert.deepEqual(Object.keys(off).sort(), ['sampled_at', 'serial', 'v', 'window'])
    assert.equal(off.serial, 'SHC12345678')
  })

  it('samples into the outbox window after window, across a restart, without gaps or overlap', async () => {
    const dataDir = join(t.dir, 'data')
    await mkdir(dataDir)
    const sent: Array<{ kind: string, body: Uint8Array }> = []
    const components = { dataDir, logger: silentLogger } as unknown as MeshComponents
    const make = (): StatisticsSampler => new StatisticsSampler(components, { ...src, intervalS: 3600, enqueue: (kind, body) => { sent.push({ kind, body }) } })
    const a = make()
    await a.start()
    await a.sample((T0 + 3600) * 1000)
    await a.sample((T0 + 7200) * 1000)
    a.stop()
    const b = make()
    await b.start()
    await b.sample((T0 + 10_800) * 1000)
    b.stop()
    const windows = sent.map(s => (parseStatisticsSample(s.body)!.window as { from: number, to: number }))
    assert.ok(sent.every(s => s.kind === 'statistics'))
    assert.deepEqual(windows, [
      { from: T0 * 1000, to: (T0 + 3600) * 1000 },
      { from: (T0 + 3600) * 1000, to: (T0 + 7200) * 1000 },
      { from: (T0 + 7200) * 1000, to: (T0 + 10_800) * 1000 }
    ])
    // every session of the first three hours is counted once over the three samples
    const launches = sent.reduce((n, s) => n + (parseStatisticsSample(s.body)!.activities as Array<{ launches: number }>).reduce((m, x) => m + x.launches, 0), 0)
    const want = entries.reduce((n, e) => n + e.launches.filter(l => l >= T0 && l < T0 + 10_800).length, 0)
    assert.equal(launches, want)
  })
})
