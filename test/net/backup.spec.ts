// The restore test over real processes on 127.0.0.1: a laptop agent backs up
// its journal (`xo-mesh backup --now`) into its outbox; the school server
// relays the chunks to the mothership and keeps a copy; the laptop is wiped;
// a fresh data directory given only the owner's key (`owner export` /
// `owner import`) and the server's address restores the journal
// (`xo-mesh restore --from server`), byte for byte with modes and mtimes.
// What the server and the mothership hold has none of the journal's
// plaintext, and another owner's key finds nothing there.
import assert from 'node:assert/strict'
import { appendFile, readFile, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { snapshot } from '../support/trees.ts'
import { makeJournal } from '../support/journal.ts'
import { AgentProcess, until, xo } from '../agent/support.ts'
import { api, freePort, writeConfig } from './support.ts'
import { identity, testbed } from './testbed.ts'
import { openDatabase } from '../../src/store/sqlite.ts'
import { loadOrCreateOwnerKey } from '../../src/agent/owner.ts'

const LOOPBACK = ['--no-mdns', '--api', '127.0.0.1:0']

async function tree (dir: string): Promise<Map<string, unknown>> {
  const all = await snapshot(dir)
  for (const k of [...all.keys()]) if (k === 'index' || k.startsWith('index/') || k === 'index_updated') all.delete(k)
  return all
}

/** Every file under dir, read whole (the server's and the mothership's data directories). */
async function allBytes (dir: string): Promise<Buffer> {
  const parts: Buffer[] = []
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name))
      else if (e.isFile()) parts.push(await readFile(join(d, e.name)))
    }
  }
  await walk(dir)
  return Buffer.concat(parts)
}

function backupItems (dataDir: string): number {
  try {
    const db = openDatabase(join(dataDir, 'mothership.db'))
    try { return (db.prepare('SELECT count(*) AS n FROM items WHERE kind = 3').get() as { n: number }).n } finally { db.close() }
  } catch {
    return 0
  }
}

