// npm run demo, narrated. Part one, the content layer: two "laptops" are two
// data directories on this machine; the publisher adds a build and a newer
// one, writes USB bundles, and a school laptop imports and applies them.
// Part two, the mesh: five agents form a classroom; a build added on one
// spreads to the other four, each fetching from every peer that already holds
// blocks; they elect a school server, and elect another when it is killed.
//
// Where the demo runs as root (and `ip` is there), each laptop is a network
// namespace on a bridge of its own (10.78.0.0/24, nothing on the host's
// network), and the agents find each other over mDNS as on a real LAN. Each
// agent's API stays on its namespace's loopback; the demo forwards it to the
// same port on the host's loopback (through a Unix socket: the file system is
// shared, the network is not), so the printed page URLs open from the host.
// Otherwise (or with XO_MESH_DEMO_LOOPBACK=1) the agents share the host's
// loopback and are told of each other with --peer.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { request } from 'node:http'
import { createServer, connect, type Server } from 'node:net'
import { mkdir, rm, stat, utimes, writeFile, readFile } from 'node:fs/promises'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createCipheriv, createHash } from 'node:crypto'

const repo = resolve(fileURLToPath(import.meta.url), '../..')
const work = join(repo, '.demo')
const bin = join(repo, 'bin', 'xo-mesh.js')

function say (text: string): void {
  process.stdout.write(`\n\x1b[1m== ${text}\x1b[0m\n`)
}

/** Runs xo-mesh; resolves with its stdout. Asynchronous: the demo's page forwarders live in this process. */
async function run (args: string[]): Promise<string> {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, XO_MESH_NO_PROGRESS: '1' }, stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (d: string) => { out += d })
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  if (code !== 0) throw new Error(`demo: xo-mesh ${args.join(' ')} exited ${code}`)
  return out
}

/** Echoes a command and its output as the demo shows them; returns the output's last line. */
function show (args: string[], out: string): string {
  process.stdout.write(`$ xo-mesh ${args.map(a => (a.startsWith(work) ? relative(repo, a) : a)).join(' ')}\n`)
  process.stdout.write(out.split('\n').map(l => (l === '' ? l : `  ${l}`)).join('\n'))
  return out.trim().split('\n').pop()!.trim()
}

async function xo (args: string[]): Promise<string> {
  return show(args, await run(args))
}

/** Several xo-mesh commands at once (a loaded machine starts each slowly), shown in order. */
async function xoAll (commands: string[][]): Promise<void> {
  const outs = await Promise.all(commands.map(run))
  commands.forEach((args, i) => { show(args, outs[i]!) })
}

function bytes (seed: string, size: number): Buffer {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16)
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size))
}

/** A small stand-in for an OS tree: a few binaries, libraries, config and docs. */
async function sampleTree (dir: string, version: number): Promise<void> {
  for (const d of ['bin', 'lib', 'etc', 'usr/share/doc']) await mkdir(join(dir, d), { recursive: true })
  for (let i = 0; i < 8; i++) await writeFile(join(dir, 'lib', `libsample${i}.so`), bytes(`lib${i}`, 400_000))
  const kernel = bytes('kernel', 6_000_000)
  if (version > 1) kernel.write('patched in version 2', 3_000_000) // a small binary patch
  await writeFile(join(dir, 'bin', 'kernel.img'), kernel)
  await writeFile(join(dir, 'etc', 'os-release'), `NAME="Sample XO OS"\nVERSION="${version}"\n`)
  await writeFile(join(dir, 'usr/share/doc', 'README'), 'A sample build for the xo-mesh demo.\n'.repeat(50))
  if (version > 1) await writeFile(join(dir, 'usr/share/doc', 'NEWS'), 'Version 2: a patched kernel.\n')
  // a build system stamps its files (SOURCE_DATE_EPOCH), so unchanged files are identical builds to builds
  for (const f of ['bin/kernel.img', 'etc/os-release', 'usr/share/doc/README', ...Array.from({ length: 8 }, (_, i) => `lib/libsample${i}.so`)]) {
    const when = f === 'bin/kernel.img' || f === 'etc/os-release' ? 1_790_000_000 + version * 86_400 : 1_790_000_000
    await utimes(join(dir, f), when, when)
  }
}

