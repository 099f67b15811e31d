// apply killed with SIGKILL at random moments: the old version stays current
// and intact, and a rerun completes and verifies.
import assert from 'node:assert/strict'
import { cp, mkdir, readlink, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { lastLine, run, start, tempDir } from '../support/cli.ts'
import { prng, snapshot } from '../support/trees.ts'

/** A small deterministic PRNG for the kill moments, so a failure can be rerun (seed printed). */
function mulberry32 (seed: number): () => number {
  return () => {
    seed = (seed + 0x6D2B79F5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

async function makeVersion (dir: string, v: number): Promise<void> {
  for (let d = 0; d < 10; d++) {
    await mkdir(join(dir, `d${d}`), { recursive: true })
    for (let f = 0; f < 20; f++) {
      // half the files change between versions, half stay (to be hard-linked)
      const seed = f % 2 === 0 ? d * 100 + f : d * 100 + f + v * 10_000
      await writeFile(join(dir, `d${d}`, `f${f}.bin`), prng(seed, 40_000 + f * 3000))
    }
  }
  await writeFile(join(dir, 'VERSION'), `v${v}\n`)
}

describe('apply under SIGKILL', function () {
  this.timeout(600_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  before(async () => { t = await tempDir() })
  after(async () => { await t.cleanup() })

  it('keeps the old version current and intact at 20 random kill moments, then completes', async () => {
    const data = join(t.dir, 'data')
    const cids: string[] = []
    for (const v of [1, 2]) {
      await makeVersion(join(t.dir, `v${v}`), v)
      const r = await run(['--data', data, 'add', join(t.dir, `v${v}`), '--name', `v${v}`, '--kind', 'os'])
      assert.equal(r.code, 0, r.stderr)
      cids.push(lastLine(r.stdout))
    }
    const [v1, v2] = cids as [string, string]
    const pristine = join(t.dir, 'pristine')
    const first = await run(['--data', data, 'apply', v1, '--root', pristine])
    assert.equal(first.code, 0, first.stderr)
    // cp keeps mtimes to the millisecond only: compare each copy with itself
    let v1snap = await snapshot(join(pristine, 'current') + '/')

    // how long a whole apply of v2 takes, to spread the kills over it
    const timing = join(t.dir, 'timing')
    await cp(pristine, timing, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true })
    const t0 = Date.now()
    assert.equal((await run(['--data', data, 'apply', v2, '--root', timing])).code, 0)
    const whole = Date.now() - t0

    const seed = Number(process.env.XO_MESH_SEED ?? Date.now() % 100_000)
    const rand = mulberry32(seed)
    const root = join(t.dir, 'root')
    let killedBeforeSwitch = 0
    for (let i = 0; i < 20; i++) {
      // a fresh copy of the v1 install each time, and sometimes a leftover from an earlier kill
      if (i % 4 === 0) {
        await rm(root, { recursive: true, force: true })
        await cp(pristine, root, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true })
        v1snap = await snapshot(join(root, 'current') + '/')
      }
      const at = Math.floor(rand() * whole)
      const child = start(['--data', data, 'apply', v2, '--root', root])
      const closed = new Promise<void>(resolve => child.on('close', () => { resolve() }))
      const timer = setTimeout(() => { child.kill('SIGKILL') }, at)
      await closed
      clearTimeout(timer)
      const current = await readlink(join(root, 'current'))
      if (current === `versions/${v1}`) {
        killedBeforeSwitch++
        const now = await snapshot(join(root, 'current') + '/')
        assert.deepEqual(now, v1snap, `kill ${i} at ${at} ms (seed ${seed}): the old version changed`)
      } else {
        assert.equal(current, `versions/${v2}`, `kill ${i} (seed ${seed}): current points at ${current}`)
        const check = await run(['--data', data, 'verify', '--root', root, '--no-repair'])
        assert.equal(check.code, 0, `kill ${i} at ${at} ms (seed ${seed}): switched to a bad version: ${check.stdout}`)
        // back to v1 for the next round
        await rm(root, { recursive: true, force: true })
        await cp(pristine, root, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true })
        v1snap = await snapshot(join(root, 'current') + '/')
      }
    }
    const rerun = await run(['--data', data, 'apply', v2, '--root', root])
    assert.equal(rerun.code, 0, rerun.stderr)
    assert.equal(await readlink(join(root, 'current')), `versions/${v2}`)
    const verify = await run(['--data', data, 'verify', '--root', root, '--no-repair'])
    assert.equal(verify.code, 0, verify.stdout)
    assert.deepEqual(await snapshot(join(root, 'current') + '/'), await snapshot(join(t.dir, 'v2')))
    // exactly two versions kept
    const { readdir } = await import('node:fs/promises')
    assert.deepEqual((await readdir(join(root, 'versions'))).sort(), [v1, v2].sort())
    assert.ok(killedBeforeSwitch > 0, `seed ${seed}: every kill landed after the switch; the test proved nothing`)
  })
})
