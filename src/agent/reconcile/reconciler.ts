// The reconciler: each laptop converges by itself on what the advisories in
// force ask of it (docs/deployment.md, "What a laptop then does").
//
// Desired state: the advisories of the snapshot in force that target this
// laptop (its school, group, model, serial, and the OS build it runs). For
// each, in priority order, every pass compares desired with current through
// the kind's handler before doing anything, so a pass after a kill (or a
// second pass) does only what is left:
//
//   in place already          clear what a killed apply left, record it (and report it, once)
//   build not complete here   wait: the block exchange is fetching it
//   failed lately             wait retry_s before trying again
//   not this laptop's wave yet, or halted by failures seen (rollout.ts)
//                             wait
//   else                      check the build against its signed size and
//                             kind, note the step in the journal, apply,
//                             record the outcome, enqueue an install report
//                             in the outbox, sign and spread the result
//
// Passes run one at a time: on start, on a new snapshot, on a complete
// build, on install results from the mesh, at a wave's start time, and every
// interval_s.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { CID } from '../../content/cid.ts'
import { currentVersion } from '../../content/apply.ts'
import { buildCids, readRecord } from '../../content/build.ts'
import { rolloutDecision, rolloutPosition } from '../../core/advisory/index.ts'
import type { AdvisoryDriver } from '../../net/advisory/index.ts'
import { ApiError, type MeshComponent, type MeshComponents, type StatusPart } from '../../net/component.ts'
import type { Logger } from '../../net/logger.ts'
import type { RelayDriver } from '../../net/relay/index.ts'
import { encodeReport } from '../../store/reports.ts'
import { PRIORITIES, advisoriesFor, type Advisory, type AdvisoryKind, type SnapshotDoc } from '../../trust/index.ts'
import { activityHandler } from './activity.ts'
import { configHandler } from './config.ts'
import { contentHandler } from './content.ts'
import type { DeploySettings, HandlerContext, KindHandler } from './handler.ts'
import { DeployJournal, RECENT_REPORTS, type DeployState, type InstallOutcome } from './journal.ts'
import { osHandler } from './os.ts'

export interface ReconcilerInit {
  settings: DeploySettings
  /** A pass at least this often, ms. */
  intervalMs: number
  /** After a failed apply, the next attempt waits this long, ms. */
  retryMs: number
  /** The school named in install reports. */
  school?: string
  /** The advisory driver (undefined: advisories off, nothing to reconcile). */
  advisory: () => AdvisoryDriver | undefined
  /** The relay driver whose outbox takes install reports. */
  relay: () => RelayDriver | undefined
}

export type AdvisoryPhase = 'installed' | 'fetching' | 'waiting' | 'halted' | 'applying' | 'failed' | 'superseded'

/** One advisory as GET /api/v1/deploy shows it. */
export interface AdvisoryView {
  name: string
  kind: AdvisoryKind
  build: string
  phase: AdvisoryPhase
  reason: string
  wave: number | null
  last: InstallOutcome | null
}

export class Reconciler implements MeshComponent {
  readonly name = 'deploy'
  private readonly c: MeshComponents
  private readonly init: ReconcilerInit
  private readonly log: Logger
  private readonly journal: DeployJournal
  private readonly handlers: Record<AdvisoryKind, KindHandler>
  private readonly content: ReturnType<typeof contentHandler>
  private state: DeployState = { installs: {}, reports: [] }
  private view: AdvisoryView[] = []
  private running: Promise<void> | undefined
  private again = false
  private stopped = false
  private timer: NodeJS.Timeout | undefined
  private wake: NodeJS.Timeout | undefined
  private readonly unsubscribe: Array<() => void> = []
  private lastPass: number | null = null
  /** A step a kill interrupted: its journal entry stays until a whole pass has redone (or found done) what it was doing. */
  private interrupted = false

  constructor (components: MeshComponents, init: ReconcilerInit) {
    this.c = components
    this.init = init
    this.log = components.logger.child('deploy')
    this.journal = new DeployJournal(components.dataDir)
    const ctx: HandlerContext = { repo: components.repo, dataDir: components.dataDir, settings: init.settings, log: this.log }
    this.content = contentHandler(ctx)
    this.handlers = { os: osHandler(ctx), activity: activityHandler(ctx), content: this.content, config: configHandler(ctx) }
    components.api.add('GET', '/deploy', () => ({ body: this.summary() }))
    components.api.add('POST', '/deploy/reconcile', async () => {
      if (this.stopped) throw new ApiError(503, 'the agent is stopping')
      await this.pass()
      return { body: this.summary() }
    })
  }

