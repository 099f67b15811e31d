// The two wire formats of backups, both read from untrusted peers: the pack
// (a backup-chunk item's body, read by every hop that keeps backups) and the
// /xo-mesh/backup/1.0.0 request and response. Round trips as properties, and
// 100,000 random and mutated inputs each (a million under XO_MESH_SOAK=1):
// decodePack never throws, the protocol decoders throw only
// InvalidMessageError, and what decodes stays within the limits.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { decodePack, encodePack, MAX_PACK_BYTES, type Pack } from '../../src/content/backup/pack.ts'
import { MAX_REQUEST_IDS, MAX_RESPONSE, decodeRequest, decodeResponse, encodeRequest, encodeResponse, type BackupRequest } from '../../src/net/backup/codec.ts'
import { InvalidMessageError } from '../../src/core/wire/errors.ts'
import { KeptBackups } from '../../src/store/backups.ts'
import { tempDir } from '../support/cli.ts'
import { rng } from '../core/mesh.ts'

const SOAK = process.env.XO_MESH_SOAK !== undefined && process.env.XO_MESH_SOAK !== ''
const INPUTS = SOAK ? 1_000_000 : 100_000

const id = fc.uint8Array({ minLength: 32, maxLength: 32 })
const record = fc.record({ type: fc.constantFrom('blob' as const, 'snapshot' as const), id, bytes: fc.uint8Array({ maxLength: 300 }) })
const pack = fc.record({ bucket: id, records: fc.array(record, { maxLength: 20 }) })

function mutate (random: () => number, f0: Uint8Array): Uint8Array {
  const int = (n: number): number => Math.floor(random() * n)
  const f = f0.slice()
  switch (int(6)) {
    case 0: for (let k = 1 + int(4); k > 0 && f.length > 0; k--) { const i = int(f.length); f[i] = f[i]! ^ (1 << int(8)) } return f
    case 1: return f.subarray(0, int(f.length + 1))
    case 2: { const out = new Uint8Array(f.length + 1 + int(40)); out.set(f); for (let i = f.length; i < out.length; i++) out[i] = int(256); return out }
    case 3: { const a = int(f.length + 1); const out = new Uint8Array(f.length + 4); out.set(f.subarray(0, a)); out.set([0xff, 0xff, 0xff, 0xff], a); out.set(f.subarray(a), a + 4); return out }
    case 4: return Uint8Array.from({ length: int(200) }, () => int(256))
    default: { const a = int(f.length + 1); return f.subarray(a) }
  }
}

describe('backup wire formats', function () {
  this.timeout(60_000)

  it('packs round-trip, and every record is where encodePack put it', () => {
    fc.assert(fc.property(pack, (p: Pack) => {
      const d = decodePack(encodePack(p))
      assert.ok(d !== undefined)
      assert.deepEqual(Buffer.from(d.bucket), Buffer.from(p.bucket))
      assert.deepEqual(d.records.map(r => [r.type, Buffer.from(r.id).toString('hex'), Buffer.from(r.bytes).toString('hex')]), p.records.map(r => [r.type, Buffer.from(r.id).toString('hex'), Buffer.from(r.bytes).toString('hex')]))
    }), { numRuns: SOAK ? 2000 : 200 })
    assert.throws(() => encodePack({ bucket: new Uint8Array(32), records: [{ type: 'blob', id: new Uint8Array(32), bytes: new Uint8Array(MAX_PACK_BYTES) }] }), RangeError)
  })

  it('protocol messages round-trip', () => {
    fc.assert(fc.property(id, fc.array(id, { maxLength: 40 }), fc.boolean(), (bucket, ids, list) => {
      const req: BackupRequest = list ? { type: 'snapshots', bucket } : { type: 'blobs', bucket, ids }
      const d = decodeRequest(encodeRequest(req))
      assert.equal(d.type, req.type)
      if (d.type === 'blobs') assert.deepEqual(d.ids.map(x => Buffer.from(x).toString('hex')), ids.map(x => Buffer.from(x).toString('hex')))
      const res = { answered: ids.length, records: ids.map((x, i) => ({ id: x, bytes: new Uint8Array(i) })) }
      const r = decodeResponse(encodeResponse(res))
      assert.equal(r.answered, res.answered)
      assert.deepEqual(r.records.map(x => x.bytes.length), res.records.map(x => x.bytes.length))
    }), { numRuns: SOAK ? 2000 : 200 })
  })

  it(`decodes ${INPUTS.toLocaleString('en')} random and mutated packs without throwing, within the limits`, async () => {
    const random = rng(8)
    const samples = fc.sample(pack, 200).map(p => encodePack(p))
    let decoded = 0
    for (let i = 0; i < INPUTS; i++) {
      const input = mutate(random, samples[i % samples.length]!)
      const p = decodePack(input)
      if (p === undefined) continue
      decoded++
      assert.equal(p.bucket.length, 32)
      let size = 36
      for (const r of p.records) { assert.equal(r.id.length, 32); size += 37 + r.bytes.length }
      assert.equal(size, input.length)
    }
    assert.ok(decoded > 1000, `${decoded} decoded`)
    // a hop fed junk keeps nothing and does not throw
    const t = await tempDir('xo-mesh-packs-')
    try {
      const kept = KeptBackups.open(t.dir)
      kept.keep([{ origin: 'x', body: new Uint8Array([1, 2, 3]) }, { origin: 'x', body: mutate(random, samples[0]!) }])
      assert.ok(kept.counters.malformed >= 1)
      kept.close()
    } finally {
      await t.cleanup()
    }
  })

  it(`decodes ${INPUTS.toLocaleString('en')} random and mutated requests and responses, throwing only InvalidMessageError`, () => {
    const random = rng(9)
    const samples: Uint8Array[] = []
    for (const [bucket, ids] of fc.sample(fc.tuple(id, fc.array(id, { maxLength: 8 })), 100)) {
      samples.push(encodeRequest({ type: 'blobs', bucket, ids }), encodeRequest({ type: 'snapshots', bucket }))
      samples.push(encodeResponse({ answered: ids.length, records: ids.map((x, i) => ({ id: x, bytes: new Uint8Array(i * 3) })) }))
    }
    let ok = 0
    // most inputs are refused: a stack trace per refusal would be most of the cost
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    try {
      for (let i = 0; i < INPUTS; i++) {
        const input = mutate(random, samples[i % samples.length]!)
        for (const decode of [decodeRequest, decodeResponse]) {
          try {
            const m = decode(input)
            ok++
            if ('type' in m && m.type === 'blobs') assert.ok(m.ids.length <= MAX_REQUEST_IDS && m.ids.every(x => x.length === 32))
            if ('answered' in m) assert.ok(m.records.length <= m.answered && input.length <= MAX_RESPONSE)
          } catch (err) {
            if (!(err instanceof InvalidMessageError)) throw err
          }
        }
      }
    } finally {
      Error.stackTraceLimit = limit
    }
    assert.ok(ok > 1000, `${ok} decoded`)
  })
})
