// The DNS-SD service every agent publishes on each link (RFC 6763):
//
//   _xo-mesh._tcp.local            PTR  <peer id>._xo-mesh._tcp.local
//   <peer id>._xo-mesh._tcp.local  SRV  0 0 <port> xo-<peer id, lower case>.local
//   <peer id>._xo-mesh._tcp.local  TXT  "txtvers=1" "id=<peer id>" "addr0=/ip4/…/tcp/…" …
//   xo-<peer id>.local             A    <this link's IPv4 address>
//
// so `avahi-browse -r _xo-mesh._tcp` resolves every agent, and an agent learns
// a peer's id and dialable addresses from one response. Pure functions: the
// socket side is mdns.ts.
import { multiaddr } from '@multiformats/multiaddr'
import { TYPE_A, TYPE_ANY, TYPE_PTR, TYPE_SRV, TYPE_TXT, sameName, type DnsRecord, type Packet, type Question } from './dns-packet.ts'

export const SERVICE = '_xo-mesh._tcp.local'
/** DNS-SD service type enumeration (RFC 6763 §9): `avahi-browse -a` asks it. */
export const SERVICE_ENUMERATION = '_services._dns-sd._udp.local'
/** RFC 6762 §10: 120 s for records naming a host, which every one of ours depends on. */
export const DEFAULT_TTL = 120
/** Addresses per peer we keep from a TXT record (a peer with more lists only its first ones). */
export const MAX_ADDRS = 8

/** What this agent publishes on one link. */
export interface Advert {
  peerId: string
  /** TCP port for the SRV record (the first listen port on this link). */
  port: number
  /** This link's IPv4 addresses, for A records. */
  addresses: string[]
  /** Dialable multiaddrs on this link, without /p2p/ (the TXT record's addrN entries). */
  multiaddrs: string[]
  /** Seconds; 0 for a goodbye. */
  ttl: number
}

/** `<peer id>._xo-mesh._tcp.local` */
export function instanceName (peerId: string): string {
  return `${peerId}.${SERVICE}`
}

/**
 * The host name in the SRV record. Not the machine's name: Avahi on the same
 * machine publishes that one, and network namespaces share it; the peer id
 * makes ours unique without probing.
 */
export function hostName (peerId: string): string {
  return `xo-${peerId.toLowerCase()}.local`
}

export interface AdvertRecords {
  ptr: DnsRecord
  srv: DnsRecord
  txt: DnsRecord
  a: DnsRecord[]
}

/** The advert's records; PTR is shared (no cache-flush), the others are ours alone. */
export function advertRecords (ad: Advert): AdvertRecords {
  const instance = instanceName(ad.peerId)
  const host = hostName(ad.peerId)
  const txt = ['txtvers=1', `id=${ad.peerId}`, ...ad.multiaddrs.slice(0, MAX_ADDRS).map((m, i) => `addr${i}=${m}`)]
  return {
    ptr: { type: 'PTR', name: SERVICE, ttl: ad.ttl, flush: false, target: instance },
    srv: { type: 'SRV', name: instance, ttl: ad.ttl, flush: true, priority: 0, weight: 0, port: ad.port, target: host },
    txt: { type: 'TXT', name: instance, ttl: ad.ttl, flush: true, strings: txt },
    a: ad.addresses.map(address => ({ type: 'A', name: host, ttl: ad.ttl, flush: true, address }))
  }
}

/** An unsolicited announcement (and, with ttl 0, a goodbye): everything at once. */
export function announcement (ad: Advert): Pick<Packet, 'response' | 'authoritative' | 'answers' | 'additionals'> {
  const r = advertRecords(ad)
  return { response: true, authoritative: true, answers: [r.ptr, r.srv, r.txt, ...r.a], additionals: [] }
}

function sameData (a: DnsRecord, b: DnsRecord): boolean {
  if (a.type !== b.type || !sameName(a.name, b.name)) return false
  switch (a.type) {
    case 'PTR': return sameName(a.target, (b as typeof a).target)
    case 'A': return a.address === (b as typeof a).address
    case 'SRV': { const o = b as typeof a; return a.port === o.port && sameName(a.target, o.target) }
    case 'TXT': return a.strings.join('\n') === (b as typeof a).strings.join('\n')
    default: return false
  }
}

function asks (q: Question, name: string, type: number): boolean {
  return (q.type === type || q.type === TYPE_ANY) && sameName(q.name, name)
}

export interface Answer {
  answers: DnsRecord[]
  additionals: DnsRecord[]
  /** Only shared records (PTR) are answered: RFC 6762 §6 asks for a 20–120 ms delay. */
  shared: boolean
}

/**
 * What to answer to a query on a link where we publish `ad`, or undefined when
 * nothing. A record the asker already listed as a known answer with more than
 * half its TTL left is not repeated (known-answer suppression, RFC 6762 §7.1):
 * in a class of thirty, a periodic query then draws no answers at all.
 */
