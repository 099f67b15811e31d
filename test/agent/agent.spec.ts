// Three real agent processes on loopback, chained by static peers (A←B←C),
// driven and checked through the xo-mesh command as a user would.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { lastLine, tempDir } from '../support/cli.ts'
import { AgentProcess, apiGet, statusOf, until, xo } from './support.ts'

/** A TCP port free right now on 127.0.0.1. */
async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise(resolve => server.close(resolve))
  return port
}

const LOOPBACK = ['--no-mdns', '--api', '127.0.0.1:0']

describe('agent processes on loopback', function () {
  this.timeout(60_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  const agents: AgentProcess[] = []
  let a: AgentProcess, b: AgentProcess, c: AgentProcess
  let ports: number[]
  const dir = (name: string): string => join(t.dir, name)

  before(async () => {
    t = await tempDir('xo-mesh-agent-')
    ports = [await freePort(), await freePort(), await freePort()]
    const listen = (i: number): string[] => ['--listen', `/ip4/127.0.0.1/tcp/${ports[i]}`]
    // all at once: B and C may dial before their peer listens, and must retry
    // A's static peers name A itself: one list for a whole school does that
    a = new AgentProcess(dir('a'), [...LOOPBACK, ...listen(0), '--peer', `/ip4/127.0.0.1/tcp/${ports[0]}`])
    b = new AgentProcess(dir('b'), [...LOOPBACK, ...listen(1), '--peer', `/ip4/127.0.0.1/tcp/${ports[0]}`])
    c = new AgentProcess(dir('c'), [...LOOPBACK, ...listen(2), '--peer', `/ip4/127.0.0.1/tcp/${ports[1]}`])
    agents.push(a, b, c)
    await Promise.all(agents.map(async x => await x.started()))
  })

  after(async () => {
    await Promise.all(agents.map(async x => { await x.kill() }))
    await t.cleanup()
  })

  it('connects a chain of static peers A←B←C', async () => {
    const want: Array<[AgentProcess, AgentProcess[]]> = [[a, [b]], [b, [a, c]], [c, [b]]]
    // wait on the logs (cheap), then check what `xo-mesh status --json` says
    await until('the chain to connect', 15_000, () => (want.every(([x, peers]) => peers.every(p => x.connectedPeers().has(p.peerId))) ? true : undefined))
    const [sa, sb, sc] = await Promise.all(['a', 'b', 'c'].map(async n => await statusOf(dir(n))))
    assert.deepEqual(sa!.peers.map(p => p.peerId), [b.peerId])
    assert.deepEqual(sb!.peers.map(p => p.peerId).sort(), [a.peerId, c.peerId].sort())
    assert.deepEqual(sc!.peers.map(p => p.peerId), [b.peerId])
    const pa = sb!.peers.find(p => p.peerId === a.peerId)!
    assert.ok(pa.addrs.some(x => x.includes(`/tcp/${ports[0]}`)), JSON.stringify(pa))
  })

  it('does not dial itself when its static peers name it', () => {
    assert.equal(a.find(l => l.msg === 'not dialling a static peer that is this agent').length, 1)
    assert.equal(a.find(l => l.msg === 'dial failed, will retry').length, 0)
  })

  it('reports its role, the elected school server and the term; the chain agrees on one server', async () => {
    // default timers: no role in the first 6 s, then the best candidate takes it
    const all = await until('the chain to elect a server', 20_000, async () => {
      const s = await Promise.all(['a', 'b', 'c'].map(async n => await statusOf(dir(n))))
      return s.every(x => x.server !== null && x.server === s[0]!.server && x.term === s[0]!.term) ? s : undefined
    }, 500)
    assert.equal(all[0]!.peerId, a.peerId)
    assert.equal(all.filter(x => x.role === 'server').length, 1)
    const server = all.find(x => x.role === 'server')!
    assert.equal(server.server, server.peerId)
    assert.ok(server.term >= 1)
  })

  it('prints its id and listen addresses', async () => {
    const r = await xo(['--data', dir('a'), 'id'])
    assert.equal(r.code, 0, r.stderr)
    const lines = r.stdout.trim().split('\n')
    assert.equal(lines[0], a.peerId)
    assert.ok(lines.includes(`/ip4/127.0.0.1/tcp/${ports[0]}/p2p/${a.peerId}`), r.stdout)
  })

  it('lists neighbours with how they were found and since when', async () => {
    const r = await xo(['--data', dir('b'), '--json', 'peers'])
    assert.equal(r.code, 0, r.stderr)
    const { peers } = JSON.parse(r.stdout) as { peers: Array<{ peerId: string, via: string, connected_since: string, bytes_sent: number }> }
    assert.equal(peers.find(p => p.peerId === a.peerId)?.via, 'static')
    assert.equal(peers.find(p => p.peerId === c.peerId)?.via, 'inbound')
    for (const p of peers) {
      assert.ok(Date.now() - Date.parse(p.connected_since) < 60_000)
      assert.ok(Number.isSafeInteger(p.bytes_sent) && p.bytes_sent >= 0)
    }
    const text = await xo(['--data', dir('b'), 'peers'])
    assert.match(text.stdout, new RegExp(`${a.peerId} +static`))
  })

  it('shows a build added with xo-mesh add on its data directory', async () => {
    const src = join(t.dir, 'tree')
    await mkdir(src)
    await writeFile(join(src, 'hello.txt'), 'hello from the test\n')
    const add = await xo(['--data', dir('a'), 'add', src, '--name', 'demo-build'])
    assert.equal(add.code, 0, add.stderr)
    const cid = lastLine(add.stdout)
    const s = await statusOf(dir('a'))
    assert.deepEqual(s.builds, [{ cid, name: 'demo-build', bytes: 20, have_bytes: 20, complete: true }])
    // the running agent noticed it too (it will offer it to peers)
    await until('the agent to log the new build', 5_000, () => a.find(l => l.msg === 'build added' && l.cid === cid)[0])
  })

  it('refuses a second agent on the same data directory, with one clear line', async () => {
    const r = await xo(['--data', dir('a'), 'agent', ...LOOPBACK, '--listen', '/ip4/127.0.0.1/tcp/0'])
    assert.equal(r.code, 1)
    const pid = a.child.pid
    assert.equal(r.stderr.trim(), `xo-mesh: an agent is already running on ${dir('a')} (pid ${pid}); stop it first, or give this one another --data`)
    assert.equal((await statusOf(dir('a'))).peerId, a.peerId, 'the first agent still answers')
  })

  it('rejects API requests from a foreign Origin or Host', async () => {
    const url = await a.started()
    const foreign = await apiGet(url, '/status', { Origin: 'http://evil.example' })
    assert.equal(foreign.status, 403)
    assert.match((foreign.body as { error: string }).error, /origin http:\/\/evil.example may not use this API/)
    const port = new URL(url).port
    assert.equal((await apiGet(url, '/status', { Host: `attacker.example:${port}` })).status, 403)
    assert.equal((await apiGet(url, '/status', { Origin: url })).status, 200)
  })

  it('redials a static peer that restarts', async () => {
    const stopped = await a.stop()
    assert.equal(stopped.code, 0)
    await until('B to notice A left', 10_000, () => (b.connectedPeers().has(a.peerId) ? undefined : true))
    const again = new AgentProcess(dir('a'), [...LOOPBACK, '--listen', `/ip4/127.0.0.1/tcp/${ports[0]}`])
    agents.push(again)
    await again.started()
    assert.equal(again.peerId, a.peerId, 'the identity persists across restarts')
    await until('B to reconnect to A', 15_000, () => (b.connectedPeers().has(a.peerId) ? true : undefined))
    a = again
  })

  it('exits 0 on SIGTERM, removes its API file, and the CLI then says no agent runs', async () => {
    const r = await c.stop('SIGTERM')
    assert.deepEqual(r, { code: 0, signal: null })
    assert.equal(existsSync(join(dir('c'), 'api')), false)
    assert.equal(existsSync(join(dir('c'), 'agent.lock')), false)
    assert.ok(c.find(l => l.msg === 'stopped').length === 1)
    const s = await xo(['--data', dir('c'), 'status'])
    assert.equal(s.code, 5)
    assert.equal(s.stderr.trim(), `xo-mesh: no agent is running on ${dir('c')} (start one with: xo-mesh --data ${dir('c')} agent)`)
  })

  it('keeps its identity key private (mode 0600)', async () => {
    const { stat } = await import('node:fs/promises')
    assert.equal((await stat(join(dir('b'), 'identity.key'))).mode & 0o777, 0o600)
  })
})

describe('the agent-only entry (src/cli/agentd.ts)', function () {
  this.timeout(30_000)
  it('runs the agent under Node\'s own type stripping, without tsx', async () => {
    const { spawn } = await import('node:child_process')
    const { REPO_ROOT } = await import('../support/cli.ts')
    const t = await tempDir('xo-mesh-agentd-')
    const child = spawn(process.execPath, [join(REPO_ROOT, 'src/cli/agentd.ts'), '--data', t.dir, 'agent', ...LOOPBACK, '--listen', '/ip4/127.0.0.1/tcp/0'], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const exited = new Promise<number | null>(resolve => child.on('exit', code => { resolve(code) }))
    try {
      await until('agentd to start', 20_000, () => {
        if (child.exitCode !== null) throw new Error(`agentd exited ${child.exitCode}: ${stderr}`)
        return existsSync(join(t.dir, 'api')) ? true : undefined
      })
      child.kill('SIGTERM')
      assert.equal(await exited, 0, stderr)
    } finally {
      child.kill('SIGKILL')
      await t.cleanup()
    }
  })
})
