// A classroom in network namespaces: four "laptops" on one bridge (veth
// pairs, 10.77.0.0/24 inside the namespaces only; the bridge lives in a
// namespace of its own, so nothing touches the host's network). Agents get no
// --peer: they must find each other over mDNS, a late joiner within 2 s, and
// Avahi (running beside agent A, as on a real XO) must resolve every agent.
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir } from '../support/cli.ts'
import { AgentProcess, statusOf, until, xo } from './support.ts'

const PREFIX = `xm${process.pid % 100000}`
const BRIDGE_NS = `${PREFIX}b`
const NODES = [1, 2, 3, 4].map(i => ({ ns: `${PREFIX}n${i}`, ip: `10.77.0.${i}` }))

function sh (cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message}`)
}

function have (cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
}

function removeNamespaces (): void {
  for (const ns of [BRIDGE_NS, ...NODES.map(n => n.ns)]) spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 })
}

function createNamespaces (): void {
  sh('ip', ['netns', 'add', BRIDGE_NS])
  sh('ip', ['-n', BRIDGE_NS, 'link', 'add', 'br0', 'type', 'bridge'])
  sh('ip', ['-n', BRIDGE_NS, 'link', 'set', 'br0', 'up'])
  NODES.forEach(({ ns, ip }, i) => {
    sh('ip', ['netns', 'add', ns])
    sh('ip', ['-n', BRIDGE_NS, 'link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
    sh('ip', ['-n', BRIDGE_NS, 'link', 'set', `v${i}`, 'master', 'br0', 'up'])
    sh('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0'])
    sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up'])
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
    sh('ip', ['-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0'])
  })
}

/** Waits (bounded) until `child` prints `text` on stdout or stderr. */
async function output (child: ChildProcess, text: string, timeoutMs: number): Promise<void> {
  let seen = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`no "${text}" within ${timeoutMs} ms; got: ${seen}`)) }, timeoutMs)
    const on = (d: Buffer): void => {
      seen += d.toString()
      if (seen.includes(text)) { clearTimeout(timer); resolve() }
    }
    child.stdout?.on('data', on)
    child.stderr?.on('data', on)
    child.on('exit', code => { clearTimeout(timer); reject(new Error(`exited (${code}) before printing "${text}": ${seen}`)) })
  })
}

async function killChild (child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise(resolve => child.on('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => { child.kill('SIGKILL') }, 3_000)
  await exited
  clearTimeout(timer)
}

describe('discovery over mDNS in network namespaces', function () {
  this.timeout(60_000)
  let t: Awaited<ReturnType<typeof tempDir>> | undefined
  const agents: AgentProcess[] = []
  let dbus: ChildProcess | undefined
  let avahi: ChildProcess | undefined
  let busAddress = ''

  before(async function () {
    if (process.getuid?.() !== 0) {
      console.log('      (skipped: network namespaces need root)')
      this.skip()
    }
    const missing = ['ip', 'unshare', 'dbus-daemon', 'avahi-daemon', 'avahi-browse'].filter(c => !have(c))
    if (missing.length > 0) throw new Error(`missing ${missing.join(', ')}: apt-get install iproute2 dbus avahi-daemon avahi-utils (.ci/run does)`)
    t = await tempDir('xo-mesh-netns-')
    removeNamespaces()
    createNamespaces()

    // a private system bus for Avahi and avahi-browse (field-notes.md)
    const busSocket = join(t.dir, 'bus')
    await writeFile(join(t.dir, 'bus.conf'), `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${busSocket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_destination="*" eavesdrop="true"/><allow receive_sender="*"/>
  </policy>
</busconfig>
`)
    dbus = spawn('dbus-daemon', ['--config-file', join(t.dir, 'bus.conf'), '--nofork', '--print-address'], { stdio: ['ignore', 'pipe', 'pipe'] })
    await output(dbus, 'unix:path=', 5_000)
    busAddress = `unix:path=${busSocket}`
    await writeFile(join(t.dir, 'avahi.conf'), `[server]
host-name=${PREFIX}-avahi
use-ipv4=yes
use-ipv6=no
allow-interfaces=eth0
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
`)
    // its own mount namespace with a tmpfs over /run: avahi's pid file (/run/avahi-daemon/pid) is per daemon, and nothing is created on the host
    avahi = spawn('ip', ['netns', 'exec', NODES[0]!.ns, 'unshare', '-m', 'sh', '-c',
      `mount -t tmpfs tmpfs /run && mkdir -p /run/avahi-daemon && exec avahi-daemon -f ${join(t.dir, 'avahi.conf')} --no-drop-root --no-chroot --no-rlimits`],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: busAddress } })
    await output(avahi, 'Server startup complete', 10_000)
  })

  after(async () => {
    await Promise.all(agents.map(async a => { await a.kill() }))
    await killChild(avahi)
    await killChild(dbus)
    removeNamespaces()
    await t?.cleanup()
  })

  const startAgent = (i: number): AgentProcess => {
    const a = new AgentProcess(join(t!.dir, `agent${i}`), ['--api', '127.0.0.1:0'], { netns: NODES[i]!.ns })
    agents.push(a)
    return a
  }

  it('finds and connects agents that were given no peer', async () => {
    const first = [0, 1, 2].map(startAgent)
    await Promise.all(first.map(async a => await a.started()))
    await until('every agent to connect to the two others', 10_000, () => (first.every(a => first.every(b => a === b || a.connectedPeers().has(b.peerId))) ? true : undefined))
    for (const [i, a] of first.entries()) {
      const s = await statusOf(a.dataDir, NODES[i]!.ns)
      assert.deepEqual(s.peers.map(p => p.peerId).sort(), first.filter(b => b !== a).map(b => b.peerId).sort())
      // only reachable addresses were announced: the link's own, never loopback
      for (const found of a.find(l => l.msg === 'found peer')) {
        const addrs = found.addrs as string[]
        assert.ok(addrs.length > 0 && addrs.every(x => x.startsWith('/ip4/10.77.0.')), JSON.stringify(found))
      }
    }
    // one connection per pair: the smaller peer id dials, the other waits
    const lists = await Promise.all(first.map(async (a, i) => await xo(['--data', a.dataDir, '--json', 'peers'], { netns: NODES[i]!.ns })))
    for (const r of lists) {
      const { peers } = JSON.parse(r.stdout) as { peers: Array<{ peerId: string, via: string, connections: unknown[] }> }
      assert.equal(peers.length, 2, r.stdout)
      for (const p of peers) assert.equal(p.connections.length, 1, r.stdout)
      assert.ok(peers.some(p => p.via === 'mdns'), r.stdout)
    }
  })

  it('finds and connects a late joiner within 2 s', async () => {
    const first = agents.slice(0, 3)
    const late = startAgent(3)
    await late.started()
    const announced = Date.parse(late.find(l => l.msg === 'announcing')[0]!.time)
    await until('the late joiner to be connected both ways', 10_000, () =>
      (first.every(a => a.connectedPeers().has(late.peerId) && late.connectedPeers().has(a.peerId)) ? true : undefined))
    const times = [
      ...first.map(a => a.find(l => l.msg === 'peer connected' && l.peerId === late.peerId)[0]!.time),
      ...late.find(l => l.msg === 'peer connected').map(l => l.time)
    ].map(x => Date.parse(x))
    const took = Math.max(...times) - announced
    console.log(`      late joiner connected to all ${first.length} in ${took} ms after its first announcement`)
    assert.ok(took < 2_000, `took ${took} ms`)
  })

  it('publishes _xo-mesh._tcp so that avahi-browse resolves every agent with its peer id', async () => {
    type Row = { name: string, host: string, address: string, port: number, txt: string }
    let rows: Row[] = []
    // avahi-browse -t prints what the daemon knows and resolves; bounded retries cover a cold cache
    await until('avahi-browse to resolve all four agents', 20_000, () => {
      const r = spawnSync('ip', ['netns', 'exec', NODES[0]!.ns, 'avahi-browse', '-r', '-p', '-t', '_xo-mesh._tcp'], { encoding: 'utf8', timeout: 10_000, env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: busAddress } })
      rows = r.stdout.split('\n').filter(l => l.startsWith('=;')).map(l => {
        const f = l.split(';')
        return { name: f[3]!, host: f[6]!, address: f[7]!, port: Number(f[8]), txt: f.slice(9).join(';') }
      })
      return agents.every(a => rows.some(x => x.name === a.peerId)) ? true : undefined
    }, 500)
    for (const [i, a] of agents.entries()) {
      const row = rows.find(x => x.name === a.peerId)!
      assert.equal(row.address, NODES[i]!.ip)
      assert.match(row.txt, new RegExp(`"id=${a.peerId}"`))
      assert.match(row.txt, new RegExp(`"addr0=/ip4/${NODES[i]!.ip.replace(/\./g, '\\.')}/tcp/${row.port}"`))
      assert.equal(row.host, `xo-${a.peerId.toLowerCase()}.local`)
    }
  })

  it('says goodbye on SIGTERM, so the others stop redialling at once', async () => {
    const late = agents[3]!
    assert.deepEqual(await late.stop('SIGTERM'), { code: 0, signal: null })
    assert.equal(existsSync(join(late.dataDir, 'api')), false)
    await until('the others to hear the goodbye', 5_000, () => (agents.slice(0, 3).every(a => a.find(l => l.msg === 'peer said goodbye' && l.peerId === late.peerId).length > 0) ? true : undefined))
  })
})
