// add --image: an image builder tarball streamed into a build.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdir, readFile, writeFile, chown } from 'node:fs/promises'
import { join } from 'node:path'
import { lastLine, run, tempDir } from '../support/cli.ts'
import { makeRichTree, snapshot } from '../support/trees.ts'

describe('add --image', function () {
  this.timeout(60_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  beforeEach(async () => { t = await tempDir() })
  afterEach(async () => { await t.cleanup() })

  async function image (src: string, prefix: string): Promise<string> {
    const dir = join(t.dir, 'img')
    await mkdir(dir, { recursive: true })
    const tarball = join(dir, `${prefix}-tree.tar.bz2`)
    execFileSync('tar', ['--numeric-owner', '-cjf', tarball, '-C', src, '.'])
    const md5 = createHash('md5').update(await readFile(tarball)).digest('hex')
    await writeFile(`${tarball}.md5`, `${md5}  ${prefix}-tree.tar.bz2\n`)
    await writeFile(join(dir, `${prefix}.name`), `${prefix}\n`)
    return tarball
  }

  it('takes the name from .name, checks the .md5 and reproduces the tree', async () => {
    const src = join(t.dir, 'src')
    await makeRichTree(src, { fifo: true })
    if (process.getuid?.() === 0) await chown(join(src, 'etc/secret'), 1234, 4321)
    const tarball = await image(src, 'py801-2')
    const data = join(t.dir, 'data')
    const add = await run(['--data', data, 'add', '--image', tarball, '--json'])
    assert.equal(add.code, 0, add.stderr)
    const info = JSON.parse(add.stdout) as { cid: string, name: string, kind: string }
    assert.equal(info.name, 'py801-2')
    assert.equal(info.kind, 'os')
    const app = await run(['--data', data, 'apply', info.cid, '--root', join(t.dir, 'root')])
    assert.equal(app.code, 0, app.stderr)
    const want = await snapshot(src)
    const got = await snapshot(join(t.dir, 'root', 'current') + '/')
    // tar keeps whole-second mtimes only
    for (const m of [want, got]) for (const e of m.values()) e.mtimeUs = Math.floor(e.mtimeUs / 1e6)
    if (process.getuid?.() !== 0) for (const m of [want, got]) for (const e of m.values()) { e.uid = 0; e.gid = 0 }
    assert.deepEqual(got, want)
  })

  it('prints the CID last when not asked for JSON', async () => {
    const src = join(t.dir, 'src')
    await mkdir(src)
    await writeFile(join(src, 'x'), 'x')
    const tarball = await image(src, 'os900')
    const add = await run(['--data', join(t.dir, 'd'), 'add', '--image', tarball])
    assert.equal(add.code, 0, add.stderr)
    assert.match(lastLine(add.stdout), /^bafy/)
  })

  it('refuses a corrupt tarball and a missing .name, leaving the store empty', async () => {
    const src = join(t.dir, 'src')
    await mkdir(src)
    await writeFile(join(src, 'x'), 'x'.repeat(100_000))
    const tarball = await image(src, 'bad1')
    const bytes = await readFile(tarball)
    bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff
    await writeFile(tarball, bytes)
    await writeFile(`${tarball}.md5`, `${createHash('md5').update(bytes).digest('hex')}  x\n`)
    const r = await run(['--data', join(t.dir, 'd'), 'add', '--image', tarball])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr.trim(), /^xo-mesh: .*(bzip2|tar)/)
    const { rm } = await import('node:fs/promises')
    await rm(join(t.dir, 'img', 'bad1.name'))
    const r2 = await run(['--data', join(t.dir, 'd'), 'add', '--image', tarball])
    assert.notEqual(r2.code, 0)
    assert.match(r2.stderr.trim(), /^xo-mesh: cannot read the image's name file/)
  })
})