  async start (): Promise<void> {
    this.state = await this.journal.load()
    const step = await this.journal.interrupted()
    if (step !== undefined) {
      this.log.warn('a step was interrupted: it is redone from what is in place', { ...step })
      this.interrupted = true
    }
    const { events } = this.c
    const soon = (): void => { void this.pass() }
    this.unsubscribe.push(events.on('advisory:adopted', soon), events.on('advisory:results', soon), events.on('build:added', soon))
    this.timer = setInterval(soon, this.init.intervalMs)
    this.timer.unref()
    soon()
  }

  async stop (): Promise<void> {
    this.stopped = true
    for (const u of this.unsubscribe.splice(0)) u()
    clearInterval(this.timer)
    clearTimeout(this.wake)
    await this.running
  }

  /** Runs a pass now, or right after the one running. */
  async pass (): Promise<void> {
    if (this.stopped) return
    if (this.running !== undefined) {
      this.again = true
      return await this.running
    }
    this.running = (async () => {
      do {
        this.again = false
        try {
          await this.reconcile()
        } catch (err) {
          this.log.error('reconcile pass failed', { error: err })
        }
      } while (this.again && !this.stopped)
    })().finally(() => { this.running = undefined })
    return await this.running
  }

  private async osCurrent (): Promise<CID | undefined> {
    try { return await currentVersion(this.init.settings.osRoot) } catch { return undefined }
  }

  private async reconcile (): Promise<void> {
    const adv = this.init.advisory()
    const doc = adv?.snapshotInForce()
    this.lastPass = Date.now()
    if (adv === undefined || doc === undefined) { this.view = []; return }
    const current = await this.osCurrent()
    // the installed OS counts as advised while it is current, even once the advisory's "from these builds" no longer matches it
    const device = { ...adv.device, current: current !== undefined ? [current] : [] }
    const rank = (a: Advisory): number => PRIORITIES.indexOf(a.priority)
    const mine = advisoriesFor(doc, device).mine.map((a, i) => ({ a, i })).sort((x, y) => rank(y.a) - rank(x.a) || x.i - y.i).map(x => x.a)
    const view: AdvisoryView[] = []
    let osTaken: string | undefined
    for (const a of mine) {
      if (this.stopped) return
      if (a.kind === 'os') {
        if (osTaken !== undefined) { view.push(this.show(a, 'superseded', `one OS build at a time: ${osTaken} comes first`, null)); continue }
        osTaken = a.name
      }
      view.push(await this.step(a, doc, adv))
    }
    // the interrupted step's journal entry goes before the view says the pass's outcome: whoever reads `installed`
    // (GET /deploy) finds no step left in progress
    if (this.interrupted && !this.stopped) {
      this.interrupted = false
      await this.journal.end()
    }
    this.view = view
    const unpinned = this.content.unpinAllBut(new Set(mine.filter(a => a.kind === 'content').map(a => a.build.toString())))
    for (const u of unpinned) this.log.info('content no longer advised: unpinned', { build: u })
  }

  private show (a: Advisory, phase: AdvisoryPhase, reason: string, wave: number | null): AdvisoryView {
    const last = this.state.installs[a.name]
    return { name: a.name, kind: a.kind, build: a.build.toString(), phase, reason, wave, last: last?.build === a.build.toString() ? last : null }
  }

  private async step (a: Advisory, doc: SnapshotDoc, adv: AdvisoryDriver): Promise<AdvisoryView> {
    const h = this.handlers[a.kind]
    const cid = a.build.toString()
    const last = this.state.installs[a.name]
    const mineLast = last?.build === cid ? last : undefined
    const waves = a.rollout?.waves.length ?? 0
    if (await h.installed(a)) {
      // applied by an earlier run whose outcome was not recorded (killed), or by hand: what the run left is
      // cleared first (a kill during the clearing leaves it unrecorded, so it is cleared again), then recorded and reported once
      if (mineLast?.ok !== true) {
        await h.tidy?.(a)
        await this.finish(a, doc, { ok: true, detail: 'in place', attempt: (mineLast?.attempt ?? 0) + 1 })
      }
      return this.show(a, 'installed', this.state.installs[a.name]?.detail ?? 'in place', null)
    }
    if (!existsSync(join(this.c.repo.dir, 'builds', cid))) return this.show(a, 'fetching', 'the block exchange is fetching the build', null)
    if (mineLast !== undefined && !mineLast.ok && Date.now() < mineLast.installed_at + this.init.retryMs) {
      return this.show(a, 'failed', `${mineLast.error ?? 'failed'}; next attempt after ${new Date(mineLast.installed_at + this.init.retryMs).toISOString()}`, mineLast.wave ?? null)
    }
    const self = this.c.node.peerId.toString()
    const plan = a.rollout === undefined ? undefined : { waves: a.rollout.waves, ...(a.rollout.max_failed_percent !== undefined ? { maxFailedPercent: a.rollout.max_failed_percent } : {}) }
    const decision = rolloutDecision(plan, rolloutPosition(self, cid), doc.issued, Date.now(), adv.tally(a.build))
    const wave = waves > 0 && decision.wave !== undefined ? decision.wave + 1 : null
    if (!decision.go) {
      if (decision.until !== undefined) this.wakeAt(decision.until)
      return this.show(a, decision.halted === true ? 'halted' : 'waiting', decision.reason, wave)
    }
    const attempt = (mineLast?.attempt ?? 0) + 1
    const refused = await this.check(a)
    if (refused !== undefined) {
      await this.finish(a, doc, { ok: false, error: refused, attempt, ...(wave !== null ? { wave } : {}) })
      return this.show(a, 'failed', refused, wave)
    }
    this.log.info('applying an advised build', { name: a.name, kind: a.kind, build: cid, attempt, reason: decision.reason })
    await this.journal.begin({ advisory: a.name, build: cid, kind: a.kind, started: Date.now(), attempt })
    let outcome: { ok: boolean, detail?: string, error?: string }
    try {
      outcome = { ok: true, detail: await h.apply(a) }
    } catch (err) {
      outcome = { ok: false, error: (err as Error).message }
    }
    await this.finish(a, doc, { ...outcome, attempt, ...(wave !== null ? { wave } : {}) })
    await this.journal.end()
    return this.show(a, outcome.ok ? 'installed' : 'failed', outcome.detail ?? outcome.error ?? '', wave)
  }

