// npm run demo, narrated. Part one, the content layer: two "laptops" are two
// data directories on this machine; the publisher adds a build and a newer
// one, writes USB bundles, and a school laptop imports and applies them.
// Part two, the mesh: five agents (own data directories and ports, loopback
// only) form a classroom; a build added on one spreads to the other four,
// each fetching from every peer that already holds blocks.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { request } from 'node:http'
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

function xo (args: string[]): string {
  process.stdout.write(`$ xo-mesh ${args.map(a => (a.startsWith(work) ? relative(repo, a) : a)).join(' ')}\n`)
  const out = execFileSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, XO_MESH_NO_PROGRESS: '1' }, stdio: ['ignore', 'pipe', 'inherit'] })
  process.stdout.write(out.split('\n').map(l => (l === '' ? l : `  ${l}`)).join('\n'))
  return out.trim().split('\n').pop()!.trim()
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
const v1 = xo(['--data', publisher, 'add', join(work, 'tree-v1'), '--name', 'sample-os-1', '--kind', 'os'])

say('... and writes it to a USB bundle (a standard CARv1 file)')
xo(['--data', publisher, 'export', v1, '-o', join(work, 'usb', 'sample-os-1.car')])

say('At the school, a laptop imports the bundle (every block verified) and applies it')
xo(['--data', laptop, 'import', join(work, 'usb', 'sample-os-1.car')])
xo(['--data', laptop, 'apply', v1, '--root', root])

say('The publisher adds build 2: one binary patched, one file added')
await sampleTree(join(work, 'tree-v2'), 2)
const v2 = xo(['--data', publisher, 'add', join(work, 'tree-v2'), '--name', 'sample-os-2', '--kind', 'os'])
xo(['--data', publisher, 'diff', v1, v2])

say('The update bundle carries only what a holder of build 1 lacks, as a delta')
xo(['--data', publisher, 'export', v2, '-o', join(work, 'usb', 'sample-os-2-from-1.car'), '--have', v1])
process.stdout.write(`  full bundle: ${await size(join(work, 'usb', 'sample-os-1.car'))}, update bundle: ${await size(join(work, 'usb', 'sample-os-2-from-1.car'))}\n`)

say('The laptop imports the update, rebuilds the new files from the delta and applies build 2')
xo(['--data', laptop, 'import', join(work, 'usb', 'sample-os-2-from-1.car')])
xo(['--data', laptop, 'apply', v2, '--root', root])
process.stdout.write(`  ${relative(repo, root)}/current/etc/os-release says: ${(await readFile(join(root, 'current', 'etc', 'os-release'), 'utf8')).split('\n')[1]}\n`)

say('Someone edits a system file; verify finds it and repairs it from the store')
await writeFile(join(root, 'current', 'etc', 'os-release'), 'tampered\n')
xo(['--data', laptop, 'verify', '--root', root])

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

interface Laptop { name: string, data: string, proc?: ChildProcess, peerId?: string, addr?: string }
const laptops: Laptop[] = []
const stopAll = (): void => { for (const l of laptops) l.proc?.kill('SIGTERM') }
process.on('exit', stopAll)
process.on('SIGINT', () => { stopAll(); process.exit(130) })