async function size (path: string): Promise<string> {
  return `${((await stat(path)).size / 1024).toFixed(0)} KiB`
}

await rm(work, { recursive: true, force: true })
const publisher = join(work, 'publisher')
const laptop = join(work, 'laptop')
const root = join(work, 'laptop-os')

say('The publisher adds build 1 (a sample OS tree, ~9 MB)')
await sampleTree(join(work, 'tree-v1'), 1)
await mkdir(join(work, 'usb'), { recursive: true })
const v1 = await xo(['--data', publisher, 'add', join(work, 'tree-v1'), '--name', 'sample-os-1', '--kind', 'os'])

say('... and writes it to a USB bundle (a standard CARv1 file)')
await xo(['--data', publisher, 'export', v1, '-o', join(work, 'usb', 'sample-os-1.car')])

say('At the school, a laptop imports the bundle (every block verified) and applies it')
await xo(['--data', laptop, 'import', join(work, 'usb', 'sample-os-1.car')])
await xo(['--data', laptop, 'apply', v1, '--root', root])

say('The publisher adds build 2: one binary patched, one file added')
await sampleTree(join(work, 'tree-v2'), 2)
const v2 = await xo(['--data', publisher, 'add', join(work, 'tree-v2'), '--name', 'sample-os-2', '--kind', 'os'])
await xo(['--data', publisher, 'diff', v1, v2])

say('The update bundle carries only what a holder of build 1 lacks, as a delta')
await xo(['--data', publisher, 'export', v2, '-o', join(work, 'usb', 'sample-os-2-from-1.car'), '--have', v1])
process.stdout.write(`  full bundle: ${await size(join(work, 'usb', 'sample-os-1.car'))}, update bundle: ${await size(join(work, 'usb', 'sample-os-2-from-1.car'))}\n`)

say('The laptop imports the update, rebuilds the new files from the delta and applies build 2')
await xo(['--data', laptop, 'import', join(work, 'usb', 'sample-os-2-from-1.car')])
await xo(['--data', laptop, 'apply', v2, '--root', root])
process.stdout.write(`  ${relative(repo, root)}/current/etc/os-release says: ${(await readFile(join(root, 'current', 'etc', 'os-release'), 'utf8')).split('\n')[1]}\n`)

say('Someone edits a system file; verify finds it and repairs it from the store')
await writeFile(join(root, 'current', 'etc', 'os-release'), 'tampered\n')
await xo(['--data', laptop, 'verify', '--root', root])

// ---- Part two: a classroom of five agents ----

const LAPTOPS = 5
// Each laptop's uploads are capped near what one 802.11g laptop gets of a
// shared channel, so the spreading is slow enough to watch.
const UPLOAD_RATE = 3_000_000

/** GET on an agent's API (through the address file it writes in its data directory). */
async function apiGet (dataDir: string, path: string): Promise<unknown> {
  const addr = (await readFile(join(dataDir, 'api'), 'utf8')).trim()
  return await new Promise((resolve, reject) => {
    const req = request(new URL('/api/v1' + path, addr.startsWith('http') ? addr : `http://${addr}`), { timeout: 5_000 }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { text += d })
      res.on('end', () => { try { resolve(JSON.parse(text)) } catch (err) { reject(err) } })
    })
    req.on('timeout', () => req.destroy(new Error('API request timed out')))
    req.on('error', reject)
    req.end()
  })
}

