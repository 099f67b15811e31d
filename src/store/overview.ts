// What the mothership's overview shows, read from its store
// (DATA/mothership.db): the schools with last contact and backlog, builds
// installed per school, rollout progress of each advisory, and statistics
// over time. The agent's API serves these (GET /api/v1/overview/…) and
// `xo-mesh report` prints the same functions' results: nothing is computed
// twice. Only reads: the relay driver is the store's one writer, and this
// keeps its own connection (WAL: a reader never blocks it).
//
// The schema is mothership.ts's; these queries live apart so that file stays
// the writer's.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { MOTHERSHIP_FILE, MothershipStore, NO_SCHOOL, type LaptopRow, type SchoolReport } from './mothership.ts'
import { openDatabase, type Database } from './sqlite.ts'

/** One school on the overview: `xo-mesh report`'s line plus what the mothership can tell of its backlog. */
export interface SchoolOverview extends SchoolReport {
  /** Newest arrival from any of its laptops, mothership clock, ms since the epoch. */
  last_received: number | null
  /**
   * What is known to be on its way: `missing` items the laptops numbered but
   * that have not arrived (gaps below each laptop's highest counter here);
   * `reported` the sum of the outbox sizes its laptops gave in their latest
   * statistics samples (`outbox_items`), null when none gives one.
   */
  backlog: { missing: number, reported: number | null }
}

export interface OverviewReply {
  /** Mothership clock, ms since the epoch. */
  generated: number
  items: ReturnType<MothershipStore['counts']>
  schools: SchoolOverview[]
}

/** An advisory as the rollout needs it (the agent reads it from the trust state). */
export interface AdvisoryInput {
  name: string
  kind: string
  build: string
  priority: string
  /** Schools targeted; empty: every school. Other targets (models, groups, serials) are unknown to the mothership. */
  schools: string[]
  /** Other kinds of targets the advisory names, for the page to say it counts over the whole school. */
  narrowed_by: string[]
  waves: Array<{ percent: number, after_s: number }>
}

/** An advisory with its progress. */
export interface RolloutProgress extends AdvisoryInput {
  /** Known laptops in the targeted schools. */
  laptops: number
  /** Of those, laptops whose latest install report names the build. */
  installed: number
  /** Laptops that reported a failed install of the build (and have not installed it since). */
  failed: number
  /** Percent of the targeted laptops the waves allow by now (100 without waves). */
  allowed_percent: number
  /** The wave in force now (index into waves), or null without waves or before the first. */
  wave: number | null
  by_school: Array<{ school: string, laptops: number, installed: number, failed: number }>
}

export interface RolloutReply {
  snapshot: { version: number, issued: number, expires: number } | null
  advisories: RolloutProgress[]
}

export interface StatisticsReply {
  /** Width of a bucket, seconds. */
  bucket_s: number
  /** Start of the first bucket and end of the last, ms since the epoch (mothership clock). */
  from: number
  to: number
  /** One entry per bucket, oldest first. */
  buckets: Array<{
    start: number
    /** Items received, by kind. */
    statistics: number
    install_reports: number
    backup_chunks: number
    /** Distinct laptops heard from (by arrival). */
    laptops: number
    installs_ok: number
    installs_failed: number
    /** Mean of the requested sample field over the samples taken in the bucket (laptop clock), null when none has it. */
    field_mean: number | null
    field_samples: number
  }>
  /** Numeric fields seen in the latest samples (what `field` may name). */
  fields: string[]
  field: string | null
}

/** A field name a statistics sample may carry and the overview may plot. */
export const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/
/** Samples looked at to list the numeric fields. */
const FIELD_SCAN = 500
/** At most this many buckets per plot. */
export const MAX_BUCKETS = 400

export class Overview {
  private readonly store: MothershipStore
  private readonly db: Database
  private readonly clock: () => number

  private constructor (dataDir: string, clock: () => number) {
    this.store = MothershipStore.open(dataDir)
    this.db = openDatabase(join(dataDir, MOTHERSHIP_FILE))
    this.clock = clock
  }

