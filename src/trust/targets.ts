// Which advisories of a snapshot are for this laptop (TUF's "wrong software"
// attack: an advisory for another school or model is never acted on). Every
// non-empty target list must name this laptop's value; a laptop that does not
// know a value (no school configured) matches no list that asks for one.
import type { CID } from 'multiformats/cid'
import type { Advisory, SnapshotDoc } from './snapshot.ts'

/** What a laptop knows about itself. */
export interface Device {
  school?: string
  group?: string
  /** "XO-1.5", "XO-1.75", "XO-4", … */
  model?: string
  serial?: string
  /** The builds it runs now (CIDs), for advisories that say "from these builds". */
  current?: CID[]
}

/** undefined when the advisory targets the device; otherwise the first reason it does not. */
export function mismatch (a: Advisory, d: Device): string | undefined {
  const one = (list: string[] | undefined, value: string | undefined, what: string): string | undefined => {
    if (list === undefined || list.length === 0) return undefined
    if (value !== undefined && list.includes(value)) return undefined
    return `${what} ${value === undefined ? '(not configured)' : JSON.stringify(value)} is not among ${list.length <= 4 ? list.map(s => JSON.stringify(s)).join(', ') : `${list.length} listed`}`
  }
  const why = one(a.targets.schools, d.school, 'school') ??
    one(a.targets.groups, d.group, 'group') ??
    one(a.targets.models, d.model, 'hardware model') ??
    one(a.targets.serials, d.serial, 'serial number')
  if (why !== undefined) return why
  const builds = a.targets.builds
  if (builds !== undefined && builds.length > 0 && !builds.some(b => (d.current ?? []).some(c => c.equals(b)))) return 'none of the builds it runs is among the builds the advisory updates from'
  return undefined
}

export interface Targeting {
  /** Advisories for this laptop, in snapshot order. */
  mine: Advisory[]
  /** The others, each with why not. */
  others: Array<{ advisory: Advisory, reason: string }>
}

export function advisoriesFor (doc: SnapshotDoc, d: Device): Targeting {
  const mine: Advisory[] = []
  const others: Targeting['others'] = []
  for (const a of doc.advisories) {
    const why = mismatch(a, d)
    if (why === undefined) mine.push(a)
    else others.push({ advisory: a, reason: why })
  }
  return { mine, others }
}
