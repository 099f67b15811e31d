/**
 * `npm run bench -- idle`: the resident memory of a lone agent, idle, as
 * the systemd unit runs it (the bundle of `npm run build`, rebuilt here into
 * .bench/idle/agentd.mjs, with the unit's environment), split the way
 * docs/agent.md ("Memory") reads it: the node binary's code and read-only
 * data (file-backed, shared with every node process), V8's and malloc's
 * anonymous memory, and PSS.
 *
 * Rows: an empty data directory, and one holding the 256 MiB build of
 * `npm run bench -- exchange` (its cached seed, hard-linked; the row is
 * skipped until that bench has run once). No peers, no mDNS: the exchange
 * bench reports agents connected to each other.
 *
 * Options: --idle-s=S (15: how long after "agent started" the reading is
 * taken), --rounds=N (1: each agent started N times, the median reported),
 * --node-flags='FLAGS' (V8 flags before the script, e.g. --max-opt=2).
 */
import { spawn } from 'node:child_process'
import { readFileSync, realpathSync } from 'node:fs'
import { cp, mkdir, readdir, rm } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { buildAgentd, unitEnvironment } from '../scripts/build-agentd.js'
import { BENCH_DIR, CACHE_DIR, exists, formatTable, log, median, run, type BenchContext, type BenchOutput } from './util.js'

export const description = 'resident memory of a lone idle agent (the unit\'s bundle and environment): binary, V8, malloc'

const DIR = join(BENCH_DIR, 'idle')
const BUNDLE = join(DIR, 'agentd.mjs')
/** As docs/xo-mesh.service sets them. */
const UNIT_ENV = unitEnvironment()
const SEED = join(CACHE_DIR, 'exchange-seed-256')

/** MiB of one process, read from /proc. */
interface Reading { rss: number, anon: number, file: number, pss: number, binaryCode: number, binaryData: number, mallocHeap: number }

function read (pid: number): Reading {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (re: RegExp, text: string): number => Number(re.exec(text)?.[1] ?? NaN)
  const binary = realpathSync(process.execPath)
  const r = { binaryCode: 0, binaryData: 0, mallocHeap: 0 }
  let into: keyof typeof r | undefined
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (m !== null) {
      const [, perms, path] = m
      into = path === '[heap]' ? 'mallocHeap' : path === binary ? (perms!.includes('x') ? 'binaryCode' : perms!.startsWith('r-') ? 'binaryData' : undefined) : undefined
    } else if (into !== undefined && line.startsWith('Rss:')) {
      r[into] += kib(/^Rss:\s+(\d+)/, line)
    }
  }
  const mib = (k: number): number => k / 1024
  return {
    rss: mib(kib(/VmRSS:\s+(\d+)/, status)),
    anon: mib(kib(/RssAnon:\s+(\d+)/, status)),
    file: mib(kib(/RssFile:\s+(\d+)/, status)),
    pss: mib(kib(/^Pss:\s+(\d+)/m, readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))),
    binaryCode: mib(r.binaryCode),
    binaryData: mib(r.binaryData),
    mallocHeap: mib(r.mallocHeap)
  }
}

/** Starts the bundle on dataDir, waits for "agent started" and then idleS, reads it, stops it. */
async function idleAgent (dataDir: string, idleS: number, flags: string[]): Promise<Reading> {
  const child = spawn(process.execPath, [...flags, BUNDLE, '--data', dataDir, 'agent', '--no-mdns', '--api', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, XO_MESH_NO_PROGRESS: '1', ...UNIT_ENV } })
  const exited = new Promise<void>(resolve => child.on('exit', () => { resolve() }))
  try {
    let text = ''
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`agent on ${dataDir} did not start: ${text.slice(-2000)}`)) }, 30_000)
      child.stderr.setEncoding('utf8')
      child.stderr.on('data', (d: string) => {
        text = (text + d).slice(-(1 << 16))
        if (text.includes('"agent started"')) { clearTimeout(timer); resolve() }
      })
      void exited.then(() => { clearTimeout(timer); reject(new Error(`agent on ${dataDir} exited: ${text.slice(-2000)}`)) })
    })
    await new Promise(resolve => setTimeout(resolve, idleS * 1000))
    return read(child.pid!)
  } finally {
    child.kill('SIGTERM')
    const kill = setTimeout(() => child.kill('SIGKILL'), 15_000)
    await exited
    clearTimeout(kill)
  }
}

/** A fresh copy of the exchange bench's seed: blocks hard-linked (never written), the rest copied. */
async function seedCopy (to: string): Promise<void> {
  await rm(to, { recursive: true, force: true })
  await mkdir(to, { recursive: true })
  for (const name of await readdir(SEED)) {
    if (name === 'agent.lock' || name === 'api') continue
    if (name === 'blocks') await run('cp', ['-al', join(SEED, name), join(to, name)])
    else await cp(join(SEED, name), join(to, name), { recursive: true })
  }
}

export async function run_ (ctx: BenchContext): Promise<BenchOutput> {
  const idleS = Number(ctx.options.get('idle-s') ?? 15)
  const rounds = Math.max(1, Number(ctx.options.get('rounds') ?? 1))
  const flags = (ctx.options.get('node-flags') ?? '').split(/\s+/).filter(f => f !== '')
  await mkdir(DIR, { recursive: true })
  await buildAgentd(BUNDLE)
  const cases: Array<{ name: string, prepare: (dir: string) => Promise<void> }> = [
    { name: 'empty store', prepare: async dir => { await rm(dir, { recursive: true, force: true }); await mkdir(dir, { recursive: true }) } }
  ]
  if (await exists(join(SEED, 'bench-cid'))) cases.push({ name: 'holding the 256 MiB build', prepare: seedCopy })
  else log('no cached 256 MiB build: run `npm run bench -- exchange` once for the second row')
  const load0 = loadavg()[0]!
  const results: Record<string, Reading> = {}
  for (const c of cases) {
    const readings: Reading[] = []
    for (let i = 1; i <= rounds; i++) {
      log(`${c.name}${rounds > 1 ? ` [${i}]` : ''}: idle ${idleS} s…`)
      const dir = join(DIR, 'data')
      await c.prepare(dir)
      readings.push(await idleAgent(dir, idleS, flags))
    }
    results[c.name] = Object.fromEntries(Object.keys(readings[0]!).map(k => [k, median(readings.map(r => r[k as keyof Reading]))])) as unknown as Reading
  }
  await rm(join(DIR, 'data'), { recursive: true, force: true })
  const f = (x: number): string => x.toFixed(1)
  const rows = Object.entries(results).map(([name, r]) => [name, f(r.rss), f(r.file), f(r.binaryCode), f(r.binaryData), f(r.anon), f(r.mallocHeap), f(r.pss)])
  const table = formatTable(['lone agent, idle ' + idleS + ' s', 'RSS', 'file', 'node code', 'node r/o data', 'anon', 'malloc heap', 'PSS'], rows, 'lrrrrrrr') +
    `\nMiB; load ${load0.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}${flags.length > 0 ? `; node flags ${flags.join(' ')}` : ''}; target < 80 MB idle`
  return { tables: [table], results: { idleS, rounds, flags, agents: results } }
}

export { run_ as run }
