// The mDNS message codec: what we write, what Avahi writes (compressed
// names), and what a hostile packet tries.
import assert from 'node:assert/strict'
import { DnsPacketError, TYPE_PTR, TYPE_SRV, decodePacket, encodePacket, type DnsRecord } from '../../src/net/dns-packet.ts'

/** Builds a name in wire form. */
function wireName (name: string): number[] {
  const out: number[] = []
  for (const label of name.split('.')) out.push(label.length, ...Buffer.from(label))
  out.push(0)
  return out
}

describe('DNS packet codec', () => {
  it('round-trips a response with PTR, SRV, TXT and A records and the cache-flush bit', () => {
    const answers: DnsRecord[] = [
      { type: 'PTR', name: '_xo-mesh._tcp.local', ttl: 120, flush: false, target: 'peer._xo-mesh._tcp.local' },
      { type: 'SRV', name: 'peer._xo-mesh._tcp.local', ttl: 120, flush: true, priority: 0, weight: 0, port: 4001, target: 'xo-peer.local' },
      { type: 'TXT', name: 'peer._xo-mesh._tcp.local', ttl: 120, flush: true, strings: ['txtvers=1', 'id=peer'] },
      { type: 'A', name: 'xo-peer.local', ttl: 0, flush: true, address: '10.1.2.3' }
    ]
    const p = decodePacket(encodePacket({ response: true, authoritative: true, answers }))
    assert.equal(p.response, true)
    assert.equal(p.authoritative, true)
    assert.deepEqual(p.answers, answers)
    assert.deepEqual(p.questions, [])
  })

  it('round-trips a query with the unicast-response bit and known answers', () => {
    const bytes = encodePacket({ questions: [{ name: '_xo-mesh._tcp.local', type: TYPE_PTR, unicast: true }], answers: [{ type: 'PTR', name: '_xo-mesh._tcp.local', ttl: 100, flush: false, target: 'x._xo-mesh._tcp.local' }] })
    const p = decodePacket(bytes)
    assert.equal(p.response, false)
    assert.deepEqual(p.questions, [{ name: '_xo-mesh._tcp.local', type: TYPE_PTR, unicast: true }])
    assert.equal(p.answers.length, 1)
  })

  it('follows compression pointers as Avahi writes them', () => {
    const header = [0, 0, 0x84, 0, 0, 0, 0, 2, 0, 0, 0, 0]
    // answer 1 at offset 12: PTR _xo-mesh._tcp.local -> "inst" + pointer to offset 12
    const rdata = [4, ...Buffer.from('inst'), 0xc0, 12]
    const first = [...wireName('_xo-mesh._tcp.local'), 0, TYPE_PTR, 0, 1, 0, 0, 0, 120, 0, rdata.length, ...rdata]
    // answer 2: its name is only a pointer to offset 12
    const second = [0xc0, 12, 0, TYPE_PTR, 0, 1, 0, 0, 0, 60, 0, rdata.length, ...rdata]
    const p = decodePacket(Uint8Array.from([...header, ...first, ...second]))
    const want = { type: 'PTR', name: '_xo-mesh._tcp.local', flush: false, target: 'inst._xo-mesh._tcp.local' }
    assert.deepEqual(p.answers, [{ ...want, ttl: 120 }, { ...want, ttl: 60 }])
  })

  it('decodes unknown record types as OTHER and keeps going', () => {
    const bytes = encodePacket({ response: true, answers: [{ type: 'A', name: 'h.local', ttl: 1, flush: false, address: '1.2.3.4' }] })
    // append an AAAA record by hand and bump ANCOUNT
    const aaaa = [...wireName('h.local'), 0, 28, 0, 1, 0, 0, 0, 1, 0, 16, ...new Array(16).fill(0)]
    const all = Uint8Array.from([...bytes, ...aaaa])
    all[7] = 2
    const p = decodePacket(all)
    assert.deepEqual(p.answers.map(a => a.type), ['A', 'OTHER'])
  })

  it('refuses a pointer that does not point backwards (a loop)', () => {
    const bytes = Uint8Array.from([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 12, 0, 1])
    assert.throws(() => decodePacket(bytes), DnsPacketError)
  })

  it('refuses truncated messages and counts the bytes cannot hold', () => {
    const good = encodePacket({ questions: [{ name: 'a.local', type: TYPE_SRV, unicast: false }] })
    for (let n = 0; n < good.length; n++) assert.throws(() => decodePacket(good.subarray(0, n)), DnsPacketError, `length ${n}`)
    const lying = Uint8Array.from([0, 0, 0x84, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0])
    assert.throws(() => decodePacket(lying), /counts larger/)
  })

  it('never throws anything but DnsPacketError on random bytes', () => {
    let seed = 42
    const rand = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed }
    const base = encodePacket({ response: true, answers: [{ type: 'TXT', name: 'x._xo-mesh._tcp.local', ttl: 120, flush: true, strings: ['id=abc', 'addr0=/ip4/1.2.3.4/tcp/1'] }] })
    for (let i = 0; i < 2000; i++) {
      const b = Uint8Array.from(base)
      for (let k = 0; k < 1 + (rand() % 4); k++) b[rand() % b.length] = rand() & 0xff
      try { decodePacket(b) } catch (err) { assert.ok(err instanceof DnsPacketError, String(err)) }
    }
  })

  it('refuses to encode a label longer than 63 bytes', () => {
    assert.throws(() => encodePacket({ questions: [{ name: 'x'.repeat(64) + '.local', type: 1, unicast: false }] }), DnsPacketError)
  })
})
