// Five real agents on loopback in a line (A←B←C←D←E, static peers, no
// mDNS): a stick accepted on A only brings its snapshot to all five, each
// fetches the advised OS build, applies it (post-install hook, atomic
// switch) and enqueues an install report; their signed results spread to
// every agent. Then a staged rollout of a build whose post-install hook
// fails: the first wave fails and reports it, the failures reach the
// others through the mesh, and the second wave never installs, though its
// time comes (2 s) long before the first wave's results can: a later wave
// waits for the earlier waves' results, not for the clock alone.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from '../support/cli.ts'
import { until } from '../agent/support.ts'
import { advise, openDeployment } from '../../src/trust/index.ts'
import { parseCid } from '../../src/content/cid.ts'
import { rolloutPosition } from '../../src/core/advisory/index.ts'
import { Classroom, ok, osTree } from './support.ts'

const N = 5

describe('deployment: five agents on loopback', function () {
  this.timeout(180_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  let room: Classroom
  let good = ''

  before(async () => {
    t = await tempDir('xo-mesh-deploy-')
    room = new Classroom(t.dir)
    await room.keygen()
    await room.configure(N)
    await osTree(room.dir('tree-1'), '1')
    good = await room.add(room.dir('tree-1'), 'os-1')
    for (let i = 0; i < N; i++) room.start(i)
    for (let i = 0; i < N; i++) await room.started(i)
  })

  after(async () => {
    await room?.stop()
    await t?.cleanup()
  })

  it('a snapshot given to one agent reaches all five; each fetches and applies the build and reports it', async () => {
    await ok(['--data', room.data(0), 'deploy', 'advise', good, '--out', room.dir('dep'), '--name', 'os', '--kind', 'os', '--target', 'school=escuela-7'])
    const t0 = Date.now()
    await room.stick(0, 'stick-1.car')
    for (let i = 0; i < N; i++) {
      await until(`laptop ${i} to install the build`, 60_000, async () => (await room.deploy(i)).advisories[0]?.phase === 'installed' ? true : undefined, 200)
    }
    const took = Date.now() - t0
    for (let i = 0; i < N; i++) {
      assert.equal(await room.current(i), good, `laptop ${i}'s current OS`)
      assert.ok(existsSync(join(room.data(i), `hook-ran-${good}`)), `laptop ${i} ran the post-install hook`)
      const d = await room.deploy(i)
      const report = d.reports.find(r => r.build === good)
      assert.ok(report?.ok === true, `laptop ${i}'s install report: ${JSON.stringify(d.reports)}`)
      assert.ok(!existsSync(join(room.data(i), 'deploy', 'journal.json')), 'no step left in progress')
    }
    // the reports are in the outboxes: each laptop's own, or the elected school server's, which takes custody of them
    let queued = 0
    for (let i = 0; i < N; i++) queued += ((await room.get(i, '/relay')) as { outbox: { items: number } | null }).outbox?.items ?? 0
    assert.ok(queued >= N, `${queued} install reports in the outboxes`)
    // every agent holds every laptop's signed result
    await until('the five results to reach every agent', 30_000, async () => {
      for (let i = 0; i < N; i++) {
        const s = await room.get(i, '/status') as { components: { advisory: { results: { held: number } } } }
        if (s.components.advisory.results.held < N) return undefined
      }
      return true
    }, 200)
    process.stdout.write(`      snapshot accepted on A; the build installed on all five ${took} ms later\n`)
  })

  it('a staged rollout whose post-install hook fails halts after the first wave', async function () {
    await osTree(room.dir('tree-bad'), 'bad', { broken: true })
    const bad = await room.add(room.dir('tree-bad'), 'os-bad')
    // the wave boundary is put between the laptops' places, so that the first wave holds one of the five (two when
    // no whole percent falls between the first two: then the second may hear of the first's failure in time to halt)
    const places = room.agents.map(a => ({ id: a.peerId, place: rolloutPosition(a.peerId, bad) })).sort((x, y) => x.place - y.place)
    let percent = 0
    for (const k of [1, 2, 3]) {
      const p = Math.floor(places[k - 1]!.place) + 1
      if (p <= places[k]!.place) { percent = p; break }
    }
    assert.ok(percent > 0, 'no integer percent separates the laptops')
    const first = new Set(places.filter(p => p.place < percent).map(p => p.id))
    // the second wave's time comes before the first wave can have fetched, applied and reported (on purpose): the
    // second wave must wait for the first wave's results, not go on the clock alone (docs/deployment.md, "Staged rollout")
    const waveTwoAt = 2
    const d = await openDeployment(room.dir('dep'))
    await advise(d, { build: parseCid(bad), name: 'os', kind: 'os', size: 10_000_000, priority: 'normal', targets: { schools: ['escuela-7'] }, rollout: { waves: [{ percent, after_s: 0 }, { percent: 100, after_s: waveTwoAt }] } }, { now: Date.now() })
    await room.stick(0, 'stick-2.car')
    const index = (id: string): number => room.agents.findIndex(a => a.peerId === id)
    await until('the first wave to report a failure', 60_000, async () => {
      for (const id of first) if ((await room.deploy(index(id))).reports.some(r => r.build === bad && !r.ok)) return true
      return undefined
    }, 200)
    // the failure spreads to every laptop, and each that did not try halts (a first-wave laptop may have tried and failed)
    await until('every laptop to halt or, in the first wave, to fail', 60_000, async () => {
      for (let i = 0; i < N; i++) {
        const view = await room.deploy(i)
        const failed = first.has(room.agents[i]!.peerId) && view.reports.some(r => r.build === bad && !r.ok)
        if (!failed && view.advisories.find(x => x.build === bad)?.phase !== 'halted') return undefined
      }
      return true
    }, 200)
    // a pass or two more: nothing moves
    await new Promise(resolve => setTimeout(resolve, 3000))
    for (let i = 0; i < N; i++) {
      const view = await room.deploy(i)
      assert.equal(await room.current(i), good, `laptop ${i} still runs the good build`)
      const tried = existsSync(join(room.data(i), `hook-ran-${bad}`))
      if (first.has(room.agents[i]!.peerId) && tried) {
        assert.match(view.reports.find(r => r.build === bad)?.error ?? '', /post-install hook exited 1/, `laptop ${i} of the first wave reports the failure`)
      } else {
        assert.ok(!tried, `laptop ${i} of the second wave applied the bad build`)
        const a = view.advisories.find(x => x.build === bad)
        assert.equal(a?.phase, 'halted', `laptop ${i}: ${JSON.stringify(a)}`)
        assert.match(a!.reason, /of the \d+ install results seen failed/)
        assert.ok(!view.reports.some(r => r.build === bad), 'no report of an install never tried')
      }
    }
    process.stdout.write(`      first wave: ${first.size} of ${N} laptops (< ${percent}%); the other ${N - first.size} halted\n`)
  })
})
