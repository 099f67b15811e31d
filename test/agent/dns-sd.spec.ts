// The DNS-SD records an agent publishes, the answers it gives, and what it
// reads out of other agents' responses.
import assert from 'node:assert/strict'
import { TYPE_A, TYPE_PTR, TYPE_SRV, TYPE_TXT, decodePacket, encodePacket, type Packet } from '../../src/net/dns-packet.ts'
import { SERVICE, SERVICE_ENUMERATION, announcement, answerQuery, hostName, instanceName, peersInResponse, serviceQuery, type Advert } from '../../src/net/dns-sd.ts'

const ID = '12D3KooWGppmndvFeigz1zWmMhHekGNWSbvkU31WCmx9dASHugKC'
const OTHER = '12D3KooWHqosX6i9XYZoZRfBBcF7iFG8V9Kb8aLaiqgB94JuvYVs'
const ad: Advert = { peerId: ID, port: 4001, addresses: ['10.0.0.5'], multiaddrs: ['/ip4/10.0.0.5/tcp/4001'], ttl: 120 }

function query (questions: Packet['questions'], answers: Packet['answers'] = []): Packet {
  return decodePacket(encodePacket({ questions, answers }))
}

describe('DNS-SD records (_xo-mesh._tcp)', () => {
  it('announces PTR, SRV, TXT with the peer id and addresses, and A', () => {
    const p = decodePacket(encodePacket(announcement(ad)))
    assert.deepEqual(p.answers.map(r => r.type), ['PTR', 'SRV', 'TXT', 'A'])
    const [ptr, srv, txt, a] = p.answers
    assert.deepEqual(ptr, { type: 'PTR', name: SERVICE, ttl: 120, flush: false, target: `${ID}._xo-mesh._tcp.local` })
    assert.equal(srv?.type === 'SRV' && srv.port, 4001)
    assert.equal(srv?.type === 'SRV' && srv.target, hostName(ID))
    assert.deepEqual(txt?.type === 'TXT' && txt.strings, ['txtvers=1', `id=${ID}`, 'addr0=/ip4/10.0.0.5/tcp/4001'])
    assert.deepEqual(a, { type: 'A', name: hostName(ID), ttl: 120, flush: true, address: '10.0.0.5' })
  })

  it('answers a PTR query with SRV, TXT and A as additionals, after a short delay (shared record)', () => {
    const answer = answerQuery(query([{ name: SERVICE, type: TYPE_PTR, unicast: false }]), ad)!
    assert.deepEqual(answer.answers.map(r => r.type), ['PTR'])
    assert.deepEqual(answer.additionals.map(r => r.type), ['SRV', 'TXT', 'A'])
    assert.equal(answer.shared, true)
  })

  it('answers SRV, TXT and A queries (so Avahi can resolve), at once', () => {
    const answer = answerQuery(query([
      { name: instanceName(ID), type: TYPE_SRV, unicast: false },
      { name: instanceName(ID), type: TYPE_TXT, unicast: false },
      { name: hostName(ID).toUpperCase(), type: TYPE_A, unicast: false }
    ]), ad)!
    assert.deepEqual(answer.answers.map(r => r.type).sort(), ['A', 'SRV', 'TXT'])
    assert.deepEqual(answer.additionals, [])
    assert.equal(answer.shared, false)
  })

  it('answers service type enumeration (avahi-browse -a)', () => {
    const answer = answerQuery(query([{ name: SERVICE_ENUMERATION, type: TYPE_PTR, unicast: false }]), ad)!
    assert.deepEqual(answer.answers, [{ type: 'PTR', name: SERVICE_ENUMERATION, ttl: 120, flush: false, target: SERVICE }])
  })

  it('stays silent for other services and for a known answer with more than half its TTL', () => {
    assert.equal(answerQuery(query([{ name: '_http._tcp.local', type: TYPE_PTR, unicast: false }]), ad), undefined)
    const known = serviceQuery([{ peerId: ID, ttl: 100 }])
    assert.equal(answerQuery(query(known.questions, known.answers), ad), undefined)
    const stale = serviceQuery([{ peerId: ID, ttl: 30 }])
    assert.ok(answerQuery(query(stale.questions, stale.answers), ad) !== undefined)
  })

  it('reads peer id and addresses from another agent\'s response, and TTL 0 as goodbye', () => {
    const other = { ...ad, peerId: OTHER, multiaddrs: ['/ip4/10.0.0.6/tcp/5000', '/ip4/10.0.0.6/tcp/5000/p2p/' + OTHER, 'junk'] }
    assert.deepEqual(peersInResponse(decodePacket(encodePacket(announcement(other)))), [{ peerId: OTHER, addrs: ['/ip4/10.0.0.6/tcp/5000'], ttl: 120 }])
    assert.deepEqual(peersInResponse(decodePacket(encodePacket(announcement({ ...other, ttl: 0 }))))[0]!.ttl, 0)
  })

  it('falls back to SRV port and A records when TXT carries no address', () => {
    const p = decodePacket(encodePacket(announcement({ ...ad, multiaddrs: [] })))
    assert.deepEqual(peersInResponse(p), [{ peerId: ID, addrs: ['/ip4/10.0.0.5/tcp/4001'], ttl: 120 }])
  })

  it('ignores instances without a plausible peer id', () => {
    const p = decodePacket(encodePacket({ response: true, answers: [
      { type: 'PTR', name: SERVICE, ttl: 120, flush: false, target: `x.${SERVICE}` },
      { type: 'TXT', name: `x.${SERVICE}`, ttl: 120, flush: true, strings: ['id=not a peer id!', 'addr0=/ip4/1.2.3.4/tcp/1'] }
    ] }))
    assert.deepEqual(peersInResponse(p), [])
  })
})
