/**
 * `npm run bench -- relay`: the mothership ingesting the outboxes of 1,000
 * simulated laptops over loopback (sugar-server's stress plan foresaw 1K
 * "sugaroids"), beside its ceiling in the same run:
 *
 *   (a) the ceiling: the mothership's store taking the same items in-process,
 *       offers of 256 (SQLite, WAL, synchronous=FULL), no network: one offer
 *       per commit, and eight per commit as the driver groups them;
 *   (b) the sink: a mothership agent process (relay.sink: true) and a client
 *       process (bench/relay-clients.ts) of `clients` libp2p nodes, each a
 *       school server relaying the outboxes of origins/clients laptops with
 *       the real relay core and codec: items per second from the first offer
 *       to the last receipt, the sink's CPU seconds and peak RSS (VmHWM), and
 *       a check that the store holds every item exactly once.
 *
 * Options: --origins=N (1000), --items=N per origin (100), --body=BYTES (200),
 * --clients=N (50: libp2p connections; each is ~1-2 MB in the client process).
 */
import { spawn } from 'node:child_process'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { MothershipStore } from '../src/store/mothership.js'
import { openDatabase } from '../src/store/sqlite.js'
import type { Item } from '../src/core/relay/index.js'
import { REPO_ROOT, WORK_DIR, exists, formatTable, freePort, log, procCpu, procKb, until, type BenchContext, type BenchOutput } from './util.js'

export const description = 'the mothership ingesting 1,000 laptops\' outboxes over loopback: items/s and peak RSS, beside its store alone'

const BIN = join(REPO_ROOT, 'bin', 'xo-mesh.js')
const CLIENTS = join(REPO_ROOT, 'bench', 'relay-clients.ts')
function items (origins: number, perOrigin: number, body: number): Item[] {
  const out: Item[] = []
  const pad = 'x'.repeat(Math.max(0, body - 80))
  for (let k = 1; k <= perOrigin; k++) {
    for (let o = 0; o < origins; o++) {
      out.push({ origin: `12D3KooWBenchLaptop${o}`, counter: k, kind: 'statistics', created: 1_700_000_000_000 + k, body: new TextEncoder().encode(JSON.stringify({ school: `Escuela ${o % 50}`, sampled_at: k, pad })) })
    }
  }
  return out
}

