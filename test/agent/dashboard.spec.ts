// The agent's page in a real browser (Debian's Chromium driven by
// playwright-core; never downloaded): three agent processes on 127.0.0.1, A
// and B hold a build behind an upload cap, C fetches it while its page is
// open. The page must show C's neighbours and the build's bar moving through
// intermediate values to complete, from the live stream (and from polling
// when the stream is refused); a peer-supplied build name is shown as text;
// another origin's page cannot read C's API. Screenshots go to
// test-artifacts/ (docs/dashboard-agent.png is a copy of one).
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { BrowserContext, Page } from 'playwright-core'
import { REPO_ROOT, lastLine, start, tempDir } from '../support/cli.ts'
import { AgentProcess, until, xo } from './support.ts'
import { api, freePort, makeTree, writeConfig } from '../net/support.ts'

/** Debian's Chromium (CI installs it); XO_MESH_CHROMIUM names another build of it. */
const CHROMIUM = process.env.XO_MESH_CHROMIUM ?? '/usr/bin/chromium'
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts')
const LOOPBACK = ['--no-mdns', '--api', '127.0.0.1:0']
/** A build that takes C several seconds to fetch from A and B at CAP bytes/s each. */
const BUILD_BYTES = 12 << 20
const CAP = 1_000_000
const CREATED = '2026-11-01T00:00:00Z'
/** A name a hostile peer could give a build: it must show as these characters. */
const HOSTILE_NAME = '<img src=x onerror="window.__xss=1">&amp;<b>os</b>'

function shortId (id: string): string {
  return id.slice(0, 8) + '\u2026' + id.slice(-6)
}

/** A raw GET on 127.0.0.1 with chosen headers: status only. */
async function rawStatus (url: string, path: string, headers: Record<string, string>): Promise<number> {
  return await new Promise((resolve, reject) => {
    const req = request(new URL(path, url), { headers, timeout: 5_000 }, res => { res.resume(); resolve(res.statusCode ?? 0); res.destroy() })
    req.on('timeout', () => { req.destroy(new Error('timed out')) })
    req.on('error', reject)
    req.end()
  })
}

