// The deployment channel from the command line, as a deployment team and a
// laptop with a USB stick use it: keygen, advise, bundle, accept; a stick
// with an older snapshot, a tampered stick, and a laptop several root
// versions behind catching up from a stick.
import assert from 'node:assert/strict'
import { mkdir, readFile, stat, writeFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { lastLine, run, tempDir } from '../support/cli.ts'

describe('xo-mesh deploy (CLI)', function () {
  this.timeout(120_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  before(async () => { t = await tempDir() })
  after(async () => { await t.cleanup() })

  const ok = async (args: string[], env: Record<string, string> = {}): Promise<string> => {
    const r = await run(args, { env })
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
    return r.stdout
  }

  it('keygen, advise, bundle; a laptop accepts the stick, refuses an older or tampered one, and catches up three root versions from a stick', async () => {
    const dep = join(t.dir, 'dep')
    const pub = join(t.dir, 'pub')
    const tree = join(t.dir, 'tree')
    await mkdir(tree)
    await writeFile(join(tree, 'vmlinuz'), 'kernel bytes')
    const cid = lastLine(await ok(['--data', pub, 'add', tree, '--name', 'os-2026.11', '--kind', 'os']))
    await ok(['deploy', 'keygen', '--out', dep])
    for (const k of await readdir(join(dep, 'keys'))) assert.equal((await stat(join(dep, 'keys', k))).mode & 0o777, 0o600, k)
    const rootKey = (await readFile(join(dep, 'root.pub'), 'utf8')).trim()
    assert.match(rootKey, /^[0-9a-f]{64}$/)

    const advised = JSON.parse(await ok(['--data', pub, '--json', 'deploy', 'advise', cid, '--out', dep, '--name', 'os-2026.11', '--kind', 'os', '--target', 'school=escuela-7', '--target', 'model=XO-1.5,XO-4', '--rollout', '10%@0h,100%@24h'])) as { version: number, advisories: Array<{ size: number }> }
    assert.equal(advised.version, 1)
    assert.ok(advised.advisories[0]!.size > 12, 'the signed size counts every block of the build')
    const stick1 = join(t.dir, 'v1.car')
    await ok(['deploy', 'bundle', '--out', dep, '-o', stick1])
    await ok(['--data', pub, 'deploy', 'advise', cid, '--out', dep, '--name', 'os-2026.11', '--kind', 'os'])
    const stick2 = join(t.dir, 'v2.car')
    await ok(['deploy', 'bundle', '--out', dep, '-o', stick2])

    const lap = join(t.dir, 'lap')
    const first = await ok(['--data', lap, 'deploy', 'accept', stick2, '--root-key', rootKey, '--school', 'escuela-7', '--model', 'XO-1.5'])
    assert.match(first, /accepted advisory snapshot v2 \(root v1\)/)
    assert.match(first, /for this laptop: os-2026.11/)

    // an older stick: rollback
    const old = await run(['--data', lap, 'deploy', 'accept', stick1])
    assert.equal(old.code, 3)
    assert.match(old.stderr, /refused .*v1.car: rollback: advisory snapshot v1 is older than v2/)

    // a tampered stick: one byte of the snapshot changed
    const bytes = await readFile(stick2)
    const tampered = join(t.dir, 'tampered.car')
    bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 0xff
    await writeFile(tampered, bytes)
    const bad = await run(['--data', lap, 'deploy', 'accept', tampered])
    assert.equal(bad.code, 3)
    assert.match(bad.stderr, /refused .*tampered.car: tampered: block .* does not match its hash/)

    const shown = JSON.parse(await ok(['--data', lap, '--json', 'deploy', 'show'])) as { root: number, floor: number }
    assert.deepEqual([shown.root, shown.floor], [1, 2], 'nothing the refused sticks carried was kept')

    // three root versions later (root keys, advisory keys, root keys again) one stick catches the laptop up
    for (const role of ['root', 'advisory', 'root']) await ok(['deploy', 'rotate', '--out', dep, '--role', role])
    const late = join(t.dir, 'late.car')
    await ok(['deploy', 'bundle', '--out', dep, '-o', late])
    const caught = await ok(['--data', lap, 'deploy', 'accept', late])
    assert.match(caught, /root v2 trusted\nroot v3 trusted\nroot v4 trusted/)
    assert.match(caught, /accepted advisory snapshot v3 \(root v4\)/)
  })
})
