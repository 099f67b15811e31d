// The relay core, step by step: what it offers, what it forgets and when, and
// what it refuses to believe.
import assert from 'node:assert/strict'
import { Relay } from '../../src/core/relay/index.ts'
import type { OutboxEntry, RelayOutput } from '../../src/core/relay/index.ts'
import { rng } from './mesh.ts'

const entry = (seq: number, counter = seq, origin = 'L'): OutboxEntry => ({ seq, origin, counter, kind: 'statistics', created: 0, body: new Uint8Array(4) })
const of = <T extends RelayOutput['type']>(outs: RelayOutput[], type: T): Array<Extract<RelayOutput, { type: T }>> => outs.filter(o => o.type === type) as Array<Extract<RelayOutput, { type: T }>>

/** A sender connected to upstream S with one batch of items 1..n offered; returns the core and the offer's batch id. */
function offering (n: number, init: Partial<ConstructorParameters<typeof Relay>[0]> = {}): { core: Relay, batch: number } {
  const core = new Relay({ random: rng(3), ...init })
  core.handle({ type: 'upstream', peer: 'S' }, 0)
  const [load] = of(core.handle({ type: 'connected', peer: 'S' }, 0), 'load')
  assert.ok(load !== undefined)
  const [send] = of(core.handle({ type: 'loaded', request: load.request, items: Array.from({ length: n }, (_, i) => entry(i + 1)), more: false }, 1), 'send')
  assert.ok(send !== undefined && send.peer === 'S' && send.message.type === 'offer')
  assert.equal(send.message.items.length, n)
  return { core, batch: send.message.batch }
}