async function until<T> (what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await probe().catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`demo: timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

interface Laptop { name: string, data: string, proc?: ChildProcess, peerId?: string, addr?: string, ns?: string }
const laptops: Laptop[] = []
/** Every laptop started, up or not yet: what to stop. */
const starting: Laptop[] = []

// ---- network namespaces, when root ----

const NETNS = process.getuid?.() === 0 && process.env.XO_MESH_DEMO_LOOPBACK !== '1' && spawnSync('ip', ['-V']).status === 0
const PREFIX = `xd${process.pid % 100000}`
const BRIDGE_NS = `${PREFIX}b`
const namespaces: string[] = []
const helpers: ChildProcess[] = []
const forwards: Server[] = []

function ip (args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 })
  if (r.status !== 0) throw new Error(`demo: ip ${args.join(' ')}: ${r.stderr || r.error?.message}`)
}

function removeNamespaces (): void {
  for (const ns of namespaces.splice(0)) spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 })
}

/** A bridge in a namespace of its own, and one namespace per laptop on it (10.78.0.i/24, multicast routed to it). */
function classroomNamespaces (count: number): void {
  ip(['netns', 'add', BRIDGE_NS])
  namespaces.push(BRIDGE_NS)
  ip(['-n', BRIDGE_NS, 'link', 'add', 'br0', 'type', 'bridge'])
  ip(['-n', BRIDGE_NS, 'link', 'set', 'br0', 'up'])
  for (let i = 1; i <= count; i++) {
    const ns = `${PREFIX}n${i}`
    ip(['netns', 'add', ns])
    namespaces.push(ns)
    ip(['-n', BRIDGE_NS, 'link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
    ip(['-n', BRIDGE_NS, 'link', 'set', `v${i}`, 'master', 'br0', 'up'])
    ip(['-n', ns, 'addr', 'add', `10.78.0.${i}/24`, 'dev', 'eth0'])
    ip(['-n', ns, 'link', 'set', 'eth0', 'up'])
    ip(['-n', ns, 'link', 'set', 'lo', 'up'])
    ip(['-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0'])
  }
}

/** A free TCP port on the host's loopback (the agent in its namespace takes the same one, so Host and Origin match). */
async function freePort (): Promise<number> {
  const srv = createServer()
  await new Promise<void>(resolve => srv.listen(0, '127.0.0.1', resolve))
  const port = (srv.address() as { port: number }).port
  await new Promise(resolve => srv.close(resolve))
  return port
}

/** What runs inside a namespace: connections on a Unix socket go on to the agent's API on its loopback. */
const INSIDE = `const net = require('node:net'); const [sock, port] = process.argv.slice(1);
require('node:fs').rmSync(sock, { force: true });
net.createServer(c => { const u = net.connect(Number(port), '127.0.0.1'); c.pipe(u).pipe(c); u.on('error', () => c.destroy()); c.on('error', () => u.destroy()) }).listen(sock);`

/** Host 127.0.0.1:port → socket → the namespace's 127.0.0.1:port. */
async function forward (ns: string, port: number, sock: string): Promise<void> {
  helpers.push(spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', INSIDE, sock, String(port)], { stdio: 'ignore' }))
  const srv = createServer(c => {
    const u = connect(sock)
    c.pipe(u).pipe(c)
    u.on('error', () => c.destroy())
    c.on('error', () => u.destroy())
  })
  await new Promise<void>((resolve, reject) => { srv.once('error', reject); srv.listen(port, '127.0.0.1', resolve) })
  forwards.push(srv)
}

const stopAll = (): void => {
  for (const l of starting) l.proc?.kill('SIGTERM')
  for (const h of helpers) h.kill('SIGTERM')
  for (const f of forwards) f.close()
  removeNamespaces()
}
process.on('exit', stopAll)
process.on('SIGINT', () => { stopAll(); process.exit(130) })
process.on('SIGTERM', () => { stopAll(); process.exit(143) })

if (NETNS) {
  say(`A classroom: ${LAPTOPS} laptops, each in its own network namespace on one bridge (10.78.0.1-${LAPTOPS}), finding each other over mDNS (logs in .demo/xo-N/agent.log)`)
  classroomNamespaces(LAPTOPS)
} else {
  say(`A classroom: ${LAPTOPS} laptops, each running the agent (loopback ports, logs in .demo/xo-N/agent.log)`)
}
/** Starts laptop i (its agent in its namespace, or on loopback told of the laptops already up); resolves once its API answers. */
async function startLaptop (i: number, known: Laptop[]): Promise<Laptop> {
  const l: Laptop = { name: `xo-${i}`, data: join(work, `xo-${i}`), ...(NETNS ? { ns: `${PREFIX}n${i}` } : {}) }
  starting.push(l)
  await mkdir(l.data, { recursive: true })
  // the election's timers shortened so the failover below is quick to watch (defaults: 2 s, 7 s, 2 s, 30 s)
  await writeFile(join(l.data, 'config.yaml'), `blocks:\n  upload_rate: ${UPLOAD_RATE}\nelection:\n  heartbeat_s: 1\n  failure_timeout_s: 3\n  settle_s: 1\n  hold_s: 10\n`)
  // the election weighs power: xo-3 is plugged in, the others run on battery (stated, not read: XO_MESH_POWER)
  const power = i === 3 ? { XO_MESH_POWER: 'ac', XO_MESH_BATTERY: '100' } : { XO_MESH_POWER: 'battery', XO_MESH_BATTERY: String(30 + 12 * i) }
  if (l.ns !== undefined) {
    const port = await freePort()
    await forward(l.ns, port, join(l.data, 'page.sock'))
    const args = [bin, '--data', l.data, 'agent', '--listen', `/ip4/10.78.0.${i}/tcp/0`, '--api', `127.0.0.1:${port}`, '--log-file', 'agent.log']
    l.proc = spawn('ip', ['netns', 'exec', l.ns, process.execPath, ...args], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...power } })
  } else {
    // No multicast on loopback, so each laptop is told of the ones already up
    // (on a real LAN, mDNS finds them: docs/agent.md).
    const peers = known.map(p => `${p.addr!}/p2p/${p.peerId!}`)
    const args = [bin, '--data', l.data, 'agent', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--api', '127.0.0.1:0', '--log-file', 'agent.log', ...(peers.length > 0 ? ['--peer', ...peers] : [])]
    l.proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...power } })
  }
  const id = await until(`${l.name} to start`, async () => await apiGet(l.data, '/id') as { peerId: string, addrs: string[] }, 60_000)
  l.peerId = id.peerId
  l.addr = id.addrs.find(a => a.startsWith(NETNS ? '/ip4/10.78.' : '/ip4/127.0.0.1/tcp/'))?.replace(/\/p2p\/.*$/, '')
  return l
}

const numbers = Array.from({ length: LAPTOPS }, (_, k) => k + 1)
// in namespaces mDNS introduces them: all start at once; on loopback each is told of those before it
if (NETNS) laptops.push(...await Promise.all(numbers.map(async i => await startLaptop(i, []))))
else for (const i of numbers) laptops.push(await startLaptop(i, laptops))
for (const l of laptops) {
  const page = (await readFile(join(l.data, 'api'), 'utf8')).trim()
  process.stdout.write(`  ${l.name}  ${l.peerId!}  ${l.addr ?? '(no address?)'}  page ${page.startsWith('http') ? page : `http://${page}`}/\n`)
}
if (NETNS) process.stdout.write('  (each page is the agent\'s API in its namespace, forwarded to the same port on this machine\'s loopback while the demo runs)\n')
await until('every laptop to see the other four', async () => {
  for (const l of laptops) if (((await apiGet(l.data, '/peers')) as { peers: unknown[] }).peers.length < LAPTOPS - 1) return undefined
  return true
})
process.stdout.write(`  every laptop is connected to the other ${LAPTOPS - 1}\n`)

say('xo-1 adds a new activity bundle (~24 MB); the agent serves it at once')
await mkdir(join(work, 'activity'), { recursive: true })
for (let i = 0; i < 6; i++) await writeFile(join(work, 'activity', `media-${i}.ogg`), bytes(`media${i}`, 4_000_000))
await writeFile(join(work, 'activity', 'activity.info'), '[Activity]\nname = Sample\nactivity_version = 7\n')
const act = await xo(['--data', laptops[0]!.data, 'add', join(work, 'activity'), '--name', 'sample-activity-7', '--kind', 'activity'])

say(`The other laptops ask for it (xo-mesh fetch ${act.slice(0, 12)}...) and fetch from every peer that has blocks`)
await xoAll(laptops.slice(1).map(l => ['--data', l.data, 'fetch', act]))
interface BuildProgress { complete: boolean, bytes: number, have_bytes: number, sources: Array<{ peerId: string, bytes: number }> }
const names = new Map(laptops.map(l => [l.peerId!, l.name]))
const started = Date.now()
const tty = process.stdout.isTTY
let lines = 0
for (;;) {
  const ps = await Promise.all(laptops.slice(1).map(async l => await apiGet(l.data, `/builds/${act}`).catch(() => undefined) as BuildProgress | undefined))
  const rows = ps.map((p, i) => {
    const frac = p !== undefined && p.bytes > 0 ? p.have_bytes / p.bytes : 0
    const bar = '#'.repeat(Math.round(frac * 30)).padEnd(30, '.')
    const from = (p?.sources ?? []).filter(s => s.bytes > 0).map(s => names.get(s.peerId) ?? s.peerId.slice(-6)).join(', ')
    return `  ${laptops[i + 1]!.name}  [${bar}] ${(frac * 100).toFixed(0).padStart(3)}%  ${p?.complete === true ? 'complete' : 'fetching'}  from ${from === '' ? '-' : from}`
  })
  const done = ps.every(p => p?.complete === true)
  if (tty || done) {
    if (tty && lines > 0) process.stdout.write(`\x1b[${lines}A`)
    process.stdout.write(rows.map(r => tty ? r + '\x1b[K' : r).join('\n') + '\n')
    lines = rows.length
  }
  if (done) break
  if (Date.now() - started > 120_000) throw new Error('demo: the build did not spread within two minutes (see .demo/xo-N/agent.log)')
  await new Promise(resolve => setTimeout(resolve, 300))
}
process.stdout.write(`  all ${LAPTOPS - 1} laptops complete in ${((Date.now() - started) / 1000).toFixed(1)} s; xo-1 alone, at its upload cap, would need ${(4 * 24_000_000 / UPLOAD_RATE).toFixed(0)} s\n`)

say('Each laptop\'s status')
await xoAll(laptops.map(l => ['--data', l.data, 'status']))
say(`Who sent what: xo-${LAPTOPS}'s peers`)
await xo(['--data', laptops[LAPTOPS - 1]!.data, 'peers'])

// ---- Part three: the school server, and a failover ----

interface Status { peerId: string, role: string, server: string | null, term: number }
const statusOf = async (l: Laptop): Promise<Status> => await apiGet(l.data, '/status') as Status
/** Waits until the running laptops agree on one server; returns its laptop and term. */
const agreed = async (running: Laptop[], what: string, timeoutMs: number): Promise<{ server: Laptop, term: number }> => await until(what, async () => {
  const s = await Promise.all(running.map(statusOf))
  const servers = s.filter(x => x.role === 'server')
  if (servers.length !== 1 || !s.every(x => x.server === servers[0]!.peerId && x.term === servers[0]!.term)) return undefined
  return { server: running.find(l => l.peerId === servers[0]!.peerId)!, term: servers[0]!.term }
}, timeoutMs)

const first = await agreed(laptops, 'the classroom to elect a school server', 30_000)
say(`The classroom elected ${first.server.name} as its school server (term ${first.term}): the only laptop on AC power`)
process.stdout.write('  every agent signs a claim of its facts each heartbeat (1 s here); the best by pinned > uplink > AC > battery > disk > uptime serves\n')
await xo(['--data', laptops[0]!.data, 'peers'])

say(`${first.server.name} is switched off without warning (SIGKILL); the others elect a new server`)
const killedAt = Date.now()
first.server.proc?.kill('SIGKILL')
const rest = laptops.filter(l => l !== first.server)
const second = await agreed(rest, 'a new school server', 30_000)
process.stdout.write(`  ${second.server.name} (the fullest battery) took over in term ${second.term}, ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill (failure timeout 3 s + settle 1 s here); every laptop agrees\n`)
await xo(['--data', rest[0]!.data, 'status'])

// A clean shutdown: each agent closes its connections and store on SIGTERM.
await Promise.all(laptops.map(async l => await new Promise<void>(resolve => {
  if (l.proc === undefined || l.proc.exitCode !== null) return resolve()
  const timer = setTimeout(() => { l.proc?.kill('SIGKILL'); resolve() }, 10_000)
  l.proc.once('exit', () => { clearTimeout(timer); resolve() })
  l.proc.kill('SIGTERM')
})))
// the forwarders too, before the namespaces go
await Promise.all(helpers.map(async h => await new Promise<void>(resolve => {
  if (h.exitCode !== null || h.signalCode !== null) return resolve()
  h.once('exit', () => { resolve() })
  h.kill('SIGTERM')
})))
for (const f of forwards) f.close()
removeNamespaces()
say('Done')
process.stdout.write(`Everything is under ${relative(repo, work)}/. Each laptop's page (the URLs above) is live while its agent runs:\nstart one with xo-mesh --data ${relative(repo, join(work, 'xo-1'))} agent and open the address it prints.\n`)
if (NETNS) process.stdout.write('The network namespaces are gone again (ip netns list).\n')
