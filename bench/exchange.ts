/**
 * `npm run bench -- exchange`: the block exchange (/xo-mesh/blocks/1.0.0)
 * between agent processes on loopback, in one run, beside its references:
 *
 *   (a) the ceiling: one libp2p TCP + Noise + Yamux stream pushing the same
 *       number of bytes between two processes (bench/exchange-peer.ts);
 *   (f) the floor: the same stream carrying the build's leaves with only the
 *       store work the design asks of each block (the sender reads its file
 *       and checks its sha-256; the receiver checks it and writes it as a
 *       file of its own, temp file and rename), single-threaded, no
 *       protocol: what any verified transfer into a store of one file per
 *       block costs here, so fetch ÷ floor is the exchange's own overhead;
 *   (p) the same into a pack store instead (many blocks per file: the
 *       sender reads a MiB of blocks at once, the receiver appends each
 *       message's blocks with one writev): what the floor would be with a
 *       store that is not one file per block (not run unless asked);
 *   (b) our fetch: `POST /fetch` of a 256 MiB build (pseudo-random files) on
 *       an agent connected to one that holds it, to completion;
 *   (c) Helia 7 with bitswap `cat`-ing every file of the same UnixFS DAG
 *       (the build's tree), installed at bench time in .bench/helia (never a
 *       dependency of the project); skipped with a message when it cannot be
 *       installed;
 *   (d) a swarm: one seed and four fetchers starting together: the seed's
 *       upload ÷ build size (target ≤ 1.5), each fetcher's received ÷ size
 *       (target ≤ 1.05);
 *   and the resident memory of agents idle and busy (targets < 80 MB idle,
 *   < 150 MB serving or fetching).
 *
 * Agents run as the systemd unit runs them (docs/xo-mesh.service): the bundle
 * of src/cli/agentd.ts that `npm run build` makes (rebuilt here into
 * .bench/agentd.mjs) with the unit's environment (NODE_OPTIONS=--max-semi-space-size=1,
 * MALLOC_ARENA_MAX=2, MALLOC_MMAP_THRESHOLD_=131072); --tsx runs
 * bin/xo-mesh.js through tsx instead, --agentd src/cli/agentd.ts under node's
 * type stripping. CPU seconds come
 * from /proc/<pid>/stat, RSS from /proc/<pid>/status (sampled every 100 ms).
 * The stores are on the disk of .bench/work; --tmpfs=DIR puts the fetchers'
 * data directories (and a copy of the seed's) under DIR (e.g. /dev/shm) to
 * take the disk out of the figures.
 *
 * Options: --size=MiB (256), --swarm-size=MiB (128), --fetchers=N (4),
 * --idle-s=S (15: how long agents sit idle before their RSS is read),
 * --after-s=S (0: off; the agents' RSS S seconds after the first fetch, idle
 * again: what a laptop keeps resident once its work is done),
 * --node-flags='FLAGS' (V8 flags for the agents' node, before the script),
 * --agent-env='K=V K=V' (added to, or replacing, the unit's environment of
 * the agents, e.g. another allocator: LD_PRELOAD=… MALLOC_CONF=…),
 * --rounds=N (1: (a), (b), (c), (f) alternate N times; ratios are taken
 * within a round, the median reported: the load moves between them),
 * --only=a,f,p,b,c,d (default a,f,b,c,d), --skip-helia, --tsx, --agentd, --tmpfs=DIR,
 * --cpu-prof=DIR (each agent writes a V8 CPU profile there when it stops).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, createCipheriv } from 'node:crypto'
import { mkdir, open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { buildAgentd, unitEnvironment } from '../scripts/build-agentd.js'
import type { CID } from '../src/content/cid.js'
import { BENCH_DIR, CACHE_DIR, REPO_ROOT, WORK_DIR, exists, formatBytes, formatTable, freePort, log, median, procCpu, procKb, run, until, type BenchContext, type BenchOutput } from './util.js'

export const description = 'block exchange between agent processes: MB/s vs a bare libp2p stream and Helia bitswap, swarm overhead, RSS'

const AGENTD = join(REPO_ROOT, 'src', 'cli', 'agentd.ts')
const BIN = join(REPO_ROOT, 'bin', 'xo-mesh.js')
/** The agent bundle (scripts/build-agentd.ts), rebuilt by every run from the sources. */
const BUNDLE = join(BENCH_DIR, 'agentd.mjs')
/** How agents are started: the entry script and extra environment (set by run_ from the options). */
let agentEntry: string[] = [BUNDLE]
/** As docs/xo-mesh.service sets them (docs/agent.md, "Memory"). */
const AGENT_ENV = unitEnvironment()
let agentEnv: Record<string, string> = AGENT_ENV
let agentHow = 'dist bundle (npm run build), as the unit runs it'
const PEER = join(REPO_ROOT, 'bench', 'exchange-peer.ts')
/** Where each run's stores go (runDir). */
const RUNS = join(WORK_DIR, 'exchange-runs')
const HELIA_DIR = join(BENCH_DIR, 'helia')
const MB = 1e6

// ---- helpers ----------------------------------------------------------------

function byteStream (seed: string): (n: number) => Buffer {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16)
  const c = createCipheriv('aes-128-ctr', key, Buffer.alloc(16))
  return n => c.update(Buffer.alloc(n))
}

