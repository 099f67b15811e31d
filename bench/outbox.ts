/**
 * `npm run bench -- outbox`: why the outbox is SQLite. Items appended and
 * acknowledged (deleted after a receipt) per second, every commit durable
 * (fsync), at 1, 32 and 256 items per commit:
 *
 *   (a) the outbox itself (src/store/outbox.ts: node:sqlite, WAL,
 *       synchronous=FULL): accept() a batch, forget() it;
 *   (b) the reference: an append-only log, each batch one write() and one
 *       fdatasync(), acknowledgements a second log the same way; no index,
 *       no dedup, no compaction (what a log-based outbox would still need).
 *
 * Options: --items=N per case (20 000; 2 000 at one item per commit), --body=BYTES (200).
 */
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Outbox } from '../src/store/outbox.js'
import type { Item } from '../src/core/relay/index.js'
import { WORK_DIR, formatTable, log, type BenchContext, type BenchOutput } from './util.js'

export const description = 'the outbox (node:sqlite) beside an fsync\'d append-only log: items/s appended and acknowledged'

export async function run (ctx: BenchContext): Promise<BenchOutput> {
  const body = Number(ctx.options.get('body') ?? 200)
  const many = Number(ctx.options.get('items') ?? 20_000)
  const dir = join(WORK_DIR, 'outbox')
  const rows: string[][] = []
  const results: unknown[] = []
  for (const batch of [1, 32, 256]) {
    const n = batch === 1 ? Math.ceil(many / 10) : many
    await rm(dir, { recursive: true, force: true })
    await mkdir(dir, { recursive: true })
    const items: Item[] = Array.from({ length: n }, (_, i) => ({ origin: '12D3KooWBenchOrigin', counter: i + 1, kind: 'statistics', created: i, body: new Uint8Array(body).fill(i & 0xff) }))
    const o = Outbox.open(dir)
    let t = performance.now()
    for (let i = 0; i < n; i += batch) o.accept(items.slice(i, i + batch))
    const append = n / ((performance.now() - t) / 1000)
    t = performance.now()
    for (let i = 0; i < n; i += batch) o.forget([{ origin: '12D3KooWBenchOrigin', contiguous: Math.min(n, i + batch), above: [] }])
    const ack = n / ((performance.now() - t) / 1000)
    o.close()
    const record = Buffer.alloc(body + 40, 1)
    const fd = openSync(join(dir, 'log'), 'a')
    t = performance.now()
    for (let i = 0; i < n; i += batch) { writeSync(fd, Buffer.concat(Array<Buffer>(batch).fill(record))); fdatasyncSync(fd) }
    const logAppend = n / ((performance.now() - t) / 1000)
    const afd = openSync(join(dir, 'acks'), 'a')
    t = performance.now()
    for (let i = 0; i < n; i += batch) { writeSync(afd, Buffer.alloc(16)); fdatasyncSync(afd) }
    const logAck = n / ((performance.now() - t) / 1000)
    closeSync(fd)
    closeSync(afd)
    log(`batch ${batch}: outbox ${Math.round(append)}/${Math.round(ack)}, log ${Math.round(logAppend)}/${Math.round(logAck)} items/s`)
    const f = (x: number): string => Math.round(x).toLocaleString('en')
    rows.push([String(batch), f(append), f(ack), f(logAppend), f(logAck)])
    results.push({ batch, items: n, outbox: { append, ack }, log: { append: logAppend, ack: logAck } })
  }
  await rm(dir, { recursive: true, force: true })
  return {
    tables: [formatTable(['items per commit', 'outbox append/s', 'outbox ack/s', 'log append/s', 'log ack/s'], rows)],
    results: { body, cases: results }
  }
}
