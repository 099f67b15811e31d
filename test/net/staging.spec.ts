// A staging tree over real agent processes on 127.0.0.1: the mothership
// (role mothership) holds the deployment's snapshot and an advised build; a
// staging agent (role staging, upstream: the mothership) pulls both from it;
// a school server (upstream: the staging agent) pulls both from the staging
// agent and pushes its outbox up through it. Then the school is moved to
// another parent (its upstream becomes the mothership itself) by changing
// its config only: same identity, same outbox, counters continue, every item
// at the mothership once. Last, `xo-mesh usb` through the running agents'
// API: the school writes its stick, the mothership answers, the school
// takes the signed receipt.
import assert from 'node:assert/strict'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir } from '../support/cli.ts'
import { AgentProcess, agentdBundle, apiGet, printWarnings, until, xo } from '../agent/support.ts'
import { api, freePort, writeConfig } from './support.ts'
import { openDatabase } from '../../src/store/sqlite.ts'
import { Repo } from '../../src/content/repo.ts'
import { addDirectory } from '../../src/content/add.ts'
import { acceptSnapshot, anchorRoot, initialState, publicKeyHex, saveState } from '../../src/trust/index.ts'
import { TestDeployment, advisory } from '../trust/support.ts'
import { prng } from '../support/trees.ts'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'

const LOOPBACK = ['--no-mdns', '--api', '127.0.0.1:0']
const DIAL = 'dial:\n  backoff_min_s: 0.25\n  backoff_max_s: 2\nrelay:\n  retry_max_s: 3\n'

async function identity (dataDir: string): Promise<string> {
  const key = await generateKeyPair('Ed25519')
  await mkdir(dataDir, { recursive: true })
  await writeFile(join(dataDir, 'identity.key'), privateKeyToProtobuf(key), { mode: 0o600 })
  return peerIdFromPrivateKey(key).toString()
}

interface Status { builds: Array<{ cid: string, complete: boolean }>, components: { advisory?: { snapshot: { version: number } | null } } }