say(`A classroom: ${LAPTOPS} laptops, each running the agent (loopback ports, logs in .demo/xo-N/agent.log)`)
for (let i = 1; i <= LAPTOPS; i++) {
  const l: Laptop = { name: `xo-${i}`, data: join(work, `xo-${i}`) }
  await mkdir(l.data, { recursive: true })
  // the election's timers shortened so the failover below is quick to watch (defaults: 2 s, 7 s, 2 s, 30 s)
  await writeFile(join(l.data, 'config.yaml'), `blocks:\n  upload_rate: ${UPLOAD_RATE}\nelection:\n  heartbeat_s: 1\n  failure_timeout_s: 3\n  settle_s: 1\n  hold_s: 10\n`)
  // No multicast on loopback, so each laptop is told of the ones already up
  // (on a real LAN, mDNS finds them: docs/agent.md).
  const peers = laptops.map(p => `${p.addr!}/p2p/${p.peerId!}`)
  const args = [bin, '--data', l.data, 'agent', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--api', '127.0.0.1:0', '--log-file', 'agent.log', ...(peers.length > 0 ? ['--peer', ...peers] : [])]
  // the election weighs power: xo-3 is plugged in, the others run on battery (stated, not read: XO_MESH_POWER)
  const power = i === 3 ? { XO_MESH_POWER: 'ac', XO_MESH_BATTERY: '100' } : { XO_MESH_POWER: 'battery', XO_MESH_BATTERY: String(30 + 12 * i) }
  l.proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...power } })
  const id = await until(`${l.name} to start`, async () => await apiGet(l.data, '/id') as { peerId: string, addrs: string[] })
  l.peerId = id.peerId
  l.addr = id.addrs.find(a => a.startsWith('/ip4/127.0.0.1/tcp/'))?.replace(/\/p2p\/.*$/, '')
  const page = (await readFile(join(l.data, 'api'), 'utf8')).trim()
  process.stdout.write(`  ${l.name}  ${l.peerId}  ${l.addr ?? '(no loopback address?)'}  page ${page.startsWith('http') ? page : `http://${page}`}/\n`)
  laptops.push(l)
}
await until('every laptop to see the other four', async () => {
  for (const l of laptops) if (((await apiGet(l.data, '/peers')) as { peers: unknown[] }).peers.length < LAPTOPS - 1) return undefined
  return true
})
process.stdout.write(`  every laptop is connected to the other ${LAPTOPS - 1}\n`)

say('xo-1 adds a new activity bundle (~24 MB); the agent serves it at once')
await mkdir(join(work, 'activity'), { recursive: true })
for (let i = 0; i < 6; i++) await writeFile(join(work, 'activity', `media-${i}.ogg`), bytes(`media${i}`, 4_000_000))
await writeFile(join(work, 'activity', 'activity.info'), '[Activity]\nname = Sample\nactivity_version = 7\n')
const act = xo(['--data', laptops[0]!.data, 'add', join(work, 'activity'), '--name', 'sample-activity-7', '--kind', 'activity'])

say(`The other laptops ask for it (xo-mesh fetch ${act.slice(0, 12)}...) and fetch from every peer that has blocks`)
for (const l of laptops.slice(1)) xo(['--data', l.data, 'fetch', act])
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
for (const l of laptops) {
  process.stdout.write(`-- ${l.name}\n`)
  xo(['--data', l.data, 'status'])
}
say(`Who sent what: xo-${LAPTOPS}'s peers`)
xo(['--data', laptops[LAPTOPS - 1]!.data, 'peers'])

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
xo(['--data', laptops[0]!.data, 'peers'])

say(`${first.server.name} is switched off without warning (SIGKILL); the others elect a new server`)
const killedAt = Date.now()
first.server.proc?.kill('SIGKILL')
const rest = laptops.filter(l => l !== first.server)
const second = await agreed(rest, 'a new school server', 30_000)
process.stdout.write(`  ${second.server.name} (the fullest battery) took over in term ${second.term}, ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill (failure timeout 3 s + settle 1 s here); every laptop agrees\n`)
xo(['--data', rest[0]!.data, 'status'])

// A clean shutdown: each agent closes its connections and store on SIGTERM.
await Promise.all(laptops.map(async l => await new Promise<void>(resolve => {
  if (l.proc === undefined || l.proc.exitCode !== null) return resolve()
  const timer = setTimeout(() => { l.proc?.kill('SIGKILL'); resolve() }, 10_000)
  l.proc.once('exit', () => { clearTimeout(timer); resolve() })
  l.proc.kill('SIGTERM')
})))
say('Done')
process.stdout.write(`Everything is under ${relative(repo, work)}/. Each laptop's page (the URLs above) is live while its agent runs:\nstart one with xo-mesh --data ${relative(repo, join(work, 'xo-1'))} agent and open the address it prints.\n`)