describe('the agent\'s page in Chromium', function () {
  this.timeout(90_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  const agents: AgentProcess[] = []
  let a: AgentProcess, b: AgentProcess, c: AgentProcess
  let urlA: string, urlC: string
  let context: BrowserContext | undefined
  let page: Page
  let cid: string
  const dir = (name: string): string => join(t.dir, name)

  before(async function () {
    if (!existsSync(CHROMIUM)) {
      console.error(`    skipping the browser tests: ${CHROMIUM} is absent (apt-get install chromium, or set XO_MESH_CHROMIUM)`)
      this.skip()
    }
    const t0 = Date.now()
    t = await tempDir('xo-mesh-dashboard-')
    const ports = [await freePort(), await freePort(), await freePort()]
    const listen = (i: number): string[] => ['--listen', `/ip4/127.0.0.1/tcp/${ports[i]}`]
    const peer = (i: number): string => `/ip4/127.0.0.1/tcp/${ports[i]}`

    // the same tree and date on A and B give the same build: C gets it from both
    await makeTree(dir('tree'), BUILD_BYTES, 'dashboard')
    const cids = await Promise.all(['a', 'b'].map(async n => {
      await writeConfig(dir(n), `blocks:\n  upload_rate: ${CAP}\n`)
      const add = await xo(['--data', dir(n), 'add', dir('tree'), '--name', 'os-2026.11', '--kind', 'os', '--created', CREATED], { timeoutMs: 30_000 })
      assert.equal(add.code, 0, add.stderr)
      return lastLine(add.stdout)
    }))
    assert.equal(cids[0], cids[1])
    cid = cids[0]!
    if (process.env.XO_TEST_VERBOSE !== undefined) console.error('added', Date.now() - t0, 'ms')
    await mkdir(dir('tiny'), { recursive: true })
    await writeFile(join(dir('tiny'), 'readme.txt'), 'hello\n')
    a = new AgentProcess(dir('a'), [...LOOPBACK, ...listen(0)])
    b = new AgentProcess(dir('b'), [...LOOPBACK, ...listen(1), '--peer', peer(0)])
    c = new AgentProcess(dir('c'), [...LOOPBACK, ...listen(2), '--peer', peer(0), peer(1)])
    agents.push(a, b, c)
    const urls = await Promise.all(agents.map(async x => await x.started(45_000)))
    urlA = urls[0]!
    urlC = urls[2]!
    if (process.env.XO_TEST_VERBOSE !== undefined) console.error('started', Date.now() - t0, 'ms')
    await until('the three agents to connect', 15_000, () => (c.connectedPeers().size === 2 && a.connectedPeers().size === 2 ? true : undefined))

    const { chromium } = await import('playwright-core')
    context = await chromium.launchPersistentContext(dir('profile'), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1200, height: 900 },
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
    })
    page = context.pages()[0] ?? await context.newPage()
    await mkdir(ARTIFACTS, { recursive: true })
    if (process.env.XO_TEST_VERBOSE !== undefined) console.error('browser', Date.now() - t0, 'ms')
  })

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return
    for (const x of agents) for (const l of x.find(l => l.level === 'warn' || l.level === 'error')) console.error(x.dataDir.slice(-1), JSON.stringify(l).slice(0, 400))
  })

  after(async () => {
    await context?.close()
    await Promise.all(agents.map(async x => { await x.kill() }))
    await t?.cleanup()
  })

  it('shows this laptop, its role and its neighbours, live', async () => {
    await page.goto(urlC + '/')
    await page.waitForSelector('#feed[data-mode="live"]', { timeout: 10_000 })
    for (const id of [a.peerId, b.peerId]) await page.waitForSelector(`#peers tr[data-peer="${id}"]`, { timeout: 10_000 })
    assert.equal(await page.getAttribute('#self-id', 'title'), c.peerId)
    // role, server and term as the status says (on a loaded machine the election may be over already)
    await until('the page to show the elected school server', 20_000, async () => {
      const s = (await api(urlC, '/status')).body as { role: string, server: string | null, term: number }
      const role = await page.textContent('#self-role')
      const server = await page.textContent('#self-server')
      const term = await page.textContent('#self-term')
      const want = s.server === null ? 'none elected' : s.server === c.peerId ? 'this laptop' : shortId(s.server)
      return role === (s.role === 'server' ? 'SCHOOL SERVER' : 'peer') && server === want && term === String(s.term) && s.server !== null ? true : undefined
    }, 250)
    const server = await page.getAttribute('#self-server', 'title')
    assert.ok([a.peerId, b.peerId, c.peerId].includes(server!), `the server is one of the three: ${server}`)
    const row = await page.textContent(`#peers tr[data-peer="${a.peerId}"]`)
    assert.ok(row !== null && row.includes(shortId(a.peerId)) && row.includes('static') && row.includes('127.0.0.1'), String(row))
    assert.equal(await page.locator('#peers tbody tr').count(), 2)
    // the outbox and the upstream (the relay), the advisories (none provisioned here)
    await until('the outbox to show', 10_000, async () => ((await page.textContent('#outbox-size'))?.startsWith('0 items') === true ? true : undefined), 100)
    assert.match(await page.textContent('#outbox-contact') ?? '', /never since the agent started/)
    assert.match(await page.textContent('#advisory-snapshot') ?? '', /Advisories are off/)
    // a neighbour's capability facts, once its first claim is in
    await until('a neighbour\'s capability facts', 15_000, async () => ((await page.textContent(`#peers tr[data-peer="${a.peerId}"]`))?.includes('capability ') === true ? true : undefined), 200)
    // an agent that is not a mothership has no login and no overview
    assert.equal(await page.locator('#nav').isHidden(), true)
    assert.equal((await api(urlC, '/overview')).status, 404)
  })

  it('shows a build\'s progress moving to complete during a real transfer', async () => {
    // every state the bar takes, recorded in the page as the DOM changes
    await page.evaluate(`(() => {
      window.__seen = []
      const cid = ${JSON.stringify(cid)}
      new MutationObserver(() => {
        const li = document.querySelector('#builds li[data-cid="' + cid + '"]')
        if (li === null) return
        const bar = li.querySelector('[role=progressbar]')
        const facts = li.querySelector('.build-facts')
        window.__seen.push({ state: li.dataset.state, pct: Number(bar.getAttribute('aria-valuenow')), facts: facts.textContent, feed: document.getElementById('feed').dataset.mode })
      }).observe(document.getElementById('builds'), { childList: true, subtree: true, attributes: true })
    })()`)
    const r = await api(urlC, '/fetch', { cid })
    assert.equal(r.status, 202, JSON.stringify(r.body))

    // polled from here: the page's CSP forbids the eval that waitForFunction would need
    type Seen = Array<{ state: string, pct: number, facts: string, feed: string }>
    const seenNow = async (): Promise<Seen> => await page.evaluate('window.__seen') as Seen
    await until('the bar to pass 40 %', 20_000, async () => ((await seenNow()).some(s => s.state === 'fetching' && s.pct >= 40) ? true : undefined), 100)
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-agent.png') })
    await until('the build to show complete', 30_000, async () => ((await seenNow()).some(s => s.state === 'complete') ? true : undefined), 100)
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-agent-complete.png') })

    const seen = await seenNow()
    const fetching = seen.filter(s => s.state === 'fetching')
    const intermediate = new Set(fetching.map(s => s.pct).filter(p => p > 0 && p < 100))
    assert.ok(intermediate.size >= 3, `the bar took ${intermediate.size} values between 0 and 100 %: ${JSON.stringify([...intermediate])}`)
    assert.ok(fetching.every(s => s.pct < 100), 'the bar shows 100 % only once complete')
    assert.ok(seen.every(s => s.feed === 'live'), 'every update came from the live stream')
    assert.ok(fetching.some(s => /[1-9][0-9.]*\u00a0[kM]B\/s/.test(s.facts)), `a rate was shown while fetching: ${fetching.map(s => s.facts).join(' | ')}`)
    const last = seen[seen.length - 1]!
    assert.equal(last.state, 'complete')
    assert.equal(last.pct, 100)

    const li = page.locator(`#builds li[data-cid="${cid}"]`)
    assert.equal(await li.locator('.build-name').textContent(), 'os-2026.11')
    const sources = await li.locator('.build-sources').textContent() ?? ''
    assert.ok(sources.includes(shortId(a.peerId)) || sources.includes(shortId(b.peerId)), sources)
    await page.waitForSelector('#events li[data-name="build:added"]', { timeout: 5_000 })
    assert.ok((await page.textContent('#events li[data-name="build:fetch"]'))?.includes('fetching os-2026.11'))

    // the CLI reads the same feed
    const ev = await xo(['--data', dir('c'), 'events'])
    assert.equal(ev.code, 0, ev.stderr)
    assert.match(ev.stdout, new RegExp(`build:fetch +cid=${cid}`))
    assert.match(ev.stdout, new RegExp(`build:added +cid=${cid} name=os-2026.11`))
  })

  it('shows a build name a peer supplied as text, never as markup', async () => {
    const add = await xo(['--data', dir('a'), 'add', dir('tiny'), '--name', HOSTILE_NAME])
    assert.equal(add.code, 0, add.stderr)
    const tiny = lastLine(add.stdout)
    await until('A to hold the hostile build', 10_000, async () => ((await api(urlA, `/builds/${tiny}`)).status === 200 ? true : undefined))
    // followed by the CLI as it happens
    const follow = start(['--data', dir('c'), '--json', 'events', '--follow'])
    let followed = ''
    follow.stdout!.on('data', (d: Buffer) => { followed += d.toString() })
    const names = (): string[] => followed.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as { name: string, detail: { cid?: string } }).filter(e => e.detail.cid === tiny).map(e => e.name)
    try {
      await until('events --follow to print its first lines', 15_000, () => (followed.includes('build:added') ? true : undefined))
      assert.equal((await api(urlC, '/fetch', { cid: tiny })).status, 202)
      await until('events --follow to print the fetch of the new build', 15_000, () => (names().includes('build:added') ? true : undefined))
      assert.deepEqual(names(), ['build:fetch', 'build:added'])
    } finally {
      follow.kill('SIGINT')
    }
    await page.waitForSelector(`#builds li[data-cid="${tiny}"][data-state="complete"]`, { timeout: 15_000 })
    assert.equal(await page.locator(`#builds li[data-cid="${tiny}"] .build-name`).textContent(), HOSTILE_NAME)
    assert.equal(await page.locator('#builds img, #builds b').count(), 0)
    assert.equal(await page.evaluate('window.__xss'), undefined)
  })

  it('falls back to polling when the stream is refused', async () => {
    const p2 = await context!.newPage()
    await p2.route('**/api/v1/events', route => route.fulfill({ status: 503, contentType: 'application/json', body: '{"error":"busy"}' }))
    await p2.goto(urlC + '/')
    await p2.waitForSelector('#feed[data-mode="polling"]', { timeout: 10_000 })
    await p2.waitForSelector(`#peers tr[data-peer="${a.peerId}"]`, { timeout: 10_000 })
    await p2.waitForSelector(`#builds li[data-cid="${cid}"][data-state="complete"]`, { timeout: 10_000 })
    await p2.close()
  })

  it('refuses another origin: a page elsewhere can neither read the API, follow the events nor start a fetch', async () => {
    // a page on another origin (another port on loopback), without the dashboard's CSP
    const evil = createServer((_req, res) => { res.writeHead(200, { 'Content-Type': 'text/html' }); res.end('<!doctype html><title>elsewhere</title>') })
    await new Promise<void>(resolve => evil.listen(0, '127.0.0.1', resolve))
    const evilOrigin = `http://127.0.0.1:${(evil.address() as AddressInfo).port}`
    try {
      const p2 = await context!.newPage()
      await p2.goto(evilOrigin + '/')
      const outcome = await p2.evaluate(`(async () => {
        const out = {}
        try { await fetch(${JSON.stringify(urlC + '/api/v1/status')}); out.read = 'read' } catch { out.read = 'refused' }
        out.events = await new Promise(resolve => {
          const es = new EventSource(${JSON.stringify(urlC + '/api/v1/events')})
          es.onopen = () => { es.close(); resolve('opened') }
          es.onerror = () => { es.close(); resolve('refused') }
        })
        // what a form could send: no preflight, an opaque answer
        const r = await fetch(${JSON.stringify(urlC + '/api/v1/fetch')}, { method: 'POST', mode: 'no-cors', headers: { 'Content-Type': 'text/plain' }, body: '{"cid": "${cid}"}' })
        out.post = r.type
        return out
      })()`)
      assert.deepEqual(outcome, { read: 'refused', events: 'refused', post: 'opaque' })
      await p2.close()
    } finally {
      evil.close()
    }
    const refused = await until('C to log the three refusals', 5_000, () => {
      const r = c.find(l => l.msg === 'refused a request' && l.origin === evilOrigin)
      return r.length >= 3 ? r : undefined
    })
    assert.deepEqual(new Set(refused.map(l => String(l.url))), new Set(['/api/v1/status', '/api/v1/events', '/api/v1/fetch']))
    // and straight from a client that says where it comes from
    assert.equal(await rawStatus(urlC, '/', { Origin: 'http://evil.example' }), 403)
    assert.equal(await rawStatus(urlC, '/api/v1/events', { Origin: 'http://evil.example' }), 403)
    assert.equal(await rawStatus(urlC, '/', { Host: 'evil.example' }), 403)
    assert.equal(await rawStatus(urlC, '/', {}), 200)
  })
})
