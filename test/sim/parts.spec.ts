// Runs in parts (parts: groups, sim/parts.ts): the same result in one process
// or several, the same model as one engine (figures agree), the election's
// seconds and names over parts, and the guards that keep a split honest.
import { strict as assert } from 'node:assert'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ScenarioError, parseScenario, runScenario, runScenarioJobs, type Scenario } from '../../sim/index.ts'
import { run } from '../support/cli.ts'

/** Four schools of ten, out of each other's range, each with an uplink that brings the build; churn and sleep. */
function district (opts: { parts?: string, election?: boolean, size?: string, duration?: string } = {}): string {
  return `name: little-district
seed: 5
duration: ${opts.duration ?? '12m'}
radio: {standard: 802.11g, rate_mbps: 54, range_m: 60, loss: 0.01}
area: {width_m: 1000, height_m: 1000}
groups: {count: 4, width_m: 30, height_m: 20, columns: 2, spacing_m: 200}
nodes:
  - {count: 1, per: group, power: ac, uplink: {up_mbps: 2, down_mbps: 10, windows: ["08:00-09:00"]}}
  - {count: 9, per: group, power: battery, sleep: {awake_min: 20, asleep_min: 2}}
content:
  - {name: os, size: ${opts.size ?? '8MB'}, at: 0s, on: uplink}
churn: {join_leave_per_hour: 16, away_min: 2}
exchange: {max_peers: 12, announce_delay_ms: 1000}
election: ${opts.election ?? false}
sample: 30s
${opts.parts !== undefined ? `parts: ${opts.parts}\n` : ''}`
}

function refuse (text: string, pattern: RegExp): void {
  assert.throws(() => parseScenario(text, 'bad.yaml'), (err: unknown) => {
    assert.ok(err instanceof ScenarioError, `not a ScenarioError: ${String(err)}`)
    assert.match(err.message, pattern)
    return true
  })
}

