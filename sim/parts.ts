// A scenario with `parts: groups` is simulated group by group: its groups
// share no air (the scenario parser checks it), each has its own mothership,
// churn and random streams, so no part waits on another and each part's
// result depends on the scenario, the seed and its group alone. That lets
// the parts run in several processes, one per core, and gives the same run
// whatever the number of processes: runScenarioJobs(s, {jobs: 2}) and
// runScenario(s) agree to the last byte. One engine per school also keeps
// each engine's state small: district-10k's schools run at ~12 µs per event
// one by one, ~33 µs all in one engine (docs/simulator.md, "Speed").
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { combine, runScenario, type PartResult, type RunOptions, type RunResult } from './run.ts'
import type { Scenario } from './scenario.ts'

export interface JobsOptions extends RunOptions {
  /** Processes to simulate parts in (default 1: this one). More than the parts are not started. */
  jobs?: number
}

/** What a part's process says to its parent. */
export type ChildMessage =
  | { type: 'progress', part: number, now: number, events: number }
  | { type: 'part', result: PartResult, maxRssMiB: number, cpuS: number }
  | { type: 'error', part: number, message: string }

/** What the parent says to a part's process: simulate this group; or stop. */
export type ParentMessage = { type: 'part', scenario: Scenario, part: number } | { type: 'stop' }

/**
 * Runs a scenario, its parts in up to `jobs` child processes. A scenario in
 * one piece (parts: whole), one job, or an election model given as a
 * function (it cannot cross a process) run here, as runScenario does.
 */
export async function runScenarioJobs (scenario: Scenario, opts: JobsOptions = {}): Promise<RunResult> {
  const s: Scenario = opts.seed !== undefined ? { ...scenario, seed: opts.seed } : scenario
  const total = s.parts === 'groups' ? s.groups!.count : 1
  const jobs = Math.min(Math.max(1, Math.floor(opts.jobs ?? 1)), total)
  if (jobs <= 1 || opts.election !== undefined) return runScenario(s, opts)

  const results = new Array<PartResult | undefined>(total)
  const running = new Map<ChildProcess, { part: number, events: number }>()
  const maxRss: number[] = []
  const cpu: number[] = []
  let next = 0
  let done = 0
  let doneEvents = 0
  const children: ChildProcess[] = []
  const report = (now: number): void => {
    if (opts.progress === undefined) return
    let events = doneEvents
    for (const r of running.values()) events += r.events
    opts.progress(now, events, { done, total })
  }
  try {
    await new Promise<void>((resolve, reject) => {
      let failed = false
      const fail = (err: Error): void => {
        if (failed) return
        failed = true
        reject(err)
      }
      const give = (child: ChildProcess): void => {
        if (next >= total) {
          running.delete(child)
          child.send({ type: 'stop' } satisfies ParentMessage)
          return
        }
        const part = next++
        running.set(child, { part, events: 0 })
        child.send({ type: 'part', scenario: s, part } satisfies ParentMessage)
      }
      for (let k = 0; k < jobs; k++) {
        // the child needs tsx's loader to run this TypeScript; resolved from here, so it works from any directory
        const child = fork(fileURLToPath(new URL('./part-child.ts', import.meta.url)), [], {
          execArgv: [...process.execArgv.filter(a => /^--max-(semi|old)-space-size=/.test(a)), '--import', import.meta.resolve('tsx')],
          serialization: 'advanced',
          stdio: ['ignore', 'ignore', 'inherit', 'ipc']
        })
        children.push(child)
        maxRss.push(0)
        cpu.push(0)
        child.on('message', (m: ChildMessage) => {
          if (m.type === 'progress') {
            const r = running.get(child)
            if (r !== undefined) r.events = m.events
            report(m.now)
          } else if (m.type === 'part') {
            results[m.result.part!] = m.result
            maxRss[k] = Math.max(maxRss[k]!, m.maxRssMiB)
            cpu[k] = m.cpuS
            done++
            doneEvents += m.result.events
            report(s.duration)
            if (done === total) resolve()
            else give(child)
          } else fail(new Error(`simulating part ${m.part} (group ${m.part}): ${m.message}`))
        })
        child.on('error', fail)
        child.on('exit', (code, signal) => {
          if (running.has(child)) fail(new Error(`the process simulating part ${running.get(child)!.part} ended (${signal ?? `exit ${code}`}) before it was done`))
        })
        give(child)
      }
    })
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill()
  }
  const r = combine(s, results as PartResult[])
  r.stats.childMaxRssMiB = maxRss
  r.stats.childCpuS = cpu
  return r
}
