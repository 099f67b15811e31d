// Statistics samples (docs/upstream.md, "Statistics"): every
// statistics.interval_s the agent samples what a deployment asks about and
// puts it in its outbox (a `statistics` item) for the mothership:
//
//   activities  per activity bundle id: sessions launched in the window and
//               the seconds spent in them (the journal's launch-times and
//               spent-times metadata, which Sugar appends to per session)
//   journal     entries, bytes of their data, entries made in the window
//   disk        total and free bytes of the journal's file system
//   battery     charge, status, wear (full vs. design capacity), cycles
//   build       the build installed (the `current` of xo-mesh apply's root)
//   school, serial   from the advisory config
//
// Each is switched on or off by statistics.fields; serial is off by default.
// Nothing that names or describes a child is ever read into a sample: no
// titles, no nicknames, no file names, no activity_id (it links sessions).
// Windows follow one another without gaps or overlap across restarts: the
// end of the last one is kept in DATA/statistics.json.
import { readdir, readFile, stat, statfs, writeFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import type { ItemKind } from '../core/relay/index.ts'
import { currentVersion } from '../content/apply.ts'
import type { MeshComponent, MeshComponents, StatusPart } from '../net/component.ts'
import type { Logger } from '../net/logger.ts'
import { encodeReport, type StatisticsSample } from '../store/reports.ts'
import type { AgentConfig } from './config.ts'
import { expandHome } from './backup.ts'

const STATE_FILE = 'statistics.json'
/** Entries read at most per sample (a journal is hundreds to a few thousand). */
const MAX_ENTRIES = 50_000

export interface SampleSources {
  journal: string
  powerSupply: string
  installRoot: string | null
  fields: AgentConfig['statistics']['fields']
  school: string | null
  serial: string | null
}

async function text (path: string, max = 4096): Promise<string | undefined> {
  try {
    const s = await readFile(path, 'utf8')
    return s.length <= max ? s.trim() : undefined
  } catch {
    return undefined
  }
}

function numbers (s: string | undefined): number[] {
  if (s === undefined || s === '') return []
  return s.split(',').map(x => Number(x.trim())).filter(n => Number.isFinite(n))
}

export interface JournalFigures {
  entries: number
  bytes: number
  new_entries: number
  activities: Array<{ activity: string, launches: number, seconds: number }>
}

/** Reads a Sugar datastore (`XX/<uid>/{data,metadata/…}`); sessions and new entries counted in [from, to) (ms). */
export async function readJournal (dir: string, from: number, to: number): Promise<JournalFigures | undefined> {
  let shards: string[]
  try {
    shards = (await readdir(dir)).filter(n => n.length === 2).sort()
  } catch {
    return undefined
  }
  const out: JournalFigures = { entries: 0, bytes: 0, new_entries: 0, activities: [] }
  const acts = new Map<string, { launches: number, seconds: number }>()
  for (const shard of shards) {
    let uids: string[]
    try { uids = (await readdir(join(dir, shard))).filter(n => n.length === 36) } catch { continue }
    for (const uid of uids) {
      if (out.entries >= MAX_ENTRIES) break
      const entry = join(dir, shard, uid)
      out.entries++
      try { out.bytes += (await stat(join(entry, 'data'))).size } catch { /* an entry without data (an activity's first launch) */ }
      const created = Number(await text(join(entry, 'metadata', 'creation_time'), 32) ?? await text(join(entry, 'metadata', 'timestamp'), 32))
      if (Number.isFinite(created) && created * 1000 >= from && created * 1000 < to) out.new_entries++
      const activity = await text(join(entry, 'metadata', 'activity'), 256)
      if (activity === undefined || !/^[A-Za-z0-9_.-]{1,128}$/.test(activity)) continue // a bundle id, nothing else
      const launches = numbers(await text(join(entry, 'metadata', 'launch-times')))
      const spent = numbers(await text(join(entry, 'metadata', 'spent-times')))
      launches.forEach((t, i) => {
        if (t * 1000 < from || t * 1000 >= to) return
        const a = acts.get(activity) ?? { launches: 0, seconds: 0 }
        a.launches++
        a.seconds += Math.max(0, Math.round(spent[i] ?? 0))
        acts.set(activity, a)
      })
    }
  }
  out.activities = [...acts].sort(([a], [b]) => a < b ? -1 : 1).map(([activity, a]) => ({ activity, ...a }))
  return out
}

export interface BatteryFigures { capacity_pct?: number, status?: string, health?: string, wear_pct?: number, cycles?: number }

/** The first battery under /sys/class/power_supply (or a fixture): charge, status, wear and cycles, as far as the driver tells. */
export async function readBattery (dir: string): Promise<BatteryFigures | undefined> {
  let names: string[]
  try { names = (await readdir(dir)).sort() } catch { return undefined }
  for (const name of names) {
    const p = join(dir, name)
    if (await text(join(p, 'type'), 32) !== 'Battery') continue
    const num = async (f: string): Promise<number | undefined> => { const v = Number(await text(join(p, f), 32)); return Number.isFinite(v) && (await text(join(p, f), 32)) !== undefined ? v : undefined }
    const out: BatteryFigures = {}
    const capacity = await num('capacity')
    if (capacity !== undefined) out.capacity_pct = Math.max(0, Math.min(100, Math.round(capacity)))
    const status = await text(join(p, 'status'), 32)
    if (status !== undefined && /^[A-Za-z ]{1,32}$/.test(status)) out.status = status
    const health = await text(join(p, 'health'), 32)
    if (health !== undefined && /^[A-Za-z ]{1,32}$/.test(health)) out.health = health
    const full = await num('charge_full') ?? await num('energy_full')
    const design = await num('charge_full_design') ?? await num('energy_full_design')
    if (full !== undefined && design !== undefined && design > 0) out.wear_pct = Math.max(0, Math.round(100 - 100 * full / design))
    const cycles = await num('cycle_count')
    if (cycles !== undefined && cycles >= 0) out.cycles = Math.round(cycles)
    return out
  }
  return undefined
}

/** Total and free bytes of the file system holding path. */
export async function readDisk (path: string): Promise<{ total_bytes: number, free_bytes: number } | undefined> {
  try {
    const s = await statfs(path)
    return { total_bytes: Number(s.blocks) * Number(s.bsize), free_bytes: Number(s.bavail) * Number(s.bsize) }
  } catch {
    return undefined
  }
}

/** One sample of the window [from, to) (ms), with only the fields switched on. */
export async function takeSample (src: SampleSources, from: number, to: number): Promise<StatisticsSample> {
  const f = src.fields
  const sample: StatisticsSample = { v: 1, sampled_at: to, window: { from, to } }
  if (f.school && src.school !== null) sample.school = src.school
  if (f.serial && src.serial !== null) sample.serial = src.serial
  if (f.build && src.installRoot !== null) {
    const cid = await currentVersion(expandHome(src.installRoot)).catch(() => undefined)
    if (cid !== undefined) sample.build = cid.toString()
  }
  if (f.activities || f.journal) {
    const j = await readJournal(expandHome(src.journal), from, to)
    if (j !== undefined) {
      if (f.journal) sample.journal = { entries: j.entries, bytes: j.bytes, new_entries: j.new_entries }
      if (f.activities) sample.activities = j.activities
    }
  }
  if (f.disk) {
    const d = await readDisk(expandHome(src.journal)) ?? await readDisk('/')
    if (d !== undefined) sample.disk = d
  }
  if (f.battery) {
    const b = await readBattery(src.powerSupply)
    if (b !== undefined) sample.battery = b
  }
  return sample
}

export interface SamplerInit extends SampleSources {
  intervalS: number
  enqueue: (kind: ItemKind, body: Uint8Array) => unknown
}

export class StatisticsSampler implements MeshComponent {
  readonly name = 'statistics'
  private readonly c: MeshComponents
  private readonly log: Logger
  private readonly init: SamplerInit
  private timer: NodeJS.Timeout | undefined
  private samples = 0
  private last: number | undefined

  constructor (components: MeshComponents, init: SamplerInit) {
    this.c = components
    this.log = components.logger.child('statistics')
    this.init = init
  }

  async start (): Promise<void> {
    try {
      const state = JSON.parse(await readFile(join(this.c.dataDir, STATE_FILE), 'utf8')) as { last?: unknown }
      if (typeof state.last === 'number' && Number.isSafeInteger(state.last)) this.last = state.last
    } catch {
      // first start: the first window is one interval long
    }
    this.schedule()
  }

  private schedule (): void {
    this.timer = setTimeout(() => { void this.sample().finally(() => { this.schedule() }) }, this.init.intervalS * 1000)
    this.timer.unref()
  }

  stop (): void {
    clearTimeout(this.timer)
  }

  status (): StatusPart {
    return { extra: { samples: this.samples, last_window_end: this.last ?? null } }
  }

  /** Takes one sample now and enqueues it; never throws (a failed sample is logged, its window taken by the next). */
  async sample (now = Date.now()): Promise<StatisticsSample | undefined> {
    // a clock set back: start again from now rather than sample a negative window
    const from = this.last !== undefined && this.last <= now ? this.last : now - this.init.intervalS * 1000
    try {
      const sample = await takeSample(this.init, from, now)
      this.init.enqueue('statistics', encodeReport(sample))
      this.last = now
      this.samples++
      const path = join(this.c.dataDir, STATE_FILE)
      await writeFile(path + '.tmp', JSON.stringify({ last: now }))
      await rename(path + '.tmp', path)
      return sample
    } catch (err) {
      this.log.warn('statistics sample failed', { error: err })
      return undefined
    }
  }
}

export function statisticsSampler (init: SamplerInit): (components: MeshComponents) => StatisticsSampler {
  return components => new StatisticsSampler(components, init)
}