  /** Whether dataDir holds a mothership store (the agent shows the overview only then). */
  static present (dataDir: string): boolean {
    return existsSync(join(dataDir, MOTHERSHIP_FILE))
  }

  /** Opens the store of dataDir for reading; throws when there is none. */
  static open (dataDir: string, clock: () => number = Date.now): Overview {
    if (!Overview.present(dataDir)) throw new Error(`no mothership store in ${dataDir}`)
    return new Overview(dataDir, clock)
  }

  /** The schools, `xo-mesh report`'s table and the overview's. */
  overview (): OverviewReply {
    const extra = new Map<string, { last_received: number | null, missing: number, reported: number | null }>()
    const rows = this.db.prepare(`SELECT coalesce(l.school, ?) AS school, max(l.last_received) AS last_received,
        sum(coalesce((SELECT max(i.counter) - count(*) FROM items i WHERE i.origin = l.origin), 0)) AS missing
      FROM laptops l GROUP BY coalesce(l.school, ?)`).all(NO_SCHOOL, NO_SCHOOL) as Array<{ school: string, last_received: number | null, missing: number }>
    for (const r of rows) extra.set(r.school, { last_received: r.last_received, missing: r.missing, reported: null })
    // each laptop's newest sample that states its outbox
    const reported = this.db.prepare(`SELECT coalesce(l.school, ?) AS school, sum(s.n) AS n FROM laptops l JOIN (
        SELECT origin, json_extract(sample, '$.outbox_items') AS n, row_number() OVER (PARTITION BY origin ORDER BY counter DESC) AS k
        FROM statistics WHERE json_valid(sample) AND json_type(sample, '$.outbox_items') = 'integer') s ON s.origin = l.origin AND s.k = 1
      GROUP BY coalesce(l.school, ?)`).all(NO_SCHOOL, NO_SCHOOL) as Array<{ school: string, n: number }>
    for (const r of reported) {
      const e = extra.get(r.school)
      if (e !== undefined) e.reported = r.n
    }
    return {
      generated: this.clock(),
      items: this.store.counts(),
      schools: this.store.schools().map(s => {
        const e = extra.get(s.school)
        return { ...s, last_received: e?.last_received ?? null, backlog: { missing: e?.missing ?? 0, reported: e?.reported ?? null } }
      })
    }
  }

  /** The laptops of one school (NO_SCHOOL for those that named none). */
  laptops (school: string): LaptopRow[] {
    return this.store.laptops(school)
  }

  /**
   * Progress of each advisory: of the laptops known in its target schools,
   * how many run its build, how many failed to install it, and what share
   * the rollout's waves allow by now (`issued`: when the snapshot was signed).
   */
  rollout (advisories: AdvisoryInput[], issued: number | null): RolloutProgress[] {
    const perSchool = this.db.prepare(`SELECT coalesce(school, ?) AS school, count(*) AS laptops,
        sum(CASE WHEN build = ? THEN 1 ELSE 0 END) AS installed,
        sum(CASE WHEN build IS NOT ? AND EXISTS (SELECT 1 FROM installs i WHERE i.origin = laptops.origin AND i.build = ? AND i.ok = 0) THEN 1 ELSE 0 END) AS failed
      FROM laptops GROUP BY coalesce(school, ?) ORDER BY (school IS NULL), school`)
    const now = this.clock()
    return advisories.map(a => {
      const rows = perSchool.all(NO_SCHOOL, a.build, a.build, a.build, NO_SCHOOL) as Array<{ school: string, laptops: number, installed: number, failed: number }>
      const by = rows.filter(r => a.schools.length === 0 || a.schools.includes(r.school))
      let wave: number | null = null
      let allowed = a.waves.length === 0 ? 100 : 0
      if (issued !== null) {
        a.waves.forEach((w, i) => {
          if (issued + w.after_s * 1000 <= now && w.percent >= allowed) { allowed = w.percent; wave = i }
        })
      }
      const sum = (k: 'laptops' | 'installed' | 'failed'): number => by.reduce((n, r) => n + r[k], 0)
      return { ...a, laptops: sum('laptops'), installed: sum('installed'), failed: sum('failed'), allowed_percent: allowed, wave, by_school: by }
    })
  }

