// The README's first command must keep working: `npm run demo` runs to the
// end, the build spreads to all four laptops, and no agent is left running.
import { strict as assert } from 'node:assert'
import { spawnSync } from 'node:child_process'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = resolve(fileURLToPath(import.meta.url), '../../..')

describe('npm run demo', function () {
  this.timeout(180_000)

  it('narrates the USB round trip, a build spreading to four laptops and an election with a failover, then stops its agents and removes its namespaces', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(repo, 'scripts', 'demo.ts')], { cwd: repo, encoding: 'utf8', timeout: 170_000 })
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /verify/)
    const rows = r.stdout.split('\n').filter(l => /^ {2}xo-\d {2}\[#+\] 100% {2}complete/.test(l))
    assert.equal(rows.length, 4, r.stdout)
    assert.match(r.stdout, /all 4 laptops complete in [\d.]+ s/)
    // the build spread: laptops fetched from each other, not only from xo-1
    // (which laptop gets what from whom depends on timing; a loaded machine can
    // let one laptop take everything from one peer)
    const sources = rows.flatMap(row => row.split('from ')[1]!.split(', '))
    assert.ok(sources.some(s => s !== 'xo-1'), r.stdout)
    assert.match(r.stdout, /elected .* as its school server/)
    const left = spawnSync('pgrep', ['-f', join(repo, '.demo')], { encoding: 'utf8' })
    assert.equal(left.stdout.trim(), '', 'agents left running')
    // each laptop's page URL is printed; as root, the classroom ran in network namespaces, found by mDNS, and they are gone
    assert.equal(r.stdout.split('\n').filter(l => /^ {2}xo-\d {2}12D3KooW\w+ {2}\S+ {2}page http:\/\/127\.0\.0\.1:\d+\/$/.test(l)).length, 5, r.stdout)
    if (r.stdout.includes('each in its own network namespace')) {
      assert.match(r.stdout, /xo-1 {2}\w+ {2}\/ip4\/10\.78\.0\.1\/tcp\/\d+ {2}page/)
      const ns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout
      assert.ok(!ns.split('\n').some(l => l.startsWith(`xd${r.pid % 100000}`)), `namespaces left: ${ns}`)
    }
  })
})