describe('journal backup and restore between agent processes', function () {
  this.timeout(180_000)
  const { dir, agents } = testbed('xo-mesh-backup-net-')

  it('restores a wiped laptop\'s journal from the school server with only the owner key', async () => {
    const [pm, ps, pl, pf] = [await freePort(), await freePort(), await freePort(), await freePort()]
    const listen = (p: number): string[] => ['--listen', `/ip4/127.0.0.1/tcp/${p}`]
    const journal = dir('home/.sugar/default/datastore')
    const entries = await makeJournal(journal, { entries: 24, bytes: 4 << 20 })
    await writeConfig(dir('mothership'), 'relay:\n  sink: true\n')
    await writeConfig(dir('server'), '')
    await writeConfig(dir('laptop'), '')
    const mothershipId = await identity(dir('mothership'))
    const serverId = await identity(dir('server'))
    // pinned: the school server whatever the election's timing (an XS in a cupboard)
    await writeConfig(dir('server'), `upstream: /ip4/127.0.0.1/tcp/${pm}/p2p/${mothershipId}\nelection:\n  pinned: true\n`)
    const laptopConfig = (j: string): string => `upstream: /ip4/127.0.0.1/tcp/${ps}/p2p/${serverId}\nrelay:\n  accept: false\njournal: ${JSON.stringify(j)}\nstatistics:\n  enabled: false\n`
    await writeConfig(dir('laptop'), laptopConfig(journal))
    const mothership = new AgentProcess(dir('mothership'), [...LOOPBACK, ...listen(pm)])
    const server = new AgentProcess(dir('server'), [...LOOPBACK, ...listen(ps)])
    const laptop = new AgentProcess(dir('laptop'), [...LOOPBACK, ...listen(pl)])
    agents.push(mothership, server, laptop)
    const [, serverUrl, laptopUrl] = await Promise.all(agents.map(async a => await a.started(60_000)))

    // 1. A backup, through the agent; a second one after a small change sends little.
    const started = Date.now()
    const b1 = await xo(['--data', dir('laptop'), '--json', 'backup', '--now'], { timeoutMs: 60_000 })
    assert.equal(b1.code, 0, b1.stderr)
    const r1 = JSON.parse(b1.stdout) as { created: number, files: number, bytes: number, newBytes: number, packs: number, blobs: number, newBlobs: number }
    const seconds = (Date.now() - started) / 1000
    assert.equal(r1.files, 24 * 17 + 1)
    const uid = entries[2]!.uid
    await appendFile(join(journal, uid.slice(0, 2), uid, 'data'), 'a new line in the story')
    const b2 = await xo(['--data', dir('laptop'), '--json', 'backup', '--now'], { timeoutMs: 60_000 })
    assert.equal(b2.code, 0, b2.stderr)
    const r2 = JSON.parse(b2.stdout) as typeof r1
    assert.ok(r2.newBytes < r1.newBytes / 20, `the second backup sent ${r2.newBytes} bytes, the first ${r1.newBytes}`)
    console.log(`      backup: ${(r1.bytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(1)} s (CLI included), ${r1.packs} items; second backup sent ${r2.newBytes} of ${r2.bytes} bytes (${(100 * r2.newBytes / r2.bytes).toFixed(2)}%)`)

    // 2. The chunks reach the server (kept) and the mothership (items); the laptop's outbox drains.
    await until('the laptop outbox to drain', 60_000, async () => (((await api(laptopUrl!, '/relay')).body as { outbox: { items: number } }).outbox.items === 0 ? true : undefined), 250)
    await until('the backup at the mothership', 60_000, () => (backupItems(dir('mothership')) === r1.packs + r2.packs ? true : undefined), 250)
    const status = (await api(serverUrl!, '/status')).body as { components: Record<string, { kept?: { snapshots: number, blobs: number } }> }
    assert.equal(status.components['backup-service']?.kept?.snapshots, 2, JSON.stringify(status.components['backup-service']))

    // 3. The owner key leaves on paper (a file here); the laptop is wiped.
    const keyFile = dir('owner-key.txt')
    const ex = await xo(['--data', dir('laptop'), 'owner', 'export', '-o', keyFile])
    assert.equal(ex.code, 0, ex.stderr)
    const before = await tree(journal)
    await laptop.stop()
    await rm(dir('laptop'), { recursive: true })
    await rm(dir('home'), { recursive: true })

    // 4. A fresh laptop: only the owner key and the server's address.
    const fresh = dir('fresh')
    const freshJournal = dir('fresh-home/.sugar/default/datastore')
    await writeConfig(fresh, laptopConfig(freshJournal))
    const im = await xo(['--data', fresh, 'owner', 'import', keyFile])
    assert.equal(im.code, 0, im.stderr)
    const freshAgent = new AgentProcess(fresh, [...LOOPBACK, ...listen(pf)])
    agents.push(freshAgent)
    await freshAgent.started(60_000)
    const list = await xo(['--data', fresh, '--json', 'restore', '--list'], { timeoutMs: 60_000 })
    assert.equal(list.code, 0, list.stderr)
    assert.equal((JSON.parse(list.stdout) as { snapshots: unknown[] }).snapshots.length, 2)
    const rs = await xo(['--data', fresh, 'restore', '--from', 'server'], { timeoutMs: 120_000 })
    assert.equal(rs.code, 0, rs.stderr)
    assert.match(rs.stdout, /restored the backup of .*: 409 files/)
    assert.deepEqual(await tree(freshJournal), before)
    // the restored laptop's next backup knows what the server holds: nothing is sent again
    const b3 = await xo(['--data', fresh, '--json', 'backup', '--now'], { timeoutMs: 60_000 })
    assert.equal(b3.code, 0, b3.stderr)
    const r3 = JSON.parse(b3.stdout) as typeof r1
    assert.equal(r3.newBlobs, 0, `${r3.newBlobs} blobs sent again after a restore`)

    // the older backup, by date, from a copy of the server's data directory (a stick), without an agent
    const firstDay = new Date(r1.created).toISOString()
    assert.ok(r2.created > r1.created)
    const older = dir('older')
    const ro = await xo(['--data', fresh, 'restore', '--from', dir('server'), '--to', older, '--from-date', firstDay])
    assert.equal(ro.code, 0, ro.stderr)
    assert.notDeepEqual(await tree(older), before) // the edit of step 1 is not in it
    const od = await readFile(join(older, uid.slice(0, 2), uid, 'data'))
    assert.equal(od.length, entries[2]!.dataBytes)

    // 5. Neither the server nor the mothership can read it.
    for (const holder of ['server', 'mothership']) {
      const bytes = await allBytes(dir(holder))
      assert.equal(bytes.indexOf(Buffer.from(entries[0]!.title)), -1, `a title in the ${holder}'s data`)
      assert.equal(bytes.indexOf(Buffer.from('org.laptop.TurtleArtActivity')), -1, `an activity id in the ${holder}'s data`)
      const jpeg = await readFile(join(freshJournal, entries[1]!.uid.slice(0, 2), entries[1]!.uid, 'data'))
      for (const at of [0, 50_000, jpeg.length - 64]) assert.equal(bytes.indexOf(jpeg.subarray(at, at + 64)), -1, `JPEG bytes at ${at} in the ${holder}'s data`)
    }
    // another owner finds nothing
    const stranger = dir('stranger')
    await writeConfig(stranger, '')
    await loadOrCreateOwnerKey(stranger)
    const sr = await xo(['--data', stranger, 'restore', '--from', dir('server'), '--to', dir('stolen')])
    assert.equal(sr.code, 1)
    assert.match(sr.stderr, /holds no backup of this owner/)
  })
})
