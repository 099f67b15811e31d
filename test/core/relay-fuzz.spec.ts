// Fuzzes the relay decoder with random and mutated frames: only
// InvalidMessageError may come out, whatever decodes keeps the documented
// limits, and a live core fed every frame that decodes never throws and only
// ever sends frames the encoder accepts. XO_MESH_SOAK=1 runs ten times as many.
import assert from 'node:assert/strict'
import { FrameReader, InvalidMessageError, MAX_BATCH_ITEMS, MAX_BATCH_ORIGINS, MAX_ITEM_BYTES, MAX_RETRY_AFTER_MS, Relay, decodeFrame, encodeFrame, isValidOrigin } from '../../src/core/relay/index.ts'
import type { Item, Message, RelayOutput } from '../../src/core/relay/index.ts'
import { rng } from './mesh.ts'

const SOAK = process.env.XO_MESH_SOAK !== undefined && process.env.XO_MESH_SOAK !== ''
const FRAMES = SOAK ? 1_000_000 : 100_000

function corpus (random: () => number): Uint8Array[] {
  const int = (n: number): number => Math.floor(random() * n)
  const origins = ['12D3KooWAlice', '12D3KooWBob', 'bafyCarol']
  const out: Uint8Array[] = []
  for (let k = 0; k < 300; k++) {
    const items: Item[] = []
    const used = new Set<string>()
    for (let i = 1 + int(12); i > 0; i--) {
      const origin = origins[int(3)]!
      const counter = 1 + int(random() < 0.1 ? 2 ** 50 : 300)
      if (used.has(`${origin}#${counter}`)) continue
      used.add(`${origin}#${counter}`)
      items.push({ origin, counter, kind: (['statistics', 'install-report', 'backup-chunk'] as const)[int(3)]!, created: int(2 ** 40), body: Uint8Array.from({ length: int(60) }, () => int(256)) })
    }
    const contiguous = int(1000)
    const messages: Message[] = [
      { type: 'offer', batch: int(2 ** 32), items },
      { type: 'receipt', batch: int(2 ** 32), custody: origins.slice(0, 1 + int(3)).map(origin => ({ origin, contiguous, above: [contiguous + 1 + int(5), contiguous + 10 + int(5)] })) },
      { type: 'refusal', batch: int(2 ** 32), reason: (['full', 'busy', 'declined'] as const)[int(3)]!, retryAfterMs: int(MAX_RETRY_AFTER_MS) }
    ]
    out.push(encodeFrame(messages[int(3)]!))
  }
  return out
}

function concat (...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) { out.set(p, o); o += p.length }
  return out
}

function mutate (random: () => number, frame: Uint8Array, all: Uint8Array[]): Uint8Array {
  const int = (n: number): number => Math.floor(random() * n)
  const noise = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => int(256))
  const f = frame.slice()
  switch (int(8)) {
    case 0: for (let k = 1 + int(4); k > 0; k--) { const i = int(f.length); f[i] = f[i]! ^ (1 << int(8)) } return f
    case 1: { const v = [0, 1, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x08][int(8)]!; for (let k = 1 + int(3); k > 0; k--) f[int(f.length)] = v; return f }
    case 2: return f.subarray(0, int(f.length))
    case 3: return concat(f, noise(1 + int(40)))
    case 4: { const a = int(f.length); return concat(f.subarray(0, a), f.subarray(a + int(8))) }
    case 5: { const a = int(f.length); return concat(f.subarray(0, a), noise(1 + int(6)), f.subarray(a)) }
    case 6: { const o = all[int(all.length)]!; return concat(f.subarray(0, int(f.length)), o.subarray(int(o.length))) }
    default: { const a = int(f.length); const b = Math.min(f.length, a + 1 + int(20)); return concat(f.subarray(0, b), f.subarray(a)) }
  }
}

