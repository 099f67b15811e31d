// Bad scenarios get one clear error naming the key and its line; the shipped
// scenarios parse.
import { strict as assert } from 'node:assert'
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ScenarioError, nodeCount, parseScenario } from '../../sim/index.ts'
import { REPO_ROOT, run } from '../support/cli.ts'

const GOOD = `name: t
duration: 10m
radio: {standard: 802.11g, rate_mbps: 54, range_m: 60}
area: {width_m: 20, height_m: 15}
nodes:
  - {count: 5, power: battery}
content:
  - {name: b, size: 1MB, at: 0s, on: node-0}
`

function refuse (text: string, pattern: RegExp): void {
  assert.throws(() => parseScenario(text, 'bad.yaml'), (err: unknown) => {
    assert.ok(err instanceof ScenarioError, `not a ScenarioError: ${String(err)}`)
    assert.match(err.message, pattern)
    return true
  })
}

describe('sim: scenarios', () => {
  it('parses a small scenario with defaults', () => {
    const s = parseScenario(GOOD, 'good.yaml')
    assert.equal(s.name, 't')
    assert.equal(s.duration, 600_000)
    assert.equal(s.seed, 1)
    assert.equal(s.content[0]!.bytes, 1_000_000)
    assert.equal(nodeCount(s), 5)
  })

  it('names an unknown key and its line', () => {
    refuse(GOOD.replace('range_m: 60', 'range_m: 60, rnage: 4'), /^bad\.yaml:3: radio\.rnage: unknown key/)
    refuse(GOOD + 'colour: blue\n', /^bad\.yaml:9: colour: unknown key/)
    refuse(GOOD.replace('{count: 5, power: battery}', '{count: 5, powr: battery}'), /^bad\.yaml:6: nodes\[0\]\.powr: unknown key/)
  })

  it('refuses negative sizes, durations and counts, naming the key and line', () => {
    refuse(GOOD.replace('size: 1MB', 'size: -1MB'), /^bad\.yaml:8: content\[0\]\.size: must be a positive size/)
    refuse(GOOD.replace('duration: 10m', 'duration: -10m'), /^bad\.yaml:2: duration: must not be negative/)
    refuse(GOOD.replace('range_m: 60', 'range_m: -60'), /^bad\.yaml:3: radio\.range_m: must be more than 0/)
    refuse(GOOD.replace('count: 5', 'count: -5'), /^bad\.yaml:6: nodes\[0\]\.count: must be at least 1/)
  })

  it('refuses a node count of zero', () => {
    refuse(GOOD.replace('count: 5', 'count: 0'), /^bad\.yaml:6: nodes\[0\]\.count: must be at least 1, got 0/)
    refuse(GOOD.replace(/nodes:\n.*\n/, 'nodes: []\n'), /^bad\.yaml:5: nodes: a scenario needs at least one node/)
  })

  it('refuses a file that is not YAML, or not a mapping', () => {
    refuse('name: [unclosed\nradio: {', /^bad\.yaml:\d+: not valid YAML/)
    refuse('\x00\x01\x02 binary', /^bad\.yaml:1: /)
    refuse('- just\n- a list\n', /^bad\.yaml:1: a scenario is a YAML mapping/)
    refuse('', /^bad\.yaml:1: a scenario is a YAML mapping/)
  })

  it('refuses a missing key, a wrong type, a rate the standard lacks and a node that does not exist', () => {
    refuse(GOOD.replace('name: t\n', ''), /^bad\.yaml:1: name: missing \(required\)/)
    refuse(GOOD.replace('count: 5', 'count: five'), /^bad\.yaml:6: nodes\[0\]\.count: expected a number, got "five"/)
    refuse(GOOD.replace('rate_mbps: 54', 'rate_mbps: 11'), /^bad\.yaml:3: radio\.rate_mbps: 802\.11g has no 11 Mb\/s rate/)
    refuse(GOOD.replace('on: node-0', 'on: node-9'), /^bad\.yaml:8: content\[0\]\.on: node-9 does not exist/)
  })

  it('parses the shipped scenarios', () => {
    for (const [file, count] of [['classroom-30', 30], ['school-300', 301], ['district-10k', 10_000], ['validate-5', 5], ['school-300-advisory', 301]] as const) {
      const s = parseScenario(readFileSync(join(REPO_ROOT, 'sim', 'scenarios', `${file}.yaml`), 'utf8'), file)
      assert.equal(s.name, file)
      assert.equal(nodeCount(s), count)
    }
  })

  it('xo-mesh sim exits 1 with the key and line of a bad scenario', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xo-sim-'))
    try {
      const file = join(dir, 'bad.yaml')
      writeFileSync(file, GOOD.replace('size: 1MB', 'size: -3MB'))
      const r = await run(['sim', file, '--out', join(dir, 'out')])
      assert.equal(r.code, 1, r.stderr)
      assert.match(r.stderr, /bad\.yaml:8: content\[0\]\.size: must be a positive size, got "-3MB"/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
