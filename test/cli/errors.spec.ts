// Bad input: one clear line on stderr, a non-zero exit, an untouched store.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdir, open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { lastLine, run, tempDir } from '../support/cli.ts'
import { makeRichTree, prng } from '../support/trees.ts'

/** Every file under the data dir's block store, for before/after comparison. */
async function storeListing (data: string): Promise<string[]> {
  const out: string[] = []
  const walk = async (d: string, rel: string): Promise<void> => {
    let names: string[]
    try { names = await readdir(d) } catch { return }
    for (const n of names) {
      const st = await stat(join(d, n))
      if (st.isDirectory()) await walk(join(d, n), `${rel}${n}/`)
      else out.push(`${rel}${n}`)
    }
  }
  await walk(join(data, 'blocks'), '')
  return out.sort()
}

function oneLine (stderr: string): string {
  const lines = stderr.trim().split('\n')
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${stderr}`)
  assert.match(lines[0]!, /^xo-mesh: /)
  return lines[0]!
}

describe('bad input (CLI)', function () {
  this.timeout(120_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  let data: string
  let cid: string
  let car: string
  before(async () => {
    t = await tempDir()
    data = join(t.dir, 'data')
    await makeRichTree(join(t.dir, 'src'))
    const r = await run(['--data', data, 'add', join(t.dir, 'src'), '--name', 'src'])
    assert.equal(r.code, 0, r.stderr)
    cid = lastLine(r.stdout)
    car = join(t.dir, 'src.car')
    assert.equal((await run(['--data', data, 'export', cid, '-o', car])).code, 0)
  })
  after(async () => { await t.cleanup() })

  async function expectRefused (args: string[], pattern: RegExp, dataDir = data): Promise<void> {
    const before = await storeListing(dataDir)
    const r = await run(['--data', dataDir, ...args])
    assert.notEqual(r.code, 0, `exit code 0 for ${args.join(' ')}`)
    assert.match(oneLine(r.stderr), pattern)
    assert.deepEqual(await storeListing(dataDir), before, 'the store changed')
  }

  it('refuses a missing path', async () => {
    await expectRefused(['add', join(t.dir, 'nope'), '--name', 'x'], /cannot read .*nope/)
  })

  it('refuses a path that is not a directory', async () => {
    await writeFile(join(t.dir, 'plain'), 'x')
    await expectRefused(['add', join(t.dir, 'plain'), '--name', 'x'], /not a directory/)
  })

  it('refuses an unknown CID', async () => {
    await expectRefused(['apply', 'bafyreigdmqpykrgxyaxtlafqpqhzrb7qy2rh75nldvfd4tucqmqqme5yze', '--root', join(t.dir, 'r')], /not in this data directory|incomplete/)
    await expectRefused(['export', 'bafyreigdmqpykrgxyaxtlafqpqhzrb7qy2rh75nldvfd4tucqmqqme5yze', '-o', join(t.dir, 'x.car')], /not in|missing|incomplete/)
  })

  it('refuses text that is not a CID', async () => {
    await expectRefused(['ls', 'not-a-cid'], /not a CID/)
  })

  it('refuses a CAR with a flipped byte, and stores none of it', async () => {
    const bytes = await readFile(car)
    const bad = Buffer.from(bytes)
    bad[bad.length - 100] = bad[bad.length - 100]! ^ 0x01
    await writeFile(join(t.dir, 'flipped.car'), bad)
    const fresh = join(t.dir, 'fresh-flip')
    await expectRefused(['import', join(t.dir, 'flipped.car')], /does not match|corrupt|invalid/i, fresh)
  })

  it('refuses a truncated CAR, and stores none of it', async () => {
    const bytes = await readFile(car)
    await writeFile(join(t.dir, 'truncated.car'), bytes.subarray(0, Math.floor(bytes.length * 0.6)))
    await expectRefused(['import', join(t.dir, 'truncated.car')], /truncated|unexpected end|incomplete|invalid/i, join(t.dir, 'fresh-trunc'))
  })

  it('refuses a CAR whose root is not the one asked for', async () => {
    await expectRefused(['import', car, '--expect', 'bafyreigdmqpykrgxyaxtlafqpqhzrb7qy2rh75nldvfd4tucqmqqme5yze'], /root/i, join(t.dir, 'fresh-root'))
  })

  it('refuses an image whose .md5 does not match, and stores none of it', async () => {
    const img = join(t.dir, 'img')
    await mkdir(img)
    execFileSync('tar', ['-cjf', join(img, 'py801-2-tree.tar.bz2'), '-C', join(t.dir, 'src'), '.'])
    await writeFile(join(img, 'py801-2-tree.tar.bz2.md5'), `${'0'.repeat(32)}  py801-2-tree.tar.bz2\n`)
    await writeFile(join(img, 'py801-2.name'), 'py801-2\n')
    await expectRefused(['add', '--image', join(img, 'py801-2-tree.tar.bz2')], /md5/)
  })

  it('refuses to fill a full disk, and leaves no blocks behind', async function () {
    if (process.getuid?.() !== 0) {
      console.log('      (skipped: mounting a small tmpfs needs root; CI runs as root)')
      this.skip()
    }
    const mnt = join(t.dir, 'small')
    await mkdir(mnt)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt])
    try {
      const fdata = join(mnt, 'data')
      // a first small build fits: the store is not empty before the failure
      const small = join(t.dir, 'small-src')
      await mkdir(small)
      await writeFile(join(small, 'a'), 'a small file')
      assert.equal((await run(['--data', fdata, 'add', small, '--name', 'small'])).code, 0)
      const big = join(t.dir, 'big-src')
      await mkdir(big)
      const fh = await open(join(big, 'big.bin'), 'w')
      await fh.write(prng(3, 8 << 20))
      await fh.close()
      await expectRefused(['add', big, '--name', 'big'], /no space left/, fdata)
    } finally {
      execFileSync('umount', [mnt])
      await rm(mnt, { recursive: true, force: true })
    }
  })
})
