import assert from 'node:assert/strict'
import { DEFAULT_TUNING, MAX_QUEUED_REQUESTS } from '../../src/core/exchange/index.ts'
import { Ledger, type ServeBatch, type ServeItem } from '../../src/core/exchange/ledger.ts'

const leaves = (key: string, from: number, n: number, bytes = 64 * 1024): ServeItem[] =>
  Array.from({ length: n }, (_, i) => ({ key, index: from + i, cid: undefined, bytes }))

/** Every batch the ledger hands out at `now`. */
function drain (l: Ledger, now: number): ServeBatch[] {
  const out: ServeBatch[] = []
  for (let b = l.next(now); b !== undefined; b = l.next(now)) out.push(b)
  return out
}

describe('upload ledger', () => {
  it('serves at most `slots` peers and chokes the rest, who are unchoked in turn as slots free', () => {
    const l = new Ledger({ slots: 2, rate: 0, tuning: DEFAULT_TUNING }, 0)
    assert.equal(l.enqueue('a', leaves('x', 0, 4), 0), 'queued')
    assert.equal(l.enqueue('b', leaves('x', 0, 4), 0), 'queued')
    assert.equal(l.enqueue('c', leaves('x', 0, 4), 0), 'choked')
    assert.equal(l.enqueue('c', leaves('x', 4, 4), 0), 'choked')
    assert.deepEqual(l.notices.splice(0), [{ peer: 'c', type: 'choke' }], 'told once')
    assert.deepEqual(new Set(drain(l, 0).map(b => b.peer)), new Set(['a', 'b']))
    l.remove('a', 1)
    assert.deepEqual(l.notices.splice(0), [{ peer: 'c', type: 'unchoke' }])
    assert.equal(l.enqueue('c', leaves('x', 0, 4), 2), 'queued')
  })

  /** Serves `frames` frames to the slot holders, each finishing `each` ms after it was handed out, from `t`; returns the time after. */
  function serveFrames (l: Ledger, frames: number, t: number, each: number): number {
    for (let k = 0; k < frames; k++) {
      const [b] = drain(l, t).slice(0, 1)
      if (b === undefined) break
      t += each
      l.served(b.peer, t)
    }
    return t
  }

  /** One slot: 'a' holds it with plenty queued, 'b' waits (choked). */
  function oneSlotTwoPeers (): Ledger {
    const l = new Ledger({ slots: 1, rate: 0, tuning: DEFAULT_TUNING }, 0)
    l.enqueue('a', leaves('x', 0, 2000, 1000), 0)
    l.enqueue('b', leaves('x', 0, 1), 0)
    l.notices.splice(0)
    return l
  }

  it('chokes the longest-served peer after rotateTime, once it was served a few frames, while others wait', () => {
    const l = oneSlotTwoPeers()
    const t = serveFrames(l, 4, 0, 1000)
    assert.equal(l.deadline(t), DEFAULT_TUNING.rotateTime)
    l.tick(DEFAULT_TUNING.rotateTime)
    assert.deepEqual(l.notices.splice(0), [{ peer: 'a', type: 'choke' }, { peer: 'b', type: 'unchoke' }])
    assert.equal(l.queued('a'), 0, "the choked peer's requests are dropped")
  })

  it('lets a slow slot holder finish a few frames before its turn ends (no churn when every peer is slow)', () => {
    const l = oneSlotTwoPeers()
    // each frame takes 8 s to drain: at rotateTime only one was served
    let t = serveFrames(l, 1, 0, 8000)
    t = 2 * DEFAULT_TUNING.rotateTime
    assert.equal(l.deadline(t), undefined, 'no rotation due while the holder is short of its frames')
    l.tick(t)
    assert.deepEqual(l.notices.splice(0), [], 'a keeps its slot')
    t = serveFrames(l, 3, t, 8000)
    assert.ok(l.deadline(t)! <= t, 'its turn is over once its frames are served')
    l.tick(t)
    assert.deepEqual(l.notices.splice(0), [{ peer: 'a', type: 'choke' }, { peer: 'b', type: 'unchoke' }])
  })

  it('takes back a slot left idle', () => {
    const l = new Ledger({ slots: 1, rate: 0, tuning: DEFAULT_TUNING }, 0)
    l.enqueue('a', leaves('x', 0, 1), 0)
    const [b] = drain(l, 0)
    l.served(b!.peer, 10)
    assert.equal(l.deadline(10), 10 + DEFAULT_TUNING.slotIdleTime)
    l.tick(10 + DEFAULT_TUNING.slotIdleTime)
    assert.equal(l.serving('a'), false)
    assert.equal(l.enqueue('b', leaves('x', 0, 1), 2000), 'queued')
  })

  it('serves its slot holders round-robin, one frame each, within the pipeline', () => {
    const l = new Ledger({ slots: 4, rate: 0, tuning: DEFAULT_TUNING }, 0)
    for (const p of ['a', 'b', 'c']) l.enqueue(p, leaves('x', 0, 100), 0)
    const first = drain(l, 0).map(b => b.peer)
    assert.deepEqual(first, ['a', 'b', 'c', 'a', 'b', 'c'], `pipeline of ${DEFAULT_TUNING.servePipeline} each`)
  })

  it('sizes frames to about 50 ms of the peer\'s measured drain rate when it asks for little more', () => {
    const l = new Ledger({ slots: 4, rate: 0, tuning: DEFAULT_TUNING }, 0)
    l.enqueue('slow', leaves('x', 0, 30, 10_000), 0)
    const [first, second] = drain(l, 0)
    assert.equal(first!.bytes, 260_000, 'a first frame of 256 KiB at most')
    assert.equal(second!.bytes, 40_000)
    l.served('slow', 1040) // 260 kB in 1.04 s: 250 bytes per ms
    l.served('slow', 1200)
    l.enqueue('slow', leaves('x', 30, 4, 10_000), 2000)
    const next = drain(l, 2000)
    assert.ok(next.length > 0)
    assert.ok(next.every(b => b.bytes <= 250 * 50 + 10_000), `frames of ${next.map(b => b.bytes).join(',')} bytes`)
    // a new peer's first frame follows how fast frames drain to the others, not 256 KiB: on a crowded channel that is airtime it cannot have
    l.enqueue('new', leaves('x', 0, 200, 10_000), 2000)
    const first2 = drain(l, 2000).find(b => b.peer === 'new')
    assert.ok(first2 !== undefined && first2.bytes <= 250 * 50 + 10_000, `a first frame of ${first2?.bytes} bytes`)
  })

  it('gives a slow peer that queued much frames of half its queue, grown by doubling, up to 512 KiB', () => {
    // on a crowded channel a fetcher asks its (equally slow) sources for a lot: a frame per leaf would cost a request and a serve per leaf
    const l = new Ledger({ slots: 4, rate: 0, tuning: DEFAULT_TUNING }, 0)
    l.enqueue('other', leaves('x', 0, 1, 10_000), 0)
    drain(l, 0)
    l.served('other', 400) // 25 bytes per ms: a new peer's first frame is 50 ms of that, one leaf
    l.enqueue('slow', leaves('x', 0, 400, 10_000), 400)
    let t = 400
    const sizes: number[] = []
    for (let k = 0; k < 12; k++) {
      for (const b of drain(l, t)) sizes.push(b.bytes)
      t += 2000
      l.served('slow', t) // a few kB per second, whatever the frame
    }
    assert.deepEqual(sizes.slice(0, 2), [10_000, 10_000], 'first frames: 50 ms of what the others drain')
    for (let k = 1; k < sizes.length; k++) assert.ok(sizes[k]! <= 2 * sizes[k - 1]! + 10_000, `frames of ${sizes.join(',')} bytes grow by doubling`)
    assert.ok(sizes.every(b => b <= 512 * 1024), `frames of ${sizes.join(',')} bytes`)
    assert.ok(sizes.some(b => b > 500_000), `frames of ${sizes.join(',')} bytes reach 512 KiB`)
    // each frame at most twice the one before; with little queued, half of it (both frames of the pipeline busy)
    const m = new Ledger({ slots: 4, rate: 0, tuning: DEFAULT_TUNING }, 0)
    m.enqueue('a', leaves('x', 0, 2, 10_000), 0)
    drain(m, 0)
    m.served('a', 800)
    m.enqueue('a', leaves('x', 2, 20, 10_000), 1600)
    assert.deepEqual(drain(m, 1600).map(b => b.bytes), [40_000, 80_000])
    m.served('a', 3000)
    m.served('a', 6000)
    m.enqueue('a', leaves('x', 22, 6, 10_000), 6000)
    assert.deepEqual(drain(m, 6000).map(b => b.bytes), [70_000, 30_000], '14 queued: half, then half of the rest')
  })

  it('keeps frames to one build and one kind, ascending and without duplicates', () => {
    const l = new Ledger({ slots: 4, rate: 0, tuning: DEFAULT_TUNING }, 0)
    const cid = Uint8Array.from([1, 0x70, 0x12, 0x20, ...new Uint8Array(32)])
    l.enqueue('a', [...leaves('x', 5, 2, 1000), ...leaves('x', 1, 2, 1000), ...leaves('x', 5, 1, 1000), { key: 'x', index: -1, cid, bytes: 100 }, ...leaves('y', 0, 1, 1000)], 0)
    const batches = drain(l, 0)
    assert.deepEqual(batches[0]!.indices, [1, 2, 5, 6])
    assert.equal(batches[1]!.cids.length, 1)
  })

  it('reports an overflow past MAX_QUEUED_REQUESTS', () => {
    const l = new Ledger({ slots: 4, rate: 0, tuning: DEFAULT_TUNING }, 0)
    assert.equal(l.enqueue('a', leaves('x', 0, MAX_QUEUED_REQUESTS), 0), 'queued')
    assert.equal(l.enqueue('a', leaves('x', 0, 1), 0), 'overflow')
  })

  it('forgets cancelled requests and dropped builds', () => {
    const l = new Ledger({ slots: 4, rate: 0, tuning: DEFAULT_TUNING }, 0)
    l.enqueue('a', [...leaves('x', 0, 10), ...leaves('y', 0, 10)], 0)
    l.cancel('a', 'x', [0, 1, 2], [])
    assert.equal(l.queued('a'), 17)
    l.dropBuild('y')
    assert.equal(l.queued('a'), 7)
  })

  it('never exceeds the upload cap over any stretch of time', () => {
    const rate = 1_000_000 // bytes per second
    const l = new Ledger({ slots: 4, rate, tuning: DEFAULT_TUNING }, 0)
    for (const p of ['a', 'b', 'c']) l.enqueue(p, leaves('x', 0, 600), 0)
    let sent = 0
    for (let t = 0; t <= 20_000; t += 7) {
      for (const b of drain(l, t)) {
        sent += b.bytes
        l.served(b.peer, t)
      }
      assert.ok(sent <= rate / 1000 * t + DEFAULT_TUNING.serveBatchBytes * 2, `${sent} bytes by ${t} ms`)
    }
    assert.ok(sent >= 0.9 * rate * 20, 'and uses it')
  })
})
