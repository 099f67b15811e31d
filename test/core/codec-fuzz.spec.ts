// Fuzzes every decoder with random and mutated frames: only InvalidMessageError
// may ever come out, whatever decodes satisfies the documented invariants, and
// a live core fed every frame that decodes never throws. XO_MESH_SOAK=1 runs
// ten times as many.
import assert from 'node:assert/strict'
import { Exchange, FrameReader, InvalidMessageError, MAX_BLOCK_SIZE, MAX_CIDS, MAX_INDICES, MAX_LEAVES, decodeFrame, encodeBlocksHead, encodeFrame, fullBitfield, isBitfieldFor, isValidCid } from '../../src/core/exchange/index.ts'
import type { ControlMessage, ExchangeOutput, Message } from '../../src/core/exchange/index.ts'
import { fakeCid, makeBuild, rng } from './mesh.ts'

const SOAK = process.env.XO_MESH_SOAK !== undefined && process.env.XO_MESH_SOAK !== ''
const FRAMES = SOAK ? 1_000_000 : 100_000

/** Valid frames (with their length prefixes) over a few roots, one of them `build`'s. */
function corpus (random: () => number, roots: Uint8Array[], leaves: number): Uint8Array[] {
  const pick = <T>(a: T[]): T => a[Math.floor(random() * a.length)]!
  const int = (n: number): number => Math.floor(random() * n)
  const indices = (max: number): Uint32Array => {
    const s = new Set<number>()
    const k = 1 + int(Math.min(max, 40))
    while (s.size < k) s.add(int(random() < 0.8 ? leaves : MAX_LEAVES))
    return Uint32Array.from([...s].sort((a, b) => a - b))
  }
  const cids = (): Uint8Array[] => Array.from({ length: int(4) }, () => fakeCid(random, pick([0x55, 0x70, 0x71])))
  const out: Uint8Array[] = []
  for (let k = 0; k < 400; k++) {
    const root = pick(roots)
    const bits = fullBitfield(leaves).map(b => b & int(256))
    const messages: ControlMessage[] = [
      { type: 'have', root, leaves, complete: false, bitfield: bits },
      { type: 'have', root, leaves: random() < 0.7 ? leaves : int(5000), complete: true },
      { type: 'have-update', root, indices: indices(40) },
      { type: 'interest', root, interested: random() < 0.7 },
      { type: 'request', root, indices: indices(40), cids: cids() },
      { type: 'cancel', root, indices: indices(10), cids: [] },
      { type: 'dont-have', root, indices: random() < 0.5 ? new Uint32Array(0) : indices(10), cids: cids() },
      { type: 'choke' },
      { type: 'unchoke' }
    ]
    out.push(encodeFrame(pick(messages)))
    const idx = indices(8)
    const sizes = Array.from(idx, () => int(300))
    const head = random() < 0.7
      ? encodeBlocksHead({ root, indices: idx, cids: [], sizes })
      : encodeBlocksHead({ root, indices: [], cids: [fakeCid(random, 0x70)], sizes: [int(300)] })
    const total = head.length + (random() < 0.7 ? sizes.reduce((a, b) => a + b, 0) : int(300))
    const frame = new Uint8Array(Math.max(total, head.length))
    frame.set(head)
    out.push(frame)
  }
  return out
}

/** Bytes of the given parts, concatenated. */
function concat (...parts: Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) { out.set(p, o); o += p.length }
  return out
}

function mutate (random: () => number, frame: Uint8Array, corpus: Uint8Array[]): Uint8Array {
  const int = (n: number): number => Math.floor(random() * n)
  const noise = (n: number): Uint8Array => { const b = new Uint8Array(n); for (let i = 0; i < n; i++) b[i] = int(256); return b }
  const f = frame.slice()
  switch (int(9)) {
    case 0: { // flip bits
      for (let k = 1 + int(4); k > 0; k--) { const i = int(f.length); f[i] = f[i]! ^ (1 << int(8)) }
      return f
    }
    case 1: { // set bytes to interesting values
      const v = [0, 1, 0x7f, 0x80, 0xff, 0x12, 0x20, 0x55, 0x70, 0x71][int(10)]!
      for (let k = 1 + int(3); k > 0; k--) f[int(f.length)] = v
      return f
    }
    case 2: return f.subarray(0, int(f.length)) // truncate
    case 3: return concat(f, noise(1 + int(40))) // extend
    case 4: { // delete a range
      const a = int(f.length)
      return concat(f.subarray(0, a), f.subarray(a + int(8)))
    }
    case 5: { // insert random bytes
      const a = int(f.length)
      return concat(f.subarray(0, a), noise(1 + int(6)), f.subarray(a))
    }
    case 6: { // splice with another frame
      const o = corpus[int(corpus.length)]!
      return concat(f.subarray(0, int(f.length)), o.subarray(int(o.length)))
    }
    case 7: { // rewrite a byte of the outer or inner length prefix
      f[int(Math.min(4, f.length))] = int(256)
      return f
    }
    default: { // duplicate a range
      const a = int(f.length)
      const b = Math.min(f.length, a + 1 + int(20))
      return concat(f.subarray(0, b), f.subarray(a))
    }
  }
}

function randomBytes (random: () => number): Uint8Array {
  const n = Math.floor(random() * (random() < 0.1 ? 2000 : 80))
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = Math.floor(random() * 256)
  if (n > 1 && random() < 0.5) b[1] = Math.min(b[1]!, n - 2) // a plausible header length, so decoding goes deeper
  return b
}

