/**
 * `npm run bench -- sim-election`: the election check of issue 6 over many
 * seeds: school-300 (ten rooms of 30, partly overlapping range, sleep) with
 * churn, the election alone, each seed a few simulated minutes. Every seed
 * must end with split_brain_s = 0 after convergence and no settled group
 * without a server (sim/election-check.ts); failing seeds are listed, to be
 * fixed and added to test/sim/election.spec.ts.
 *
 * Options: --seeds=N (1000), --first=S (1), --minutes=M (3), --churn=C
 * (departures per hour, 120), --jobs=J (child processes, 2).
 */
import { join } from 'node:path'
import { REPO_ROOT, formatTable, log, run, type BenchContext, type BenchOutput } from './util.js'

export const description = 'election check over seeds of school-300 with churn: split brain after convergence and groups without a server (issue 6)'

interface SeedResult { seed: number, failure: string | null, split_brain_raw_s: number | null, changes: number, events: number, cpu_s: number }

async function range (first: number, last: number, minutes: number, churn: number): Promise<SeedResult[]> {
  log(`sim-election: seeds ${first}–${last}`)
  const r = await run(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench', 'sim-election-child.ts'), String(first), String(last), String(minutes), String(churn)], { cwd: REPO_ROOT, timeoutSeconds: 86_400, stdio: ['ignore', 'pipe', 'inherit'] })
  return r.stdout.trim().split('\n').filter(l => l !== '').map(l => JSON.parse(l) as SeedResult)
}

export async function run_ (ctx: BenchContext): Promise<BenchOutput> {
  const opt = (k: string, d: number): number => ctx.options.has(k) ? Number(ctx.options.get(k)) : d
  const seeds = opt('seeds', 1000)
  const first = opt('first', 1)
  const minutes = opt('minutes', 3)
  const churn = opt('churn', 120)
  const jobs = Math.max(1, Math.min(seeds, opt('jobs', 2)))
  const t0 = performance.now()
  const per = Math.ceil(seeds / jobs)
  const parts = await Promise.all(Array.from({ length: jobs }, (_, j) => {
    const a = first + j * per
    const b = Math.min(first + seeds - 1, a + per - 1)
    return a <= b ? range(a, b, minutes, churn) : Promise.resolve([])
  }))
  const all = parts.flat().sort((x, y) => x.seed - y.seed)
  const failed = all.filter(r => r.failure !== null)
  const wall = (performance.now() - t0) / 1000
  const cpu = all.reduce((s, r) => s + r.cpu_s, 0)
  const raw = all.reduce((s, r) => s + (r.split_brain_raw_s ?? 0), 0)
  const table = formatTable(['seeds', 'simulated', 'failed', 'role changes', 'transient split brain s (all seeds)', 'events', 'CPU s', 'wall s'], [[
    `${first}–${first + seeds - 1}`, `${minutes} min each, ${churn} departures/h`, String(failed.length), String(all.reduce((s, r) => s + r.changes, 0)), raw.toFixed(0), String(all.reduce((s, r) => s + r.events, 0)), cpu.toFixed(0), wall.toFixed(0)
  ]])
  const tables = [table]
  if (failed.length > 0) tables.push(formatTable(['seed', 'failure'], failed.map(r => [String(r.seed), r.failure!])))
  return { tables, results: { seeds, first, minutes, churn, failed, runs: all.length, cpu_s: cpu, wall_s: wall } }
}

export { run_ as run }
