import assert from 'node:assert/strict'
import { DEFAULT_TUNING, cidKey, hasBit } from '../../src/core/exchange/index.ts'
import type { Request } from '../../src/core/exchange/index.ts'
import { Mesh, type FakeBuild, type NodeOptions } from './mesh.ts'

const MB = 1000 // bytes per ms in one MB/s

/** Connects every pair of nodes. */
function fullMesh (mesh: Mesh, ids: string[], spec: { latency?: number, bandwidth?: number } = {}): void {
  for (let i = 0; i < ids.length; i++) for (let j = i + 1; j < ids.length; j++) mesh.connect(ids[i]!, ids[j]!, spec)
}

/** Requests a node sent to a peer, in order. */
function requestsTo (mesh: Mesh, from: string, to: string): Request[] {
  return mesh.node(from).outputs.flatMap(({ o }) => o.type === 'send' && o.peer === to && o.message.type === 'request' ? [o.message] : [])
}

function classroom (seed: number, opts: NodeOptions = {}): { mesh: Mesh, b: FakeBuild, fetchers: string[] } {
  const mesh = new Mesh({ seed })
  const b = mesh.build({ leaves: 1024 }) // ~66 MB
  const fetchers = ['f1', 'f2', 'f3', 'f4']
  for (const id of ['seed', ...fetchers]) mesh.add(id, opts)
  mesh.give('seed', b)
  fullMesh(mesh, ['seed', ...fetchers], { latency: 3, bandwidth: opts.up !== undefined ? 100 * MB : 10 * MB })
  for (const id of ['seed', ...fetchers]) mesh.hold(id, b)
  return { mesh, b, fetchers }
}