function checkInvariants (m: Message): void {
  assert.ok(Number.isInteger(m.batch) && m.batch >= 0 && m.batch <= 0xffffffff)
  switch (m.type) {
    case 'offer': {
      assert.ok(m.items.length >= 1 && m.items.length <= MAX_BATCH_ITEMS)
      const keys = new Set(m.items.map(it => `${it.origin}#${it.counter}`))
      assert.equal(keys.size, m.items.length)
      assert.ok(new Set(m.items.map(it => it.origin)).size <= MAX_BATCH_ORIGINS)
      for (const it of m.items) {
        assert.ok(isValidOrigin(it.origin) && Number.isSafeInteger(it.counter) && it.counter >= 1 && Number.isSafeInteger(it.created))
        assert.ok(it.body.length <= MAX_ITEM_BYTES)
      }
      return
    }
    case 'receipt': {
      assert.ok(m.custody.length <= MAX_BATCH_ORIGINS)
      assert.equal(new Set(m.custody.map(c => c.origin)).size, m.custody.length)
      let n = 0
      for (const c of m.custody) {
        assert.ok(isValidOrigin(c.origin) && Number.isSafeInteger(c.contiguous) && c.contiguous >= 0)
        let prev = c.contiguous
        for (const a of c.above) { assert.ok(Number.isSafeInteger(a) && a > prev); prev = a }
        n += c.above.length
      }
      assert.ok(n <= MAX_BATCH_ITEMS)
      return
    }
    case 'refusal':
      assert.ok(m.retryAfterMs >= 0 && m.retryAfterMs <= MAX_RETRY_AFTER_MS)
  }
}

describe('relay codec fuzz', function () {
  this.timeout(SOAK ? 600_000 : 60_000)

  it(`refuses ${FRAMES} random and mutated frames with InvalidMessageError only, and a live core never throws on what decodes`, () => {
    const random = rng(Number(process.env.XO_MESH_SEED ?? 20261126))
    const all = corpus(random)
    const core = new Relay({ random: rng(1) })
    core.handle({ type: 'upstream', peer: 'up' }, 0)
    core.handle({ type: 'connected', peer: 'up' }, 0)
    let decoded = 0
    let refused = 0
    let now = 0
    const act = (outs: RelayOutput[]): void => {
      for (const o of outs) {
        if (o.type === 'send') encodeFrame(o.message) // throws if the core ever sends what the limits forbid
        if (o.type === 'persist') act(core.handle({ type: 'persisted', peer: o.peer, batch: o.batch, custody: [] }, now))
        if (o.type === 'load') act(core.handle({ type: 'loaded', request: o.request, items: [{ seq: 1, origin: 'me', counter: 1, kind: 'statistics', created: 0, body: new Uint8Array(1) }], more: false }, now))
      }
    }
    for (let i = 0; i < FRAMES; i++) {
      const base = all[Math.floor(random() * all.length)]!
      const frame = random() < 0.05 ? Uint8Array.from({ length: Math.floor(random() * 200) }, () => Math.floor(random() * 256)) : mutate(random, base, all)
      let bodies: Uint8Array[]
      try {
        bodies = new FrameReader().push(frame)
      } catch (err) {
        assert.ok(err instanceof InvalidMessageError, String(err))
        refused++
        continue
      }
      for (const body of bodies) {
        let m: Message
        try {
          m = decodeFrame(body)
        } catch (err) {
          assert.ok(err instanceof InvalidMessageError, `${String(err)} on ${Buffer.from(body).toString('hex').slice(0, 200)}`)
          refused++
          continue
        }
        decoded++
        checkInvariants(m)
        now += 1
        act(core.handle({ type: 'message', peer: random() < 0.5 ? 'up' : 'other', message: m }, now))
        if (i % 1000 === 0) { now += 60_000; act(core.handle({ type: 'timer' }, now)) }
      }
    }
    assert.ok(decoded > FRAMES / 20, `only ${decoded} frames decoded: the mutations are too harsh to reach deep`)
    assert.ok(refused > FRAMES / 20, `only ${refused} frames refused`)
  })
})
