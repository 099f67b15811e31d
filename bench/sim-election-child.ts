/**
 * Seeds of the election check in one process for `npm run bench --
 * sim-election`: one JSON line per seed on stdout.
 *
 *   node --import tsx bench/sim-election-child.ts <first seed> <last seed> <minutes> <churn per hour>
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseScenario, runScenario } from '../sim/index.js'
import { electionFailure, electionSchool } from '../sim/election-check.js'
import { REPO_ROOT } from './util.js'

const [first, last, minutes, churn] = process.argv.slice(2).map(Number)
if (first === undefined || last === undefined || minutes === undefined || churn === undefined) throw new Error('usage: sim-election-child.ts <first> <last> <minutes> <churn per hour>')
const text = electionSchool(readFileSync(join(REPO_ROOT, 'sim', 'scenarios', 'school-300.yaml'), 'utf8'), { rooms: 10, perRoom: 30, minutes, churnPerHour: churn })
const scenario = parseScenario(text, 'school-300 (election check)')
for (let seed = first; seed <= last; seed++) {
  const cpu0 = process.cpuUsage()
  const s = runScenario(scenario, { seed }).summary
  const cpu = process.cpuUsage(cpu0)
  process.stdout.write(JSON.stringify({
    seed,
    failure: electionFailure(s) ?? null,
    split_brain_s: s.split_brain_s,
    split_brain_raw_s: s.split_brain_raw_s,
    no_server_s: s.no_server_s,
    changes: s.elected.length,
    events: s.events,
    cpu_s: (cpu.user + cpu.system) / 1e6
  }) + '\n')
}
