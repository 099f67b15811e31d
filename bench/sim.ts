/**
 * `npm run bench -- sim`: the simulator at scale (issue 6), each run in its
 * own process (bench/sim-child.ts):
 *
 *   (a) school-1000: school-300's ten rooms with 100 XOs each (1,000 XOs),
 *       one simulated hour, the exchange alone (no election); target under
 *       30 s of wall time;
 *   (b) district-10k: 100 schools of 100 XOs, a 100 MB build, one simulated
 *       hour; targets under 5 minutes and 4 GiB;
 *   (c) classroom-30 as shipped (500 MB from one laptop to 29): completion
 *       against the unicast airtime bound (target ≤ 1.15).
 *
 * Reports wall and CPU seconds (the machine is shared: CPU seconds are the
 * steadier figure), events per second and peak RSS.
 *
 * district-10k is simulated in parts (its schools share no air), in --jobs
 * processes (default: one per core); its CPU seconds and peak RSS are the
 * sums over its processes (the RSS peaks need not coincide: an upper bound).
 *
 * Options: --only=a,b,c (default all); --school-minutes=M and
 * --district-minutes=M simulate less than the hour (the table says how much);
 * --jobs=N processes for a run in parts.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { REPO_ROOT, WORK_DIR, ensureDir, formatTable, log, run, type BenchContext, type BenchOutput } from './util.js'

export const description = 'simulator at scale: wall/CPU time, events/s and peak RSS for 1,000 XOs and district-10k; classroom-30 vs the airtime bound'

interface ChildResult {
  summary: { scenario: string, nodes: number, events: number, duration_s: number, builds: Array<{ name: string, completion_s: number | null, airtime_bound_s: number, ratio: number | null, complete_nodes: number }>, bytes_on_air: number, duplicate_bytes: number, trace_sha256: string }
  wall_s: number
  cpu_s: number
  max_rss_mib: number
  /** This process and those that simulated parts. */
  processes: number
  /** Exchange messages delivered by type ('blocks': data frames), stalls, leaf bytes received. */
  messages: Record<string, number>
  stalls: number
  bytes_down: number
}

const SCENARIOS = join(REPO_ROOT, 'sim', 'scenarios')

/** A copy of a scenario with another duration, in the bench's work directory. */
async function shortened (file: string, name: string, minutes: number | undefined): Promise<string> {
  if (minutes === undefined) return file
  const text = await readFile(file, 'utf8')
  const out = text.replace(/^duration: .*$/m, `duration: ${minutes}m`)
  const dir = join(WORK_DIR, 'sim')
  await ensureDir(dir)
  const path = join(dir, `${name}-${minutes}m.yaml`)
  await writeFile(path, out)
  return path
}

async function school1000 (): Promise<string> {
  const text = await readFile(join(SCENARIOS, 'school-300.yaml'), 'utf8')
  const scaled = text
    .replace('name: school-300', 'name: school-1000')
    .replace('{count: 29, per: group', '{count: 98, per: group')
    .replace('{count: 1, per: group, role: xo, power: ac', '{count: 1, per: group, role: xo, power: ac')
    .replace('groups: {count: 10, width_m: 12, height_m: 12', 'groups: {count: 10, width_m: 20, height_m: 12')
    .replace('sample: 5s', 'election: false\nsample: 15s')
  if (scaled === text) throw new Error('school-300.yaml changed shape: update bench/sim.ts')
  const dir = join(WORK_DIR, 'sim')
  await ensureDir(dir)
  const file = join(dir, 'school-1000.yaml')
  await writeFile(file, scaled)
  return file
}

async function runOne (file: string, jobs: number): Promise<ChildResult> {
  log(`sim: ${file} (jobs ${jobs})`)
  // a larger young generation: the cores' short-lived inputs and outputs die there instead of being promoted (district-10s: 6% less CPU, 70 MiB more RSS);
  // a capped old generation, a guard under the 4 GiB target: district-10k's live heap is ~0.5 GiB, but V8 lets its old generation fill
  // before collecting (the hour: 2,898 MiB peak RSS uncapped; 1,773 MiB capped at 1.5 GiB, but ~15% more CPU, so the cap sits higher)
  const r = await run(process.execPath, ['--max-semi-space-size=64', '--max-old-space-size=3072', '--import', 'tsx', join(REPO_ROOT, 'bench', 'sim-child.ts'), file, String(jobs)], { cwd: REPO_ROOT, timeoutSeconds: 1800, stdio: ['ignore', 'pipe', 'inherit'] })
  const line = r.stdout.trim().split('\n').pop()!
  return JSON.parse(line) as ChildResult
}

