// npm run sim:advisory (issue 7, "In the simulator"): a signed advisory
// spreading through simulated rooms of growing size (10, 30, 100, 300
// laptops, everyone in range, no churn) and through school-300-advisory
// (ten rooms, churn, sleep, an uplink). Prints the time for the advisory and
// for the install to reach the first and the last laptop, and the advisory
// messages per laptop per hour once converged; writes DIR/result.json
// (default sim-out/advisory/). docs/simulator.md quotes the table.
//
//   npm run sim:advisory [-- --sizes 10,30,100,300] [--no-school] [--out DIR]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseScenario, runScenario, type Summary } from '../sim/index.ts'

const repo = resolve(fileURLToPath(import.meta.url), '../..')
const argv = process.argv.slice(2)
const flag = (name: string): string | undefined => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined }
const sizes = (flag('--sizes') ?? '10,30,100,300').split(',').map(Number)
const outDir = resolve(flag('--out') ?? join(repo, 'sim-out', 'advisory'))
if (sizes.some(n => !Number.isSafeInteger(n) || n < 2)) throw new Error(`--sizes: laptops per room, 2 or more each, got ${flag('--sizes')}`)

/** One room: everyone in range, on AC, awake; a 5 MB build on node-0, advised to everyone at 60 s; one hour. */
function room (n: number): string {
  const side = Math.ceil(Math.sqrt(n) * 2)
  return `name: advisory-room-${n}
seed: 1
duration: 1h
radio: {standard: 802.11g, rate_mbps: 54, range_m: ${side * 2}, loss: 0.01}
area: {width_m: ${side}, height_m: ${side}}
nodes:
  - {count: ${n}, power: ac}
content:
  - {name: update, size: 5MB, at: 0s, on: node-0}
advisory: {at: 60s, build: update, on: node-0, apply_s: 30}
election: false
`
}

interface Row { scenario: string, laptops: number, wall_s: number, advisory: NonNullable<Summary['advisory']> }
const rows: Row[] = []
function run (name: string, text: string): void {
  const started = Date.now()
  const r = runScenario(parseScenario(text, name))
  const a = r.summary.advisory
  if (a === undefined) throw new Error(`${name}: no advisory in the summary`)
  rows.push({ scenario: r.summary.scenario, laptops: a.laptops, wall_s: Math.round((Date.now() - started) / 100) / 10, advisory: a })
  process.stderr.write(`${r.summary.scenario}: done in ${rows[rows.length - 1]!.wall_s} s (load ${loadavg()[0]!.toFixed(1)})\n`)
}

for (const n of sizes) run(`room-${n}`, room(n))
if (!argv.includes('--no-school')) run('school-300-advisory.yaml', readFileSync(join(repo, 'sim', 'scenarios', 'school-300-advisory.yaml'), 'utf8'))

mkdirSync(outDir, { recursive: true })
writeFileSync(join(outDir, 'result.json'), JSON.stringify({ rows, load: loadavg()[0] }, null, 2) + '\n')
const f = (x: number | null): string => x === null ? '-' : String(x)
const cols = ['scenario', 'laptops', 'reached', 'adv first s', 'adv last s', 'installed', 'inst first s', 'inst last s', 'adverts/lh', 'msgs/lh', 'on connect/lh']
const table = [cols, ...rows.map(r => {
  const a = r.advisory
  return [r.scenario, String(r.laptops), String(a.reached), f(a.first_s), f(a.last_s), String(a.installed), f(a.install_first_s), f(a.install_last_s), f(a.adverts_per_laptop_hour), f(a.messages_per_laptop_hour), f(a.connect_states_per_laptop_hour)]
})]
const widths = cols.map((_c, i) => Math.max(...table.map(r => r[i]!.length)))
for (const r of table) process.stdout.write(r.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join('  ') + '\n')
process.stdout.write(`(/lh: per laptop per hour, from Imax after the last laptop adopted to the end of the run; ${join(outDir, 'result.json')})\n`)
