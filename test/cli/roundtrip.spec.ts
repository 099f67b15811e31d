// add -> export -> import into a fresh data dir -> apply reproduces the tree exactly.
import assert from 'node:assert/strict'
import { chown, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { lastLine, run, tempDir } from '../support/cli.ts'
import { makeRichTree, snapshot, writeLargeFile } from '../support/trees.ts'

const root = process.getuid?.() === 0

describe('round trip through a USB bundle (CLI)', function () {
  this.timeout(120_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  beforeEach(async () => { t = await tempDir() })
  afterEach(async () => { await t.cleanup() })

  it('reproduces modes, mtimes, symlinks, empty dirs, odd names, shared content and owners', async () => {
    const src = join(t.dir, 'src')
    await makeRichTree(src, { fifo: true })
    if (root) await chown(join(src, 'etc/secret'), 1234, 4321)
    const add = await run(['--data', join(t.dir, 'a'), 'add', src, '--name', 'rich', '--kind', 'os'])
    assert.equal(add.code, 0, add.stderr)
    const cid = lastLine(add.stdout)
    assert.match(cid, /^bafy/)

    const car = join(t.dir, 'rich.car')
    const exp = await run(['--data', join(t.dir, 'a'), 'export', cid, '-o', car])
    assert.equal(exp.code, 0, exp.stderr)
    const imp = await run(['--data', join(t.dir, 'b'), 'import', car, '--expect', cid])
    assert.equal(imp.code, 0, imp.stderr)
    const app = await run(['--data', join(t.dir, 'b'), 'apply', cid, '--root', join(t.dir, 'root')])
    assert.equal(app.code, 0, app.stderr)

    const want = await snapshot(src)
    const got = await snapshot(join(t.dir, 'root', 'current') + '/')
    if (!root) {
      for (const m of [want, got]) for (const e of m.values()) { e.uid = 0; e.gid = 0 }
    }
    assert.deepEqual([...got.keys()], [...want.keys()])
    for (const [path, e] of want) assert.deepEqual(got.get(path), e, path)
    const ls = await run(['--data', join(t.dir, 'b'), 'ls', cid])
    assert.match(ls.stdout, /ñandú café\/read me\.txt/)
    const verify = await run(['--data', join(t.dir, 'b'), 'verify', '--root', join(t.dir, 'root')])
    assert.equal(verify.code, 0, verify.stdout + verify.stderr)
    assert.match(verify.stdout, /every file matches/)
  })

  it('streams a file over 1 GiB through add, export, import and apply with RSS under 200 MB', async function () {
    if (process.env.XO_MESH_SKIP_LARGE !== undefined) this.skip()
    this.timeout(600_000)
    const src = join(t.dir, 'src')
    const size = (1 << 30) + 12345
    const { mkdir } = await import('node:fs/promises')
    await mkdir(src)
    await writeLargeFile(join(src, 'image.img'), size)
    const steps: Array<[string, string[]]> = []
    const add = await run(['--data', join(t.dir, 'a'), 'add', src, '--name', 'big'], { rss: true })
    assert.equal(add.code, 0, add.stderr)
    const cid = lastLine(add.stdout)
    steps.push(['add', []])
    const car = join(t.dir, 'big.car')
    const results = [add]
    results.push(await run(['--data', join(t.dir, 'a'), 'export', cid, '-o', car], { rss: true }))
    results.push(await run(['--data', join(t.dir, 'b'), 'import', car], { rss: true }))
    results.push(await run(['--data', join(t.dir, 'b'), 'apply', cid, '--root', join(t.dir, 'root')], { rss: true }))
    for (const r of results) {
      assert.equal(r.code, 0, r.stderr)
      assert.ok(r.maxRssKb !== undefined && r.maxRssKb < 200 * 1024, `peak RSS ${r.maxRssKb} kB`)
    }
    const st = await stat(join(t.dir, 'root', 'current', 'image.img'))
    assert.equal(st.size, size)
    console.log(`      peak RSS (MB): add ${(results[0]!.maxRssKb! / 1024).toFixed(0)}, export ${(results[1]!.maxRssKb! / 1024).toFixed(0)}, import ${(results[2]!.maxRssKb! / 1024).toFixed(0)}, apply ${(results[3]!.maxRssKb! / 1024).toFixed(0)}`)
  })
})