export async function run_ (ctx: BenchContext): Promise<BenchOutput> {
  const only = (ctx.options.get('only') ?? 'a,b,c').split(',')
  const minutes = (k: string): number | undefined => ctx.options.has(k) ? Number(ctx.options.get(k)) : undefined
  const schoolMin = minutes('school-minutes')
  const districtMin = minutes('district-minutes')
  const jobs = ctx.options.has('jobs') ? Number(ctx.options.get('jobs')) : availableParallelism()
  if (!Number.isSafeInteger(jobs) || jobs < 1) throw new Error(`--jobs must be a positive integer, got ${ctx.options.get('jobs')}`)
  const cases: Array<{ id: string, label: string, file: () => Promise<string>, wallTarget?: number, rssTarget?: number }> = [
    { id: 'a', label: `school-1000 (1,000 XOs, ${schoolMin ?? 60} min)`, file: async () => shortened(await school1000(), 'school-1000', schoolMin), wallTarget: 30 * (schoolMin ?? 60) / 60 },
    { id: 'b', label: `district-10k (10,000 XOs, ${districtMin ?? 60} min)`, file: async () => shortened(join(SCENARIOS, 'district-10k.yaml'), 'district-10k', districtMin), wallTarget: 300 * (districtMin ?? 60) / 60, rssTarget: 4096 },
    { id: 'c', label: 'classroom-30 (500 MB)', file: async () => join(SCENARIOS, 'classroom-30.yaml') }
  ]
  const results: Record<string, unknown> = {}
  const rows: string[][] = []
  const costs: string[][] = []
  for (const c of cases) {
    if (!only.includes(c.id)) continue
    const r = await runOne(await c.file(), jobs)
    results[c.id] = { label: c.label, ...r }
    const b = r.summary.builds[0]
    rows.push([
      c.label,
      String(r.summary.nodes),
      String(r.processes),
      r.wall_s.toFixed(1) + (c.wallTarget !== undefined ? ` (< ${c.wallTarget})` : ''),
      r.cpu_s.toFixed(1),
      String(r.summary.events),
      (r.summary.events / r.wall_s).toFixed(0),
      r.max_rss_mib.toFixed(0) + (c.rssTarget !== undefined ? ` (< ${c.rssTarget})` : ''),
      b === undefined ? '-' : `${b.complete_nodes}/${r.summary.nodes}`,
      b?.completion_s === null || b === undefined ? '-' : b.completion_s.toFixed(0),
      b === undefined ? '-' : b.airtime_bound_s.toFixed(0),
      b?.ratio === null || b === undefined ? '-' : b.ratio.toFixed(3)
    ])
    const frames = Math.max(1, r.messages.blocks ?? 0)
    const per = (k: string): string => ((r.messages[k] ?? 0) / frames).toFixed(2)
    costs.push([
      c.label,
      String(r.messages.blocks ?? 0),
      (r.summary.events / frames).toFixed(1),
      (r.summary.events / r.summary.duration_s).toFixed(0),
      per('have-update'), per('request'), per('choke'), per('unchoke'), per('cancel'),
      (r.stalls / frames).toFixed(2),
      (r.summary.duplicate_bytes / Math.max(1, r.bytes_down)).toFixed(3)
    ])
  }
  const table = formatTable(['run', 'XOs', 'processes', 'wall s', 'CPU s', 'events', 'events/s', 'peak RSS MiB', 'complete', 'completion s', 'bound s', 'ratio'], rows)
  // what a data frame costs: the messages and stalls per frame delivered, and the events per simulated second
  const perFrame = formatTable(['run', 'frames', 'events/frame', 'events per sim s', 'have-update', 'request', 'choke', 'unchoke', 'cancel', 'stalls', 'duplicate share'], costs)
  return { tables: [table, perFrame], results }
}

export { run_ as run }
