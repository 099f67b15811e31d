// Hostile peers against the election of real agents: libp2p nodes in the test
// process speak /xo-mesh/election/1.0.0 with the real codec and send claims
// about other peers signed with their own key (impersonation), a changed copy
// of the server's genuine claim, a claim with an absurd term, replays, and
// malformed frames. The election does not move: same server, same term, on
// every agent; forgers and senders of garbage are banned.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import type { PrivateKey, Stream } from '@libp2p/interface'
import { tempDir } from '../support/cli.ts'
import { AgentProcess, apiGet, until } from '../agent/support.ts'
import { agentAddr, byteStream, freePort, writeConfig } from './support.ts'
import { FrameReader, PROTOCOL, decodeClaim, decodeFrame, encodeClaim, encodeFrame, signedPayload } from '../../src/core/election/index.ts'
import type { Claim, SignedClaim } from '../../src/core/election/index.ts'
import { ed25519Authenticator } from '../../src/net/election/index.ts'

const LOOPBACK = ['--no-mdns', '--api', '127.0.0.1:0']
const TIMERS = 'election:\n  heartbeat_s: 0.5\n  failure_timeout_s: 2\n  settle_s: 0.5\n  startup_grace_s: 1.5\n  hold_s: 3\n'

interface Status { peerId: string, role: string, server: string | null, term: number, components: { election: { bans: Array<{ peerId: string, reason: string }> } } }

/** A libp2p node that speaks the election protocol and lies. It records the claims agents send it. */
class Liar {
  node!: Libp2p
  key!: PrivateKey
  out: Stream | undefined
  readonly heard: SignedClaim[] = []
  closed = false

  get peerId (): string { return this.node.peerId.toString() }