/** Pseudo-random files adding up to mib MiB: 1–6 MiB files and a few small ones, in four directories. */
async function makeTree (dir: string, mib: number, seed: string): Promise<void> {
  const marker = `${dir}.complete`
  if (await exists(marker)) return
  await rm(dir, { recursive: true, force: true })
  const rand = byteStream(seed)
  let left = mib << 20
  for (let i = 0; left > 0; i++) {
    const sub = join(dir, `d${i % 4}`)
    await mkdir(sub, { recursive: true })
    const n = Math.min(left, i % 5 === 4 ? 2000 + i * 37 : (1 << 20) + ((i * 7919 * 131) % (5 << 20)))
    const fh = await open(join(sub, `f${i}.bin`), 'w')
    for (let k = 0; k < n; k += 4 << 20) await fh.write(rand(Math.min(4 << 20, n - k)))
    await fh.close()
    left -= n
  }
  await writeFile(marker, '')
}

/** A data directory holding the tree as a build (cached); returns its CID. */
async function seedDir (dir: string, tree: string, name: string): Promise<string> {
  const cidFile = join(dir, 'bench-cid')
  if (await exists(cidFile)) return (await readFile(cidFile, 'utf8')).trim()
  await rm(dir, { recursive: true, force: true })
  const add = await run(process.execPath, [BIN, '--data', dir, 'add', tree, '--name', name, '--created', '2026-01-01T00:00:00Z'], { env: { ...process.env, XO_MESH_NO_PROGRESS: '1' } })
  const cid = add.stdout.trim().split('\n').pop()!.trim()
  await writeFile(cidFile, cid + '\n')
  return cid
}

/**
 * A directory for this run's stores, away from earlier runs' files. On an
 * ext4 without a journal (this machine's disk), creating a file within a
 * minute (five, until written back) of many files being deleted in its
 * block group costs the kernel a scan past every one of them per create
 * (recently_deleted() in ext4's inode allocator): measured alone, 4,096
 * files of 64 KiB written and renamed in 0.36 CPU s into a fresh directory,
 * in 3.2–4.5 CPU s (nearly all in the kernel) within a minute of deleting
 * as many; in a fetch right after the last run's stores were removed, the
 * fetcher spent half its CPU in that scan. A cost of the bench's cleanup,
 * not of the exchange: so a run removes its stores when it ends (and any
 * left by a run that did not), writes them back, and the next run waits
 * until a minute has passed since. Runs go under a directory marked for
 * spreading (chattr +T: ext4 places its subdirectories like top-level ones,
 * in a block group of their own); a run of three rounds holds ~3 GB.
 */
async function runDir (): Promise<string> {
  await mkdir(RUNS, { recursive: true })
  await run('chattr', ['+T', RUNS]).catch(() => {})
  await removeRuns()
  const since = Date.now() - Number(await readFile(join(RUNS, REMOVED), 'utf8').catch(() => '0'))
  if (since < RECENTLY_DELETED_MS) {
    log(`waiting ${Math.ceil((RECENTLY_DELETED_MS - since) / 1000)} s: files the last run removed are still recently deleted to ext4…`)
    await new Promise(resolve => setTimeout(resolve, RECENTLY_DELETED_MS - since))
  }
  const dir = join(RUNS, String(Date.now()))
  await mkdir(dir)
  return dir
}

/** When the last stores were removed (ms since the epoch), in RUNS. */
const REMOVED = '.removed'
/** How long ext4 keeps scanning past an inode freed and written back. */
const RECENTLY_DELETED_MS = 61_000

/** Removes every run's stores under RUNS, writes the removal back (its window is a minute, not five) and notes when. */
async function removeRuns (): Promise<void> {
  const runs = (await readdir(RUNS)).filter(n => n !== REMOVED)
  if (runs.length === 0) return
  for (const n of runs) await rm(join(RUNS, n), { recursive: true, force: true })
  await run('sync', [])
  await writeFile(join(RUNS, REMOVED), String(Date.now()))
}

async function api (url: string, path: string, body?: unknown): Promise<{ status: number, body: unknown }> {
  const payload = body !== undefined ? JSON.stringify(body) : undefined
  return await new Promise((resolve, reject) => {
    const req = request(new URL('/api/v1' + path, url), { method: payload !== undefined ? 'POST' : 'GET', headers: payload !== undefined ? { 'Content-Type': 'application/json' } : {}, timeout: 10_000 }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { text += d })
      res.on('end', () => { try { resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }) } catch (err) { reject(err) } })
    })
    req.on('timeout', () => { req.destroy(new Error('API request timed out')) })
    req.on('error', reject)
    req.end(payload)
  })
}

function procRss (pid: number): number {
  return procKb(pid, 'VmRSS') * 1024
}

/** Samples the RSS of processes every 100 ms; max() is the largest seen since the last reset. */
class RssSampler {
  private readonly peak = new Map<number, number>()
  private readonly timer: NodeJS.Timeout
  private readonly pids: () => number[]
  constructor (pids: () => number[]) {
    this.pids = pids
    this.timer = setInterval(() => { this.sample() }, 100)
  }

  sample (): void {
    for (const pid of this.pids()) {
      const r = procRss(pid)
      if (Number.isFinite(r)) this.peak.set(pid, Math.max(this.peak.get(pid) ?? 0, r))
    }
  }

  reset (): void { this.peak.clear() }
  max (pid: number): number { return this.peak.get(pid) ?? NaN }
  stop (): void { clearInterval(this.timer) }
}