describe('sim: runs in parts', function () {
  this.timeout(300_000)

  it('gives the same summary, rows and series in one process and in two', async () => {
    const s = parseScenario(district({ parts: 'groups' }), 'd.yaml')
    const here = runScenario(s)
    const jobs = await runScenarioJobs(s, { jobs: 2 })
    assert.equal(here.summary.parts, 4)
    assert.ok(here.summary.events > 10_000, `only ${here.summary.events} events`)
    assert.match(here.summary.trace_sha256, /^[0-9a-f]{64}$/)
    assert.deepEqual(jobs.summary, here.summary)
    assert.deepEqual(jobs.nodes, here.nodes)
    assert.deepEqual(jobs.metrics, here.metrics)
    assert.equal(jobs.stats.childMaxRssMiB.length, 2)
    assert.ok(jobs.stats.childMaxRssMiB.every(m => m > 10))
    // rows come back in the scenario's node order, each in its own group
    assert.deepEqual(here.nodes.map(n => n.node), Array.from({ length: 40 }, (_v, i) => `node-${i}`))
    for (const n of here.nodes) {
      const i = Number(n.node.slice(5))
      assert.equal(n.group, i < 4 ? i : Math.floor((i - 4) / 9))
    }
    // another seed, another run
    const other = runScenario(s, { seed: 6 })
    assert.notEqual(other.summary.trace_sha256, here.summary.trace_sha256)
  })

  it('simulates the same model as one engine: the figures agree', () => {
    const whole = runScenario(parseScenario(district({ duration: '20m' }), 'd.yaml')).summary
    const parts = runScenario(parseScenario(district({ duration: '20m', parts: 'groups' }), 'd.yaml')).summary
    assert.equal(whole.parts, 1)
    assert.equal(parts.parts, 4)
    assert.notEqual(parts.trace_sha256, whole.trace_sha256)
    const [w, p] = [whole.builds[0]!, parts.builds[0]!]
    assert.equal(p.airtime_bound_s, w.airtime_bound_s)
    assert.ok(w.p50_s !== null && p.p50_s !== null && w.p90_s !== null && p.p90_s !== null, `p50/p90 missing: ${JSON.stringify([w, p])}`)
    assert.ok(Math.abs(p.p50_s - w.p50_s) / w.p50_s < 0.15, `p50 ${p.p50_s} s in parts, ${w.p50_s} s whole`)
    assert.ok(Math.abs(p.p90_s - w.p90_s) / w.p90_s < 0.15, `p90 ${p.p90_s} s in parts, ${w.p90_s} s whole`)
    assert.ok(Math.abs(parts.bytes_on_air - whole.bytes_on_air) / whole.bytes_on_air < 0.1, `bytes on air ${parts.bytes_on_air} in parts, ${whole.bytes_on_air} whole`)
    assert.ok(Math.abs(parts.uplink_bytes - whole.uplink_bytes) / whole.uplink_bytes < 0.1, `uplink ${parts.uplink_bytes} in parts, ${whole.uplink_bytes} whole`)
    // each school's uplink brings its copy: four copies over uplinks, not one
    assert.ok(parts.uplink_bytes > 4 * 8_000_000, `uplink bytes ${parts.uplink_bytes}`)
  })

  it('names components by the scenario\'s node numbers and keeps the election\'s seconds over parts', () => {
    const r = runScenario(parseScenario(district({ parts: 'groups', election: true, size: '2MB', duration: '4m' }), 'd.yaml'))
    const s = r.summary
    assert.equal(s.split_brain_s, 0)
    assert.ok(s.elected.length >= 4, `${s.elected.length} changes`)
    const group = (i: number): number => i < 4 ? i : Math.floor((i - 4) / 9)
    const components = new Set<number>()
    for (const c of s.elected) {
      components.add(group(c.component))
      if (c.server !== null) assert.equal(group(Number(c.server.slice(5))), group(c.component), `component ${c.component} led by ${c.server} of another school`)
    }
    assert.deepEqual([...components].sort(), [0, 1, 2, 3])
    for (let k = 1; k < s.elected.length; k++) assert.ok(s.elected[k - 1]!.t_s <= s.elected[k]!.t_s)
    // the series adds the schools up
    const last = r.metrics.samples[r.metrics.samples.length - 1]!
    assert.ok(last.components >= 4 && last.components <= 40)
  })

  it('reports a part that fails in its process, naming the part', async () => {
    const s = parseScenario(district({ parts: 'groups' }), 'd.yaml')
    const broken = { ...s, radio: { ...s.radio, standard: 'bogus' } } as unknown as Scenario
    await assert.rejects(runScenarioJobs(broken, { jobs: 2 }), /simulating part \d/)
  })

  it('refuses a split that is not honest, naming the key and line', () => {
    const d = district({ parts: 'groups' })
    refuse(d.replace('spacing_m: 200', 'spacing_m: 50'), /^bad\.yaml:6: groups\.spacing_m: parts: groups needs groups that share no air: spacing_m \(50\) must be more than radio\.range_m \(60\)/)
    refuse(d.replace('{count: 9, per: group, ', '{count: 9, '), /^bad\.yaml:9: nodes\[1\]\.per: parts: groups needs every node spec placed per: group/)
    refuse(d.replace('parts: groups', 'parts: rooms'), /^bad\.yaml:\d+: parts: expected one of whole, groups, got "rooms"/)
    refuse(d.replace(/groups: \{.*\}\n/, '').replace(/per: group, /g, ''), /^bad\.yaml:\d+: parts: parts: groups needs a groups: section/)
    refuse(d + 'advisory: {build: os, on: [node-0]}\n', /^bad\.yaml:\d+: advisory: parts: groups does not simulate an advisory yet/)
  })

  it('xo-mesh sim --jobs: the same run for any number of processes; a bad number refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xo-sim-parts-'))
    try {
      const file = join(dir, 'd.yaml')
      writeFileSync(file, district({ parts: 'groups', duration: '3m' }))
      const [a, b] = await Promise.all([
        run(['--json', 'sim', file, '--jobs', '1', '--out', join(dir, 'a')]),
        run(['--json', 'sim', file, '--jobs', '3', '--out', join(dir, 'b')])
      ])
      for (const r of [a, b]) assert.equal(r.code, 0, r.stderr)
      const [sa, sb] = [a, b].map(r => JSON.parse(r.stdout) as { trace_sha256: string, parts: number })
      assert.equal(sa!.parts, 4)
      assert.equal(sa!.trace_sha256, sb!.trace_sha256)
      assert.equal(readFileSync(join(dir, 'a', 'nodes.csv'), 'utf8'), readFileSync(join(dir, 'b', 'nodes.csv'), 'utf8'))
      assert.equal(readFileSync(join(dir, 'a', 'series.csv'), 'utf8'), readFileSync(join(dir, 'b', 'series.csv'), 'utf8'))
      const table = await run(['sim', file, '--jobs', '2', '--out', join(dir, 'c')])
      assert.equal(table.code, 0, table.stderr)
      assert.match(table.stdout, /^scenario little-district, seed 5: 40 laptops in 4 parts, 180 s simulated/)
      assert.ok(table.stdout.includes(`trace_sha256 ${sa!.trace_sha256}`))
      const bad = await run(['sim', file, '--jobs', '0'])
      assert.equal(bad.code, 1)
      assert.match(bad.stderr, /--jobs must be a positive integer, got "0"/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
