/**
 * One simulator run in its own process for `npm run bench -- sim`: prints a
 * JSON line with the summary, wall and CPU seconds and the peak RSS
 * (getrusage's maxrss), so runs do not share a heap or a garbage collector.
 *
 * A scenario in parts (parts: groups) runs in `jobs` processes of its own
 * (sim/parts.ts); their peak RSS is added to this one's.
 *
 *   node --import tsx bench/sim-child.ts <scenario.yaml> [jobs]
 */
import { readFileSync } from 'node:fs'
import { parseScenario, runScenarioJobs } from '../sim/index.js'

const file = process.argv[2]
const jobs = Number(process.argv[3] ?? 1)
if (file === undefined || !(jobs >= 1)) throw new Error('usage: sim-child.ts <scenario.yaml> [jobs]')
const scenario = parseScenario(readFileSync(file, 'utf8'), file)
const cpu0 = process.cpuUsage()
const t0 = performance.now()
let lastReport = t0
const r = await runScenarioJobs(scenario, {
  jobs,
  progress: (now, events, parts) => {
    const t = performance.now()
    if (t - lastReport < 10_000) return
    lastReport = t
    const where = parts === undefined ? `${(now / 1000).toFixed(0)} s simulated` : `${parts.done}/${parts.total} parts done`
    process.stderr.write(`  ${scenario.name}: ${where}, ${events} events, ${((t - t0) / 1000).toFixed(0)} s wall\n`)
  }
})
const wall = (performance.now() - t0) / 1000
const cpu = process.cpuUsage(cpu0)
const { elected, ...summary } = r.summary
process.stdout.write(JSON.stringify({
  summary: { ...summary, elected_changes: elected.length },
  wall_s: wall,
  cpu_s: (cpu.user + cpu.system) / 1e6 + r.stats.childCpuS.reduce((a, b) => a + b, 0),
  // with parts in processes of their own: the sum of every process's peak (they need not peak together: an upper bound)
  max_rss_mib: process.resourceUsage().maxRSS / 1024 + r.stats.childMaxRssMiB.reduce((a, b) => a + b, 0),
  processes: 1 + r.stats.childMaxRssMiB.length,
  counts: r.stats.counts.slice(0, 10),
  // what the exchange said, per data frame delivered, and what its cores counted
  messages: Object.fromEntries(Object.entries(r.stats.delivered).sort()),
  bytes_down: r.stats.bytesDown,
  stalls: r.stats.stalls,
  mean_flows: r.metrics.samples.reduce((s, x) => s + x.flows, 0) / Math.max(1, r.metrics.samples.length)
}) + '\n')
