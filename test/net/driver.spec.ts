// The driver's stream handling, with an agent in the test process and peers
// that speak the protocol by hand: a second stream from a peer replaces the
// first; a peer that does not speak the protocol is left alone (no retry
// loop); an agent holding a build answers Interest with Have.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { tempDir } from '../support/cli.ts'
import { until } from '../agent/support.ts'
import { HostilePeer, makeTree } from './support.ts'
import { Agent } from '../../src/agent/agent.ts'
import { defaultConfig } from '../../src/agent/config.ts'
import { silentLogger } from '../../src/net/logger.ts'
import { blocks, type BlocksDriver } from '../../src/net/blocks/index.ts'
import { Repo } from '../../src/content/repo.ts'
import { addDirectory } from '../../src/content/add.ts'
import { PROTOCOL } from '../../src/core/exchange/index.ts'
import type { Have } from '../../src/core/exchange/index.ts'

describe('block exchange driver streams', function () {
  this.timeout(30_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  let agent: Agent
  let driver: BlocksDriver
  let root: Uint8Array
  let leaves: number
  const peers: HostilePeer[] = []

  before(async () => {
    t = await tempDir('xo-mesh-driver-')
    const data = join(t.dir, 'data')
    await makeTree(join(t.dir, 'tree'), 1 << 20, 'driver')
    const repo = await Repo.open(data)
    const added = await addDirectory(repo.store, join(t.dir, 'tree'), { name: 'one', kind: 'content', created: new Date(0) })
    await repo.noteBuild(added.cid, added.record)
    root = added.cid.bytes
    const config = { ...defaultConfig(), listen: ['/ip4/127.0.0.1/tcp/0'], api: '127.0.0.1:0' }
    config.mdns.enabled = false
    agent = await Agent.start({ dataDir: data, config, logger: silentLogger, components: [blocks({ reopenMinMs: 200 })] })
    driver = (agent as unknown as { parts: BlocksDriver[] }).parts[0]!
    await until('the agent to hold its build', 5_000, () => (driver.progress(added.cid.toString())?.complete === true ? true : undefined))
    leaves = driver.progress(added.cid.toString())!.leaves
  })

  after(async () => {
    await Promise.all(peers.map(async p => { await p.stop().catch(() => {}) }))
    await agent.stop()
    await t.cleanup()
  })

  const addr = (): string => agent.node.getMultiaddrs()[0]!.toString()

  it('answers Interest with Have, and reads a second stream from a peer in place of the first', async () => {
    const p = await new HostilePeer({}).start()
    peers.push(p)
    await p.connect(addr())
    const haves = (): Have[] => p.received.filter((m): m is Have => m.type === 'have')
    await until('the Have sent on connect', 5_000, () => (haves().length >= 1 ? true : undefined))
    assert.deepEqual({ ...haves()[0]!, root: [...haves()[0]!.root] }, { type: 'have', root: [...root], leaves, complete: true })
    const first = p.out!
    p.send({ type: 'interest', root, interested: true })
    await until('a Have in answer to Interest', 5_000, () => (haves().length >= 2 ? true : undefined))

    // a new stream from the same peer: the old one is reset, the new one is read
    p.out = await p.node.dialProtocol(multiaddr(addr()), PROTOCOL)
    await until('the first stream to be reset', 5_000, () => (first.status !== 'open' ? true : undefined))
    p.send({ type: 'interest', root, interested: true })
    await until('a Have in answer to Interest on the new stream', 5_000, () => (haves().length >= 3 ? true : undefined))
    assert.equal(driver.banList().length, 0)
    assert.equal(driver.peerInfo(p.peerId)?.open, true)
  })

  it('leaves alone a peer that does not speak the block exchange', async () => {
    const node = await createLibp2p({ addresses: { listen: [] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
    await node.dial(multiaddr(addr()))
    const id = node.peerId.toString()
    const connected = (): boolean => agent.node.getConnections().some(c => c.remotePeer.toString() === id && c.status === 'open')
    await until('the agent to see the connection', 5_000, () => (connected() ? true : undefined))
    // the agent tries once (multistream-select refuses the protocol) and does not try again
    await new Promise(resolve => setTimeout(resolve, 1500))
    assert.equal(driver.peerInfo(id), undefined, 'no exchange with it')
    assert.ok(connected(), 'the connection stays')
    await node.stop()
  })

  it('opens the exchange again when a peer ends its stream but stays connected', async () => {
    const p = await new HostilePeer({}).start()
    peers.push(p)
    await p.connect(addr())
    await until('the exchange to open', 5_000, () => (driver.peerInfo(p.peerId)?.open === true ? true : undefined))
    const haves = p.received.filter(m => m.type === 'have').length
    await p.out!.close()
    // the agent ends its side, then reopens its stream to us and announces again
    await until('the agent to announce again', 10_000, () => (p.received.filter(m => m.type === 'have').length > haves ? true : undefined))
    assert.equal(driver.banList().length, 0)
  })
})
