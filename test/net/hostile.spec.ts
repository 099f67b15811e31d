// Hostile peers against a real agent: libp2p nodes in the test process speak
// /xo-mesh/blocks/1.0.0 with the real codec and send corrupt blocks, an
// oversize frame, random bytes and a flood of requests. The honest agent H
// bans each of them (visible in its API and logs), keeps running, completes
// its fetch from the good peer G and never stores a bad block.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { lastLine, tempDir } from '../support/cli.ts'
import { AgentProcess, until, xo } from '../agent/support.ts'
import { HostilePeer, agentAddr, api, byteStream, checkStore, freePort, makeTree, progressOf, writeConfig } from './support.ts'
import { MAX_FRAME_SIZE } from '../../src/core/exchange/index.ts'
import { Repo } from '../../src/content/repo.ts'
import { parseCid } from '../../src/content/cid.ts'
import { readIndexSpace, type IndexSpace } from '../../src/content/index-space.ts'

const LOOPBACK = ['--no-mdns', '--api', '127.0.0.1:0']

interface Ban { peerId: string, reason: string, since: string, until: string }

/** A uvarint, as the frame length prefix. */
function uvarint (n: number): Uint8Array {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return Uint8Array.from(out)
}

describe('hostile peers against an agent', function () {
  this.timeout(60_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  const agents: AgentProcess[] = []
  const hostile: HostilePeer[] = []
  let g: AgentProcess, h: AgentProcess
  let hPort: number
  let cid: string
  let space: IndexSpace
  const dir = (name: string): string => join(t.dir, name)

  const bansOf = async (): Promise<Ban[]> => {
    const s = (await api(await h.started(), '/status')).body as { components: { blocks: { bans: Ban[] } } }
    return s.components.blocks.bans
  }

  before(async () => {
    t = await tempDir('xo-mesh-hostile-')
    await makeTree(dir('tree'), 8 << 20, 'hostile')
    const add = await xo(['--data', dir('g'), 'add', dir('tree'), '--name', 'eight'])
    assert.equal(add.code, 0, add.stderr)
    cid = lastLine(add.stdout)
    const r = await readIndexSpace(new Repo(dir('g')).store, parseCid(cid))
    assert.equal(r.status, 'ready')
    if (r.status === 'ready') space = r.space
    // G serves slowly enough that H asks the corrupt peer for some leaves too
    await writeConfig(dir('g'), 'blocks:\n  upload_rate: 4000000\n')
    const gPort = await freePort()
    hPort = await freePort()
    g = new AgentProcess(dir('g'), [...LOOPBACK, '--listen', `/ip4/127.0.0.1/tcp/${gPort}`])
    h = new AgentProcess(dir('h'), [...LOOPBACK, '--listen', `/ip4/127.0.0.1/tcp/${hPort}`, '--peer', `/ip4/127.0.0.1/tcp/${gPort}`])
    agents.push(g, h)
    await Promise.all(agents.map(async x => await x.started()))
    await until('H to connect to G', 15_000, () => (h.connectedPeers().has(g.peerId) ? true : undefined))
  })

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return
    for (const x of agents) {
      for (const l of x.find(l => l.level !== 'debug' && (l.component === 'blocks' || l.level !== 'info'))) console.error(x.dataDir.slice(-1), JSON.stringify(l).slice(0, 400))
    }
  })

  after(async () => {
    await Promise.all(hostile.map(async p => { await p.stop().catch(() => {}) }))
    await Promise.all(agents.map(async x => { await x.kill() }))
    await t.cleanup()
  })

  it('bans peers sending an oversize frame, random bytes or a flood of requests, and stays up', async () => {
    const root = parseCid(cid).bytes
    const oversize = await new HostilePeer({
      onOpen: p => { p.sendBytes(Uint8Array.from([...uvarint(MAX_FRAME_SIZE + 1), 1, 2, 3])) }
    }).start()
    const random = await new HostilePeer({
      onOpen: p => {
        const rand = byteStream('random frames')
        // frames of a plausible length whose bodies are noise
        for (let i = 0; i < 20; i++) p.sendBytes(Uint8Array.from([...uvarint(300), ...rand(300)]))
      }
    }).start()
    const flood = await new HostilePeer({
      onOpen: p => {
        const indices = Uint32Array.from({ length: 1000 }, (_, i) => i)
        for (let i = 0; i < 3000; i++) if (!p.send({ type: 'request', root, indices, cids: [] })) break
      }
    }).start()
    hostile.push(oversize, random, flood)
    for (const p of [oversize, random, flood]) await p.connect(agentAddr(hPort, h.peerId))

    const bans = await until('H to ban all three', 15_000, async () => {
      const bans = await bansOf()
      return [oversize, random, flood].every(p => bans.some(b => b.peerId === p.peerId)) ? bans : undefined
    })
    if (process.env.XO_TEST_VERBOSE !== undefined) console.error(JSON.stringify(bans, null, 1))
    const reason = (p: HostilePeer): string => bans.find(b => b.peerId === p.peerId)!.reason
    assert.match(reason(oversize), /^malformed frame: frame: 4194305 bytes exceed 4194304/)
    assert.match(reason(random), /^malformed frame/)
    assert.match(reason(flood), /flooding control messages|more requests outstanding/)
    assert.ok(bans.every(b => Date.parse(b.until) - Date.now() > 5 * 60_000), 'banned for minutes')
    for (const p of [oversize, random, flood]) {
      assert.ok(h.find(l => l.msg === 'peer banned' && l.peerId === p.peerId).length > 0, 'the ban is logged')
    }
    await until('the banned peers\' streams to be closed', 5_000, () => ([oversize, random, flood].every(p => p.closed) ? true : undefined))
    // a banned peer is refused when it tries again
    await oversize.connect(agentAddr(hPort, h.peerId)).catch(() => {})
    await until('a new stream from a banned peer to be refused', 5_000, () => (oversize.out?.status !== 'open' ? true : undefined))
    assert.equal(h.child.exitCode, null, 'H is still running')
  })

  it('completes from the good peer while a peer sends corrupt blocks, bans it, and stores no bad block', async () => {
    const root = parseCid(cid).bytes
    let asked = 0
    const corrupt = await new HostilePeer({
      onOpen: p => { p.send({ type: 'have', root, leaves: space.leaves, complete: true }) },
      onFrame: (p, m) => {
        if (m.type === 'interest' && m.interested) p.send({ type: 'have', root, leaves: space.leaves, complete: true })
        if (m.type !== 'request') return
        asked += m.indices.length + m.cids.length
        if (m.indices.length > 0) p.sendGarbageLeaves(root, m.indices, Array.from(m.indices, i => space.sizes[i]!))
        // manifest blocks: 64 wrong bytes each
        if (m.cids.length > 0) p.sendGarbageManifest(root, m.cids, 64)
      }
    }).start()
    hostile.push(corrupt)
    await corrupt.connect(agentAddr(hPort, h.peerId))
    await until('H to exchange with the corrupt peer', 5_000, async () => {
      const peers = (await api(await h.started(), '/peers')).body as { peers: Array<{ peerId: string, blocks?: { open: boolean } }> }
      return peers.peers.some(p => p.peerId === corrupt.peerId && p.blocks?.open === true) ? true : undefined
    })

    const url = await h.started()
    const r = await api(url, '/fetch', { cid })
    assert.equal(r.status, 202)
    const done = await until('H to complete the build', 30_000, async () => {
      const p = await progressOf(url, cid)
      return p?.complete === true ? p : undefined
    }, 100)
    assert.equal(done.have_bytes, done.bytes)
    assert.ok(asked > 0, 'the corrupt peer was asked for blocks')
    const bans = await bansOf()
    const ban = bans.find(b => b.peerId === corrupt.peerId)
    assert.ok(ban !== undefined, JSON.stringify(bans))
    assert.match(ban.reason, /does not match its hash/)
    assert.ok(!bans.some(b => b.peerId === g.peerId), 'the good peer is not banned')
    assert.deepEqual(done.sources.map(s => s.peerId), [g.peerId], 'every stored block came from G')

    const { blocks, bad } = await checkStore(dir('h'))
    assert.deepEqual(bad, [], 'no bad block in the store')
    assert.equal(blocks, space.leaves + space.manifest.length)
    assert.equal(h.child.exitCode, null, 'H is still running')
    assert.deepEqual(h.find(l => l.level === 'error'), [])
  })
})
