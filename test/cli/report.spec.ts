// `xo-mesh report` on a mothership data directory, as a user runs it.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { run, tempDir } from '../support/cli.ts'
import { MothershipStore } from '../../src/store/mothership.ts'
import { encodeReport } from '../../src/store/reports.ts'

describe('xo-mesh report', function () {
  this.timeout(60_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  before(async () => { t = await tempDir() })
  after(async () => { await t.cleanup() })

  it('prints per-school tables of laptops, builds installed and last contact; --json and --school too', async () => {
    const data = join(t.dir, 'mothership')
    const { mkdir } = await import('node:fs/promises')
    await mkdir(data, { recursive: true })
    const s = MothershipStore.open(data)
    for (let i = 0; i < 3; i++) {
      s.accept([{ origin: `12D3KooWLaptop${i}`, counter: 1, kind: 'install-report', created: Date.UTC(2026, 10, 26, 9, i), body: encodeReport({ school: 'Escuela 12', build: 'bafyNew', name: 'os-2026.11' }) }])
    }
    s.accept([{ origin: '12D3KooWOther', counter: 1, kind: 'statistics', created: Date.UTC(2026, 10, 25), body: encodeReport({ school: 'Escuela 40' }) }])
    s.close()
    const text = await run(['--data', data, 'report'])
    assert.equal(text.code, 0, text.stderr)
    assert.match(text.stdout, /Escuela 12\s+3\s+2026-11-26 09:02\s+os-2026\.11 ×3/)
    assert.match(text.stdout, /Escuela 40\s+1\s+2026-11-25 00:00\s+none reported ×1/)
    assert.equal(text.stderr, '', 'no ExperimentalWarning or anything else on stderr')
    const json = await run(['--data', data, '--json', 'report'])
    const parsed = JSON.parse(json.stdout) as { schools: Array<{ school: string, laptops: number }>, items: { items: number } }
    assert.deepEqual(parsed.schools.map(x => [x.school, x.laptops]), [['Escuela 12', 3], ['Escuela 40', 1]])
    assert.equal(parsed.items.items, 4)
    const one = await run(['--data', data, 'report', '--school', 'Escuela 12'])
    assert.equal(one.stdout.trim().split('\n').length, 4)
  })

  it('says so, and exits 1, where there is no mothership store', async () => {
    const r = await run(['--data', join(t.dir, 'empty'), 'report'])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /no mothership store/)
  })
})