export async function run (ctx: BenchContext): Promise<BenchOutput> {
  const opt = (k: string, d: number): number => Number(ctx.options.get(k) ?? d)
  const origins = opt('origins', 1000)
  const perOrigin = opt('items', 100)
  const body = opt('body', 200)
  const clients = Math.min(origins, opt('clients', 50))
  const total = origins * perOrigin
  const work = join(WORK_DIR, 'relay')
  await rm(work, { recursive: true, force: true })

  // (a) the store alone
  const refDir = join(work, 'ref')
  await mkdir(refDir, { recursive: true })
  const all = items(origins, perOrigin, body)
  const ref = MothershipStore.open(refDir)
  const r0 = performance.now()
  for (let i = 0; i < all.length; i += 256) ref.accept(all.slice(i, i + 256))
  const refSeconds = (performance.now() - r0) / 1000
  ref.close()
  log(`store alone: ${total} items in ${refSeconds.toFixed(2)} s`)
  // (a') the same, eight offers per transaction (the driver's group commit)
  const groupDir = join(work, 'ref-group')
  await mkdir(groupDir, { recursive: true })
  const grouped = MothershipStore.open(groupDir)
  const g0 = performance.now()
  for (let i = 0; i < all.length; i += 8 * 256) {
    const offers: Item[][] = []
    for (let k = i; k < Math.min(all.length, i + 8 * 256); k += 256) offers.push(all.slice(k, k + 256))
    grouped.acceptMany(offers)
  }
  const groupSeconds = (performance.now() - g0) / 1000
  grouped.close()
  log(`store alone, grouped: ${total} items in ${groupSeconds.toFixed(2)} s`)

  // (b) the sink agent and the clients
  const sinkDir = join(work, 'sink')
  await mkdir(sinkDir, { recursive: true })
  await writeFile(join(sinkDir, 'config.yaml'), `relay:\n  sink: true\nlog:\n  level: warn\nconnections:\n  max: ${clients + 50}\n`)
  const key = await generateKeyPair('Ed25519')
  await writeFile(join(sinkDir, 'identity.key'), privateKeyToProtobuf(key), { mode: 0o600 })
  const sinkId = peerIdFromPrivateKey(key).toString()
  const port = await freePort()
  const sink = spawn(process.execPath, [BIN, '--data', sinkDir, 'agent', '--no-mdns', '--api', '127.0.0.1:0', '--listen', `/ip4/127.0.0.1/tcp/${port}`], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, NODE_OPTIONS: '--max-semi-space-size=1' }
  })
  try {
    await until('the sink agent to start', 60_000, async () => ((await exists(join(sinkDir, 'api'))) ? true : undefined), 100)
    const idleRssKb = procKb(sink.pid!, 'VmRSS')
    const cpu0 = procCpu(sink.pid!)
    let peakKb = 0
    const sampler = setInterval(() => { peakKb = Math.max(peakKb, procKb(sink.pid!, 'VmRSS')) }, 100)
    const client = spawn(process.execPath, ['--import', 'tsx', CLIENTS, `/ip4/127.0.0.1/tcp/${port}/p2p/${sinkId}`, String(clients), String(origins), String(perOrigin), String(body)], { stdio: ['ignore', 'pipe', 'inherit'] })
    const lines: Array<Record<string, number | string>> = []
    let partial = ''
    client.stdout.setEncoding('utf8')
    client.stdout.on('data', (d: string) => {
      partial += d
      const ls = partial.split('\n')
      partial = ls.pop()!
      for (const l of ls) lines.push(JSON.parse(l) as Record<string, number | string>)
    })
    const code = await new Promise<number | null>(resolve => client.on('exit', c => { resolve(c) }))
    clearInterval(sampler)
    const result = lines.find(l => l.seconds !== undefined)
    if (code !== 0 || result === undefined) throw new Error(`the clients failed: ${JSON.stringify(lines)}`)
    const sinkCpu = procCpu(sink.pid!) - cpu0
    const hwmKb = procKb(sink.pid!, 'VmHWM')
    sink.kill('SIGTERM')
    await new Promise(resolve => sink.on('exit', resolve))
    const db = openDatabase(join(sinkDir, 'mothership.db'))
    const held = db.prepare('SELECT count(*) AS n, count(DISTINCT origin) AS o FROM items').get() as { n: number, o: number }
    db.close()
    const seconds = Number(result.seconds)
    const rows = [
      ['store alone (in-process, one offer of 256 per commit)', String(total), refSeconds.toFixed(2), Math.round(total / refSeconds).toLocaleString('en'), '-', '-'],
      ['store alone (in-process, 8 offers per commit)', String(total), groupSeconds.toFixed(2), Math.round(total / groupSeconds).toLocaleString('en'), '-', '-'],
      [`sink agent, ${clients} connections over loopback`, String(total), seconds.toFixed(2), Math.round(total / seconds).toLocaleString('en'), sinkCpu.toFixed(1), `${Math.round(Math.max(peakKb, hwmKb) / 1024)} MB (idle ${Math.round(idleRssKb / 1024)} MB)`]
    ]
    const table = formatTable(['path', 'items', 'seconds', 'items/s', 'sink CPU s', 'sink peak RSS'], rows)
    const check = `${origins} origins × ${perOrigin} items of ~${body} B; the sink's store holds ${held.n} items from ${held.o} origins (${held.n === total && held.o === origins ? 'each exactly once' : 'MISMATCH'})`
    if (held.n !== total) throw new Error(check)
    return {
      tables: [table, check],
      results: { origins, perOrigin, body, clients, total, storeAlone: { seconds: refSeconds, itemsPerSecond: total / refSeconds }, storeAloneGrouped: { seconds: groupSeconds, itemsPerSecond: total / groupSeconds }, sink: { seconds, itemsPerSecond: total / seconds, cpuSeconds: sinkCpu, peakRssMB: Math.max(peakKb, hwmKb) / 1024, idleRssMB: idleRssKb / 1024, receipts: result.receipts, streamsReopened: result.reopened }, held }
    }
  } finally {
    if (sink.exitCode === null) sink.kill('SIGKILL')
  }
}
