// The relay between real agent processes on 127.0.0.1: two laptops → a school
// server → the mothership. Install reports and statistics posted on the
// laptops arrive in the mothership's SQLite store exactly once, though the
// school server is killed with SIGKILL while items are on their way and
// started again; then `xo-mesh report` shows the school.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { AgentProcess, until, xo } from '../agent/support.ts'
import { api, freePort, writeConfig } from './support.ts'
import { identity, testbed } from './testbed.ts'
import { MothershipStore } from '../../src/store/mothership.ts'
import { openDatabase } from '../../src/store/sqlite.ts'

const LOOPBACK = ['--no-mdns', '--api', '127.0.0.1:0']
const PER_LAPTOP = 60

describe('relay between agent processes', function () {
  this.timeout(180_000)
  const { dir, agents } = testbed('xo-mesh-relay-')

  it('carries every laptop item to the mothership exactly once across a SIGKILL of the school server', async () => {
    const [pm, ps, p1, p2] = [await freePort(), await freePort(), await freePort(), await freePort()]
    const listen = (p: number): string[] => ['--listen', `/ip4/127.0.0.1/tcp/${p}`]
    await writeConfig(dir('mothership'), 'role: mothership\n')
    await writeConfig(dir('server'), '')
    const mothershipId = await identity(dir('mothership'))
    const serverId = await identity(dir('server'))
    // pinned: the laptops (which decline custody) must not win the school's election and become the server's next hop
    await writeConfig(dir('server'), `upstream: /ip4/127.0.0.1/tcp/${pm}/p2p/${mothershipId}\nelection:\n  pinned: true\n`)
    for (const name of ['l1', 'l2']) await writeConfig(dir(name), `upstream: /ip4/127.0.0.1/tcp/${ps}/p2p/${serverId}\nrelay:\n  accept: false\n`)
    const mothership = new AgentProcess(dir('mothership'), [...LOOPBACK, ...listen(pm)])
    let server = new AgentProcess(dir('server'), [...LOOPBACK, ...listen(ps)])
    const laptops = [new AgentProcess(dir('l1'), [...LOOPBACK, ...listen(p1)]), new AgentProcess(dir('l2'), [...LOOPBACK, ...listen(p2)])]
    agents.push(mothership, server, ...laptops)
    const [, , ...urls] = await Promise.all(agents.map(async a => await a.started(60_000)))
    const post = async (i: number, k: number): Promise<void> => {
      const r = k % 3 === 0
        ? await api(urls[i]!, '/outbox', { kind: 'install-report', report: { school: 'Escuela 12', build: `bafyBuild${k}`, name: `os-${k}` } })
        : await api(urls[i]!, '/outbox', { kind: 'statistics', report: { school: 'Escuela 12', sampled_at: k, battery: 0.5 } })
      assert.equal(r.status, 201, JSON.stringify(r.body))
    }
    for (let k = 0; k < PER_LAPTOP / 2; k++) for (let i = 0; i < 2; i++) await post(i, k)
    // Some items are on their way: kill the server mid-flow, post more while it is down, start it again.
    await until('the first items at the mothership', 20_000, () => (count(dir('mothership')) > 0 ? true : undefined))
    await server.stop('SIGKILL')
    for (let k = PER_LAPTOP / 2; k < PER_LAPTOP; k++) for (let i = 0; i < 2; i++) await post(i, k)
    server = new AgentProcess(dir('server'), [...LOOPBACK, ...listen(ps)])
    agents.push(server)
    await server.started(60_000)
    await until(`all ${2 * PER_LAPTOP} items at the mothership`, 60_000, () => (count(dir('mothership')) === 2 * PER_LAPTOP ? true : undefined), 250)
    // Exactly once: one row per (origin, counter), counters 1..PER_LAPTOP of each laptop.
    const db = openDatabase(join(dir('mothership'), 'mothership.db'))
    const rows = db.prepare('SELECT origin, count(*) AS n, min(counter) AS lo, max(counter) AS hi FROM items GROUP BY origin ORDER BY origin').all() as Array<{ origin: string, n: number, lo: number, hi: number }>
    db.close()
    assert.deepEqual(rows.map(r => [r.n, r.lo, r.hi]), [[PER_LAPTOP, 1, PER_LAPTOP], [PER_LAPTOP, 1, PER_LAPTOP]])
    assert.deepEqual(new Set(rows.map(r => r.origin)), new Set(laptops.map(l => l.peerId)))
    // Outboxes drain: every hop forgot what the next one holds.
    await until('the outboxes to drain', 20_000, async () => {
      const sizes = await Promise.all([...urls as string[], await server.started()].map(async u => ((await api(u, '/relay')).body as { outbox: { items: number } }).outbox.items))
      return sizes.every(n => n === 0) ? true : undefined
    }, 250)
    const store = MothershipStore.open(dir('mothership'))
    const school = store.schools().find(s => s.school === 'Escuela 12')
    store.close()
    assert.equal(school?.laptops, 2)
    const report = await xo(['--data', dir('mothership'), 'report'])
    assert.match(report.stdout, /Escuela 12\s+2\s/)
  })
})

function count (dataDir: string): number {
  try {
    const db = openDatabase(join(dataDir, 'mothership.db'))
    try {
      return (db.prepare('SELECT count(*) AS n FROM items').get() as { n: number }).n
    } finally {
      db.close()
    }
  } catch {
    return 0
  }
}