export function answerQuery (query: Packet, ad: Advert): Answer | undefined {
  const r = advertRecords(ad)
  const known = query.answers
  const fresh = (rec: DnsRecord): boolean => !known.some(k => sameData(k, rec) && k.ttl > rec.ttl / 2)
  const answers: DnsRecord[] = []
  const additionals: DnsRecord[] = []
  const add = (list: DnsRecord[], rec: DnsRecord): void => {
    if (fresh(rec) && !answers.some(x => sameData(x, rec)) && !list.some(x => sameData(x, rec))) list.push(rec)
  }
  const instance = instanceName(ad.peerId)
  const host = hostName(ad.peerId)
  let shared = true
  for (const q of query.questions) {
    if (asks(q, SERVICE, TYPE_PTR) && fresh(r.ptr)) {
      add(answers, r.ptr)
      // RFC 6763 §12.1: the SRV, TXT and address records ride along
      add(additionals, r.srv)
      add(additionals, r.txt)
      for (const a of r.a) add(additionals, a)
    }
    if (asks(q, SERVICE_ENUMERATION, TYPE_PTR)) {
      add(answers, { type: 'PTR', name: SERVICE_ENUMERATION, ttl: ad.ttl, flush: false, target: SERVICE })
    }
    if (asks(q, instance, TYPE_SRV)) { add(answers, r.srv); for (const a of r.a) add(additionals, a); shared = false }
    if (asks(q, instance, TYPE_TXT)) { add(answers, r.txt); shared = false }
    if (asks(q, host, TYPE_A)) { for (const a of r.a) add(answers, a); shared = false }
  }
  if (answers.length === 0) return undefined
  // an additional that became an answer is not sent twice
  return { answers, additionals: additionals.filter(x => !answers.some(a => sameData(a, x))), shared }
}

/** A peer as a response describes it. */
export interface FoundPeer {
  peerId: string
  /** Dialable multiaddrs without /p2p/ (at most MAX_ADDRS). */
  addrs: string[]
  /** Seconds; 0: the peer said goodbye. */
  ttl: number
}

function txtValue (strings: string[], key: string): string | undefined {
  const prefix = key + '='
  return strings.find(s => s.startsWith(prefix))?.slice(prefix.length)
}

/** A TCP multiaddr we could dial, normalised, or undefined. */
function dialable (text: string): string | undefined {
  try {
    const ma = multiaddr(text)
    const names = ma.getComponents().map(c => c.name)
    if ((names[0] !== 'ip4' && names[0] !== 'ip6') || names[1] !== 'tcp') return undefined
    return ma.decapsulateCode(421).toString() // drop /p2p/…
  } catch {
    return undefined
  }
}

/**
 * The xo-mesh peers a response announces: every instance of our service with
 * an `id=` in its TXT record. Addresses come from the TXT record's addrN
 * entries, else from the SRV port and the A records of its target. The peer
 * id is only a claim here: dialling `/p2p/<id>` makes Noise check it.
 */
export function peersInResponse (packet: Packet): FoundPeer[] {
  const records = [...packet.answers, ...packet.additionals]
  const suffix = '.' + SERVICE
  const instances = new Map<string, number>()
  for (const rec of records) {
    if (rec.type === 'PTR' && sameName(rec.name, SERVICE) && rec.target.toLowerCase().endsWith(suffix.toLowerCase())) instances.set(rec.target.toLowerCase(), rec.ttl)
    if ((rec.type === 'SRV' || rec.type === 'TXT') && rec.name.toLowerCase().endsWith(suffix.toLowerCase()) && !instances.has(rec.name.toLowerCase())) instances.set(rec.name.toLowerCase(), rec.ttl)
  }
  const out: FoundPeer[] = []
  for (const [instance, ptrTtl] of instances) {
    const txt = records.find(r => r.type === 'TXT' && r.name.toLowerCase() === instance)
    if (txt?.type !== 'TXT') continue
    const peerId = txtValue(txt.strings, 'id')
    if (peerId === undefined || !/^[1-9A-HJ-NP-Za-km-z]{40,64}$/.test(peerId)) continue
    const addrs: string[] = []
    for (const s of txt.strings) {
      const m = /^(addr\d+|dnsaddr)=(.*)$/.exec(s)
      const a = m !== null ? dialable(m[2]!) : undefined
      if (a !== undefined && !addrs.includes(a) && addrs.length < MAX_ADDRS) addrs.push(a)
    }
    const srv = records.find(r => r.type === 'SRV' && r.name.toLowerCase() === instance)
    if (addrs.length === 0 && srv?.type === 'SRV') {
      for (const a of records) {
        if (a.type === 'A' && sameName(a.name, srv.target) && addrs.length < MAX_ADDRS) addrs.push(`/ip4/${a.address}/tcp/${srv.port}`)
      }
    }
    out.push({ peerId, addrs, ttl: Math.min(ptrTtl, txt.ttl) })
  }
  return out
}

/** A query for the service; `known` are PTR records we hold with their remaining TTL (known-answer list). */
export function serviceQuery (known: Array<{ peerId: string, ttl: number }>): Pick<Packet, 'questions' | 'answers'> {
  return {
    questions: [{ name: SERVICE, type: TYPE_PTR, unicast: false }],
    answers: known.map(k => ({ type: 'PTR', name: SERVICE, ttl: k.ttl, flush: false, target: instanceName(k.peerId) }))
  }
}