  /** Never install what is not what was signed: the whole build present, within its signed size, of the advised kind. */
  private async check (a: Advisory): Promise<string | undefined> {
    const store = this.c.repo.store
    const { present, missing } = await buildCids(store, a.build)
    if (missing.length > 0) return `${missing.length} block(s) of the build are missing`
    let size = 0
    for (const c of present) size += await store.size(c) ?? 0
    if (size > a.size) return `the build takes ${size} bytes, more than the ${a.size} its advisory signs: not installed`
    const record = await readRecord(store, a.build)
    const fits = a.kind === 'config' ? record.kind === 'content' : record.kind === a.kind
    if (!fits) return `the build is a ${record.kind} build, the advisory says ${a.kind}: not installed`
    return undefined
  }

  private wakeAt (at: number): void {
    const ms = Math.max(0, at - Date.now()) + 50
    if (ms > this.init.intervalMs) return // the periodic pass gets there first
    clearTimeout(this.wake)
    this.wake = setTimeout(() => { void this.pass() }, ms)
    this.wake.unref()
  }

  /** Records an outcome, enqueues its install report, spreads the result. */
  private async finish (a: Advisory, doc: SnapshotDoc, o: { ok: boolean, detail?: string, error?: string, attempt: number, wave?: number }): Promise<void> {
    const outcome: InstallOutcome = {
      ...(this.init.school !== undefined ? { school: this.init.school } : {}),
      build: a.build.toString(),
      name: a.name,
      kind: a.kind,
      ok: o.ok,
      installed_at: Date.now(),
      ...(o.detail !== undefined ? { detail: o.detail } : {}),
      ...(o.error !== undefined ? { error: o.error.slice(0, 2000) } : {}),
      snapshot: doc.version,
      ...(o.wave !== undefined ? { wave: o.wave } : {}),
      attempt: o.attempt
    }
    if (o.ok) this.log.info('install report: applied', { name: a.name, build: outcome.build, detail: outcome.detail })
    else this.log.warn('install report: failed', { name: a.name, build: outcome.build, error: outcome.error })
    // the report first: a kill before the record is saved sends it twice (at least once), never not at all
    try {
      this.init.relay()?.enqueue('install-report', encodeReport(outcome), outcome.installed_at)
    } catch (err) {
      this.log.error('cannot enqueue the install report', { error: err })
    }
    this.state.installs[a.name] = outcome
    this.state.reports.unshift(outcome)
    this.state.reports.splice(RECENT_REPORTS)
    await this.journal.save(this.state)
    try {
      await this.init.advisory()?.publishResult(a.build, o.ok, outcome.installed_at)
    } catch (err) {
      this.log.warn('cannot sign the install result', { error: err })
    }
  }

  /** GET /api/v1/deploy */
  summary (): Record<string, unknown> {
    return {
      advisories: this.view,
      reports: this.state.reports.slice(0, 20),
      last_pass: this.lastPass === null ? null : new Date(this.lastPass).toISOString(),
      os_root: this.init.settings.osRoot,
      activities_dir: this.init.settings.activitiesDir
    }
  }

  status (): StatusPart {
    return { extra: { advisories: this.view.map(v => ({ name: v.name, kind: v.kind, build: v.build, phase: v.phase, reason: v.reason, wave: v.wave })), reports: this.state.reports.length } }
  }
}