  /**
   * What arrived over time, in `buckets` buckets ending now (mothership
   * clock), each `bucketS` seconds wide; with `field`, the mean of that
   * numeric sample field per bucket too (by sampling time, laptop clock).
   */
  statistics (options: { bucketS: number, buckets: number, field?: string }): StatisticsReply {
    const bucketMs = Math.max(1, Math.round(options.bucketS)) * 1000
    const n = Math.min(MAX_BUCKETS, Math.max(1, Math.round(options.buckets)))
    const to = (Math.floor(this.clock() / bucketMs) + 1) * bucketMs
    const from = to - n * bucketMs
    const buckets: StatisticsReply['buckets'] = Array.from({ length: n }, (_, i) => ({
      start: from + i * bucketMs, statistics: 0, install_reports: 0, backup_chunks: 0, laptops: 0, installs_ok: 0, installs_failed: 0, field_mean: null, field_samples: 0
    }))
    const at = (t: number): StatisticsReply['buckets'][number] | undefined => buckets[Math.floor((t - from) / bucketMs)]
    const kinds = this.db.prepare(`SELECT CAST((received - ?) / ? AS INTEGER) AS b, kind, count(*) AS n FROM items
      WHERE received >= ? AND received < ? GROUP BY b, kind`).all(from, bucketMs, from, to) as Array<{ b: number, kind: number, n: number }>
    for (const r of kinds) {
      const b = buckets[r.b]
      if (b === undefined) continue
      if (r.kind === 1) b.statistics += r.n
      else if (r.kind === 2) b.install_reports += r.n
      else if (r.kind === 3) b.backup_chunks += r.n
    }
    const heard = this.db.prepare(`SELECT CAST((received - ?) / ? AS INTEGER) AS b, count(DISTINCT origin) AS o FROM items
      WHERE received >= ? AND received < ? GROUP BY b`).all(from, bucketMs, from, to) as Array<{ b: number, o: number }>
    for (const r of heard) { const b = buckets[r.b]; if (b !== undefined) b.laptops = r.o }
    const installs = this.db.prepare(`SELECT i.ok, it.received FROM installs i JOIN items it ON it.origin = i.origin AND it.counter = i.counter
      WHERE it.received >= ? AND it.received < ?`).all(from, to) as Array<{ ok: number, received: number }>
    for (const r of installs) {
      const b = at(r.received)
      if (b === undefined) continue
      if (r.ok === 1) b.installs_ok++
      else b.installs_failed++
    }
    const fields = (this.db.prepare(`SELECT DISTINCT j.key AS k FROM (SELECT sample FROM statistics ORDER BY rowid DESC LIMIT ?) s, json_each(s.sample) j
      WHERE json_valid(s.sample) AND j.type IN ('integer', 'real') ORDER BY j.key`).all(FIELD_SCAN) as Array<{ k: string }>)
      .map(r => r.k).filter(k => FIELD_NAME.test(k) && k !== 'sampled_at')
    const field = options.field !== undefined && FIELD_NAME.test(options.field) ? options.field : null
    if (field !== null) {
      const path = `$."${field}"`
      const means = this.db.prepare(`SELECT CAST((t - ?) / ? AS INTEGER) AS b, avg(v) AS m, count(*) AS n FROM (
          SELECT coalesce(s.sampled_at, i.created) AS t, json_extract(s.sample, ?) AS v FROM statistics s JOIN items i ON i.origin = s.origin AND i.counter = s.counter
          WHERE json_valid(s.sample) AND json_type(s.sample, ?) IN ('integer', 'real'))
        WHERE t >= ? AND t < ? GROUP BY b`).all(from, bucketMs, path, path, from, to) as Array<{ b: number, m: number, n: number }>
      for (const r of means) {
        const b = buckets[r.b]
        if (b !== undefined) { b.field_mean = r.m; b.field_samples = r.n }
      }
    }
    return { bucket_s: bucketMs / 1000, from, to, buckets, fields, field }
  }

  close (): void {
    this.store.close()
    if (this.db.isOpen) this.db.close()
  }
}
