// The mothership's overview in a real browser (Debian's Chromium driven by
// playwright-core) after a real relay: three laptop agents post install
// reports and statistics samples to their outboxes, the relay carries them to
// a mothership agent (relay.sink) holding a signed advisory snapshot, and the
// page, behind its login, shows the schools, the builds installed, the
// advisory's rollout and the plots. A screenshot goes to test-artifacts/
// (docs/dashboard-mothership.png is a copy of it).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { BrowserContext, Page } from 'playwright-core'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { openDatabase } from '../../src/store/sqlite.ts'
import { BIN, REPO_ROOT, lastLine, tempDir } from '../support/cli.ts'
import { AgentProcess, until, xo } from './support.ts'
import { api, freePort, writeConfig } from '../net/support.ts'

const CHROMIUM = process.env.XO_MESH_CHROMIUM ?? '/usr/bin/chromium'
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts')
const LOOPBACK = ['--no-mdns', '--api', '127.0.0.1:0']
const PASSWORD = 'a mothership password'
const OLD_BUILD = 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

/** An identity written before the agent first starts, so the laptops can name their upstream. */
async function identity (dataDir: string): Promise<string> {
  const key = await generateKeyPair('Ed25519')
  await writeFile(join(dataDir, 'identity.key'), privateKeyToProtobuf(key), { mode: 0o600 })
  return peerIdFromPrivateKey(key).toString()
}

/** Items in the mothership's store (0 before it exists). */
function count (dataDir: string): number {
  if (!existsSync(join(dataDir, 'mothership.db'))) return 0
  const db = openDatabase(join(dataDir, 'mothership.db'))
  try {
    return (db.prepare('SELECT count(*) AS n FROM items').get() as { n: number }).n
  } finally {
    db.close()
  }
}

