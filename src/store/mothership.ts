// The mothership's store (DATA/mothership.db): the sink of the upstream relay.
// Every item received is kept once, keyed by (origin, counter); statistics
// samples and install reports are also unpacked into tables per laptop and
// school, which `xo-mesh report` reads. The schema is docs/upstream.md's;
// it uses only SQL that PostgreSQL also takes (see the note there).
//
// accept() has the outbox's contract (a hop and the sink are the same to the
// relay core): in one durable transaction, store what is new, drop what is
// held, and return the custody for the receipt. An item arriving under a
// held (origin, counter) with other bytes is not a duplicate but a clash, two
// agents with one identity (a cloned image): it is recorded in `conflicts`.
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { isValidOrigin } from '../core/relay/origin.ts'
import type { Custody, Item, ItemKind } from '../core/relay/types.ts'
import type { AcceptResult } from './outbox.ts'
import { parseInstallReport, parseStatisticsSample } from './reports.ts'
import { openDatabase, transaction, type Database } from './sqlite.ts'
import { REGISTRATIONS_SCHEMA, insertRegistration, parseRegistration, registeredLaptops, registrationConflicts, type RegisteredLaptop } from './registrations.ts'

export const MOTHERSHIP_FILE = 'mothership.db'

const KIND_CODE: Record<ItemKind, number> = { statistics: 1, 'install-report': 2, 'backup-chunk': 3, registration: 4 }

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS items (
  origin   TEXT    NOT NULL,            -- the laptop's peer id
  counter  BIGINT  NOT NULL,            -- per origin, from 1
  kind     INTEGER NOT NULL,            -- 1 statistics, 2 install report, 3 backup chunk, 4 registration
  created  BIGINT  NOT NULL,            -- ms since the epoch, laptop clock
  received BIGINT  NOT NULL,            -- ms since the epoch, mothership clock
  digest   BLOB    NOT NULL,            -- sha-256 of body
  body     BLOB    NOT NULL,
  PRIMARY KEY (origin, counter)
);
CREATE TABLE IF NOT EXISTS origins (
  origin     TEXT   PRIMARY KEY,
  contiguous BIGINT NOT NULL            -- every counter 1..contiguous is in items
);
CREATE TABLE IF NOT EXISTS laptops (
  origin       TEXT   PRIMARY KEY,
  school       TEXT,                    -- from its latest report or sample that names one
  first_seen   BIGINT NOT NULL,         -- received, mothership clock
  last_contact BIGINT NOT NULL,         -- created of its newest item, laptop clock
  last_received BIGINT NOT NULL,        -- received of its newest arrival, mothership clock
  build        TEXT,                    -- the build it last reported installed
  build_name   TEXT,
  build_at     BIGINT                   -- created of that report
);
CREATE INDEX IF NOT EXISTS laptops_school ON laptops (school);
CREATE TABLE IF NOT EXISTS installs (
  origin       TEXT   NOT NULL,
  counter      BIGINT NOT NULL,
  school       TEXT,
  build        TEXT   NOT NULL,
  name         TEXT,
  installed_at BIGINT,
  ok           INTEGER NOT NULL,         -- 1 applied, 0 failed
  error        TEXT,
  PRIMARY KEY (origin, counter)
);
CREATE TABLE IF NOT EXISTS statistics (
  origin     TEXT   NOT NULL,
  counter    BIGINT NOT NULL,
  school     TEXT,
  sampled_at BIGINT,
  sample     TEXT   NOT NULL,           -- the sample as JSON
  PRIMARY KEY (origin, counter)
);
CREATE TABLE IF NOT EXISTS trips (
  school_server TEXT   NOT NULL,            -- peer id of the school server that wrote the stick
  trip          TEXT   NOT NULL,            -- the trip's id (its manifest)
  school        TEXT,                       -- the school it names
  received      BIGINT NOT NULL,            -- mothership clock, the last time this trip was read
  items         BIGINT NOT NULL,            -- items the stick carried
  added         BIGINT NOT NULL,            -- of which new (the rest: held already)
  PRIMARY KEY (school_server, trip)
);
CREATE TABLE IF NOT EXISTS conflicts (
  origin   TEXT   NOT NULL,
  counter  BIGINT NOT NULL,
  digest   BLOB   NOT NULL,             -- of the second, different body
  received BIGINT NOT NULL
);
`

export interface MothershipInit {
  /** The mothership's clock, ms since the epoch (tests fix it). */
  clock?: () => number
}

/** One school's line of `xo-mesh report`. */
export interface SchoolReport {
  school: string
  laptops: number
  /** Newest last_contact of its laptops (laptop clocks), ms since the epoch, or null. */
  last_contact: number | null
  /** Builds currently installed (each laptop's latest report), with how many laptops run each. */
  builds: Array<{ build: string, name: string | null, laptops: number }>
  /** Laptops that never reported an install. */
  unreported: number
  /** Failed installs reported. */
  failed_installs: number
}

export interface LaptopRow {
  origin: string
  school: string | null
  build: string | null
  build_name: string | null
  last_contact: number
  last_received: number
  items: number
}

/** The label for laptops that have not said which school they are in. */
export const NO_SCHOOL = '(no school)'

export class MothershipStore {
  readonly path: string
  private readonly db: Database
  private readonly clock: () => number
  private readonly insertItem
  private readonly selectDigest
  private readonly insertConflict
  private readonly selectContiguous
  private readonly upsertContiguous
  private readonly hasCounter
  private readonly upsertLaptop
  private readonly setSchool
  private readonly setBuild
  private readonly insertInstall
  private readonly insertSample

  private constructor (path: string, init: MothershipInit) {
    this.path = path
    this.clock = init.clock ?? Date.now
    this.db = openDatabase(path)
    this.db.exec(SCHEMA)
    this.db.exec(REGISTRATIONS_SCHEMA)
    this.insertItem = this.db.prepare('INSERT INTO items (origin, counter, kind, created, received, digest, body) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING')
    this.selectDigest = this.db.prepare('SELECT digest FROM items WHERE origin = ? AND counter = ?')
    this.insertConflict = this.db.prepare('INSERT INTO conflicts (origin, counter, digest, received) VALUES (?, ?, ?, ?)')
    this.selectContiguous = this.db.prepare('SELECT contiguous FROM origins WHERE origin = ?')
    this.upsertContiguous = this.db.prepare('INSERT INTO origins (origin, contiguous) VALUES (?, ?) ON CONFLICT (origin) DO UPDATE SET contiguous = excluded.contiguous')
    this.hasCounter = this.db.prepare('SELECT 1 AS x FROM items WHERE origin = ? AND counter = ?')
    this.upsertLaptop = this.db.prepare(`INSERT INTO laptops (origin, first_seen, last_contact, last_received) VALUES (?, ?, ?, ?)
      ON CONFLICT (origin) DO UPDATE SET last_contact = max(laptops.last_contact, excluded.last_contact), last_received = excluded.last_received`)
    this.setSchool = this.db.prepare('UPDATE laptops SET school = ? WHERE origin = ?')
    this.setBuild = this.db.prepare('UPDATE laptops SET build = ?, build_name = ?, build_at = ? WHERE origin = ? AND (build_at IS NULL OR build_at <= ?)')
    this.insertInstall = this.db.prepare('INSERT INTO installs (origin, counter, school, build, name, installed_at, ok, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING')
    this.insertSample = this.db.prepare('INSERT INTO statistics (origin, counter, school, sampled_at, sample) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING')
  }

  /** Opens (creating) the mothership store of a data directory. */
  static open (dataDir: string, init: MothershipInit = {}): MothershipStore {
    return new MothershipStore(join(dataDir, MOTHERSHIP_FILE), init)
  }

  /**
   * Takes custody of items: stores, in one durable transaction, those it does
   * not hold, unpacks reports and samples, and returns the receipt's custody
   * per origin offered. Never refuses (the mothership's room is the disk; a
   * full disk throws, and the driver answers that as a refusal).
   */
  accept (items: Item[]): AcceptResult {
    return this.acceptMany([items])[0]!
  }

  /**
   * accept() for several offers in one transaction, so one fsync covers them
   * all (group commit: the relay driver gathers the offers that arrive
   * together). Results in order.
   */
  acceptMany (batches: Item[][]): AcceptResult[] {
    const now = this.clock()
    return transaction(this.db, () => batches.map(items => this.acceptInTransaction(items, now)))
  }

  private acceptInTransaction (items: Item[], now: number): AcceptResult {
    let added = 0
    const offered = new Map<string, number[]>()
    const custody: Custody[] = []
    {
      for (const it of items) {
        if (!isValidOrigin(it.origin)) continue
        const c = offered.get(it.origin)
        if (c === undefined) offered.set(it.origin, [it.counter])
        else c.push(it.counter)
        const digest = createHash('sha256').update(it.body).digest()
        const r = this.insertItem.run(it.origin, it.counter, KIND_CODE[it.kind], it.created, now, digest, it.body)
        if (Number(r.changes) === 0) {
          const had = this.selectDigest.get(it.origin, it.counter) as { digest: Uint8Array } | undefined
          if (had !== undefined && Buffer.compare(had.digest, digest) !== 0) this.insertConflict.run(it.origin, it.counter, digest, now)
          continue
        }
        added++
        this.unpack(it, now)
      }
      for (const [origin, counters] of offered) {
        let contiguous = (this.selectContiguous.get(origin) as { contiguous: number } | undefined)?.contiguous ?? 0
        const start = contiguous
        while (this.hasCounter.get(origin, contiguous + 1) !== undefined) contiguous++
        if (contiguous !== start) this.upsertContiguous.run(origin, contiguous)
        const above = [...new Set(counters)].filter(c => c > contiguous).sort((a, b) => a - b)
        custody.push({ origin, contiguous, above })
      }
    }
    return { ok: true, custody, added, duplicates: items.length - added, left: 0 }
  }

  /** Fills the per-laptop tables from a new item. */
  private unpack (it: Item, now: number): void {
    this.upsertLaptop.run(it.origin, now, it.created, now)
    if (it.kind === 'install-report') {
      const r = parseInstallReport(it.body)
      if (r === undefined) return
      this.insertInstall.run(it.origin, it.counter, r.school ?? null, r.build, r.name ?? null, r.installed_at ?? null, r.ok === false ? 0 : 1, r.error ?? null)
      if (r.school !== undefined) this.setSchool.run(r.school, it.origin)
      if (r.ok !== false) this.setBuild.run(r.build, r.name ?? null, it.created, it.origin, it.created)
    } else if (it.kind === 'statistics') {
      const s = parseStatisticsSample(it.body)
      if (s === undefined) return
      this.insertSample.run(it.origin, it.counter, s.school ?? null, s.sampled_at ?? null, JSON.stringify(s))
      if (s.school !== undefined) this.setSchool.run(s.school, it.origin)
    } else if (it.kind === 'registration') {
      const r = parseRegistration(it.body)
      if (r !== undefined) insertRegistration(this.db, it.origin, it.counter, r)
    }
  }

  /**
   * What the store holds of origin, as a receipt states it: every counter up
   * to the contiguous run's end, and those of `counters` above it that are
   * held (a USB trip's receipt covers everything the stick carried).
   */
  held (origin: string, counters: Iterable<number>): Custody {
    const contiguous = (this.selectContiguous.get(origin) as { contiguous: number } | undefined)?.contiguous ?? 0
    const above = [...new Set(counters)].filter(c => c > contiguous && this.hasCounter.get(origin, c) !== undefined).sort((a, b) => a - b)
    return { origin, contiguous, above }
  }

  /**
   * Records a USB trip read (again: the row is updated), and gives the
   * laptops it carried that never named a school the school the stick names.
   */
  noteTrip (schoolServer: string, trip: string, school: string | null, origins: string[], items: number, added: number, now: number): void {
    transaction(this.db, () => {
      this.db.prepare(`INSERT INTO trips (school_server, trip, school, received, items, added) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (school_server, trip) DO UPDATE SET received = excluded.received, added = trips.added + excluded.added`).run(schoolServer, trip, school, now, items, added)
      if (school !== null) {
        const set = this.db.prepare('UPDATE laptops SET school = ? WHERE origin = ? AND school IS NULL')
        for (const o of origins) set.run(school, o)
      }
    })
  }

  /** Every laptop's latest registration: serial, owner nickname and key, school (docs/upstream.md). */
  registrations (): RegisteredLaptop[] {
    return registeredLaptops(this.db)
  }

  /** Cloned identities the school servers refused. */
  clones (): ReturnType<typeof registrationConflicts> {
    return registrationConflicts(this.db)
  }

  /** The counter after the highest held of origin (the mothership numbering its own items). */
  nextCounter (origin: string): number {
    return (this.db.prepare('SELECT coalesce(max(counter), 0) AS n FROM items WHERE origin = ?').get(origin) as { n: number }).n + 1
  }

  /** Items held, in all and per kind; origins; conflicts. */
  counts (): { items: number, origins: number, conflicts: number, byKind: Record<ItemKind, number> } {
    const byKind: Record<ItemKind, number> = { statistics: 0, 'install-report': 0, 'backup-chunk': 0, registration: 0 }
    const names: Record<number, ItemKind> = { 1: 'statistics', 2: 'install-report', 3: 'backup-chunk', 4: 'registration' }
    let items = 0
    for (const r of this.db.prepare('SELECT kind, count(*) AS n FROM items GROUP BY kind').all() as Array<{ kind: number, n: number }>) {
      const k = names[r.kind]
      if (k !== undefined) byKind[k] = r.n
      items += r.n
    }
    const origins = (this.db.prepare('SELECT count(DISTINCT origin) AS n FROM items').get() as { n: number }).n
    const conflicts = (this.db.prepare('SELECT count(*) AS n FROM conflicts').get() as { n: number }).n
    return { items, origins, conflicts, byKind }
  }

  /** Per school: laptops seen, builds installed, last contact; schools by name, the unnamed last. */
  schools (): SchoolReport[] {
    const rows = this.db.prepare(`SELECT coalesce(school, ?) AS school, count(*) AS laptops, max(last_contact) AS last_contact,
        sum(CASE WHEN build IS NULL THEN 1 ELSE 0 END) AS unreported
      FROM laptops GROUP BY coalesce(school, ?) ORDER BY (school IS NULL), school`).all(NO_SCHOOL, NO_SCHOOL) as Array<{ school: string, laptops: number, last_contact: number | null, unreported: number }>
    const builds = this.db.prepare(`SELECT build, max(build_name) AS name, count(*) AS laptops FROM laptops
      WHERE coalesce(school, ?) = ? AND build IS NOT NULL GROUP BY build ORDER BY laptops DESC, build`)
    const failed = this.db.prepare('SELECT count(*) AS n FROM installs WHERE coalesce(school, ?) = ? AND ok = 0')
    return rows.map(r => ({
      school: r.school,
      laptops: r.laptops,
      last_contact: r.last_contact,
      builds: (builds.all(NO_SCHOOL, r.school) as Array<{ build: string, name: string | null, laptops: number }>).map(b => ({ build: b.build, name: b.name, laptops: b.laptops })),
      unreported: r.unreported,
      failed_installs: (failed.get(NO_SCHOOL, r.school) as { n: number }).n
    }))
  }

  /** The laptops of a school (NO_SCHOOL for those that named none). */
  laptops (school: string): LaptopRow[] {
    return this.db.prepare(`SELECT l.origin, l.school, l.build, l.build_name, l.last_contact, l.last_received,
        (SELECT count(*) FROM items i WHERE i.origin = l.origin) AS items
      FROM laptops l WHERE coalesce(l.school, ?) = ? ORDER BY l.origin`).all(NO_SCHOOL, school) as unknown as LaptopRow[]
  }

  close (): void {
    if (this.db.isOpen) this.db.close()
  }
}
