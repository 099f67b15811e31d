// The relay's routes on the agent's local API (under /api/v1):
//
//   POST /outbox {kind, report}   enqueue an install report or a statistics
//                                 sample of this agent's own (a JSON object,
//                                 at most 64 KiB); 201 {origin, counter}
//   GET  /relay                   next hop, outbox size, counters
//   POST /usb {dir}               one USB round trip on the stick at dir
//                                 (`xo-mesh usb`); 200 with what it did
import { isAbsolute } from 'node:path'
import { ApiError, type ApiRoutes } from '../component.ts'
import { OutboxFullError } from '../../store/outbox.ts'
import { encodeReport } from '../../store/reports.ts'
import type { RelayDriver } from './driver.ts'

const MAX_REPORT = 64 * 1024

export function addRelayRoutes (api: ApiRoutes, driver: RelayDriver): void {
  api.add('POST', '/outbox', req => {
    const body = req.body as { kind?: unknown, report?: unknown } | undefined
    if (body === undefined || body === null || typeof body !== 'object') throw new ApiError(400, 'send {"kind": "statistics"|"install-report", "report": {...}} as JSON')
    if (body.kind !== 'statistics' && body.kind !== 'install-report') throw new ApiError(400, 'kind must be "statistics" or "install-report"')
    if (body.report === null || typeof body.report !== 'object' || Array.isArray(body.report)) throw new ApiError(400, 'report must be a JSON object')
    if (body.kind === 'install-report' && typeof (body.report as { build?: unknown }).build !== 'string') throw new ApiError(400, 'an install report needs "build" (the build\'s CID)')
    const bytes = encodeReport(body.report as Record<string, unknown> as { build: string })
    if (bytes.length > MAX_REPORT) throw new ApiError(413, `a report may have at most ${MAX_REPORT} bytes`)
    try {
      const it = driver.enqueue(body.kind, bytes)
      return { status: 201, body: { origin: it.origin, counter: it.counter } }
    } catch (err) {
      if (err instanceof OutboxFullError) throw new ApiError(507, err.message)
      throw err
    }
  })

  api.add('GET', '/relay', () => ({ body: driver.summary() }))

  api.add('POST', '/usb', async req => {
    const dir = (req.body as { dir?: unknown } | undefined)?.dir
    if (typeof dir !== 'string' || !isAbsolute(dir)) throw new ApiError(400, 'send {"dir": "/absolute/path/of/the/stick"}')
    return { body: await driver.usbTrip(dir) }
  })
}
