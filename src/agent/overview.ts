// The mothership's overview on the agent's API. An agent whose data directory
// holds a mothership store (DATA/mothership.db: `relay.sink`, the mothership
// role) serves, besides everything an agent serves:
//
//   GET /api/v1/overview                      schools: laptops, last contact, backlog, builds installed
//   GET /api/v1/overview/schools/:school      the laptops of one school
//   GET /api/v1/overview/rollout              each advisory's progress over its target schools
//   GET /api/v1/overview/statistics           arrivals, laptops heard, installs, a sample field, per hour or day
//   GET /overview                             the page that draws them (src/agent/dashboard/overview.*)
//
// and puts the login (session.ts) before all of it. The figures are
// src/store/overview.ts's, the same functions `xo-mesh report` prints.
import { ApiError } from '../net/component.ts'
import type { Logger } from '../net/logger.ts'
import { Overview, type AdvisoryInput, type RolloutReply } from '../store/overview.ts'
import { loadState } from '../trust/index.ts'
import type { ApiServer } from './api.ts'
import { overviewPages } from './pages.ts'
import { SessionGuard } from './session.ts'

export interface MothershipPagesInit {
  dataDir: string
  api: ApiServer
  logger: Logger
}

const BUCKETS: Record<string, number> = { hour: 3600, day: 86_400 }

/** The advisories of the snapshot this agent holds (DATA/trust/state.cbor, verified when it was saved). */
async function heldAdvisories (dataDir: string): Promise<{ snapshot: RolloutReply['snapshot'], advisories: AdvisoryInput[] }> {
  const state = await loadState(dataDir)
  const snap = state?.snapshot
  if (snap === undefined) return { snapshot: null, advisories: [] }
  return {
    snapshot: { version: snap.doc.version, issued: snap.doc.issued, expires: snap.doc.expires },
    advisories: snap.doc.advisories.map(a => ({
      name: a.name,
      kind: a.kind,
      build: a.build.toString(),
      priority: a.priority,
      schools: a.targets.schools ?? [],
      narrowed_by: (['groups', 'models', 'serials', 'builds'] as const).filter(k => (a.targets[k]?.length ?? 0) > 0),
      waves: a.rollout?.waves ?? []
    }))
  }
}

/**
 * Adds the overview's routes, pages and login to the API when dataDir holds
 * a mothership store; returns what to undo at stop, or undefined (not a
 * mothership: nothing added).
 */
export async function addMothershipPages (init: MothershipPagesInit): Promise<(() => Promise<void>) | undefined> {
  if (!Overview.present(init.dataDir)) return undefined
  const overview = Overview.open(init.dataDir)
  const guard = new SessionGuard({ dataDir: init.dataDir, logger: init.logger })
  await guard.start()
  const { api } = init
  api.setGuard(guard)
  api.addPages(overviewPages())
  api.add('GET', '/overview', () => ({ body: overview.overview() }))
  api.add('GET', '/overview/schools/:school', req => ({ body: { school: req.params.school, laptops: overview.laptops(req.params.school!) } }))
  api.add('GET', '/overview/rollout', async () => {
    let held: Awaited<ReturnType<typeof heldAdvisories>>
    try {
      held = await heldAdvisories(init.dataDir)
    } catch (err) {
      throw new ApiError(500, `cannot read the advisories held here: ${(err as Error).message}`)
    }
    const reply: RolloutReply = { snapshot: held.snapshot, advisories: overview.rollout(held.advisories, held.snapshot?.issued ?? null) }
    return { body: reply }
  })
  api.add('GET', '/overview/statistics', req => {
    const bucket = req.query.get('bucket') ?? 'day'
    const bucketS = BUCKETS[bucket]
    if (bucketS === undefined) throw new ApiError(400, 'bucket is "hour" or "day"')
    const count = Number(req.query.get('buckets') ?? (bucket === 'day' ? 30 : 48))
    if (!Number.isSafeInteger(count) || count < 1 || count > 400) throw new ApiError(400, 'buckets is 1 to 400')
    const field = req.query.get('field') ?? undefined
    return { body: overview.statistics({ bucketS, buckets: count, ...(field !== undefined && field !== '' ? { field } : {}) }) }
  })
  init.logger.child('overview').info('serving the mothership overview (login required)', { data: init.dataDir })
  return async () => {
    await guard.stop()
    overview.close()
  }
}