interface BlockCounters { bytes_received: number, blocks_received: number, bytes_sent: number, blocks_sent: number }

/** An agent process (agentd.ts, no tsx) on 127.0.0.1. */
class Agent {
  readonly child: ChildProcess
  readonly port: number
  readonly dataDir: string
  url = ''
  peerId = ''
  private readonly started: Promise<void>
  private readonly exited: Promise<void>

  constructor (dataDir: string, port: number, peers: number[]) {
    this.dataDir = dataDir
    this.port = port
    this.child = spawn(process.execPath, [...agentEntry, '--data', dataDir, 'agent', '--no-mdns', '--api', '127.0.0.1:0', '--listen', `/ip4/127.0.0.1/tcp/${port}`, ...peers.flatMap(p => ['--peer', `/ip4/127.0.0.1/tcp/${p}`])], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, XO_MESH_NO_PROGRESS: '1', ...agentEnv } })
    let text = ''
    this.exited = new Promise(resolve => this.child.on('exit', () => { resolve() }))
    this.started = new Promise((resolve, reject) => {
      this.child.stderr!.setEncoding('utf8')
      this.child.stderr!.on('data', (d: string) => {
        text += d
        for (const line of text.split('\n')) {
          if (!line.includes('"agent started"')) continue
          const r = JSON.parse(line) as { peerId: string, api: string }
          this.peerId = r.peerId
          this.url = r.api
          resolve()
        }
        if (text.length > 1 << 20) text = text.slice(-(1 << 16))
      })
      void this.exited.then(() => { reject(new Error(`agent on ${dataDir} exited: ${text.slice(-2000)}`)) })
    })
  }

  get pid (): number { return this.child.pid! }

  static async start (dataDir: string, peers: number[] = []): Promise<Agent> {
    await mkdir(dataDir, { recursive: true })
    return new Agent(dataDir, await freePort(), peers)
  }

  async ready (): Promise<this> {
    await Promise.race([this.started, new Promise((_r, reject) => setTimeout(() => { reject(new Error(`agent on ${this.dataDir} did not start`)) }, 30_000))])
    return this
  }

  async counters (): Promise<Map<string, BlockCounters>> {
    const r = await api(this.url, '/peers')
    const out = new Map<string, BlockCounters>()
    for (const p of (r.body as { peers: Array<{ peerId: string, blocks?: BlockCounters & { open: boolean } }> }).peers) if (p.blocks !== undefined) out.set(p.peerId, p.blocks)
    return out
  }

  async openPeers (): Promise<number> {
    const r = await api(this.url, '/peers')
    return (r.body as { peers: Array<{ blocks?: { open: boolean } }> }).peers.filter(p => p.blocks?.open === true).length
  }

  async stop (): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.kill('SIGTERM')
    const t = setTimeout(() => { this.child.kill('SIGKILL') }, 15_000)
    await this.exited
    clearTimeout(t)
  }
}

interface Progress { complete: boolean, bytes: number, have_bytes: number, error: string | null, completed: string | null }

/**
 * Starts fetches on the agents at once; resolves with each one's completion
 * time (s from the start), as the agent stamped it (`completed`, ms): polled
 * every 200 ms, not every 25 (a request every 25 ms cost the fetcher ~3% of
 * its CPU, which the bare stream does not pay).
 */
async function fetchAll (agents: Agent[], cid: string, timeoutMs: number): Promise<number[]> {
  const t0 = performance.now()
  const t0Wall = Date.now()
  await Promise.all(agents.map(async a => {
    const r = await api(a.url, '/fetch', { cid })
    if (r.status !== 202) throw new Error(`fetch refused: ${JSON.stringify(r.body)}`)
  }))
  const done: number[] = agents.map(() => NaN)
  await until('the fetches to complete', timeoutMs, async () => {
    await Promise.all(agents.map(async (a, i) => {
      if (!Number.isNaN(done[i]!)) return
      const p = (await api(a.url, `/builds/${cid}`)).body as Progress
      if (p.error !== null) throw new Error(`fetch failed on ${a.dataDir}: ${p.error}`)
      if (p.complete) done[i] = p.completed !== null ? (Date.parse(p.completed) - t0Wall) / 1000 : (performance.now() - t0) / 1000
    }))
    return done.every(d => !Number.isNaN(d)) ? true : undefined
  }, 200)
  return done
}

const mbs = (bytes: number, s: number): string => (bytes / MB / s).toFixed(1)
const mib = (n: number): string => (n / 2 ** 20).toFixed(0)

// ---- (a) the ceiling ----------------------------------------------------------

async function ceiling (bytes: number): Promise<{ seconds: number, cpuSender: number, cpuReceiver: number }> {
  return await push(['sink', String(bytes)], addr => ['source', addr, String(bytes)])
}

