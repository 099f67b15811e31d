// The relay's routes on the agent's local API (under /api/v1):
//
//   POST /outbox {kind, report}   enqueue an install report or a statistics
//                                 sample of this agent's own (a JSON object,
//                                 at most 64 KiB); 201 {origin, counter}
//   POST /outbox {kind: "backup-chunk", body: base64}
//                                 enqueue an (already encrypted) backup chunk
//   GET  /relay                   next hop, outbox size, counters
//   GET  /report                  on the mothership: per school, laptops seen,
//                                 builds installed, last contact (what
//                                 `xo-mesh report --json` prints); 404 elsewhere
//   GET  /report/:school          the laptops of one school
//   POST /usb {dir}               one USB round trip on the stick at dir
//                                 (`xo-mesh usb`); 200 with what it did
import { isAbsolute } from 'node:path'
import { ApiError, type ApiRoutes } from '../component.ts'
import { MAX_ITEM_BYTES, type ItemKind } from '../../core/relay/index.ts'
import { OutboxFullError } from '../../store/outbox.ts'
import { encodeReport } from '../../store/reports.ts'
import type { RelayDriver } from './driver.ts'

const MAX_REPORT = 64 * 1024

export function addRelayRoutes (api: ApiRoutes, driver: RelayDriver): void {
  const enqueue = (kind: ItemKind, bytes: Uint8Array): { status: number, body: unknown } => {
    try {
      const it = driver.enqueue(kind, bytes)
      return { status: 201, body: { origin: it.origin, counter: it.counter } }
    } catch (err) {
      if (err instanceof OutboxFullError) throw new ApiError(507, err.message)
      throw err
    }
  }

  api.add('POST', '/outbox', req => {
    const body = req.body as { kind?: unknown, report?: unknown, body?: unknown } | undefined
    if (body === undefined || body === null || typeof body !== 'object') throw new ApiError(400, 'send {"kind": "statistics"|"install-report", "report": {...}} as JSON')
    if (body.kind === 'backup-chunk') {
      // An opaque chunk, already encrypted by its producer: carried as it is.
      if (typeof body.body !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(body.body)) throw new ApiError(400, 'a backup chunk is {"kind": "backup-chunk", "body": "<base64>"}')
      const bytes = Buffer.from(body.body, 'base64')
      if (bytes.length === 0 || bytes.length > MAX_ITEM_BYTES) throw new ApiError(413, `a backup chunk has 1 to ${MAX_ITEM_BYTES} bytes`)
      return enqueue('backup-chunk', bytes)
    }
    if (body.kind !== 'statistics' && body.kind !== 'install-report') throw new ApiError(400, 'kind must be "statistics" or "install-report"')
    if (body.report === null || typeof body.report !== 'object' || Array.isArray(body.report)) throw new ApiError(400, 'report must be a JSON object')
    if (body.kind === 'install-report' && typeof (body.report as { build?: unknown }).build !== 'string') throw new ApiError(400, 'an install report needs "build" (the build\'s CID)')
    const bytes = encodeReport(body.report as Record<string, unknown> as { build: string })
    if (bytes.length > MAX_REPORT) throw new ApiError(413, `a report may have at most ${MAX_REPORT} bytes`)
    return enqueue(body.kind, bytes)
  })

  api.add('GET', '/relay', () => ({ body: driver.summary() }))

  // The mothership's report, for its page and other tools (docs/api.md): the same store `xo-mesh report` reads.
  const sink = (): NonNullable<RelayDriver['sinkStore']> => {
    if (driver.sinkStore === undefined) throw new ApiError(404, 'this agent is not the mothership (role: mothership): it keeps no report')
    return driver.sinkStore
  }
  api.add('GET', '/report', () => ({ body: { schools: sink().schools(), items: sink().counts() } }))
  api.add('GET', '/report/:school', req => ({ body: { school: req.params.school, laptops: sink().laptops(req.params.school!) } }))

  api.add('POST', '/usb', async req => {
    const dir = (req.body as { dir?: unknown } | undefined)?.dir
    if (typeof dir !== 'string' || !isAbsolute(dir)) throw new ApiError(400, 'send {"dir": "/absolute/path/of/the/stick"}')
    return { body: await driver.usbTrip(dir) }
  })
}
