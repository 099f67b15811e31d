// The lease service's routes on the agent's local API (under /api/v1):
//
//   GET  /lease             this laptop's lease: state, valid until, from whom
//   GET  /leases            the leases held here (a school server's batch)
//   POST /leases {path}     take the leases of a bundle or lease file on this
//                           machine (a stick): 200 {accepted, refused}
import { isAbsolute } from 'node:path'
import { ApiError, type ApiRoutes } from '../component.ts'
import type { LeaseDriver } from './driver.ts'

export function addLeaseRoutes (api: ApiRoutes, driver: LeaseDriver): void {
  api.add('GET', '/lease', () => ({ body: driver.summary() }))
  api.add('GET', '/leases', () => ({ body: { leases: driver.heldLeases() } }))
  api.add('POST', '/leases', async req => {
    const path = (req.body as { path?: unknown } | undefined)?.path
    if (typeof path !== 'string' || !isAbsolute(path)) throw new ApiError(400, 'send {"path": "/absolute/path/of/leases.car"}')
    let r
    try {
      r = await driver.load(path)
    } catch (err) {
      throw new ApiError(400, `cannot read ${path}: ${(err as Error).message}`)
    }
    return { body: { accepted: r.accepted.map(l => ({ serial: l.doc.serial, expires: new Date(l.doc.expires).toISOString() })), refused: r.refused } }
  })
}
