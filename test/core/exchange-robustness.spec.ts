import assert from 'node:assert/strict'
import { MAX_FRAME_SIZE, MAX_INDICES, fullBitfield } from '../../src/core/exchange/index.ts'
import { Writer } from '../../src/core/wire/protobuf.ts'
import { Mesh, type FakeBuild } from './mesh.ts'

const MB = 1000

/** A seed, a fetcher and whoever else; everyone holds the build. */
function setup (seed: number, leaves = 300): { mesh: Mesh, b: FakeBuild } {
  const mesh = new Mesh({ seed })
  const b = mesh.build({ leaves })
  mesh.add('seed')
  mesh.add('f')
  mesh.give('seed', b)
  return { mesh, b }
}

function banned (mesh: Mesh, by: string, peer: string): string | undefined {
  return mesh.node(by).bans.find(x => x.peer === peer)?.reason
}

describe('block exchange with misbehaving peers', function () {
  this.timeout(20_000)

  it('bans a peer that sends a block whose hash is wrong, and completes from the good peers', () => {
    const { mesh, b } = setup(21)
    mesh.add('evil', { evil: { corrupt: true } })
    mesh.give('evil', b)
    mesh.connect('seed', 'f', { bandwidth: 2 * MB })
    mesh.connect('evil', 'f', { bandwidth: 20 * MB })
    for (const id of ['seed', 'evil', 'f']) mesh.hold(id, b)
    mesh.driveUntilComplete(b, ['f'], 600_000)
    assert.match(banned(mesh, 'f', 'evil') ?? '', /does not match its hash/)
    assert.ok(mesh.node('f').completeAt.has(b.key))
    assert.equal(mesh.node('f').store.leafCount(b), b.sizes.length)
    assert.ok(mesh.node('f').received <= 1.1 * b.total)
  })

  it('bans a peer that sends leaves of the wrong size', () => {
    const { mesh, b } = setup(22)
    mesh.add('evil', { evil: { wrongSize: true } })
    mesh.give('evil', b)
    mesh.connect('seed', 'f')
    mesh.connect('evil', 'f')
    for (const id of ['seed', 'evil', 'f']) mesh.hold(id, b)
    mesh.driveUntilComplete(b, ['f'], 600_000)
    assert.match(banned(mesh, 'f', 'evil') ?? '', /the manifest says/)
    assert.ok(mesh.node('f').completeAt.has(b.key))
  })

  it('bans a peer that sends garbage, and one whose frame is longer than the limit before reading it', () => {
    const { mesh, b } = setup(23)
    mesh.addRaw('garbage')
    mesh.addRaw('huge')
    mesh.connect('seed', 'f')
    mesh.connect('garbage', 'f')
    mesh.connect('huge', 'f')
    mesh.hold('seed', b)
    mesh.hold('f', b)
    mesh.inject('garbage', 'f', Uint8Array.of(7, 1, 2, 3, 4, 5, 6, 7))
    mesh.inject('huge', 'f', new Writer().uvarint(MAX_FRAME_SIZE + 1).finish())
    mesh.driveUntilComplete(b, ['f'], 600_000)
    assert.match(banned(mesh, 'f', 'garbage') ?? '', /^malformed frame: /)
    assert.match(banned(mesh, 'f', 'huge') ?? '', /exceed/)
    assert.ok(mesh.node('f').completeAt.has(b.key))
  })

  it('bans a peer with more requests outstanding than the protocol allows', () => {
    const { mesh, b } = setup(24, 3000)
    mesh.addRaw('greedy')
    mesh.connect('seed', 'greedy', { bandwidth: 1 * MB })
    mesh.hold('seed', b)
    mesh.drive(100)
    for (let k = 0; k < 3; k++) {
      const indices = Uint32Array.from({ length: 1000 }, (_, i) => k * 1000 + i)
      mesh.inject('greedy', 'seed', { type: 'request', root: b.root, indices, cids: [] })
    }
    mesh.drive(1000)
    assert.match(banned(mesh, 'seed', 'greedy') ?? '', /more requests outstanding/)
  })

  it('bans a peer whose Have does not match the build, or names leaves out of range', () => {
    const { mesh, b } = setup(25)
    const n = b.sizes.length
    for (const id of ['liar', 'outOfRange', 'requester', 'sender']) mesh.addRaw(id)
    for (const id of ['liar', 'outOfRange', 'requester', 'sender']) mesh.connect(id, 'f')
    mesh.connect('seed', 'f', { bandwidth: 1 * MB })
    mesh.hold('seed', b)
    mesh.hold('f', b)
    mesh.drive(500) // f knows the build by now
    mesh.inject('liar', 'f', { type: 'have', root: b.root, leaves: n + 8, complete: true })
    mesh.inject('outOfRange', 'f', { type: 'have', root: b.root, leaves: n, complete: false, bitfield: new Uint8Array(fullBitfield(n).length) })
    mesh.inject('outOfRange', 'f', { type: 'have-update', root: b.root, indices: Uint32Array.of(n) })
    mesh.inject('requester', 'f', { type: 'request', root: b.root, indices: Uint32Array.of(n + 1), cids: [] })
    mesh.inject('sender', 'f', { blocks: { root: b.root, indices: Uint32Array.of(0), cids: [], sizes: Uint32Array.of(b.sizes[0]!) } })
    mesh.driveUntilComplete(b, ['f'], 600_000)
    assert.match(banned(mesh, 'f', 'liar') ?? '', /announced \d+ leaves for a build of/)
    assert.match(banned(mesh, 'f', 'outOfRange') ?? '', /HaveUpdate names leaf/)
    assert.match(banned(mesh, 'f', 'requester') ?? '', /requested leaf/)
    assert.match(banned(mesh, 'f', 'sender') ?? '', /nobody asked for/)
    assert.ok(mesh.node('f').completeAt.has(b.key))
  })

  it('bans a peer that floods control messages', () => {
    const { mesh, b } = setup(26)
    mesh.addRaw('flood')
    mesh.connect('flood', 'f', { bandwidth: 1000 * MB })
    mesh.hold('f', b)
    const indices = Uint32Array.from({ length: MAX_INDICES }, (_, i) => i)
    for (let k = 0; k < 400; k++) mesh.inject('flood', 'f', { type: 'cancel', root: b.root, indices, cids: [] })
    mesh.drive(1000)
    assert.match(banned(mesh, 'f', 'flood') ?? '', /flooding/)
  })

  it('takes requests back from a peer that never answers, and completes from the others without banning it', () => {
    const { mesh, b } = setup(27)
    mesh.add('hole', { evil: { silent: true } })
    mesh.give('hole', b)
    mesh.connect('seed', 'f', { bandwidth: 2 * MB })
    mesh.connect('hole', 'f', { bandwidth: 50 * MB })
    for (const id of ['seed', 'hole', 'f']) mesh.hold(id, b)
    mesh.driveUntilComplete(b, ['f'], 600_000)
    const f = mesh.node('f')
    assert.ok(f.completeAt.has(b.key))
    assert.ok(f.core!.stats.stalls >= 1)
    assert.equal(banned(mesh, 'f', 'hole'), undefined)
    const cancels = f.outputs.filter(({ o }) => o.type === 'send' && o.peer === 'hole' && o.message.type === 'cancel')
    assert.ok(cancels.length >= 1, 'the stalled requests were cancelled')
  })

  it('waits for slow-but-alive peers instead of cancelling them every 5 s (a crowded channel)', () => {
    // three seeds on links where one leaf takes ~8 s: the stall timeout must grow past what frames take here
    const mesh = new Mesh({ seed: 31 })
    const b = mesh.build({ leaves: 24, minSize: 32 * 1024, maxSize: 32 * 1024 })
    mesh.add('f')
    for (const s of ['s1', 's2', 's3']) {
      mesh.add(s)
      mesh.give(s, b)
      mesh.connect(s, 'f', { bandwidth: 4 })
      mesh.hold(s, b)
    }
    mesh.hold('f', b)
    mesh.driveUntilComplete(b, ['f'], 3_600_000)
    const f = mesh.node('f')
    assert.ok(f.completeAt.has(b.key))
    assert.ok(f.core!.stats.stalls <= 3, `${f.core!.stats.stalls} stalls`)
    assert.ok(f.received <= 1.1 * b.total, `received ${(f.received / b.total).toFixed(2)}x the build`)
  })

  it('refuses new peers beyond its rate, and peers beyond its limit', () => {
    const mesh = new Mesh({ seed: 28 })
    mesh.add('busy', { init: { newPeersPerSecond: 2 } })
    mesh.add('full', { init: { maxPeers: 3 } })
    for (let i = 0; i < 6; i++) mesh.addRaw(`p${i}`)
    const refusals = (id: string): string[] => mesh.node(id).outputs.flatMap(({ o }) => o.type === 'disconnect' ? [o.reason] : [])
    for (let i = 0; i < 6; i++) mesh.connect(`p${i}`, 'busy')
    assert.deepEqual(refusals('busy'), ['too many new peers per second', 'too many new peers per second'], 'a burst of twice the rate is accepted')
    mesh.drive(5000)
    mesh.connect('p4', 'busy')
    assert.equal(refusals('busy').length, 2, 'accepted again once the rate allows')
    for (let i = 0; i < 4; i++) mesh.connect(`p${i}`, 'full')
    assert.deepEqual(refusals('full'), ['peer limit (3) reached'])
  })

  it('refuses a banned peer until its ban ends', () => {
    const { mesh, b } = setup(29)
    mesh.add('hub', { init: { banTime: 10_000 } })
    mesh.addRaw('x')
    mesh.connect('x', 'hub')
    mesh.hold('hub', b)
    mesh.inject('x', 'hub', Uint8Array.of(1, 0))
    mesh.drive(100)
    const ban = mesh.node('hub').bans[0]!
    assert.equal(ban.peer, 'x')
    mesh.connect('x', 'hub')
    assert.equal(mesh.node('hub').bans.length, 2, 'refused again while banned')
    mesh.drive(ban.t + 10_001)
    const before = mesh.node('hub').outputs.length
    mesh.connect('x', 'hub')
    assert.ok(mesh.node('hub').outputs.slice(before).every(({ o }) => o.type !== 'ban' && o.type !== 'disconnect'))
  })

  it('stops fetching for a while when its disk is full, and completes once writes work again', () => {
    const { mesh, b } = setup(31)
    mesh.connect('seed', 'f')
    mesh.hold('seed', b)
    mesh.hold('f', b)
    mesh.node('f').opts.diskFull = true
    mesh.drive(5000)
    const requests = (): number => mesh.node('f').outputs.filter(({ o }) => o.type === 'send' && o.message.type === 'request' && o.message.indices.length > 0).length
    const during = requests()
    assert.ok(during <= 2, `${during} leaf requests while every write failed`)
    mesh.node('f').opts.diskFull = false
    mesh.driveUntilComplete(b, ['f'], 600_000)
    assert.ok(mesh.node('f').completeAt.has(b.key))
    assert.deepEqual(mesh.node('f').bans, [])
  })

  it('answers a request for a build it does not hold with DontHave, and fails a build the store cannot read', () => {
    const { mesh, b } = setup(30)
    mesh.addRaw('asker')
    mesh.connect('asker', 'seed')
    mesh.inject('asker', 'seed', { type: 'request', root: b.root, indices: Uint32Array.of(1), cids: [] })
    mesh.drive(100)
    const reply = mesh.node('asker').inbox.find(x => x.m.type === 'dont-have')
    assert.ok(reply !== undefined && reply.m.type === 'dont-have' && reply.m.indices.length === 0)
    mesh.feed('f', { type: 'hold', root: Uint8Array.from([1, 0x71, 0x12, 0x20, ...new Uint8Array(32)]) })
    mesh.drive(200)
    assert.ok(mesh.node('f').outputs.some(({ o }) => o.type === 'failed'))
  })
})