describe('block exchange', function () {
  this.timeout(20_000)

  for (const [name, opts] of [['links of 10 MB/s', {}], ['laptops with a shared 10 MB/s uplink', { up: 10 * MB }]] as const) {
    it(`spreads a build from one seed to four fetchers: the seed uploads at most 1.5× it, no fetcher receives more than 105% (${name})`, () => {
      for (const seed of [1, 2, 3]) {
        const { mesh, b, fetchers } = classroom(seed, opts)
        mesh.driveUntilComplete(b, fetchers, 600_000)
        for (const f of fetchers) {
          assert.ok(mesh.node(f).completeAt.has(b.key), `${f} completed (seed ${seed})`)
          assert.ok(mesh.node(f).received <= 1.05 * b.total, `${f} received ${(mesh.node(f).received / b.total).toFixed(3)}× (seed ${seed})`)
          assert.equal(mesh.node(f).store.leafCount(b), b.sizes.length)
        }
        const up = mesh.node('seed').uploaded / b.total
        assert.ok(up <= 1.5, `the seed uploaded ${up.toFixed(3)}× (seed ${seed})`)
        assert.ok(fetchers.every(f => mesh.node(f).uploaded > 0.3 * b.total), 'every fetcher served the others')
        assert.ok([...mesh.nodes.values()].every(n => n.bans.length === 0))
      }
    })
  }

  it('keys a CID by its bytes: a buffer changed in place gets its new key, equal bytes in another buffer the same key', () => {
    const buf = Uint8Array.from({ length: 36 }, (_, i) => i)
    const first = cidKey(buf)
    assert.equal(cidKey(buf.slice()), first)
    buf[35] = 200
    const second = cidKey(buf)
    assert.notEqual(second, first)
    assert.equal(second.charCodeAt(35), 200)
    assert.equal(cidKey(Uint8Array.from({ length: 36 }, (_, i) => i)), first)
    assert.equal(cidKey(buf.subarray(0, 35)), first.slice(0, 35))
  })

  it('finishes close to the uplink bound when laptops share a 10 MB/s uplink', () => {
    const { mesh, b, fetchers } = classroom(4, { up: 10 * MB })
    const end = mesh.driveUntilComplete(b, fetchers, 600_000)
    // the seed alone must send the build once: S / 10 MB/s
    const bound = b.total / (10 * MB)
    assert.ok(end < 1.35 * bound, `took ${end.toFixed(0)} ms, bound ${bound.toFixed(0)} ms`)
  })

  it('never asks two peers for the same leaf outside end-game, and only for the last few leaves in it', () => {
    for (const seed of [5, 6]) {
      const { mesh, b, fetchers } = classroom(seed, { up: 10 * MB })
      mesh.driveUntilComplete(b, fetchers, 600_000)
      for (const f of fetchers) {
        const n = mesh.node(f)
        assert.equal(n.dupOutsideEndgame, 0, `${f} duplicated requests outside end-game`)
        assert.ok(n.dupRequests <= DEFAULT_TUNING.endgameBlocks * 2, `${f} made ${n.dupRequests} duplicate requests`)
        assert.ok(n.core!.stats.duplicateBlocks <= n.dupRequests)
      }
    }
  })

  it('resumes after a restart: requests only the leaves missing from disk', () => {
    const mesh = new Mesh({ seed: 7 })
    const b = mesh.build({ leaves: 600 })
    mesh.add('seed')
    mesh.add('f')
    mesh.give('seed', b)
    mesh.connect('seed', 'f', { latency: 5, bandwidth: 5 * MB })
    mesh.hold('seed', b)
    mesh.hold('f', b)
    while (mesh.node('f').store.leafCount(b) < 250) mesh.drive(mesh.now + 10)
    const onDisk = mesh.node('f').store.held.get(b.key)!.have.slice()
    const receivedBefore = mesh.node('f').received
    mesh.restart('f')
    mesh.hold('f', b)
    mesh.driveUntilComplete(b, ['f'], 600_000)
    const f = mesh.node('f')
    assert.ok(f.completeAt.has(b.key))
    const again = (f.requested.get(b.key) ?? []).filter(i => hasBit(onDisk, i))
    assert.deepEqual(again, [], 'no leaf on disk is requested again')
    assert.ok(f.received <= 1.05 * b.total, `received ${(f.received / b.total).toFixed(3)}× in all (${(receivedBefore / b.total).toFixed(2)} before the restart)`)
  })

  it('resumes the manifest after a restart, from whatever interior nodes are on disk', () => {
    const mesh = new Mesh({ seed: 8 })
    const b = mesh.build({ leaves: 200, interior: 40 })
    mesh.add('seed')
    mesh.add('f')
    mesh.give('seed', b)
    // f holds the record and half the interior nodes, no leaves
    const h = mesh.node('f').store.entry(b)
    for (let i = 0; i < 21; i++) h.manifest[i] = 1
    mesh.connect('seed', 'f')
    mesh.hold('seed', b)
    mesh.hold('f', b)
    mesh.driveUntilComplete(b, ['f'], 600_000)
    const asked = requestsTo(mesh, 'f', 'seed').flatMap(r => r.cids.map(cidKey))
    const onDisk = new Set(b.manifest.slice(0, 21).map(cidKey))
    assert.ok(asked.length > 0 && asked.every(k => !onDisk.has(k)), 'only missing manifest blocks are requested')
  })

  it('fetches the manifest, then leaves: never a leaf before the index space is known', () => {
    const mesh = new Mesh({ seed: 9 })
    const b = mesh.build({ leaves: 300, interior: 30 })
    for (const id of ['s1', 's2', 'f']) mesh.add(id)
    mesh.give('s1', b)
    mesh.give('s2', b)
    fullMesh(mesh, ['s1', 's2', 'f'])
    for (const id of ['s1', 's2', 'f']) mesh.hold(id, b)
    mesh.driveUntilComplete(b, ['f'], 600_000)
    const sends = mesh.node('f').outputs.flatMap(({ o }) => o.type === 'send' && o.message.type === 'request' ? [o.message] : [])
    const firstLeaf = sends.findIndex(r => r.indices.length > 0)
    const lastCid = sends.findLastIndex(r => r.cids.length > 0)
    assert.ok(lastCid >= 0 && firstLeaf > lastCid)
    const cids = new Set(sends.flatMap(r => r.cids.map(cidKey)))
    assert.equal(cids.size, b.manifest.length, 'every manifest block asked for once')
  })

  it('asks for the rarest leaves first', () => {
    const mesh = new Mesh({ seed: 10 })
    const n = 200
    const b = mesh.build({ leaves: n })
    for (const id of ['a', 'b', 'c', 'd', 'f']) mesh.add(id)
    // a holds all but the last leaf; b and c the first half; d the last leaf only
    mesh.give('a', b, i => i < n - 1)
    mesh.give('b', b, i => i < n / 2)
    mesh.give('c', b, i => i < n / 2)
    mesh.give('d', b, i => i === n - 1)
    for (const id of ['a', 'b', 'c', 'd']) mesh.connect(id, 'f', { latency: 2, bandwidth: 2 * MB })
    for (const id of ['a', 'b', 'c', 'd', 'f']) mesh.hold(id, b)
    mesh.driveUntilComplete(b, ['f'], 600_000)
    const first = requestsTo(mesh, 'f', 'a').find(r => r.indices.length > 0)!
    assert.ok(first.indices.length > 1)
    assert.ok(first.indices.every(i => i >= n / 2 && i < n - 1), `the first request to a asked for ${first.indices.join(',')}`)
    assert.deepEqual(Array.from(requestsTo(mesh, 'f', 'd').find(r => r.indices.length > 0)!.indices), [n - 1])
    assert.ok(mesh.node('f').completeAt.has(b.key))
  })

  it('gets both halves from peers that hold different halves', () => {
    const mesh = new Mesh({ seed: 11 })
    const b = mesh.build({ leaves: 400 })
    for (const id of ['a', 'b', 'f']) mesh.add(id)
    mesh.give('a', b, i => i < 200)
    mesh.give('b', b, i => i >= 200)
    mesh.connect('a', 'f')
    mesh.connect('b', 'f')
    for (const id of ['a', 'b', 'f']) mesh.hold(id, b)
    mesh.driveUntilComplete(b, ['f'], 600_000)
    const f = mesh.node('f')
    assert.ok(f.completeAt.has(b.key))
    assert.ok(f.received <= 1.05 * b.total)
    assert.ok(requestsTo(mesh, 'f', 'a').every(r => r.indices.every(i => i < 200)))
    assert.ok(requestsTo(mesh, 'f', 'b').every(r => r.indices.every(i => i >= 200)))
  })

  it('fetches the higher-priority build first', () => {
    const mesh = new Mesh({ seed: 12 })
    const x = mesh.build({ leaves: 300 })
    const y = mesh.build({ leaves: 300 })
    mesh.add('seed')
    mesh.add('f')
    mesh.give('seed', x)
    mesh.give('seed', y)
    mesh.connect('seed', 'f', { latency: 5, bandwidth: 2 * MB })
    mesh.hold('seed', x)
    mesh.hold('seed', y)
    mesh.hold('f', y, 0)
    mesh.hold('f', x, 5)
    mesh.driveUntilComplete(x, ['f'], 600_000)
    const f = mesh.node('f')
    assert.ok(f.completeAt.has(x.key))
    assert.ok(f.store.leafCount(y) < 0.1 * y.sizes.length, `y had ${f.store.leafCount(y)} leaves when x completed`)
    mesh.driveUntilComplete(y, ['f'], 600_000)
    assert.ok(f.completeAt.has(y.key))
  })

  it('keeps its uploads under the global cap at every moment', () => {
    const mesh = new Mesh({ seed: 13 })
    const b = mesh.build({ leaves: 300 })
    const rate = 2 * MB // 2 MB/s
    mesh.add('seed', { init: { uploadRate: rate * 1000 } })
    for (const f of ['f1', 'f2', 'f3']) mesh.add(f)
    mesh.give('seed', b)
    for (const f of ['f1', 'f2', 'f3']) mesh.connect('seed', f, { latency: 2, bandwidth: 50 * MB })
    for (const id of ['seed', 'f1', 'f2', 'f3']) mesh.hold(id, b)
    mesh.driveUntilComplete(b, ['f1', 'f2', 'f3'], 600_000)
    const log = mesh.node('seed').uploadLog
    const burst = Math.max(DEFAULT_TUNING.serveBatchBytes, rate * 250) + DEFAULT_TUNING.serveBatchBytes
    let sum = 0
    for (const { t, bytes } of log) {
      sum += bytes
      assert.ok(sum <= rate * t + burst, `${sum} bytes served by ${t} ms`)
    }
    assert.ok(sum >= b.total)
    const last = log[log.length - 1]!.t
    assert.ok(sum / last > 0.8 * rate, `the cap is used: ${(sum / last / MB).toFixed(2)} MB/s`)
  })

  it('chokes peers beyond its upload slots; they fetch from each other and still complete', () => {
    const mesh = new Mesh({ seed: 14 })
    const b = mesh.build({ leaves: 400 })
    const fetchers = ['f1', 'f2', 'f3', 'f4', 'f5', 'f6']
    mesh.add('seed', { init: { uploadSlots: 2 }, up: 10 * MB })
    for (const f of fetchers) mesh.add(f, { init: { uploadSlots: 2 }, up: 10 * MB })
    mesh.give('seed', b)
    fullMesh(mesh, ['seed', ...fetchers], { latency: 2, bandwidth: 100 * MB })
    for (const id of ['seed', ...fetchers]) mesh.hold(id, b)
    mesh.driveUntilComplete(b, fetchers, 600_000)
    const chokes = mesh.node('seed').outputs.filter(({ o }) => o.type === 'send' && o.message.type === 'choke').length
    assert.ok(chokes > 0, 'the seed choked someone')
    for (const f of fetchers) assert.ok(mesh.node(f).completeAt.has(b.key), `${f} completed`)
    assert.ok(mesh.node('seed').uploaded <= 1.5 * b.total, `the seed uploaded ${(mesh.node('seed').uploaded / b.total).toFixed(2)}×`)
  })

  it('moves requests elsewhere when a peer leaves mid-transfer', () => {
    const mesh = new Mesh({ seed: 15 })
    const b = mesh.build({ leaves: 400 })
    for (const id of ['s1', 's2', 'f']) mesh.add(id)
    mesh.give('s1', b)
    mesh.give('s2', b)
    mesh.connect('s1', 'f', { latency: 2, bandwidth: 5 * MB })
    mesh.connect('s2', 'f', { latency: 2, bandwidth: 5 * MB })
    for (const id of ['s1', 's2', 'f']) mesh.hold(id, b)
    while (mesh.node('f').store.leafCount(b) < 100) mesh.drive(mesh.now + 10)
    mesh.disconnect('s1', 'f')
    mesh.driveUntilComplete(b, ['f'], 600_000)
    assert.ok(mesh.node('f').completeAt.has(b.key))
    assert.ok(mesh.node('f').received <= 1.05 * b.total)
  })

  it('sizes each window to its link: a slow peer gets a small share and does not hold the fetch back', () => {
    const mesh = new Mesh({ seed: 16 })
    const b = mesh.build({ leaves: 600 })
    for (const id of ['fast', 'slow', 'f']) mesh.add(id)
    mesh.give('fast', b)
    mesh.give('slow', b)
    mesh.connect('fast', 'f', { latency: 2, bandwidth: 20 * MB })
    mesh.connect('slow', 'f', { latency: 40, bandwidth: 0.2 * MB })
    for (const id of ['fast', 'slow', 'f']) mesh.hold(id, b)
    const end = mesh.driveUntilComplete(b, ['f'], 600_000)
    const alone = b.total / (20 * MB)
    assert.ok(end < 1.3 * alone + 500, `took ${end.toFixed(0)} ms, the fast link alone needs ${alone.toFixed(0)}`)
    assert.ok(mesh.node('slow').uploaded < 0.05 * b.total, `the slow peer served ${(mesh.node('slow').uploaded / b.total).toFixed(3)}`)
  })

  it('on a crowded channel, where every source crawls alike, asks each for enough that a frame carries many leaves', () => {
    // three sources at 30 kB/s each (a hundred transfers sharing one 802.11 channel): 50 ms of a link is a fraction of a leaf
    const mesh = new Mesh({ seed: 19 })
    const b = mesh.build({ leaves: 400, minSize: 32 * 1024, maxSize: 96 * 1024 })
    const sources = ['s1', 's2', 's3']
    for (const id of [...sources, 'f']) mesh.add(id)
    for (const s of sources) {
      mesh.give(s, b)
      mesh.connect(s, 'f', { latency: 2, bandwidth: 30 })
    }
    for (const id of [...sources, 'f']) mesh.hold(id, b)
    const end = mesh.driveUntilComplete(b, ['f'], 600_000)
    assert.ok(mesh.node('f').completeAt.has(b.key))
    const bound = b.total / (3 * 30)
    assert.ok(end < 1.15 * bound, `took ${end.toFixed(0)} ms, the three links need ${bound.toFixed(0)}`)
    assert.ok(mesh.node('f').received <= 1.05 * b.total, `received ${(mesh.node('f').received / b.total).toFixed(3)}×`)
    let frames = 0
    let leaves = 0
    for (const s of sources) {
      for (const { o } of mesh.node(s).outputs) {
        if (o.type !== 'serve' || o.indices.length === 0) continue
        frames++
        leaves += o.indices.length
      }
    }
    assert.ok(leaves / frames >= 3, `${leaves} leaves in ${frames} frames`)
  })

  it('on a crowded channel (no peer faster than a few hundred kB/s) keeps requests at one source; on fast links at several', () => {
    for (const [bandwidth, most] of [[30, 1], [5000, 4]] as const) {
      const mesh = new Mesh({ seed: 20 })
      const b = mesh.build({ leaves: 2000 })
      for (const id of ['s1', 's2', 's3', 's4', 'f']) mesh.add(id)
      for (const s of ['s1', 's2', 's3', 's4']) mesh.give(s, b)
      mesh.connect('s1', 'f', { latency: 2, bandwidth })
      for (const id of ['s1', 'f']) mesh.hold(id, b)
      // s1's rate is measured, then three more peers come
      mesh.drive(mesh.now + 60_000 * 30 / bandwidth)
      for (const s of ['s2', 's3', 's4']) {
        mesh.connect(s, 'f', { latency: 2, bandwidth })
        mesh.hold(s, b)
      }
      mesh.drive(mesh.now + 60_000 * 30 / bandwidth)
      const asked = ['s1', 's2', 's3', 's4'].filter(s => mesh.node(s).uploaded > 0)
      assert.equal(asked.length, most, `at ${bandwidth} bytes per ms served by ${asked.join(', ')}`)
    }
  })

  it('stops fetching a dropped build and cancels what it asked for', () => {
    const mesh = new Mesh({ seed: 17 })
    const b = mesh.build({ leaves: 400 })
    mesh.add('seed')
    mesh.add('f')
    mesh.give('seed', b)
    mesh.connect('seed', 'f', { latency: 5, bandwidth: 2 * MB })
    mesh.hold('seed', b)
    mesh.hold('f', b)
    while (mesh.node('f').store.leafCount(b) < 50) mesh.drive(mesh.now + 10)
    mesh.feed('f', { type: 'drop', root: b.root })
    const at = mesh.node('f').outputs.length
    mesh.drive(mesh.now + 60_000)
    const after = mesh.node('f').outputs.slice(at).filter(({ o }) => o.type === 'send' && o.message.type === 'request')
    assert.equal(after.length, 0)
    assert.ok(mesh.node('f').outputs.some(({ o }) => o.type === 'send' && o.message.type === 'cancel'))
    assert.equal(mesh.node('f').core!.status(b.root), undefined)
    assert.equal(mesh.node('f').core!.nextDeadline(), undefined, 'nothing left to wait for')
  })

  it('announces a build it holds to a peer that connects later, which fetches it', () => {
    const mesh = new Mesh({ seed: 18 })
    const b = mesh.build({ leaves: 100 })
    mesh.add('seed')
    mesh.add('late')
    mesh.give('seed', b)
    mesh.hold('seed', b)
    mesh.hold('late', b)
    mesh.drive(1000)
    mesh.connect('seed', 'late')
    mesh.driveUntilComplete(b, ['late'], 600_000)
    assert.ok(mesh.node('late').completeAt.has(b.key))
    const st = mesh.node('late').core!.status(b.root)!
    assert.equal(st.complete, true)
    assert.equal(st.haveBytes, b.total)
  })

  it('goes quiet once every build is complete: no deadline, no messages', () => {
    const { mesh, b, fetchers } = classroom(19)
    mesh.driveUntilComplete(b, fetchers, 600_000)
    mesh.drive(mesh.now + 120_000)
    const t = mesh.now
    mesh.drive(t + 600_000)
    for (const n of mesh.nodes.values()) {
      assert.equal(n.core!.nextDeadline(), undefined, `${n.id} still wants a timer`)
      assert.ok(n.outputs.every(({ t: at }) => at <= t), `${n.id} still talks`)
    }
  })
})
