// The advisory core in the simulator (sim/advisory/, issue 7): a signed
// snapshot offered on one laptop reaches the room over the simulated radio,
// every laptop verifies it with the trust layer, fetches the build it names
// and installs it; only then. Trickle keeps the room quiet once it has
// converged. Bad advisory sections name their key and line.
import { strict as assert } from 'node:assert'
import { parseScenario, runScenario, ScenarioError } from '../../sim/index.ts'

function room (n: number, extra: { at?: string, duration?: string, sleep?: boolean } = {}): string {
  return `name: adv-${n}
seed: 4
duration: ${extra.duration ?? '40m'}
radio: {standard: 802.11g, rate_mbps: 54, range_m: 40, loss: 0.01}
area: {width_m: 12, height_m: 10}
nodes:
  - {count: ${n}, power: ac${extra.sleep === true ? ', sleep: {awake_min: 3, asleep_min: 3}' : ''}}
content:
  - {name: os-2, size: 4MB, at: 0s, on: node-0}
  - {name: other, size: 1MB, at: 0s, on: node-1}
advisory: {at: ${extra.at ?? '20s'}, build: os-2, on: node-0, apply_s: 30}
election: false
`
}

describe('sim: advisories', function () {
  this.timeout(120_000)

  it('spreads a signed advisory to every laptop of a room, which then fetch and install the build', () => {
    const r = runScenario(parseScenario(room(12), 'adv.yaml'))
    const a = r.summary.advisory!
    assert.equal(a.laptops, 12)
    assert.equal(a.reached, 12)
    assert.equal(a.refused, 0)
    // node-0 verifies its own copy at once; the room within Trickle's Imin and a pull or two
    assert.equal(a.first_s, 0)
    assert.ok(a.last_s !== null && a.last_s < 5, `last laptop after ${a.last_s} s`)
    assert.equal(a.installed, 12)
    // node-0 holds the build: it installs apply_s after the advisory; the others after fetching 4 MB too
    assert.equal(a.install_first_s, 30)
    assert.ok(a.install_last_s !== null && a.install_last_s > 30 && a.install_last_s < 120, `install_last_s ${a.install_last_s}`)
    // the advised build is complete everywhere; fetching started only after the advisory (at 20 s)
    const b = r.summary.builds[0]!
    assert.equal(b.complete_nodes, 12)
    for (const row of r.nodes.slice(1)) assert.ok(row.completion_s[0]! > 20, `${row.node} complete at ${row.completion_s[0]}`)
    // once converged, Trickle: well under one transmission per laptop per Imax (17 min), k = 1
    assert.ok(a.adverts_per_laptop_hour !== null && a.adverts_per_laptop_hour > 0 && a.adverts_per_laptop_hour < 1.5, `adverts/laptop/h ${a.adverts_per_laptop_hour}`)
    assert.ok(a.messages_per_laptop_hour !== null && a.messages_per_laptop_hour < 20, `messages/laptop/h ${a.messages_per_laptop_hour}`)
    // the same seed gives the same run (the snapshot's keys are drawn from it)
    const again = runScenario(parseScenario(room(12), 'adv.yaml'))
    assert.equal(again.summary.trace_sha256, r.summary.trace_sha256)
    assert.deepEqual(again.summary.advisory, a)
  })

  it('fetches nothing before the advisory arrives: the build stays on its source, other builds are unaffected', () => {
    const r = runScenario(parseScenario(room(6, { at: '50m', duration: '10m' }), 'late.yaml'))
    const a = r.summary.advisory!
    assert.equal(a.reached, 0)
    assert.equal(a.installed, 0)
    assert.equal(a.last_s, null)
    assert.equal(r.summary.builds[0]!.complete_nodes, 1)
    // the build every laptop holds from the start spreads as before
    assert.equal(r.summary.builds[1]!.complete_nodes, 6)
  })

  it('reaches laptops that were asleep when it came, when they wake', () => {
    const r = runScenario(parseScenario(room(10, { sleep: true, at: '6m' }), 'sleepy.yaml'))
    const a = r.summary.advisory!
    assert.equal(a.reached, 10)
    // some were asleep at 6 min (node-0 among them: the stick waits for it to wake); all have it minutes later
    assert.ok(a.last_s !== null && a.last_s > 10, `last laptop after ${a.last_s} s`)
    assert.equal(a.installed, 10)
    assert.ok(a.connect_states_per_laptop_hour !== null && a.connect_states_per_laptop_hour > 0, 'waking laptops exchange States on connecting')
  })

  it('refuses a bad advisory section with its key and line', () => {
    const refuse = (text: string, re: RegExp): void => {
      assert.throws(() => parseScenario(text, 'bad.yaml'), (e: unknown) => e instanceof ScenarioError && re.test(e.message))
    }
    refuse(room(3).replace('build: os-2', 'build: os-9'), /^bad\.yaml:11: advisory\.build: no content named "os-9"/)
    refuse(room(3).replace('on: node-0, apply_s', 'on: node-7, apply_s'), /^bad\.yaml:11: advisory\.on: expected node-K with K below 3/)
    refuse(room(3).replace('apply_s: 30', 'apply_s: -1'), /^bad\.yaml:11: advisory\.apply_s: must be at least 0/)
    refuse(room(3).replace('apply_s: 30', 'apply: 30'), /^bad\.yaml:11: advisory\.apply: unknown key/)
  })
})
