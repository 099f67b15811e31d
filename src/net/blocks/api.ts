// The block exchange's routes on the agent's local API (under /api/v1):
//
//   POST /fetch {cid, priority?}   hold a build: fetch what is missing, then serve it;
//                                  remembered across restarts until complete (202)
//   GET  /builds/:cid              progress: phase, have/total bytes and leaves,
//                                  sources (bytes stored from each peer), rate
//   GET  /builds                   the same for every build held here
//
// Per-peer block counters go into GET /peers (peerInfo) and builds in progress
// into GET /status (status().builds).
import { ApiError, type ApiRoutes } from '../component.ts'
import { parseCid } from '../../content/cid.ts'
import type { Repo } from '../../content/repo.ts'
import type { BlocksDriver, BuildProgress } from './driver.ts'

/** GET /api/v1/builds */
export interface BuildsReply { builds: BuildProgress[] }

function cidParam (text: unknown): string {
  if (typeof text !== 'string' || text.trim() === '') throw new ApiError(400, 'give the build as {"cid": "<cid>"}')
  try {
    return parseCid(text).toString()
  } catch (err) {
    throw new ApiError(400, (err as Error).message)
  }
}

/** A build complete in the index but not held (cannot happen once the driver has started; kept for the gap at start). */
async function fromIndex (repo: Repo, cid: string): Promise<BuildProgress | undefined> {
  const b = (await repo.builds()).find(x => x.cid === cid)
  if (b === undefined) return undefined
  return { cid, name: b.name, phase: 'complete', complete: true, priority: 0, leaves: 0, have_leaves: 0, bytes: b.bytes, have_bytes: b.bytes, holders: 0, sources: [], rate: 0, started: null, completed: null, error: null }
}

export function addBlocksRoutes (api: ApiRoutes, driver: BlocksDriver, repo: Repo): void {
  api.add('POST', '/fetch', req => {
    const body = req.body as { cid?: unknown, priority?: unknown } | undefined
    if (body === undefined || body === null || typeof body !== 'object') throw new ApiError(400, 'send {"cid": "<cid>", "priority": <integer, optional>} as JSON')
    const cid = cidParam(body.cid)
    const priority = body.priority ?? 0
    if (!Number.isSafeInteger(priority) || Math.abs(priority as number) > 1_000_000) throw new ApiError(400, 'priority must be an integer between -1000000 and 1000000')
    driver.hold(cid, priority as number, true)
    return { status: 202, body: driver.progress(cid) }
  })

  api.add('GET', '/builds', () => ({ body: { builds: driver.progressAll() } satisfies BuildsReply }))

  api.add('GET', '/builds/:cid', async req => {
    const cid = cidParam(req.params.cid)
    const p = driver.progress(cid) ?? await fromIndex(repo, cid)
    if (p === undefined) throw new ApiError(404, `build ${cid} is neither held nor being fetched here (start with: xo-mesh fetch ${cid})`)
    return { body: p }
  })
}