/** Checks what a decoder promises about a message it accepted. */
function checkInvariants (m: Message): void {
  const ascending = (a: Uint32Array): void => {
    assert.ok(a.length <= MAX_INDICES)
    for (let i = 0; i < a.length; i++) {
      assert.ok(a[i]! < MAX_LEAVES)
      if (i > 0) assert.ok(a[i]! > a[i - 1]!)
    }
  }
  if (m.type === 'choke' || m.type === 'unchoke') return
  assert.ok(isValidCid(m.root))
  switch (m.type) {
    case 'have':
      assert.ok(m.leaves <= MAX_LEAVES)
      if (m.complete) assert.equal(m.bitfield, undefined)
      else assert.ok(m.bitfield !== undefined && isBitfieldFor(m.bitfield, m.leaves))
      return
    case 'have-update': ascending(m.indices); assert.ok(m.indices.length > 0); return
    case 'interest': return
    case 'blocks':
      ascending(m.indices)
      assert.ok(m.cids.length <= MAX_CIDS && m.cids.every(isValidCid))
      assert.ok((m.indices.length === 0) !== (m.cids.length === 0))
      assert.equal(m.sizes.length, m.indices.length + m.cids.length)
      assert.ok(m.sizes.every(s => s <= MAX_BLOCK_SIZE))
      assert.equal(m.offsets[m.sizes.length], m.payload.length)
      return
    default:
      ascending(m.indices)
      assert.ok(m.cids.length <= MAX_CIDS && m.cids.every(isValidCid))
  }
}

/** Decodes with both decoders; only InvalidMessageError may escape. Returns what decoded. */
function decodeAll (bytes: Uint8Array, random: () => number): Message[] {
  const got: Message[] = []
  // as a frame body
  try {
    got.push(decodeFrame(bytes))
  } catch (err) {
    if (!(err instanceof InvalidMessageError)) throw err
  }
  // as a stream, cut at a random point
  const reader = new FrameReader()
  try {
    const cut = Math.floor(random() * (bytes.length + 1))
    for (const chunk of [bytes.subarray(0, cut), bytes.subarray(cut)]) {
      for (const body of reader.push(chunk)) {
        try {
          got.push(decodeFrame(body))
        } catch (err) {
          if (!(err instanceof InvalidMessageError)) throw err
        }
      }
    }
  } catch (err) {
    if (!(err instanceof InvalidMessageError)) throw err
  }
  return got
}

describe('blocks codec under fuzzing', function () {
  this.timeout(SOAK ? 600_000 : 60_000)

  it(`decoders throw only InvalidMessageError on ${FRAMES.toLocaleString('en')} random and mutated frames, and a live core survives every frame that decodes`, () => {
    const random = rng(20261126)
    const build = makeBuild(random, { leaves: 300 })
    const roots = [build.root, fakeCid(random, 0x71), fakeCid(random, 0x70)]
    const frames = corpus(random, roots, build.sizes.length)
    // a core that holds half the build and serves it, so fuzzed messages reach deep paths
    const core = new Exchange({ random: rng(5), maxPeers: 1_000_000, newPeersPerSecond: 1e9, controlRate: 1e12 })
    let now = 0
    const outs: ExchangeOutput[] = []
    const feed = (input: Parameters<Exchange['handle']>[0]): void => {
      for (const o of core.handle(input, now)) outs.push(o)
    }
    feed({ type: 'hold', root: build.root })
    feed({ type: 'loaded', root: build.root, result: { status: 'ready', manifest: build.manifest, sizes: build.sizes, have: fullBitfield(300).map((b, i) => i % 2 === 0 ? b : 0) } })
    let peer = 0
    let peerId = 'fuzz-0'
    feed({ type: 'connected', peer: peerId })
    let decoded = 0
    let bans = 0
    // 200,000 throws: capturing their stacks would cost more than everything under test
    const stackTraceLimit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    try {
      for (let k = 0; k < FRAMES; k++) {
        const r = random()
        const bytes = r < 0.2 ? randomBytes(random) : r < 0.35 ? frames[Math.floor(random() * frames.length)]! : mutate(random, frames[Math.floor(random() * frames.length)]!, frames)
        for (const m of decodeAll(bytes, random)) {
          decoded++
          checkInvariants(m)
          outs.length = 0
          now += Math.floor(random() * 50)
          feed({ type: 'message', peer: peerId, message: m })
          if (random() < 0.05) feed({ type: 'timer' })
          for (const o of outs) {
            assert.ok(!(o.type === 'disconnect' && o.reason.startsWith('internal error')), `the core failed on ${m.type}: ${o.type === 'disconnect' ? o.reason : ''}`)
            if (o.type === 'serve') feed({ type: 'served', peer: o.peer, root: o.root })
            if (o.type === 'ban' && o.peer === peerId) {
              bans++
              peerId = `fuzz-${++peer}`
              feed({ type: 'connected', peer: peerId })
            }
          }
        }
      }
    } finally {
      Error.stackTraceLimit = stackTraceLimit
    }
    assert.ok(decoded > FRAMES / 10, `only ${decoded} frames decoded: the mutations are too destructive to reach the core`)
    assert.ok(bans > 0)
  })
})