  async start (): Promise<this> {
    this.key = await generateKeyPair('Ed25519')
    this.node = await createLibp2p({ privateKey: this.key, addresses: { listen: [] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
    await this.node.handle(PROTOCOL, stream => {
      const reader = new FrameReader()
      stream.addEventListener('message', evt => {
        for (const c of evt.data instanceof Uint8Array ? [evt.data] : [...evt.data]) {
          for (const body of reader.push(c)) this.heard.push(...decodeFrame(body).claims)
        }
      })
      stream.addEventListener('close', () => { this.closed = true })
    })
    return this
  }

  async connect (addr: string): Promise<void> {
    const conn = await this.node.dial(multiaddr(addr))
    this.out = await conn.newStream(PROTOCOL)
    this.out.addEventListener('close', () => { this.closed = true })
  }

  /** A claim with these fields, signed with this liar's own key whatever peer it names. */
  claim (c: Partial<Claim> & { peer: string }): SignedClaim {
    const claim: Claim = { incarnation: 1, seq: 1, capability: { pinned: false, upstream: false, ac: false, battery: 0, freeDiskMiB: 0, uptimeS: 0 }, serving: false, term: 0, ...c }
    const bytes = encodeClaim(claim)
    return { claim, bytes, signature: ed25519Authenticator(this.key).sign(signedPayload(bytes)), hops: 0, age: 0 }
  }

  send (claims: SignedClaim[]): void { this.sendBytes(encodeFrame({ type: 'claims', claims })) }

  sendBytes (bytes: Uint8Array): void {
    if (this.out?.status === 'open' && this.out.writeStatus === 'writable') this.out.send(bytes)
  }

  async stop (): Promise<void> { await this.node.stop() }
}

describe('hostile peers against the election', function () {
  this.timeout(90_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  const agents: AgentProcess[] = []
  const liars: Liar[] = []
  let ports: number[]
  let server = ''
  let term = 0

  const statuses = async (): Promise<Status[]> => await Promise.all(agents.map(async p => (await apiGet(await p.started(), '/status')).body as Status))

  /** Checks for `ms` that every agent still follows the same server in the same term. */
  const unmoved = async (ms: number): Promise<void> => {
    const end = Date.now() + ms
    while (Date.now() < end) {
      for (const s of await statuses()) {
        assert.equal(s.server, server, `${s.peerId} follows ${s.server}, not ${server}`)
        assert.equal(s.term, term)
        assert.equal(s.role, s.peerId === server ? 'server' : 'peer')
      }
      await new Promise(resolve => setTimeout(resolve, 200))
    }
  }

  const liar = async (): Promise<Liar> => {
    const l = await new Liar().start()
    liars.push(l)
    await l.connect(agentAddr(ports[0]!, agents[0]!.peerId))
    // the agent opens its stream to us and sends what it knows
    await until('the agent to send its claims', 10_000, () => (l.heard.length > 0 ? true : undefined))
    return l
  }

  const bannedBy = async (p: AgentProcess, peerId: string): Promise<string | undefined> => {
    const s = (await apiGet(await p.started(), '/status')).body as Status
    return s.components.election.bans.find(b => b.peerId === peerId)?.reason
  }

  before(async () => {
    t = await tempDir('xo-mesh-election-hostile-')
    ports = [await freePort(), await freePort(), await freePort()]
    const battery = ['30', '80', '50']
    for (let i = 0; i < 3; i++) {
      const d = join(t.dir, `n${i}`)
      await writeConfig(d, TIMERS)
      const peers = i === 0 ? [] : ['--peer', `/ip4/127.0.0.1/tcp/${ports[i - 1]}`]
      agents.push(new AgentProcess(d, [...LOOPBACK, '--listen', `/ip4/127.0.0.1/tcp/${ports[i]}`, ...peers], { env: { XO_MESH_POWER: 'battery', XO_MESH_BATTERY: battery[i]! } }))
    }
    await Promise.all(agents.map(async p => await p.started(60_000)))
    // n1 has clearly the most charge: it serves, at once or after the hold time if another was quicker
    const agreed = await until('the agents to agree on n1 as the server', 30_000, async () => {
      const s = await statuses()
      return s.filter(x => x.role === 'server').length === 1 && s.every(x => x.server === agents[1]!.peerId && x.term === s[0]!.term) ? s[0]! : undefined
    }, 100)
    server = agreed.server!
    term = agreed.term
    assert.equal(server, agents[1]!.peerId)
  })

  after(async () => {
    await Promise.all(liars.map(async l => { await l.stop() }))
    await Promise.all(agents.map(async p => { await p.kill() }))
    await t.cleanup()
  })

  it('ignores claims in another peer\'s name and bans whoever sends them', async () => {
    const l = await liar()
    // "I am the server's peer id, and I am pinned, serving, in the next term", signed with the liar's key
    l.send([l.claim({ peer: server, incarnation: 9e9, seq: 1, serving: true, term: term + 1, capability: { pinned: true, upstream: true, ac: true, battery: 100, freeDiskMiB: 1e6, uptimeS: 1e6 } })])
    await until('the forger to be banned', 5_000, async () => await bannedBy(agents[0]!, l.peerId))
    await unmoved(1500)
    assert.match((await bannedBy(agents[0]!, l.peerId))!, /bad signature/)
  })

  it('ignores a changed copy of the server\'s genuine claim (a withdrawal it never signed)', async () => {
    const l = await liar()
    const genuine = l.heard.find(c => c.claim.peer === server)
    assert.ok(genuine !== undefined, 'the agent relayed the server\'s claim')
    const changed = { ...genuine.claim, seq: genuine.claim.seq + 1000, serving: false }
    const bytes = encodeClaim(changed)
    assert.deepEqual(decodeClaim(bytes).serving, false)
    l.send([{ claim: changed, bytes, signature: genuine.signature, hops: 0, age: 0 }])
    await until('the forger to be banned', 5_000, async () => await bannedBy(agents[0]!, l.peerId))
    await unmoved(1500)
  })

  it('ignores replays of the server\'s genuine claims', async () => {
    const l = await liar()
    const genuine = l.heard.filter(c => c.claim.peer === server)
    assert.ok(genuine.length > 0)
    // old claims, sent again as if fresh, over and over
    for (let k = 0; k < 20; k++) {
      l.send(genuine.map(c => ({ ...c, hops: 0, age: 0 })))
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    await unmoved(1500)
    assert.equal(await bannedBy(agents[0]!, l.peerId), undefined, 'a replay of genuine claims is not forgery')
  })

  it('drops a claim with an absurd term, even one the sender signed itself', async () => {
    const l = await liar()
    l.send([l.claim({ peer: l.peerId, serving: true, term: term + 1e12, capability: { pinned: true, upstream: true, ac: true, battery: 100, freeDiskMiB: 1e6, uptimeS: 1e6 } })])
    await unmoved(1500)
    assert.equal(l.closed, false)
  })

  it('bans a peer that sends malformed frames, and the election does not move', async () => {
    const noise = Uint8Array.of(100, ...byteStream('election garbage')(100))
    assert.throws(() => decodeFrame(noise.subarray(1)))
    const frames = [Uint8Array.of(0), Uint8Array.of(5, 0x0a, 3, 0x0a, 1, 0xff), Uint8Array.of(0xff, 0xff, 0xff, 0x7f), noise]
    for (const f of frames) {
      const l = await liar()
      l.sendBytes(f)
      await until('the sender of garbage to be banned', 5_000, async () => await bannedBy(agents[0]!, l.peerId))
      assert.match((await bannedBy(agents[0]!, l.peerId))!, /malformed/)
    }
    await unmoved(1500)
  })
})
