// The election check of issue 6 over many seeds: school-300's layout, sleep
// and churn (more churn, so a short run sees many departures), without its
// build (the election alone), and what must hold of each run's summary. Used
// by test/sim/election.spec.ts (a few seeds in `npm test`, more under soak)
// and `npm run bench -- sim-election` (the 1,000).
import type { Summary } from './run.ts'

export interface ElectionSchool {
  rooms: number
  perRoom: number
  minutes: number
  /** Departures per hour across the school (school-300 ships 30). */
  churnPerHour: number
}

/** school-300.yaml's text turned into the election check's scenario. */
export function electionSchool (school300: string, o: ElectionSchool): string {
  const out = school300
    .replace(/content:\n(\s+- .*\n)+/, '')
    .replace('duration: 1h', `duration: ${o.minutes}m`)
    .replace('groups: {count: 10,', `groups: {count: ${o.rooms},`)
    .replace('{count: 29, per: group', `{count: ${o.perRoom - 1}, per: group`)
    .replace(/churn: \{join_leave_per_hour: \d+/, `churn: {join_leave_per_hour: ${o.churnPerHour}`)
    .replace(/sample: .*\n/, '') + 'sample: 2s\n'
  if (out.includes('content:') || !out.includes(`duration: ${o.minutes}m`)) throw new Error('school-300.yaml changed shape: update sim/election-check.ts')
  return out
}

/** Why a run fails the check (split brain after convergence, a settled group without a server, nobody elected), or undefined. */
export function electionFailure (s: Summary): string | undefined {
  if (s.election === null) return 'no election ran'
  if (s.split_brain_s !== 0) return `${s.split_brain_s} s with two servers in a settled component`
  if (s.no_server_s !== 0) return `${s.no_server_s} s with a settled component of two or more and no server`
  if (!s.elected.some(e => e.server !== null)) return 'nobody elected'
  return undefined
}
