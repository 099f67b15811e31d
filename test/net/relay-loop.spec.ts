// A route that loops back, between real agent processes on 127.0.0.1: what
// happens when the election moves the school server role. A laptop hands its
// items to the school server; the server is killed with SIGKILL; while it is
// down the laptop holds the role (its next hop is now the mothership), and the
// server, started again, takes that laptop for its next hop and offers it
// everything it holds: the laptop's own items among them. The laptop must take
// them again and carry them up. (A laptop that answered "I made these" once
// made the server forget the only copy: issue 8's ten-laptop test lost 13-14
// items that way.) The roles are set by config, not by the election, so the
// loop happens every run.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { AgentProcess, agentdBundle, until } from '../agent/support.ts'
import { api, freePort, writeConfig } from './support.ts'
import { identity, testbed } from './testbed.ts'
import { openDatabase } from '../../src/store/sqlite.ts'

const LOOPBACK = ['--no-mdns', '--api', '127.0.0.1:0']
const ITEMS = 6
// No election: the next hops come from `upstream` alone (a staging agent relays like a school server).
const RELAY = 'role: staging\nrelay:\n  retry_max_s: 2\n'

const outboxItems = async (url: string): Promise<number> => ((await api(url, '/relay')).body as { outbox: { items: number } }).outbox.items

describe('relay when a route loops back (the server role moved)', function () {
  this.timeout(180_000)
  const { dir, agents } = testbed('xo-mesh-relay-loop-')
  let entry: string
  before(async () => { entry = await agentdBundle(dir('.')) }) // five agent starts: from the bundle, not through tsx

  it('a laptop takes its own items back from the restarted server and carries them to the mothership', async () => {
    const port = { mothership: await freePort(), server: await freePort(), laptop: await freePort() }
    const id = { mothership: '', server: '', laptop: '' }
    for (const n of ['mothership', 'server', 'laptop'] as const) { await writeConfig(dir(n), ''); id[n] = await identity(dir(n)) }
    const addr = (n: keyof typeof port): string => `/ip4/127.0.0.1/tcp/${port[n]}/p2p/${id[n]}`
    const start = (n: keyof typeof port): AgentProcess => {
      const a = new AgentProcess(dir(n), [...LOOPBACK, '--listen', `/ip4/127.0.0.1/tcp/${port[n]}`], { entry })
      agents.push(a)
      return a
    }
    await writeConfig(dir('mothership'), 'role: mothership\n')
    // The school server has no uplink yet: what it takes stays in its outbox.
    await writeConfig(dir('server'), RELAY)
    await writeConfig(dir('laptop'), `${RELAY}upstream: ${addr('server')}\n`)
    const mothership = start('mothership')
    let server = start('server')
    let laptop = start('laptop')
    await mothership.started(60_000)
    let serverUrl = await server.started(60_000)
    let laptopUrl = await laptop.started(60_000)
    for (let k = 1; k <= ITEMS; k++) {
      const r = await api(laptopUrl, '/outbox', { kind: 'statistics', report: { school: 'Escuela 12', sampled_at: k } })
      assert.equal(r.status, 201, JSON.stringify(r.body))
    }
    await until('the server to hold the laptop\'s items and the laptop to forget them', 30_000, async () =>
      (await outboxItems(serverUrl)) === ITEMS && (await outboxItems(laptopUrl)) === 0 ? true : undefined, 200)

    // The server dies; the laptop takes the role (its next hop: the mothership); the server comes back as a peer of the laptop.
    await server.stop('SIGKILL')
    await laptop.stop()
    await writeConfig(dir('laptop'), `${RELAY}upstream: ${addr('mothership')}\n`)
    await writeConfig(dir('server'), `${RELAY}upstream: ${addr('laptop')}\n`)
    laptop = start('laptop')
    laptopUrl = await laptop.started(60_000)
    server = start('server')
    serverUrl = await server.started(60_000)

    await until('the server to hand the items on', 30_000, async () => ((await outboxItems(serverUrl)) === 0 ? true : undefined), 200)
    let held: number[] = []
    try {
      await until(`the laptop's ${ITEMS} items at the mothership`, 30_000, () => {
        held = counters(dir('mothership'), id.laptop)
        return held.length === ITEMS ? true : undefined
      }, 250)
    } catch (err) {
      throw new Error(`${(err as Error).message}: the mothership holds ${JSON.stringify(held)}; the laptop's outbox ${await outboxItems(laptopUrl)}, the server's ${await outboxItems(serverUrl)}`)
    }
    assert.deepEqual(held, Array.from({ length: ITEMS }, (_, i) => i + 1))
    await until('the laptop\'s outbox to drain', 20_000, async () => ((await outboxItems(laptopUrl)) === 0 ? true : undefined), 200)
  })
})

/** The counters of origin in the mothership's store, ascending (one row per (origin, counter) by its primary key). */
function counters (dataDir: string, origin: string): number[] {
  try {
    const db = openDatabase(join(dataDir, 'mothership.db'))
    try {
      return (db.prepare('SELECT counter FROM items WHERE origin = ? ORDER BY counter').all(origin) as Array<{ counter: number }>).map(r => r.counter)
    } finally {
      db.close()
    }
  } catch {
    return []
  }
}