describe('the mothership\'s overview in Chromium', function () {
  this.timeout(180_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  const agents: AgentProcess[] = []
  let mothership: AgentProcess
  let urlM: string
  let context: BrowserContext | undefined
  let launching: Promise<BrowserContext> | undefined
  let page: Page
  let cid: string
  const dir = (name: string): string => join(t.dir, name)
  const ok = async (args: string[]): Promise<string> => {
    const r = await xo(args, { timeoutMs: 90_000 })
    assert.equal(r.code, 0, `xo-mesh ${args.join(' ')}: ${r.stderr}`)
    return r.stdout
  }

  before(async function () {
    if (!existsSync(CHROMIUM)) {
      console.error(`    skipping the browser tests: ${CHROMIUM} is absent (apt-get install chromium, or set XO_MESH_CHROMIUM)`)
      this.skip()
    }
    t = await tempDir('xo-mesh-overview-')
    // the browser starts while the agents do
    const browser = launching = import('playwright-core').then(async ({ chromium }) => await chromium.launchPersistentContext(dir('profile'), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1200, height: 900 },
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
    }))
    browser.catch(() => {})
    const pm = await freePort()
    // pinned: the laptops, which reach one another only through it, follow it as their server (the relay's next hop)
    await writeConfig(dir('mothership'), 'relay:\n  sink: true\nelection:\n  pinned: true\n')
    const mothershipId = await identity(dir('mothership'))
    // the laptops start at once and dial the mothership until it is up (every second at most)
    const laptops = ['l1', 'l2', 'l3']
    for (const l of laptops) await writeConfig(dir(l), `upstream: /ip4/127.0.0.1/tcp/${pm}/p2p/${mothershipId}\ndial:\n  backoff_max_s: 1\n`)
    mothership = new AgentProcess(dir('mothership'), [...LOOPBACK, '--listen', `/ip4/127.0.0.1/tcp/${pm}`])
    const procs = laptops.map(l => new AgentProcess(dir(l), [...LOOPBACK, '--listen', '/ip4/127.0.0.1/tcp/0']))
    agents.push(mothership, ...procs)
    // meanwhile the deployment: keys, a build advised to Escuela 12 in waves, a stick the running
    // mothership accepts (the overview reads the trust state at each request); its password
    const deployment = (async () => {
      await mkdir(dir('tree'), { recursive: true })
      await writeFile(join(dir('tree'), 'os-release'), 'VERSION=2026.11\n')
      const [added] = await Promise.all([
        ok(['--data', dir('publisher'), 'add', dir('tree'), '--name', 'os-2026.11', '--kind', 'os']),
        ok(['deploy', 'keygen', '--out', dir('deploy')])
      ])
      cid = lastLine(added)
      await ok(['--data', dir('publisher'), 'deploy', 'advise', cid, '--out', dir('deploy'), '--name', 'os-2026.11', '--kind', 'os', '--target', 'school=Escuela 12', '--rollout', '10%@0h,50%@24h,100%@48h'])
      await ok(['deploy', 'bundle', '--out', dir('deploy'), '-o', dir('stick.car')])
      const rootKey = (await readFile(join(dir('deploy'), 'root.pub'), 'utf8')).trim().split('\n')[0]!
      await ok(['--data', dir('mothership'), 'deploy', 'accept', dir('stick.car'), '--root-key', rootKey])
    })()
    const passwd = spawn(process.execPath, [BIN, '--data', dir('mothership'), 'mothership', 'passwd'], { stdio: ['pipe', 'ignore', 'pipe'] })
    passwd.stdin.end(PASSWORD + '\n')
    const [urls] = await Promise.all([
      Promise.all(procs.map(async p => await p.started(60_000))),
      deployment,
      new Promise<void>((resolve, reject) => passwd.on('exit', code => { if (code === 0) resolve(); else reject(new Error(`passwd exited ${code}`)) }))
    ])
    const post = async (url: string, kind: string, report: Record<string, unknown>): Promise<void> => {
      const r = await api(url, '/outbox', { kind, report })
      assert.equal(r.status, 201, JSON.stringify(r.body))
    }
    const now = Date.now()
    await post(urls[0]!, 'install-report', { school: 'Escuela 12', build: cid, name: 'os-2026.11', installed_at: now })
    await post(urls[0]!, 'statistics', { school: 'Escuela 12', sampled_at: now, battery: 81, outbox_items: 0 })
    await post(urls[1]!, 'install-report', { school: 'Escuela 12', build: OLD_BUILD, name: 'os-2026.10', installed_at: now - 86_400_000 })
    await post(urls[1]!, 'statistics', { school: 'Escuela 12', sampled_at: now, battery: 47, outbox_items: 2 })
    await post(urls[2]!, 'install-report', { school: 'Escuela 40', build: OLD_BUILD, name: 'os-2026.10', installed_at: now })
    urlM = await mothership.started(60_000)
    await until('the relay to bring the five items to the mothership', 90_000, () => (count(dir('mothership')) >= 5 ? true : undefined), 200)

    context = await browser
    page = context.pages()[0] ?? await context.newPage()
    await mkdir(ARTIFACTS, { recursive: true })
  })

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return
    for (const x of agents) for (const l of x.find(l => l.level === 'warn' || l.level === 'error')) console.error(x.dataDir.split('/').pop(), JSON.stringify(l).slice(0, 400))
  })

  after(async () => {
    if (process.env.XO_TEST_VERBOSE !== undefined) for (const x of agents) for (const l of x.find(l => l.level !== 'debug')) console.error(x.dataDir.split('/').pop(), JSON.stringify(l).slice(0, 300))
    // a before-all that failed early leaves the browser only in the promise: close it all the same
    await (context ?? await launching?.catch(() => undefined))?.close()
    await Promise.all(agents.map(async x => { await x.kill() }))
    await t?.cleanup()
  })

  it('sends a visitor without a session to the login, refuses a wrong password, lets the right one in', async () => {
    assert.equal((await api(urlM, '/overview')).status, 401, 'the API wants a session too')
    await page.goto(urlM + '/overview')
    await page.waitForURL(/\/login\?next=%2Foverview$/, { timeout: 10_000 })
    await page.fill('#password', 'not the password')
    await page.click('button[type=submit]')
    await page.waitForSelector('#login-error:not([hidden])', { timeout: 10_000 })
    assert.equal(await page.textContent('#login-error'), 'Wrong password.')
    await page.fill('#password', PASSWORD)
    await page.click('button[type=submit]')
    await page.waitForURL(/\/overview$/, { timeout: 10_000 })
    const cookies = await context!.cookies(urlM)
    const session = cookies.find(c => c.name === 'xo-mesh-session')
    assert.ok(session !== undefined)
    assert.equal(session.httpOnly, true)
    assert.equal(session.sameSite, 'Strict')
    assert.equal(await page.evaluate('document.cookie'), '', 'the page\'s script never sees the session')
  })

  it('shows each school\'s report after the relay: laptops, last contact, backlog, builds, rollout and plots', async () => {
    await page.waitForSelector('#schools tr[data-school="Escuela 12"]', { timeout: 15_000 })
    const e12 = await page.textContent('#schools tr[data-school="Escuela 12"]') ?? ''
    assert.match(e12, /^Escuela 12\s*2/)
    assert.match(e12, /s ago|min ago/)
    assert.match(e12, /2 in outboxes/)
    assert.match(await page.textContent('#schools tr[data-school="Escuela 40"]') ?? '', /^Escuela 40\s*1/)
    assert.equal(await page.textContent('#total-laptops'), '3')

    // the builds installed: a table and a chart
    const head = await page.locator('#installed thead th').allTextContents()
    assert.deepEqual(head, ['School', 'os-2026.10', 'os-2026.11', 'none reported'])
    assert.deepEqual(await page.locator('#installed tbody tr[data-school="Escuela 12"] td').allTextContents(), ['1', '1', '0'])
    assert.ok(await page.locator('#installed-chart svg rect').count() >= 3)

    // the advisory the mothership holds, against what the laptops report
    const adv = page.locator('#rollout li[data-advisory="os-2026.11"]')
    assert.equal(await adv.getAttribute('data-build'), cid)
    const facts = await adv.locator('.build-facts').textContent() ?? ''
    assert.match(facts, /1 of 2 laptops run it/)
    assert.match(facts, /targets Escuela 12/)
    assert.equal(await adv.locator('[role=progressbar]').getAttribute('aria-valuenow'), '50')
    assert.match(await adv.locator('.wave-note').first().textContent() ?? '', /\[10%@0h\].*10 % allowed now/)

    // statistics over time, and a sample field chosen
    assert.equal(await page.locator('#plots .plot svg').count(), 3)
    await page.selectOption('#stats-field', 'battery')
    await page.waitForSelector('#plots .plot[data-plot="Mean battery in samples"] svg circle', { timeout: 15_000 })
    await page.selectOption('#stats-bucket', 'hour')
    await page.waitForSelector('#plots .plot[data-plot="Mean battery in samples"] svg circle', { timeout: 15_000 })
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-mothership.png'), fullPage: true })

    // the CLI prints the same figures from the same function
    const report = await ok(['--data', dir('mothership'), 'report'])
    const line = report.split('\n').find(l => l.startsWith('Escuela 12')) ?? ''
    assert.match(line, /^Escuela 12\s+2\s/)
    assert.ok(line.includes('os-2026.10 ×1') && line.includes('os-2026.11 ×1') && line.includes('(backlog: 0 missing, 2 in outboxes)'), report)
  })

  it('links the mothership\'s own agent page to the overview; logging out closes both', async () => {
    await page.goto(urlM + '/')
    await page.waitForSelector('#nav:not([hidden]) a[href="/overview"]', { timeout: 10_000 })
    await page.waitForSelector('#outbox-size', { timeout: 10_000 })
    await until('the agent page to say it is the mothership', 10_000, async () => ((await page.textContent('#outbox-size'))?.includes('this is the mothership') === true ? true : undefined), 200)
    await page.goto(urlM + '/overview')
    await page.click('#logout')
    await page.waitForURL(/\/login$/, { timeout: 10_000 })
    await page.goto(urlM + '/')
    await page.waitForURL(/\/login\?next=%2F$/, { timeout: 10_000 })
  })
})