/** Runs the sink and then the source of bench/exchange-peer.ts; the sink reports the time from its first byte to its last. */
async function push (sinkArgs: string[], sourceArgs: (addr: string) => string[]): Promise<{ seconds: number, cpuSender: number, cpuReceiver: number }> {
  const sink = spawn(process.execPath, [PEER, ...sinkArgs], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  sink.stdout.setEncoding('utf8')
  const lines: string[] = []
  const nextLine = async (): Promise<string> => await until('the sink', 120_000, () => lines.shift(), 10)
  sink.stdout.on('data', (d: string) => {
    out += d
    const parts = out.split('\n')
    out = parts.pop()!
    lines.push(...parts)
  })
  const { addr } = JSON.parse(await nextLine()) as { addr: string }
  const src = await run(process.execPath, [PEER, ...sourceArgs(addr)], { timeoutSeconds: 180 })
  const r = JSON.parse(await nextLine()) as { bytes: number, seconds: number, cpu: number }
  sink.kill()
  return { seconds: r.seconds, cpuSender: (JSON.parse(src.stdout.trim().split('\n').pop()!) as { cpu: number }).cpu, cpuReceiver: r.cpu }
}

// ---- (f) the floor of a verified transfer into a store ------------------------

/**
 * The blocks of a build the seed holds, each as [cid, path of its file in
 * the seed's store]: the manifest (the tree's nodes and the record) and the
 * leaves in the build's order, with the tree's root; undefined when the
 * seed does not hold the build.
 */
async function seedBlocks (seedData: string, cid: string): Promise<SeedBlocks | undefined> {
  const key = `${seedData}\n${cid}`
  if (!seedBlocksRead.has(key)) seedBlocksRead.set(key, await readSeedBlocks(seedData, cid))
  return seedBlocksRead.get(key)
}

/** seedBlocks' answers: the floors and Helia ask every round. */
const seedBlocksRead = new Map<string, SeedBlocks | undefined>()
interface SeedBlocks { tree: string, manifest: Array<[string, string]>, leaves: Array<[string, string]>, leafBytes: number }

async function readSeedBlocks (seedData: string, cid: string): Promise<SeedBlocks | undefined> {
  const { Repo } = await import('../src/content/repo.ts')
  const { readIndexSpace, leafCid } = await import('../src/content/index-space.ts')
  const repo = new Repo(seedData)
  const r = await readIndexSpace(repo.store, (await import('../src/content/cid.ts')).parseCid(cid))
  if (r.status !== 'ready') return undefined
  const entry = (c: CID): [string, string] => [c.toString(), repo.store.path(c)]
  const leaves: Array<[string, string]> = []
  let leafBytes = 0
  for (let i = 0; i < r.space.leaves; i++) {
    const leaf = entry(leafCid(r.space, i))
    leaves.push(leaf)
    leafBytes += (await stat(leaf[1])).size
  }
  return { tree: r.space.record.tree.toString(), manifest: r.space.manifest.map(entry), leaves, leafBytes }
}

/**
 * The bare stream carrying the build's leaves with only the store work the
 * design asks of each (read and sha-256 at the seed, sha-256 and a file of
 * its own at the fetcher): what any verified transfer into a store of one
 * file per block costs on this machine, so the gap between it and our fetch
 * is the exchange's own.
 */
async function floor (seedData: string, cid: string, dir: string, pack = false): Promise<{ seconds: number, bytes: number, cpuSender: number, cpuReceiver: number }> {
  const blocks = await seedBlocks(seedData, cid)
  if (blocks === undefined) throw new Error(`the seed does not hold ${cid}`)
  const bytes = blocks.leafBytes
  await mkdir(dir, { recursive: true })
  const listFile = join(dir, 'leaves.json')
  await writeFile(listFile, JSON.stringify(blocks.leaves))
  const r = pack
    ? await push(['pack-sink', join(dir, 'blocks'), String(bytes)], addr => ['pack-source', addr, listFile, join(dir, 'seed.pack')])
    : await push(['store-sink', join(dir, 'blocks'), String(bytes)], addr => ['store-source', addr, listFile])
  // kept until the run ends (runDir): removing 4,096 files here would make the
  // next round's fetch pay ext4's scan past them
  await run('sync', []) // its writeback done before the next measurement starts
  return { ...r, bytes }
}

/** MB/s of each path in one round. */
interface Round { ceiling?: number, floor?: number, pack?: number, fetch?: number, helia?: number }

/** The two floors as the rounds run and report them. */
const FLOORS = [
  { id: 'f', round: 'floor', pack: false, what: 'bare stream + the store\'s work', row: 'the same + read, sha-256, a file per block', result: 'floor' },
  { id: 'p', round: 'pack', pack: true, what: 'bare stream + the work of a pack store', row: 'the same into packs: a read, a writev per MiB', result: 'packFloor' }
] as const

// ---- (c) Helia ----------------------------------------------------------------

const HELIA_SCRIPT = `// written by bench/exchange.ts: Helia 7 + bitswap over TCP, Noise, Yamux on loopback
import { createHelia } from 'helia'
import { unixfs } from '@helia/unixfs'
import { FsBlockstore } from 'blockstore-fs'
import { MemoryDatastore } from 'datastore-core'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { CID } from 'multiformats/cid'
import { multiaddr } from '@multiformats/multiaddr'
import { readFileSync } from 'node:fs'

const [role, dir, arg, treeCid] = process.argv.slice(2)
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6 }
const blockstore = new FsBlockstore(dir)
await blockstore.open()
if (role === 'import') {
  // arg: a JSON list of [cid, path of the block file in an xo-mesh store]
  for (const [cid, path] of JSON.parse(readFileSync(arg, 'utf8'))) await blockstore.put(CID.parse(cid), readFileSync(path))
  process.exit(0)
}
const helia = await createHelia({
  blockstore,
  datastore: new MemoryDatastore(),
  libp2p: {
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [],
    services: { identify: identify() }
  }
})
await helia.start()
if (role === 'seed') {
  console.log(JSON.stringify({ addr: helia.libp2p.getMultiaddrs()[0].toString() }))
} else {
  const fs = unixfs(helia)
  await helia.libp2p.dial(multiaddr(arg))
  const t0 = performance.now()
  const c0 = cpu()
  let bytes = 0
  const walk = async (cid) => {
    for await (const e of fs.ls(cid)) {
      if ((await fs.stat(e.cid)).type === 'directory') await walk(e.cid)
      else for await (const chunk of fs.cat(e.cid)) bytes += chunk.length
    }
  }
  await walk(CID.parse(treeCid))
  console.log(JSON.stringify({ bytes, seconds: (performance.now() - t0) / 1000, cpu: cpu() - c0 }))
  await helia.stop()
  process.exit(0)
}
`

async function ensureHelia (): Promise<string | undefined> {
  const marker = join(HELIA_DIR, 'node_modules', 'helia', 'package.json')
  if (!await exists(marker) || !await exists(join(HELIA_DIR, 'node_modules', 'blockstore-fs')) || !await exists(join(HELIA_DIR, 'node_modules', '@helia', 'unixfs'))) {
    log('installing Helia into .bench/helia (once)…')
    try {
      await run('npm', ['install', '--prefix', HELIA_DIR, '--no-audit', '--no-fund', 'helia', '@helia/unixfs', 'blockstore-fs'], { timeoutSeconds: 600 })
    } catch (err) {
      return `npm install of helia failed: ${(err as Error).message.split('\n')[0]}`
    }
  }
  await writeFile(join(HELIA_DIR, 'xo-bench.mjs'), HELIA_SCRIPT)
  return undefined
}

async function helia (seedData: string, cid: string, work: string, fetchDir: string): Promise<{ seconds: number, bytes: number, cpuSeed: number, cpuFetcher: number, rssSeed: number, rssFetcher: number } | string> {
  const why = await ensureHelia()
  if (why !== undefined) return why
  const script = join(HELIA_DIR, 'xo-bench.mjs')
  const blocks = await seedBlocks(seedData, cid)
  if (blocks === undefined) return `the seed does not hold ${cid}`
  const seedStore = join(work, `helia-seed-${cid}`) // one per build: a marker of another size's import once hung the fetch
  const marker = join(seedStore, 'imported')
  if (!await exists(marker)) {
    log('copying the build\'s blocks into a Helia blockstore…')
    await rm(seedStore, { recursive: true, force: true })
    await mkdir(work, { recursive: true })
    await writeFile(join(work, 'helia-blocks.json'), JSON.stringify([...blocks.manifest, ...blocks.leaves]))
    await run(process.execPath, [script, 'import', seedStore, join(work, 'helia-blocks.json')], { cwd: HELIA_DIR, timeoutSeconds: 600 })
    await writeFile(marker, '')
  }
  const fetchStore = join(fetchDir, 'helia-fetch')
  const seed = spawn(process.execPath, [script, 'seed', seedStore], { cwd: HELIA_DIR, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  seed.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
  seed.stderr.setEncoding('utf8').on('data', (d: string) => { err += d })
  try {
    const addr = await until('the Helia seed', 60_000, () => { const l = out.split('\n')[0]; return l !== undefined && l.startsWith('{') ? (JSON.parse(l) as { addr: string }).addr : undefined }, 50).catch(e => { throw new Error(`${(e as Error).message}: ${err.slice(-500)}`) })
    const cpu0 = procCpu(seed.pid!)
    const fetcher = spawn(process.execPath, [script, 'fetch', fetchStore, addr, blocks.tree], { cwd: HELIA_DIR, stdio: ['ignore', 'pipe', 'pipe'] })
    const sampler = new RssSampler(() => [seed.pid!, fetcher.pid!])
    let fout = ''
    let ferr = ''
    fetcher.stdout.setEncoding('utf8').on('data', (d: string) => { fout += d })
    fetcher.stderr.setEncoding('utf8').on('data', (d: string) => { ferr += d })
    const code = await new Promise<number | null>(resolve => {
      const t = setTimeout(() => { fetcher.kill('SIGKILL') }, 600_000)
      fetcher.on('exit', c => { clearTimeout(t); resolve(c) })
    })
    sampler.stop()
    if (code !== 0) return `the Helia fetcher failed (exit ${code}): ${ferr.slice(-500)}`
    const res = JSON.parse(fout.trim().split('\n').pop()!) as { bytes: number, seconds: number, cpu: number }
    return { seconds: res.seconds, bytes: res.bytes, cpuSeed: procCpu(seed.pid!) - cpu0, cpuFetcher: res.cpu, rssSeed: sampler.max(seed.pid!), rssFetcher: sampler.max(fetcher.pid!) }
  } finally {
    seed.kill()
  }
}

// ---- the run ------------------------------------------------------------------

export async function run_ (ctx: BenchContext): Promise<BenchOutput> {
  const size = Number(ctx.options.get('size') ?? 256)
  const swarmSize = Number(ctx.options.get('swarm-size') ?? 128)
  const fetchers = Number(ctx.options.get('fetchers') ?? 4)
  const idleS = Number(ctx.options.get('idle-s') ?? 15)
  const afterS = Number(ctx.options.get('after-s') ?? 0)
  const rounds = Math.max(1, Number(ctx.options.get('rounds') ?? 1))
  const only = new Set((ctx.options.get('only') ?? 'a,f,b,c,d').split(','))
  if (ctx.options.has('skip-helia')) only.delete('c')
  if (ctx.options.has('agentd')) {
    agentEntry = [AGENTD]
    agentEnv = {}
    agentHow = 'agentd.ts, node type stripping'
  } else if (ctx.options.has('tsx')) {
    agentEntry = [BIN]
    agentHow = 'bin/xo-mesh.js, tsx, the same environment'
  } else {
    await buildAgentd(BUNDLE)
  }
  // V8 flags NODE_OPTIONS does not take (e.g. --optimize-for-size), before the entry script
  const nodeFlags = ctx.options.get('node-flags')
  if (nodeFlags !== undefined) agentEntry = [...nodeFlags.split(/\s+/).filter(f => f !== ''), ...agentEntry]
  const extraEnv = ctx.options.get('agent-env')
  if (extraEnv !== undefined) agentEnv = { ...agentEnv, ...Object.fromEntries(extraEnv.split(/\s+/).filter(kv => kv.includes('=')).map(kv => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])) }
  const prof = ctx.options.get('cpu-prof')
  if (prof !== undefined) agentEnv = { ...agentEnv, NODE_OPTIONS: `${agentEnv.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${prof}`.trim() }
  const tmpfs = ctx.options.get('tmpfs')
  const work = tmpfs !== undefined ? join(tmpfs, 'xo-mesh-bench-exchange') : await runDir()
  if (tmpfs !== undefined) {
    await rm(work, { recursive: true, force: true })
    await mkdir(work, { recursive: true })
  }
  const tables: string[] = []
  const results: Record<string, unknown> = {}
  const agents: Agent[] = []
  const sampler = new RssSampler(() => agents.filter(a => a.child.exitCode === null).map(a => a.pid))

  try {
    log(`making the ${size} MiB tree and its build (cached)…`)
    const tree = join(CACHE_DIR, `exchange-tree-${size}`)
    await makeTree(tree, size, `exchange-${size}`)
    let seed = join(CACHE_DIR, `exchange-seed-${size}`)
    const cid = await seedDir(seed, tree, `bench-${size}`)
    if (tmpfs !== undefined) {
      await run('cp', ['-a', seed, join(work, 'seed')])
      seed = join(work, 'seed')
    }
    const rows: string[][] = []
    let ceilingS = NaN
    let buildBytes = NaN

    // on a loaded machine the load moves between one measurement and the next: with --rounds=N the
    // three alternate N times and each ratio is taken within a round, then the median of the rounds
    const perRound: Round[] = []
    for (let round = 1; round <= rounds; round++) {
      const tag = rounds > 1 ? ` [${round}]` : ''
      const r: Round = {}
      perRound.push(r)
      if (only.has('a')) {
        log(`(a) bare libp2p stream${tag}…`)
        const c = await ceiling(size << 20)
        ceilingS = c.seconds
        r.ceiling = (size << 20) / MB / c.seconds
        rows.push([`(a) libp2p TCP+Noise+Yamux, one stream${tag}`, c.seconds.toFixed(2), mbs(size << 20, c.seconds), '1.00', c.cpuSender.toFixed(1), c.cpuReceiver.toFixed(1)])
        results.ceiling ??= { bytes: size << 20, ...c, mbPerS: r.ceiling }
      }

      if (only.has('b')) {
        log(`(b) our fetch between two agents${tag}…`)
        const a = await (await Agent.start(seed)).ready()
        agents.push(a)
        const b = await (await Agent.start(join(work, `fetcher-${round}`), [a.port])).ready()
        agents.push(b)
        await until('B to exchange with A', 20_000, async () => (await b.openPeers()) >= 1 ? true : undefined)
        if (round === 1) log(`  idle ${idleS} s (RSS)…`)
        await new Promise(resolve => setTimeout(resolve, round === 1 ? idleS * 1000 : 1000))
        const idle = { seed: procRss(a.pid), fetcher: procRss(b.pid) }
        sampler.reset()
        const cpu0 = [procCpu(a.pid), procCpu(b.pid)]
        const [seconds] = await fetchAll([b], cid, 600_000)
        const cpu1 = [procCpu(a.pid), procCpu(b.pid)]
        sampler.sample()
        const p = (await api(b.url, `/builds/${cid}`)).body as Progress
        buildBytes = p.bytes
        const busy = { seed: sampler.max(a.pid), fetcher: sampler.max(b.pid) }
        const received = [...(await b.counters()).values()].reduce((s, x) => s + x.bytes_received, 0)
        r.fetch = p.bytes / MB / seconds!
        rows.push([`(b) xo-mesh fetch, agent → agent${tag}`, seconds!.toFixed(2), mbs(p.bytes, seconds!), Number.isNaN(ceilingS) ? '-' : (ceilingS / seconds! * (p.bytes / (size << 20))).toFixed(2), (cpu1[0]! - cpu0[0]!).toFixed(1), (cpu1[1]! - cpu0[1]!).toFixed(1)])
        let after: { seed: number, fetcher: number } | undefined
        if (round === 1 && afterS > 0) {
          log(`  idle ${afterS} s after the fetch (RSS)…`)
          await new Promise(resolve => setTimeout(resolve, afterS * 1000))
          after = { seed: procRss(a.pid), fetcher: procRss(b.pid) }
        }
        results.fetch ??= { bytes: p.bytes, received, seconds, mbPerS: r.fetch, cpuSeed: cpu1[0]! - cpu0[0]!, cpuFetcher: cpu1[1]! - cpu0[1]!, rssIdle: idle, rssBusy: busy, ...(after !== undefined ? { rssAfter: after } : {}) }
        await Promise.all([a.stop(), b.stop()])
        agents.length = 0
      }

      if (only.has('c')) {
        log(`(c) Helia + bitswap${tag}…`)
        const h = await helia(seed, cid, tmpfs !== undefined ? join(tmpfs, 'xo-mesh-bench-helia') : join(WORK_DIR, 'exchange-helia'), join(work, `helia-${round}`))
        if (typeof h === 'string') {
          log(`  skipped: ${h}`)
          rows.push(['(c) Helia 7 + bitswap, cat every file', 'skipped', '', '', '', ''])
          results.helia = { skipped: h }
          only.delete('c')
        } else {
          r.helia = h.bytes / MB / h.seconds
          rows.push([`(c) Helia 7 + bitswap, cat every file${tag}`, h.seconds.toFixed(2), mbs(h.bytes, h.seconds), Number.isNaN(ceilingS) ? '-' : (ceilingS / h.seconds * (h.bytes / (size << 20))).toFixed(2), h.cpuSeed.toFixed(1), h.cpuFetcher.toFixed(1)])
          results.helia ??= { ...h, mbPerS: r.helia }
        }
      }
      // the floors last in a round: each writes the build to the disk again, and the
      // writeback that follows slowed the fetch run after them (receiver CPU ×2)
      for (const fl of FLOORS) {
        if (!only.has(fl.id)) continue
        log(`(${fl.id}) ${fl.what}${tag}…`)
        const f = await floor(seed, cid, join(work, `${fl.round}-${round}`), fl.pack)
        const rate = f.bytes / MB / f.seconds
        r[fl.round] = rate
        rows.push([`(${fl.id}) ${fl.row}${tag}`, f.seconds.toFixed(2), mbs(f.bytes, f.seconds), Number.isNaN(ceilingS) ? '-' : (ceilingS / f.seconds * (f.bytes / (size << 20))).toFixed(2), f.cpuSender.toFixed(1), f.cpuReceiver.toFixed(1)])
        results[fl.result] ??= { ...f, mbPerS: rate }
      }

      log(`  load average ${loadavg().map(x => x.toFixed(1)).join(' ')}`)
    }
    results.rounds = perRound
    if (rows.length > 0) {
      tables.push(`build: ${formatBytes(size << 20)} of pseudo-random files${Number.isFinite(buildBytes) ? ` (${buildBytes} bytes of leaves)` : ''}; loopback, two processes`)
      tables.push(formatTable(['path', 'seconds', 'MB/s', 'of ceiling', 'CPU s sender', 'CPU s receiver'], rows, 'lrrrrr'))
      const ratios: string[] = []
      /** a ÷ b in every round that measured both */
      const per = (a: keyof Round, b: keyof Round): number[] => perRound.flatMap(r => r[a] !== undefined && r[b] !== undefined ? [r[a] / r[b]] : [])
      const ofCeiling = per('fetch', 'ceiling')
      const ofHelia = per('fetch', 'helia')
      const floorOfCeiling = per('floor', 'ceiling')
      const packOfCeiling = per('pack', 'ceiling')
      const ofFloor = per('fetch', 'floor')
      const each = (xs: number[], d: number): string => xs.length > 1 ? ` (rounds: ${xs.map(x => x.toFixed(d)).join(', ')}; median)` : ''
      if (ofCeiling.length > 0) ratios.push(`fetch / ceiling: ${median(ofCeiling).toFixed(2)}${each(ofCeiling, 2)}`)
      if (ofHelia.length > 0) ratios.push(`fetch / Helia: ${median(ofHelia).toFixed(2)}x${each(ofHelia, 2)}`)
      if (floorOfCeiling.length > 0) ratios.push(`floor / ceiling: ${median(floorOfCeiling).toFixed(2)}${each(floorOfCeiling, 2)}`)
      if (packOfCeiling.length > 0) ratios.push(`pack floor / ceiling: ${median(packOfCeiling).toFixed(2)}${each(packOfCeiling, 2)}`)
      if (ofFloor.length > 0) ratios.push(`fetch / floor: ${median(ofFloor).toFixed(2)}${each(ofFloor, 2)}`)
      const m = (xs: number[]): number | null => xs.length > 0 ? median(xs) : null
      results.ratios = { ofCeiling: m(ofCeiling), ofHelia: m(ofHelia), floorOfCeiling: m(floorOfCeiling), packFloorOfCeiling: m(packOfCeiling), ofFloor: m(ofFloor) }
      if (ratios.length > 0) tables.push(ratios.join('; '))
    }

    if (only.has('d')) {
      log(`(d) one seed and ${fetchers} fetchers, ${swarmSize} MiB…`)
      const stree = join(CACHE_DIR, `exchange-tree-${swarmSize}`)
      await makeTree(stree, swarmSize, `exchange-${swarmSize}`)
      let sseed = join(CACHE_DIR, `exchange-seed-${swarmSize}`)
      const scid = await seedDir(sseed, stree, `bench-${swarmSize}`)
      if (tmpfs !== undefined) {
        await run('cp', ['-a', sseed, join(work, 'swarm-seed')])
        sseed = join(work, 'swarm-seed')
      }
      const s = await (await Agent.start(sseed)).ready()
      agents.push(s)
      const fs: Agent[] = []
      for (let i = 0; i < fetchers; i++) {
        const f = await (await Agent.start(join(work, `swarm-${i}`), [s.port, ...fs.map(x => x.port)])).ready()
        fs.push(f)
        agents.push(f)
      }
      await until('the swarm to connect', 30_000, async () => (await Promise.all(fs.map(async f => await f.openPeers()))).every(n => n >= fetchers) ? true : undefined)
      await new Promise(resolve => setTimeout(resolve, 2000))
      const idle = fs.map(f => procRss(f.pid))
      sampler.reset()
      const cpu0 = agents.map(a => procCpu(a.pid))
      const done = await fetchAll(fs, scid, 900_000)
      const cpu1 = agents.map(a => procCpu(a.pid))
      sampler.sample()
      const p = (await api(fs[0]!.url, `/builds/${scid}`)).body as Progress
      const total = p.bytes
      const uploaded = [...(await s.counters()).values()].reduce((x, c) => x + c.bytes_sent, 0)
      const srows: string[][] = [['seed', mib(0), '-', mib(uploaded), (uploaded / total).toFixed(3), '-', (cpu1[0]! - cpu0[0]!).toFixed(1), mib(sampler.max(s.pid))]]
      const fres = []
      for (let i = 0; i < fs.length; i++) {
        const c = await fs[i]!.counters()
        const recv = [...c.values()].reduce((x, y) => x + y.bytes_received, 0)
        const sent = [...c.values()].reduce((x, y) => x + y.bytes_sent, 0)
        fres.push({ received: recv, ratio: recv / total, sent, seconds: done[i], rssIdle: idle[i], rssBusy: sampler.max(fs[i]!.pid), cpu: cpu1[i + 1]! - cpu0[i + 1]! })
        srows.push([`fetcher ${i + 1}`, mib(recv), (recv / total).toFixed(3), mib(sent), (sent / total).toFixed(3), done[i]!.toFixed(1), (cpu1[i + 1]! - cpu0[i + 1]!).toFixed(1), mib(sampler.max(fs[i]!.pid))])
      }
      const worst = Math.max(...fres.map(f => f.ratio))
      tables.push(`swarm: one seed, ${fetchers} fetchers starting together, ${formatBytes(total)} build; all done in ${Math.max(...done).toFixed(1)} s`)
      tables.push(formatTable(['agent', 'received MiB', 'recv / size', 'sent MiB', 'sent / size', 'done s', 'CPU s', 'max RSS MiB'], srows, 'lrrrrrrr'))
      tables.push(`seed upload / size: ${(uploaded / total).toFixed(3)} (target <= 1.5); worst fetcher received / size: ${worst.toFixed(3)} (target <= 1.05)`)
      results.swarm = { bytes: total, fetchers, seedUploaded: uploaded, seedRatio: uploaded / total, fetchersDetail: fres, seconds: Math.max(...done), seedRss: sampler.max(s.pid) }
      await Promise.all(agents.map(async a => { await a.stop() }))
      agents.length = 0
    }

    const f = results.fetch as { rssIdle: { seed: number, fetcher: number }, rssBusy: { seed: number, fetcher: number }, rssAfter?: { seed: number, fetcher: number } } | undefined
    const sw = results.swarm as { fetchersDetail: Array<{ rssIdle: number, rssBusy: number }>, seedRss: number } | undefined
    if (f !== undefined || sw !== undefined) {
      const mrows: string[][] = []
      /** A row with its target: idle (fresh, or after the work) < 80 MiB, busy < 150. */
      const row = (label: string, rss: number, limit: 80 | 150): string[] => [label, mib(rss), `< ${limit}: ${rss < limit * 2 ** 20 ? 'met' : 'NOT met'}`]
      if (f !== undefined) {
        mrows.push(row('seed, idle', f.rssIdle.seed, 80), row('fetcher, idle (connected)', f.rssIdle.fetcher, 80))
        mrows.push(row('seed, serving (b), max', f.rssBusy.seed, 150), row('fetcher, fetching (b), max', f.rssBusy.fetcher, 150))
        if (f.rssAfter !== undefined) mrows.push(row(`seed, idle ${afterS} s after (b)`, f.rssAfter.seed, 80), row(`fetcher, idle ${afterS} s after (b)`, f.rssAfter.fetcher, 80))
      }
      if (sw !== undefined) {
        mrows.push(row('swarm seed, serving (d), max', sw.seedRss, 150))
        mrows.push(row('swarm fetchers, max', Math.max(...sw.fetchersDetail.map(x => x.rssBusy)), 150))
      }
      tables.push(formatTable([`agent (${agentHow})`, 'RSS MiB', 'target MiB'], mrows, 'lrl') + '\ntargets: < 80 MiB idle, fresh or --after-s seconds after the work; < 150 MiB serving or fetching')
    }
    return { tables, results }
  } finally {
    sampler.stop()
    await Promise.all(agents.map(async a => { await a.stop() }))
    if (tmpfs !== undefined) await rm(work, { recursive: true, force: true })
    else await removeRuns()
  }
}

export { run_ as run }