describe('relay core', () => {
  it('forgets only what the receipt of the peer it handed the batch to covers', () => {
    const { core, batch } = offering(3)
    // A third party's receipt for that very batch changes nothing.
    const forged = core.handle({ type: 'message', peer: 'Q', message: { type: 'receipt', batch, custody: [{ origin: 'L', contiguous: 99, above: [] }] } }, 2)
    assert.deepEqual(of(forged, 'forget'), [])
    assert.equal(of(forged, 'event')[0]?.event.type, 'receipt-ignored')
    const real = core.handle({ type: 'message', peer: 'S', message: { type: 'receipt', batch, custody: [{ origin: 'L', contiguous: 2, above: [] }, { origin: 'M', contiguous: 50, above: [] }] } }, 3)
    // Only the batch's items of L that the receipt covers: M was not in the batch.
    assert.deepEqual(of(real, 'forget'), [{ type: 'forget', peer: 'S', custody: [{ origin: 'L', contiguous: 0, above: [1, 2] }] }])
    // Item 3 was not covered: the outbox is read again from its start.
    assert.deepEqual(of(real, 'load').map(l => l.after), [0])
  })

  it('ignores a receipt for a batch it never sent', () => {
    const { core, batch } = offering(1)
    const outs = core.handle({ type: 'message', peer: 'S', message: { type: 'receipt', batch: (batch + 1) >>> 0, custody: [{ origin: 'L', contiguous: 1, above: [] }] } }, 2)
    assert.deepEqual(of(outs, 'forget'), [])
    assert.equal(core.stats.receiptsIgnored, 1)
  })

  it('offers again after the receipt timeout, after a backoff, and still honours the late receipt', () => {
    const { core, batch } = offering(2, { receiptTimeoutMs: 1000, backoffMinMs: 500 })
    assert.equal(core.nextDeadline(), 1001)
    const t = core.handle({ type: 'timer' }, 1001)
    assert.deepEqual(of(t, 'load'), [], 'waits out the backoff first')
    const resume = core.nextDeadline()!
    assert.ok(resume > 1001 && resume <= 1501, String(resume))
    const again = core.handle({ type: 'timer' }, resume)
    assert.deepEqual(of(again, 'load').map(l => l.after), [0])
    const late = core.handle({ type: 'message', peer: 'S', message: { type: 'receipt', batch, custody: [{ origin: 'L', contiguous: 2, above: [] }] } }, resume + 1)
    assert.equal(of(late, 'forget').length, 1)
  })

  it('waits as long as a refusal asks before offering again', () => {
    const { core, batch } = offering(1)
    const outs = core.handle({ type: 'message', peer: 'S', message: { type: 'refusal', batch, reason: 'full', retryAfterMs: 60_000 } }, 10)
    assert.deepEqual(of(outs, 'load'), [])
    assert.ok(core.nextDeadline()! >= 60_010)
    assert.deepEqual(of(core.handle({ type: 'timer' }, 30_000), 'load'), [])
  })

  it('answers an offer only once the store has persisted it, and refuses when busy or not a relay', () => {
    const core = new Relay({ random: rng(1), persistsPerPeer: 1 })
    const offer = { type: 'offer' as const, batch: 5, items: [entry(1)] }
    const p = core.handle({ type: 'message', peer: 'L', message: offer }, 0)
    assert.equal(of(p, 'persist').length, 1)
    assert.deepEqual(of(p, 'send'), [], 'no receipt before the store has the items')
    // The same frame duplicated: no second persist, no answer yet.
    assert.deepEqual(core.handle({ type: 'message', peer: 'L', message: offer }, 1), [])
    const busy = of(core.handle({ type: 'message', peer: 'L', message: { ...offer, batch: 6 } }, 2), 'send')
    assert.equal(busy[0]?.message.type, 'refusal')
    const r = of(core.handle({ type: 'persisted', peer: 'L', batch: 5, custody: [{ origin: 'L', contiguous: 1, above: [] }] }, 3), 'send')
    assert.deepEqual(r.map(s => s.message), [{ type: 'receipt', batch: 5, custody: [{ origin: 'L', contiguous: 1, above: [] }] }])
    const full = of(core.handle({ type: 'message', peer: 'L', message: { ...offer, batch: 7 } }, 4), 'persist')
    assert.equal(full.length, 1)
    const refusal = of(core.handle({ type: 'refused', peer: 'L', batch: 7, reason: 'full' }, 5), 'send')
    assert.equal(refusal[0]?.message.type === 'refusal' && refusal[0].message.reason, 'full')
    const leaf = new Relay({ random: rng(1), accept: false })
    const declined = of(leaf.handle({ type: 'message', peer: 'L', message: offer }, 0), 'send')
    assert.equal(declined[0]?.message.type === 'refusal' && declined[0].message.reason, 'declined')
  })

  it('sends nothing for a persist whose peer went away meanwhile', () => {
    const core = new Relay({ random: rng(1) })
    core.handle({ type: 'message', peer: 'L', message: { type: 'offer', batch: 1, items: [entry(1)] } }, 0)
    core.handle({ type: 'disconnected', peer: 'L' }, 1)
    assert.deepEqual(of(core.handle({ type: 'persisted', peer: 'L', batch: 1, custody: [] }, 2), 'send'), [])
  })

  it('starts over with a new upstream', () => {
    const { core } = offering(2)
    core.handle({ type: 'upstream', peer: 'T' }, 5)
    assert.equal(core.batchesInFlight, 0)
    const outs = core.handle({ type: 'connected', peer: 'T' }, 6)
    assert.deepEqual(of(outs, 'load').map(l => l.after), [0])
  })

  describe('when the route loops (the election moved the server role)', () => {
    // We offered L 1, 2 to S; S, which takes us for its next hop, offers L 1 back.
    function vouched (): { core: Relay, batch: number } {
      const { core, batch } = offering(2)
      const [persist] = of(core.handle({ type: 'message', peer: 'S', message: { type: 'offer', batch: 77, items: [entry(0, 1)] } }, 2), 'persist')
      assert.ok(persist !== undefined)
      // Our store holds L 1 (it is still in our outbox): we vouch for it, and S will forget it.
      const answer = core.handle({ type: 'persisted', peer: 'S', batch: 77, custody: [{ origin: 'L', contiguous: 0, above: [1] }] }, 3)
      assert.deepEqual(of(answer, 'send').map(s => s.message.type), ['receipt'])
      return { core, batch }
    }

    it('does not forget an item it vouched for when the receipt it awaited arrives after, and offers it again', () => {
      const { core, batch } = vouched()
      // S's receipt for our batch, written before S forgot L 1: believing it for L 1 would leave no copy anywhere.
      const outs = core.handle({ type: 'message', peer: 'S', message: { type: 'receipt', batch, custody: [{ origin: 'L', contiguous: 2, above: [] }] } }, 4)
      assert.deepEqual(of(outs, 'forget'), [{ type: 'forget', peer: 'S', custody: [{ origin: 'L', contiguous: 0, above: [2] }] }])
      assert.deepEqual(of(outs, 'load').map(l => l.after), [0], 'L 1 is offered again')
    })

    it('nor when a late receipt for a batch it gave up on arrives', () => {
      const { core, batch } = offering(2, { receiptTimeoutMs: 1000 })
      core.handle({ type: 'timer' }, 1001) // the batch is retired; a late receipt would still count
      of(core.handle({ type: 'message', peer: 'S', message: { type: 'offer', batch: 77, items: [entry(0, 1)] } }, 1002), 'persist')
      core.handle({ type: 'persisted', peer: 'S', batch: 77, custody: [{ origin: 'L', contiguous: 0, above: [1] }] }, 1003)
      const late = core.handle({ type: 'message', peer: 'S', message: { type: 'receipt', batch, custody: [{ origin: 'L', contiguous: 0, above: [1, 2] }] } }, 1004)
      assert.deepEqual(of(late, 'forget'), [{ type: 'forget', peer: 'S', custody: [{ origin: 'L', contiguous: 0, above: [2] }] }])
    })

    it('does not forget an item that is being stored for a peer when a receipt for it arrives meanwhile', () => {
      const { core, batch } = offering(2)
      of(core.handle({ type: 'message', peer: 'S', message: { type: 'offer', batch: 77, items: [entry(0, 2)] } }, 2), 'persist')
      // The store may answer that it holds L 2 (and we would vouch for it): so L 2 stays.
      const outs = core.handle({ type: 'message', peer: 'S', message: { type: 'receipt', batch, custody: [{ origin: 'L', contiguous: 0, above: [1, 2] }] } }, 3)
      assert.deepEqual(of(outs, 'forget'), [{ type: 'forget', peer: 'S', custody: [{ origin: 'L', contiguous: 0, above: [1] }] }])
      assert.deepEqual(of(outs, 'load').map(l => l.after), [0])
    })

    it('forgets by its batch only, not by a contiguous prefix that names items it did not offer', () => {
      const { core, batch } = offering(2)
      const outs = core.handle({ type: 'message', peer: 'S', message: { type: 'receipt', batch, custody: [{ origin: 'L', contiguous: 9, above: [12] }] } }, 2)
      assert.deepEqual(of(outs, 'forget'), [{ type: 'forget', peer: 'S', custody: [{ origin: 'L', contiguous: 0, above: [1, 2] }] }])
    })
  })
})
