// Three real agents on loopback, chained A←B←C by static peers: a stick
// accepted on A while it runs spreads its snapshot to B and, through B, to
// C; B, which the advisory targets, fetches the build; C, another model,
// relays the snapshot but wants nothing.
import assert from 'node:assert/strict'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { lastLine, tempDir } from '../support/cli.ts'
import { AgentProcess, apiGet, until, xo } from '../agent/support.ts'
import { advise, openDeployment } from '../../src/trust/index.ts'
import { parseCid } from '../../src/content/cid.ts'

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise(resolve => server.close(resolve))
  return port
}

interface AdvisoryStatus { enabled: boolean, root_version: number, snapshot: { version: number } | null, for_this_laptop: Array<{ name: string }>, refused: unknown[] }
interface Status { builds: Array<{ cid: string, complete: boolean }>, components: { advisory?: AdvisoryStatus } }

describe('advisory driver: agents on loopback', function () {
  this.timeout(120_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  const agents: AgentProcess[] = []

  after(async () => {
    await Promise.all(agents.map(async x => { await x.kill() }))
    await t?.cleanup()
  })

  it('a stick given to one agent reaches all three; the targeted one fetches the build, never past its signed size', async () => {
    t = await tempDir('xo-mesh-advisory-')
    const dir = (n: string): string => join(t.dir, n)
    const tree = dir('tree')
    await mkdir(tree)
    await writeFile(join(tree, 'activity.info'), '[Activity]\nname = Paint\nactivity_version = 7\n')
    const ok = async (args: string[]): Promise<string> => {
      const r = await xo(args, { timeoutMs: 60_000 })
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
      return r.stdout
    }
    // the deployment team (on A's data directory, which then holds the build)
    const cid = lastLine(await ok(['--data', dir('a'), 'add', tree, '--name', 'paint-7', '--kind', 'activity']))
    await ok(['deploy', 'keygen', '--out', dir('dep')])
    await ok(['--data', dir('a'), 'deploy', 'advise', cid, '--out', dir('dep'), '--name', 'paint-7', '--kind', 'activity', '--target', 'school=escuela-7', '--target', 'model=XO-4'])
    await ok(['deploy', 'bundle', '--out', dir('dep'), '-o', dir('stick.car')])
    const rootKey = (await readFile(join(dir('dep'), 'root.pub'), 'utf8')).trim()

    const models = ['XO-4', 'XO-4', 'XO-1.5']
    const ports = [await freePort(), await freePort(), await freePort()]
    for (const [i, n] of ['a', 'b', 'c'].entries()) {
      await mkdir(dir(n), { recursive: true })
      await writeFile(join(dir(n), 'config.yaml'), `advisory:\n  root_key: "${rootKey}"\n  school: escuela-7\n  model: ${models[i]}\n`)
      const peer = i === 0 ? [] : ['--peer', `/ip4/127.0.0.1/tcp/${ports[i - 1]}`]
      agents.push(new AgentProcess(dir(n), ['--no-mdns', '--api', '127.0.0.1:0', '--listen', `/ip4/127.0.0.1/tcp/${ports[i]}`, ...peer]))
    }
    const urls = await Promise.all(agents.map(async a => await a.started()))
    const status = async (i: number): Promise<Status> => (await apiGet(urls[i]!, '/status')).body as Status
    assert.equal((await status(1)).components.advisory?.snapshot, null)

    const accepted = await ok(['--data', dir('a'), 'deploy', 'accept', dir('stick.car')])
    assert.match(accepted, /accepted advisory snapshot v1/)
    const started = Date.now()
    for (const i of [0, 1, 2]) {
      await until(`agent ${i} to adopt the snapshot`, 30_000, async () => (await status(i)).components.advisory?.snapshot?.version === 1 ? true : undefined, 100)
    }
    const spread = Date.now() - started
    const b = await status(1)
    const c = await status(2)
    assert.deepEqual(b.components.advisory?.for_this_laptop.map(x => x.name), ['paint-7'])
    assert.deepEqual(c.components.advisory?.for_this_laptop, [], 'an XO-1.5 is not targeted')
    assert.equal(c.components.advisory?.root_version, 1)
    await until('B to fetch the advised build', 30_000, async () => (await status(1)).builds.some(x => x.cid === cid && x.complete) ? true : undefined, 200)
    assert.ok(!(await status(2)).builds.some(x => x.cid === cid), 'C fetched a build not meant for it')
    assert.ok(agents[2]!.find(l => l.msg === 'advisory snapshot adopted').length === 1)
    process.stdout.write(`      snapshot on all three agents ${spread} ms after the stick was accepted on A (A polls its trust state every 5 s)\n`)

    // endless data: an advisory whose signed size is smaller than the build is never fetched past it
    await writeFile(join(tree, 'big.bin'), Buffer.alloc(300_000, 7))
    const big = lastLine(await ok(['--data', dir('a'), 'add', tree, '--name', 'paint-8', '--kind', 'activity']))
    const d = await openDeployment(dir('dep'))
    await advise(d, { build: parseCid(big), name: 'paint-8', kind: 'activity', size: 1000, priority: 'high', targets: { models: ['XO-4'] } }, { now: Date.now() })
    await ok(['deploy', 'bundle', '--out', dir('dep'), '-o', dir('stick2.car')])
    await ok(['--data', dir('a'), 'deploy', 'accept', dir('stick2.car')])
    const failed = await until('B to refuse the oversized build', 30_000, async () => {
      const r = await apiGet(urls[1]!, `/builds/${big}`)
      const body = r.body as { error: string | null, have_bytes: number }
      return r.status === 200 && body.error !== null ? body : undefined
    }, 200)
    assert.match(failed.error!, /more than the 1000 its advisory signs \(endless data\)/)
    assert.equal(failed.have_bytes, 0, 'no leaf of it was fetched')
  })
})
