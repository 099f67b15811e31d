// The facts the election weighs, read by the agent: the power supply from a
// /sys/class/power_supply tree (a fake one here), overridden by the config and
// by XO_MESH_POWER / XO_MESH_BATTERY; free disk; the upstream's reachability;
// and the election's config keys.
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { factsReader, freeDiskMiB, reachable, readPower, readPowerSupply } from '../../src/agent/facts.ts'
import { defaultConfig, parseConfig, parseUpstream } from '../../src/agent/config.ts'
import { ConfigError } from '../../src/agent/errors.ts'
import { silentLogger } from '../../src/net/logger.ts'
import { tempDir } from '../support/cli.ts'

async function supply (dir: string, name: string, files: Record<string, string>): Promise<void> {
  await mkdir(join(dir, name), { recursive: true })
  for (const [k, v] of Object.entries(files)) await writeFile(join(dir, name, k), v + '\n')
}

describe('election facts', () => {
  let t: Awaited<ReturnType<typeof tempDir>>
  beforeEach(async () => { t = await tempDir('xo-mesh-facts-') })
  afterEach(async () => { await t.cleanup() })

  it('reads AC and battery from the power supply tree', async () => {
    const laptop = join(t.dir, 'laptop')
    await supply(laptop, 'AC', { type: 'Mains', online: '0' })
    await supply(laptop, 'BAT0', { type: 'Battery', capacity: '63', status: 'Discharging' })
    assert.deepEqual(await readPowerSupply(laptop), { ac: false, battery: 63 })
    await supply(laptop, 'AC', { type: 'Mains', online: '1' })
    assert.deepEqual(await readPowerSupply(laptop), { ac: true, battery: 63 })
    // a desktop or a VM: no battery at all counts as AC, full
    const desktop = join(t.dir, 'desktop')
    await mkdir(desktop)
    assert.deepEqual(await readPowerSupply(desktop), { ac: true, battery: 100 })
    assert.deepEqual(await readPowerSupply(join(t.dir, 'missing')), { ac: true, battery: 100 })
  })

  it('lets the config state the power source, and the environment override both', async () => {
    const laptop = join(t.dir, 'laptop')
    await supply(laptop, 'AC', { type: 'Mains', online: '1' })
    await supply(laptop, 'BAT0', { type: 'Battery', capacity: '80' })
    const config = defaultConfig().election
    assert.deepEqual(await readPower(config, {}, laptop), { ac: true, battery: 80 })
    assert.deepEqual(await readPower({ ...config, power: 'battery' }, {}, laptop), { ac: false, battery: 80 })
    assert.deepEqual(await readPower({ ...config, power: 'battery', battery: 20 }, {}, laptop), { ac: false, battery: 20 })
    assert.deepEqual(await readPower({ ...config, power: 'battery', battery: 20 }, { XO_MESH_POWER: 'ac', XO_MESH_BATTERY: '55' }, laptop), { ac: true, battery: 55 })
    assert.deepEqual(await readPower(config, { XO_MESH_POWER: 'battery' }, laptop), { ac: false, battery: 80 })
    // nonsense in the environment is ignored
    assert.deepEqual(await readPower(config, { XO_MESH_POWER: 'solar', XO_MESH_BATTERY: 'lots' }, laptop), { ac: true, battery: 80 })
  })

  it('reads free disk, uptime and the upstream', async () => {
    assert.ok(await freeDiskMiB(t.dir) > 0)
    assert.equal(await freeDiskMiB(join(t.dir, 'missing')), 0)
    const server = createServer(s => s.destroy())
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    try {
      assert.equal(await reachable('127.0.0.1', port), true)
      const facts = factsReader(t.dir, { ...defaultConfig().election, pinned: true, upstream: `http://127.0.0.1:${port}/`, power: 'ac', battery: 100 }, silentLogger, Date.now() - 5000)
      const f = await facts()
      assert.equal(f.pinned, true)
      assert.equal(f.upstream, true)
      assert.equal(f.ac, true)
      assert.ok(f.uptimeS >= 5 && f.freeDiskMiB > 0)
    } finally {
      await new Promise(resolve => server.close(resolve))
    }
    assert.equal(await reachable('127.0.0.1', port), false)
    const none = await factsReader(t.dir, defaultConfig().election, silentLogger)()
    assert.equal(none.upstream, false)
    assert.equal(none.pinned, false)
  })

  it('checks the election keys of config.yaml', async () => {
    const c = await parseConfig('election:\n  pinned: true\n  upstream: /ip4/10.1.0.1/tcp/4001\n  power: battery\n  battery: 40\n  heartbeat_s: 0.5\n  failure_timeout_s: 2\n  settle_s: 0\n')
    assert.equal(c.election.pinned, true)
    assert.equal(c.election.battery, 40)
    assert.deepEqual(parseUpstream(c.election.upstream!), { host: '10.1.0.1', port: 4001 })
    assert.deepEqual(parseUpstream('https://upstream.example'), { host: 'upstream.example', port: 443 })
    await assert.rejects(parseConfig('election:\n  power: solar\n'), (e: unknown) => e instanceof ConfigError && /election.power must be auto, ac or battery/.test(e.message))
    await assert.rejects(parseConfig('election:\n  battery: 120\n'), /election.battery must be a percent/)
    await assert.rejects(parseConfig('election:\n  upstream: ftp://x\n'), /only http and https/)
    await assert.rejects(parseConfig('election:\n  upstream: /ip4/10.0.0.1\n'), /needs a host and \/tcp/)
    await assert.rejects(parseConfig('election:\n  heartbeat_s: 5\n  failure_timeout_s: 4\n'), /failure_timeout_s must exceed/)
    await assert.rejects(parseConfig('election:\n  pinnned: true\n'), /unknown key election.pinnned/)
  })
})
