// The outbox: counters per origin that never repeat, custody that drops what
// is held now and takes again what comes back, refusal when full, forgetting
// exactly what a receipt covers, all surviving a reopen.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Outbox, OutboxFullError } from '../../src/store/outbox.ts'
import type { Item } from '../../src/core/relay/types.ts'

const A = '12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
const B = '12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB'
const body = (n: number): Uint8Array => new Uint8Array(n).fill(7)
const item = (origin: string, counter: number, size = 10): Item => ({ origin, counter, kind: 'statistics', created: 1000 + counter, body: body(size) })

describe('outbox', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'xo-outbox-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('numbers its own items 1, 2, 3 and never reuses a number after they are forgotten and the outbox reopened', () => {
    let o = Outbox.open(dir)
    assert.deepEqual([1, 2, 3].map(() => o.enqueue(A, 'statistics', body(5), 1).counter), [1, 2, 3])
    assert.equal(o.forget([{ origin: A, contiguous: 3, above: [] }]), 3)
    assert.equal(o.size.items, 0)
    o.close()
    o = Outbox.open(dir)
    assert.equal(o.enqueue(A, 'install-report', body(5), 1).counter, 4)
    o.close()
  })

  it('drops what it holds now and answers with the same custody', () => {
    const o = Outbox.open(dir)
    const batch = [item(A, 1), item(A, 2), item(B, 5)]
    const first = o.accept(batch)
    assert.ok(first.ok)
    assert.equal(first.added, 3)
    assert.deepEqual(first.custody, [{ origin: A, contiguous: 0, above: [1, 2] }, { origin: B, contiguous: 0, above: [5] }])
    const again = o.accept(batch)
    assert.ok(again.ok)
    assert.equal(again.added, 0)
    assert.equal(again.duplicates, 3)
    assert.deepEqual(again.custody, first.custody)
    assert.equal(o.size.items, 3)
    o.close()
  })

  it('takes again an item it handed on when it comes back (the route looped: the server role moved), and vouches only for what it holds', () => {
    // A hop handed A 1, 2 on and forgot them; the restarted school server offers them back to it.
    // Answering "held once" would make the server forget the only copy left.
    const o = Outbox.open(dir)
    const batch = [item(A, 1), item(A, 2)]
    assert.ok(o.accept(batch).ok)
    assert.equal(o.forget([{ origin: A, contiguous: 2, above: [] }]), 2)
    const back = o.accept(batch)
    assert.ok(back.ok)
    assert.equal(back.added, 2, 'taken again, not dropped as held')
    assert.deepEqual(back.custody, [{ origin: A, contiguous: 0, above: [1, 2] }])
    assert.deepEqual(o.load(0, 10, 1 << 20).items.map(e => e.counter), [1, 2], 'and offered on')
    o.close()
  })

  it('takes its own items again when they come back, and still never reuses their counters', () => {
    // The laptop that held the server role gets its own items back from the restarted server.
    const o = Outbox.open(dir)
    const own = [1, 2, 3].map(() => o.enqueue(A, 'statistics', body(5), 1))
    assert.equal(o.forget([{ origin: A, contiguous: 3, above: [] }]), 3)
    const back = o.accept(own)
    assert.ok(back.ok)
    assert.equal(back.added, 3)
    assert.deepEqual(back.custody, [{ origin: A, contiguous: 0, above: [1, 2, 3] }])
    assert.equal(o.enqueue(A, 'statistics', body(5), 1).counter, 4)
    o.close()
  })

  it('custody lists the offered counters it holds, across offers and a reopen', () => {
    const o = Outbox.open(dir)
    o.accept([item(A, 1), item(A, 3), item(A, 5)])
    const r = o.accept([item(A, 2), item(A, 4), item(A, 5)])
    assert.ok(r.ok)
    assert.deepEqual(r.custody, [{ origin: A, contiguous: 0, above: [2, 4, 5] }])
    o.close()
    const again = Outbox.open(dir)
    assert.ok(again.holds(A, 5) && !again.holds(A, 6))
    assert.deepEqual(again.size, { items: 5, bytes: 50, origins: 1 })
    again.close()
  })

  it('takes what fits, then refuses custody when full and changes nothing', () => {
    const o = Outbox.open(dir, { maxBytes: 100 })
    assert.ok(o.accept([item(A, 1, 60)]).ok)
    const part = o.accept([item(A, 2, 30), item(B, 1, 30)])
    assert.ok(part.ok)
    assert.equal(part.left, 1)
    assert.deepEqual(part.custody, [{ origin: A, contiguous: 0, above: [2] }, { origin: B, contiguous: 0, above: [] }])
    assert.deepEqual(o.accept([item(B, 1, 30), item(B, 2, 5)]), { ok: false, reason: 'full' })
    assert.equal(o.size.items, 2)
    assert.ok(!o.holds(B, 1) && !o.holds(B, 2))
    // An offer of only what is held is still answered.
    assert.ok(o.accept([item(A, 1, 60)]).ok)
    assert.throws(() => o.enqueue(B, 'statistics', body(50), 0), OutboxFullError)
    o.close()
  })

  it('loads in seq order after a cursor, within item and byte limits, and forgets only what custody covers', () => {
    const o = Outbox.open(dir)
    for (let i = 1; i <= 10; i++) o.accept([item(i % 2 === 0 ? A : B, i, 100)])
    const first = o.load(0, 4, 1 << 20)
    assert.equal(first.items.length, 4)
    assert.ok(first.more)
    assert.deepEqual(first.items.map(e => e.counter), [1, 2, 3, 4])
    const next = o.load(first.items[3]!.seq, 100, 250)
    assert.deepEqual(next.items.map(e => e.counter), [5, 6])
    assert.equal(o.load(0, 100, 1).items.length, 1, 'at least one item, whatever maxBytes')
    assert.equal(o.forget([{ origin: A, contiguous: 0, above: [4, 8] }, { origin: B, contiguous: 3, above: [] }]), 4)
    assert.deepEqual(o.load(0, 100, 1 << 20).items.map(e => e.counter), [2, 5, 6, 7, 9, 10])
    o.close()
  })
})
