/**
 * `npm run bench -- [name…] [--option=value…]`: runs benchmarks and reports.
 *
 * With no name, runs them all. Each bench is a module of bench/ exporting
 * `description` and `run(ctx)` (util.ts: BenchModule); it prints its tables
 * to stdout and its results are saved as .bench/results/<name>.json along
 * with the machine (cpu, cores, memory, node) and the time of the run, so
 * that figures from different machines or days are never mixed up.
 * Progress goes to stderr.
 *
 * Adding a bench = one line in BENCHES below.
 */
import { writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join, relative } from 'node:path'
import { ensureDir, REPO_ROOT, RESULTS_DIR, type BenchContext, type BenchModule } from './util.js'

const BENCHES: Record<string, () => Promise<BenchModule>> = {
  delta: () => import('./delta.js'),
  add: () => import('./add.js'),
  exchange: () => import('./exchange.js'),
  idle: () => import('./idle.js'),
  relay: () => import('./relay.js'),
  outbox: () => import('./outbox.js'),
  sim: () => import('./sim.js'),
  'sim-election': () => import('./sim-election.js'),
  backup: () => import('./backup.js')
}

interface Machine {
  cpu: string
  cores: number
  memoryGiB: number
  platform: string
  node: string
}

function machine (): Machine {
  const cpus = os.cpus()
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version
  }
}

function parseArgs (argv: string[]): { names: string[], options: Map<string, string> } {
  const names: string[] = []
  const options = new Map<string, string>()
  for (const a of argv) {
    if (a.startsWith('--')) {
      const eq = a.indexOf('=')
      if (eq < 0) options.set(a.slice(2), '')
      else options.set(a.slice(2, eq), a.slice(eq + 1))
    } else {
      names.push(a)
    }
  }
  return { names, options }
}

async function main (): Promise<number> {
  const { names, options } = parseArgs(process.argv.slice(2))
  if (options.has('help')) {
    console.log('usage: npm run bench -- [name…] [--option=value…]')
    for (const [name, load] of Object.entries(BENCHES)) console.log(`  ${name}: ${(await load()).description}`)
    return 0
  }
  const unknown = names.filter(n => !(n in BENCHES))
  if (unknown.length > 0) {
    console.error(`unknown bench(es): ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}`)
    return 2
  }
  const selected = names.length > 0 ? names : Object.keys(BENCHES)
  const m = machine()
  const startedAt = new Date()
  console.log(`machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.platform}, node ${m.node}`)
  console.log(`started: ${startedAt.toISOString()}`)
  await ensureDir(RESULTS_DIR)
  let failed = 0
  for (const name of selected) {
    const load = BENCHES[name]
    if (!load) continue
    const ctx: BenchContext = { options }
    const t0 = performance.now()
    const started = new Date()
    console.log(`\n## ${name}`)
    try {
      const bench = await load()
      const out = await bench.run(ctx)
      const seconds = (performance.now() - t0) / 1000
      for (const t of out.tables) console.log('\n' + t)
      console.log(`\n${name}: ${seconds.toFixed(1)} s`)
      const file = join(RESULTS_DIR, `${name}.json`)
      await writeFile(file, JSON.stringify({
        bench: name,
        description: bench.description,
        machine: m,
        startedAt: started.toISOString(),
        seconds,
        options: Object.fromEntries(options),
        results: out.results
      }, null, 2) + '\n')
      console.error(`results: ${relative(REPO_ROOT, file)}`)
    } catch (e) {
      failed++
      console.error(`${name} failed: ${(e as Error).stack ?? String(e)}`)
    }
  }
  console.log(`\ntotal: ${((Date.now() - startedAt.getTime()) / 1000).toFixed(1)} s`)
  return failed > 0 ? 1 : 0
}

process.exitCode = await main()
