// `xo-mesh sim <scenario.yaml> [--seed N] [--out DIR] [--jobs N]`: runs a
// scenario in the simulator (sim/), writes summary.json, nodes.csv,
// series.csv and SVG plots into DIR, prints the summary table (or the
// summary with --json). A progress line on a terminal. A bad scenario: one
// line naming the key and line, exit 1. A scenario in parts (parts: groups)
// runs its parts in --jobs processes, one per core by default; the result is
// the same for any number.
import type { Command } from 'commander'
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'
import { ScenarioError, parseScenario, runScenarioJobs, summaryTable, writeRun } from '../../sim/index.ts'

export function addSimCommand (program: Command): void {
  program.command('sim')
    .description('run a mesh scenario in the simulator; writes summary.json, nodes.csv, series.csv and SVG plots')
    .argument('<scenario>', 'a scenario YAML file (see docs/simulator.md; sim/scenarios/ has examples)')
    .option('--seed <n>', 'random seed (default: the scenario\'s)')
    .option('--out <dir>', 'where to write the results (default sim-out/<name>-<seed>)')
    .option('--jobs <n>', 'processes for a scenario in parts (parts: groups); the result does not depend on it (default: one per core)')
    .action(async (file: string, opts: { seed?: string, out?: string, jobs?: string }) => {
      const json = program.opts<{ json?: boolean }>().json === true
      let scenario
      try {
        let text: string
        try {
          text = readFileSync(resolve(file), 'utf8')
        } catch (err) {
          throw new ScenarioError(`${file}: cannot read it: ${(err as Error).message}`)
        }
        scenario = parseScenario(text, file)
      } catch (err) {
        if (!(err instanceof ScenarioError)) throw err
        process.stderr.write(`xo-mesh: ${err.message}\n`)
        process.exitCode = 1
        return
      }
      let seed: number | undefined
      if (opts.seed !== undefined) {
        seed = Number(opts.seed)
        if (!Number.isSafeInteger(seed) || seed < 0) {
          process.stderr.write(`xo-mesh: --seed must be a non-negative integer, got ${JSON.stringify(opts.seed)}\n`)
          process.exitCode = 1
          return
        }
      }
      const jobs = opts.jobs === undefined ? availableParallelism() : Number(opts.jobs)
      if (!Number.isSafeInteger(jobs) || jobs < 1) {
        process.stderr.write(`xo-mesh: --jobs must be a positive integer, got ${JSON.stringify(opts.jobs)}\n`)
        process.exitCode = 1
        return
      }
      const effectiveSeed = seed ?? scenario.seed
      const out = resolve(opts.out ?? `sim-out/${scenario.name}-${effectiveSeed}`)
      const tty = process.stderr.isTTY === true && process.env.XO_MESH_NO_PROGRESS === undefined
      const started = Date.now()
      let shown = false
      const progress = tty
        ? (now: number, events: number, parts?: { done: number, total: number }): void => {
            const wall = (Date.now() - started) / 1000
            const where = parts === undefined ? `${(now / 1000).toFixed(0)}/${(scenario.duration / 1000).toFixed(0)} s simulated` : `${parts.done}/${parts.total} parts done`
            process.stderr.write(`\rsim ${scenario.name}: ${where}, ${events} events, ${(events / Math.max(wall, 0.001)).toFixed(0)} events/s\x1b[K`)
            shown = true
          }
        : undefined
      process.stderr.write(`sim ${scenario.name}: seed ${effectiveSeed}\n`)
      const result = await runScenarioJobs(scenario, { jobs, ...(seed !== undefined ? { seed } : {}), ...(progress !== undefined ? { progress } : {}) })
      if (shown) process.stderr.write('\n')
      writeRun(out, result)
      if (json) process.stdout.write(JSON.stringify(result.summary, null, 2) + '\n')
      else {
        process.stdout.write(summaryTable(result.summary) + '\n')
        process.stdout.write(`wrote ${out} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`)
      }
    })
}
