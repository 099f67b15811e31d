/**
 * One simulator run in its own process for `npm run bench -- sim`: prints a
 * JSON line with the summary, wall and CPU seconds and the peak RSS
 * (getrusage's maxrss), so runs do not share a heap or a garbage collector.
 *
 *   node --import tsx bench/sim-child.ts <scenario.yaml>
 */
import { readFileSync } from 'node:fs'
import { parseScenario, runScenario } from '../sim/index.js'

const file = process.argv[2]
if (file === undefined) throw new Error('usage: sim-child.ts <scenario.yaml>')
const scenario = parseScenario(readFileSync(file, 'utf8'), file)
const cpu0 = process.cpuUsage()
const t0 = performance.now()
let lastReport = t0
const r = runScenario(scenario, {
  progress: (now, events) => {
    const t = performance.now()
    if (t - lastReport < 10_000) return
    lastReport = t
    process.stderr.write(`  ${scenario.name}: ${(now / 1000).toFixed(0)} s simulated, ${events} events, ${((t - t0) / 1000).toFixed(0)} s wall\n`)
  }
})
const wall = (performance.now() - t0) / 1000
const cpu = process.cpuUsage(cpu0)
const { elected, ...summary } = r.summary
process.stdout.write(JSON.stringify({
  summary: { ...summary, elected_changes: elected.length },
  wall_s: wall,
  cpu_s: (cpu.user + cpu.system) / 1e6,
  max_rss_mib: process.resourceUsage().maxRSS / 1024,
  counts: Array.from(r.engine.counts.slice(0, 10)),
  // what the exchange said, per data frame delivered, and what its cores counted
  messages: Object.fromEntries([...r.engine.delivered].sort()),
  bytes_down: r.engine.nodes.reduce((s, n) => s + n.bytesDown, 0),
  stalls: r.engine.nodes.reduce((s, n) => s + n.core.stats.stalls, 0),
  mean_flows: r.metrics.samples.reduce((s, x) => s + x.flows, 0) / Math.max(1, r.metrics.samples.length)
}) + '\n')