describe('staging tree between agent processes', function () {
  this.timeout(300_000) // ~20 s on a quiet machine
  let t: Awaited<ReturnType<typeof tempDir>>
  const all: AgentProcess[] = []
  const dir = (n: string): string => join(t.dir, n)

  let entry: string
  before(async () => {
    t = await tempDir('xo-mesh-staging-')
    entry = await agentdBundle(t.dir)
  })
  afterEach(function () { if (this.currentTest?.state === 'failed') printWarnings(all) })
  after(async () => {
    await Promise.all(all.map(async x => { await x.kill() }))
    await t.cleanup()
  })

  it('pulls the snapshot and the build down two levels, pushes the outbox up, and moves a school to another parent', async () => {
    // The deployment: a build in the mothership's store, advised to one school; the mothership trusts the snapshot.
    const deployment = new TestDeployment()
    const rootKey = publicKeyHex(deployment.rootKeys[0]!.publicKey)
    const tree = dir('tree')
    await mkdir(join(tree, 'bin'), { recursive: true })
    await writeFile(join(tree, 'bin', 'paint'), prng(11, 200_000))
    const mRepo = await Repo.open(dir('mothership'))
    const build = await addDirectory(mRepo.store, tree, { name: 'paint-7', kind: 'activity' })
    await mRepo.store.flush()
    await mRepo.noteBuild(build.cid, build.record)
    const now = Date.now()
    const snapshot = deployment.snapshot(1, [{ ...advisory(1), build: build.cid, name: 'paint-7', kind: 'activity', size: build.record.meta.bytes * 2 + 100_000, targets: { schools: ['Escuela 3'] } }], { issued: now, expires: now + 30 * 86_400_000 })
    const accepted = acceptSnapshot(initialState(anchorRoot(deployment.rootKeys[0]!.publicKey)), snapshot.bytes, deployment.chain(), now)
    assert.ok(accepted.ok)
    await saveState(dir('mothership'), accepted.state)

    const port = { mothership: await freePort(), staging: await freePort(), school: await freePort() }
    const id = { mothership: await identity(dir('mothership')), staging: await identity(dir('staging')), school: await identity(dir('school')) }
    const addr = (n: keyof typeof port): string => `/ip4/127.0.0.1/tcp/${port[n]}/p2p/${id[n]}`
    const trust = `advisory:\n  root_key: "${rootKey}"\n`
    await writeConfig(dir('mothership'), `role: mothership\n${trust}${DIAL}`)
    await writeConfig(dir('staging'), `role: staging\nupstream: ${addr('mothership')}\n${trust}${DIAL}`)
    const schoolConfig = (upstream: string): string => `upstream: ${upstream}\nrelay:\n  mothership: ${id.mothership}\n  retry_max_s: 3\nadvisory:\n  root_key: "${rootKey}"\n  school: Escuela 3\ndeploy:\n  enabled: false\ndial:\n  backoff_min_s: 0.25\n  backoff_max_s: 2\n`
    await writeConfig(dir('school'), schoolConfig(addr('staging')))
    const start = (n: keyof typeof port): AgentProcess => {
      const p = new AgentProcess(dir(n), [...LOOPBACK, '--listen', `/ip4/127.0.0.1/tcp/${port[n]}`], { entry })
      all.push(p)
      return p
    }
    const m = start('mothership')
    const s = start('staging')
    let school = start('school')
    const [mu, su] = await Promise.all([m.started(90_000), s.started(90_000)])
    let scu = await school.started(90_000)

    // Down the tree: the staging agent holds the snapshot and the build (it targets a school, not the staging agent: staged all the same), then the school.
    const holds = async (url: string): Promise<true | undefined> => {
      const st = (await apiGet(url, '/status')).body as Status
      return st.components.advisory?.snapshot?.version === 1 && st.builds.some(b => b.cid === build.cid.toString() && b.complete) ? true : undefined
    }
    await until('the staging agent to hold the snapshot and the build', 90_000, async () => await holds(su), 250)
    await until('the school server to hold the snapshot and the build', 90_000, async () => await holds(scu), 250)

    // Up the tree.
    const post = async (url: string, k: number): Promise<void> => {
      const r = await api(url, '/outbox', { kind: 'statistics', report: { school: 'Escuela 3', sampled_at: k } })
      assert.equal(r.status, 201, JSON.stringify(r.body))
    }
    const atMothership = (): number[] => {
      try {
        const db = openDatabase(join(dir('mothership'), 'mothership.db'))
        try { return (db.prepare('SELECT counter FROM items WHERE origin = ? ORDER BY counter').all(id.school) as Array<{ counter: number }>).map(r => r.counter) } finally { db.close() }
      } catch { return [] }
    }
    for (let k = 1; k <= 5; k++) await post(scu, k)
    await until('5 items at the mothership through the staging agent', 60_000, () => (atMothership().length === 5 ? true : undefined), 250)

    // Move the school to another parent: only its config changes.
    await school.stop('SIGTERM')
    await writeConfig(dir('school'), schoolConfig(addr('mothership')))
    school = start('school')
    scu = await school.started(90_000)
    for (let k = 6; k <= 10; k++) await post(scu, k)
    await until('10 items at the mothership straight from the school', 60_000, () => (atMothership().length === 10 ? true : undefined), 250)
    assert.deepEqual(atMothership(), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'same identity, counters continue, each item once')

    // A USB trip through the running agents' API.
    const stick = dir('stick')
    await mkdir(stick)
    const ok = async (args: string[]): Promise<unknown> => {
      const r = await xo(args, { timeoutMs: 60_000 })
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
      return JSON.parse(r.stdout)
    }
    const out = await ok(['--data', dir('school'), '--json', 'usb', stick]) as { role: string, written: { trip: string } }
    assert.equal(out.role, 'school')
    const answered = await ok(['--data', dir('mothership'), '--json', 'usb', stick]) as { role: string, schools: Array<{ from: string, status: string, advisories: number | null }> }
    assert.deepEqual(answered.schools.map(x => [x.from, x.status, x.advisories]), [[id.school, 'answered', null]])
    const home = await ok(['--data', dir('school'), '--json', 'usb', stick]) as { receipt: { status: string } }
    assert.equal(home.receipt.status, 'accepted')
    // The mothership's report through its API (its page reads it, after a login; the CLI with DATA/api-token); no other agent has one.
    const auth = { authorization: `Bearer ${(await readFile(join(dir('mothership'), 'api-token'), 'utf8')).trim()}` }
    assert.equal((await apiGet(mu, '/report')).status, 401, 'the mothership\'s report wants a session or its token')
    const report = (await apiGet(mu, '/report', auth)).body as { schools: Array<{ school: string, laptops: number }>, items: { items: number } }
    assert.deepEqual(report.schools.map(x => [x.school, x.laptops]), [['Escuela 3', 1]])
    assert.equal(report.items.items, 10)
    const laptops = (await apiGet(mu, '/report/' + encodeURIComponent('Escuela 3'), auth)).body as { laptops: Array<{ origin: string, items: number }> }
    assert.deepEqual(laptops.laptops.map(l => [l.origin, l.items]), [[id.school, 10]])
    assert.equal((await apiGet(su, '/report')).status, 404)
  })
})
