// mDNS discovery on node:dgram (RFC 6762) publishing the DNS-SD service of
// dns-sd.ts. Why not @libp2p/mdns (field-notes.md): it only answers PTR queries
// (Avahi cannot resolve it), advertises loopback, queries every 10 s but never
// announces (a late joiner waits for the others' next query), needs a
// multicast route and stays silent without one, and libp2p 3 does not dial
// what it finds. Here:
//
// - one socket on UDP 5353 (shared with Avahi: SO_REUSEADDR), joined to
//   224.0.0.251 on every up, multicast-capable IPv4 link;
// - every packet is sent once per link with IP_MULTICAST_IF set, carrying that
//   link's own address, so no multicast route is needed to send;
// - announce (twice, 1 s apart, RFC 6762 §8.3) and query on start, on any
//   change of links or listen addresses, and query again every
//   queryInterval; answer queries for PTR, SRV, TXT and A (20–120 ms later for
//   the shared PTR, at once otherwise); goodbye (TTL 0) on stop;
// - every peer found is handed to the dialer until its record expires.
import { createSocket, type Socket } from 'node:dgram'
import { peerIdFromString } from '@libp2p/peer-id'
import { decodePacket, encodePacket, DnsPacketError, type Packet } from './dns-packet.ts'
import { DEFAULT_TTL, announcement, answerQuery, peersInResponse, serviceQuery, type Advert } from './dns-sd.ts'
import { multicastLinks, multicastRouteInterfaces, onLink, type Link } from './interfaces.ts'
import type { ComponentFactory, MeshComponent, MeshComponents, StatusPart } from './component.ts'
import type { Logger } from './logger.ts'

export const MDNS_GROUP = '224.0.0.251'
export const MDNS_PORT = 5353
export const DEFAULT_QUERY_INTERVAL_MS = 60_000
/** How often links and listen addresses are checked for a change (cheap: one syscall). */
export const DEFAULT_LINK_POLL_MS = 3_000
/**
 * The peer with the larger id waits this long before dialling, so two peers
 * do not dial each other at once. It only matters when the smaller one's dial
 * fails, so it can be generous: 750 ms was seen to be too short for a dial
 * plus Noise handshake on a machine at load 15, and both sides then dialled.
 */
export const TIE_BREAK_DELAY_MS = 1_500
/** Peers remembered at most (a classroom is tens). */
export const MAX_PEERS = 256

export interface MdnsInit {
  /** Interface names to use; empty or absent: every up, multicast-capable IPv4 interface. */
  interfaces?: string[]
  queryIntervalMs?: number
  /** TTL of our records, seconds. */
  ttl?: number
  linkPollMs?: number
  port?: number
}

interface Known { addrs: string[], expires: number }

/** A running mDNS responder and querier; what it finds goes to the dialer. */
export class MdnsDiscovery implements MeshComponent {
  readonly name = 'mdns'
  private readonly components: MeshComponents
  private readonly log: Logger
  private readonly init: Required<Omit<MdnsInit, 'interfaces'>> & { interfaces: string[] }
  private readonly peerId: string
  private socket?: Socket
  private links: Link[] = []
  private adverts = new Map<string, Advert>() // by link address
  private readonly known = new Map<string, Known>()
  private readonly timers = new Set<NodeJS.Timeout>()
  private queryTimer?: NodeJS.Timeout
  private pollTimer?: NodeJS.Timeout
  private sendChain: Promise<void> = Promise.resolve()
  private readonly pending = new Map<string, { packet: Partial<Packet>, timer: NodeJS.Timeout }>()
  private readonly warned = new Set<string>()
  private readonly recentlySent: Array<{ bytes: Buffer, at: number }> = []
  private stopped = false
  private lastShape = ''

  constructor (components: MeshComponents, init: MdnsInit = {}) {
    this.components = components
    this.log = components.logger.child('mdns')
    this.peerId = components.node.peerId.toString()
    this.init = {
      interfaces: init.interfaces ?? [],
      queryIntervalMs: init.queryIntervalMs ?? DEFAULT_QUERY_INTERVAL_MS,
      ttl: init.ttl ?? DEFAULT_TTL,
      linkPollMs: init.linkPollMs ?? DEFAULT_LINK_POLL_MS,
      port: init.port ?? MDNS_PORT
    }
  }

  async start (): Promise<void> {
    const socket = createSocket({ type: 'udp4', reuseAddr: true })
    socket.on('message', (msg, rinfo) => { this.receive(msg, rinfo.address, rinfo.port) })
    socket.on('error', err => { this.log.error('socket error', { error: err }) })
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject)
        socket.bind(this.init.port, () => { socket.off('error', reject); resolve() })
      })
    } catch (err) {
      socket.close()
      this.log.error(`cannot bind UDP ${this.init.port}: mDNS discovery is off (another program holds the port without SO_REUSEADDR); use --peer`, { error: err })
      return
    }
    socket.setMulticastTTL(255)
    socket.setMulticastLoopback(true) // agents sharing a machine or namespace see each other
    this.socket = socket
    this.refresh(true)
    this.components.node.addEventListener('self:peer:update', this.onSelfUpdate)
    this.pollTimer = setInterval(() => { this.refresh(false) }, this.init.linkPollMs)
    this.queryTimer = setInterval(() => { this.query() }, this.init.queryIntervalMs)
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.components.node.removeEventListener('self:peer:update', this.onSelfUpdate)
    clearInterval(this.pollTimer)
    clearInterval(this.queryTimer)
    for (const t of this.timers) clearTimeout(t)
    for (const p of this.pending.values()) clearTimeout(p.timer)
    if (this.socket === undefined) return
    // goodbye: peers drop us at once instead of dialling a stopped agent until the TTL runs out
    for (const link of this.links) {
      const ad = this.adverts.get(link.address)
      if (ad !== undefined) this.send(link, encodePacket(announcement({ ...ad, ttl: 0 })))
    }
    await this.sendChain
    await new Promise<void>(resolve => { this.socket!.close(() => { resolve() }) })
  }

  status (): StatusPart {
    return { extra: { links: this.links.map(l => `${l.name} ${l.address}`), peers: this.known.size } }
  }

  private readonly onSelfUpdate = (): void => { this.refresh(false) }

  /** Our TCP multiaddrs (no /p2p/) and whether every one of them is loopback. */
  private listenAddrs (): { addrs: string[], loopbackOnly: boolean } {
    const addrs: string[] = []
    for (const ma of this.components.node.getMultiaddrs()) {
      const c = ma.getComponents()
      if (c[0]?.name !== 'ip4' || c[1]?.name !== 'tcp' || c.length > 3) continue
      addrs.push(`/ip4/${c[0].value}/tcp/${c[1].value}`)
    }
    return { addrs, loopbackOnly: addrs.length > 0 && addrs.every(a => a.startsWith('/ip4/127.')) }
  }

  /** Re-reads links and addresses; joins new links and announces when anything changed (or `force`). */
  private refresh (force: boolean): void {
    if (this.socket === undefined || this.stopped) return
    const { addrs, loopbackOnly } = this.listenAddrs()
    const links = multicastLinks({ loopback: loopbackOnly, only: this.init.interfaces })
    const adverts = new Map<string, Advert>()
    for (const link of links) {
      // only what is reachable on this link: its own address, never loopback (unless all we have is loopback)
      const here = addrs.filter(a => a.startsWith(`/ip4/${link.address}/tcp/`))
      if (here.length === 0) continue
      const port = Number(here[0]!.split('/')[4])
      adverts.set(link.address, { peerId: this.peerId, port, addresses: [link.address], multiaddrs: here, ttl: this.init.ttl })
    }
    const shape = JSON.stringify([links, [...adverts.values()]])
    if (!force && shape === this.lastShape) return
    this.lastShape = shape
    const old = this.links
    for (const link of links) {
      if (old.some(l => l.name === link.name && l.address === link.address)) continue
      try {
        this.socket.addMembership(MDNS_GROUP, link.address)
      } catch (err) {
        // EADDRINUSE: already a member (the same address came back)
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') this.log.warn('cannot join the mDNS group', { link: link.name, address: link.address, error: err })
      }
    }
    for (const link of old) {
      if (links.some(l => l.name === link.name && l.address === link.address)) continue
      try { this.socket.dropMembership(MDNS_GROUP, link.address) } catch { /* the address is gone with the link */ }
    }
    this.links = links
    this.adverts = adverts
    this.checkLinks(addrs)
    this.log.info('announcing', { links: links.map(l => `${l.name} ${l.address}`), addrs: [...adverts.values()].flatMap(a => a.multiaddrs) })
    this.announce()
    this.query()
    // RFC 6762 §8.3: a second announcement one second later, in case the first was lost
    const again = setTimeout(() => { this.timers.delete(again); this.announce() }, 1_000)
    this.timers.add(again)
  }

  /** One clear warning per situation that keeps peers from finding us. */
  private checkLinks (addrs: string[]): void {
    const warnOnce = (key: string, msg: string, fields: Record<string, unknown>): void => {
      if (this.warned.has(key)) return
      this.warned.add(key)
      this.log.warn(msg, fields)
    }
    if (this.links.length === 0) {
      warnOnce('no-links', 'no up, multicast-capable IPv4 interface: nothing to announce on; waiting for one (peers can still be given with --peer)', { interfaces: this.init.interfaces })
      return
    }
    this.warned.delete('no-links')
    if (this.adverts.size === 0) warnOnce('no-addrs', 'no listen address on any multicast link: peers can find nothing to dial (listen on 0.0.0.0 or on a link\'s address)', { addrs })
    const routed = multicastRouteInterfaces()
    if (routed !== undefined && routed.length === 0) {
      warnOnce('no-route', `no multicast route (224.0.0.0/4): xo-mesh still sends on each link, but other mDNS software may not; add one with: ip route add 224.0.0.0/4 dev ${this.links[0]!.name}`, { links: this.links.map(l => l.name) })
    }
  }

  private announce (): void {
    for (const link of this.links) {
      const ad = this.adverts.get(link.address)
      if (ad !== undefined) this.send(link, encodePacket(announcement(ad)))
    }
  }

  private query (): void {
    if (this.socket === undefined || this.stopped) return
    const now = Date.now()
    const known: Array<{ peerId: string, ttl: number }> = []
    for (const [peerId, k] of this.known) {
      if (k.expires <= now) { this.known.delete(peerId); continue }
      known.push({ peerId, ttl: Math.floor((k.expires - now) / 1000) })
    }
    const packet = encodePacket(serviceQuery(known))
    for (const link of this.links) this.send(link, packet)
  }

  /** Queues one packet on one link (sends are serialised: IP_MULTICAST_IF is per socket). */
  private send (link: Link, bytes: Uint8Array, to?: { address: string, port: number }): void {
    const socket = this.socket
    if (socket === undefined) return
    this.sendChain = this.sendChain.then(async () => {
      try {
        if (to === undefined) socket.setMulticastInterface(link.address)
        await new Promise<void>((resolve, reject) => {
          socket.send(bytes, to?.port ?? this.init.port, to?.address ?? MDNS_GROUP, err => { if (err != null) reject(err); else resolve() })
        })
        if (to === undefined) {
          this.recentlySent.push({ bytes: Buffer.from(bytes), at: Date.now() })
          if (this.recentlySent.length > 8) this.recentlySent.shift()
        }
        if (this.warned.delete(`send ${link.name}`)) this.log.info('sending again', { link: link.name })
      } catch (err) {
        const key = `send ${link.name}`
        if (!this.warned.has(key)) {
          this.warned.add(key)
          const code = (err as NodeJS.ErrnoException).code
          this.log.warn(code === 'ENETUNREACH'
            ? `cannot send mDNS on ${link.name}: no multicast route; add one with: ip route add 224.0.0.0/4 dev ${link.name}`
            : `cannot send mDNS on ${link.name}`, { link: link.name, error: err })
        }
      }
    })
  }

  private receive (msg: Buffer, address: string, port: number): void {
    if (this.stopped) return
    // our own multicast, looped back: skip (a query we sent would draw our own answer)
    const now = Date.now()
    if (port === this.init.port && this.recentlySent.some(s => now - s.at < 2_000 && s.bytes.equals(msg))) return
    let packet: Packet
    try {
      packet = decodePacket(msg)
    } catch (err) {
      if (err instanceof DnsPacketError) this.log.debug('malformed mDNS packet', { from: address, error: err.message })
      else throw err
      return
    }
    if (packet.response) this.onResponse(packet, address)
    else if (packet.questions.length > 0) this.onQuery(packet, address, port)
  }

  private onQuery (query: Packet, from: string, port: number): void {
    const links = this.links.filter(l => onLink(l, from))
    const legacy = port !== this.init.port
    // a query from an address on none of our subnets (link-local, a misconfigured peer): answer on every link
    for (const link of links.length > 0 ? links : this.links) {
      const ad = this.adverts.get(link.address)
      if (ad === undefined) continue
      const answer = answerQuery(query, ad)
      if (answer === undefined) continue
      if (legacy) {
        // RFC 6762 §6.7: a one-shot resolver (dig -p 5353) gets a unicast reply with its id and question, short TTLs, no cache-flush
        const clip = (r: typeof answer.answers[number]): typeof r => ({ ...r, ttl: Math.min(r.ttl, 10), flush: false })
        this.send(link, encodePacket({ id: query.id, response: true, authoritative: true, questions: query.questions, answers: answer.answers.map(clip), additionals: answer.additionals.map(clip) }), { address: from, port })
        continue
      }
      this.respond(link, answer.answers, answer.additionals, answer.shared ? 20 + Math.random() * 100 : 0)
    }
  }

  /** Sends a response on a link now or after `delayMs`, merged with one already waiting there. */
  private respond (link: Link, answers: Packet['answers'], additionals: Packet['additionals'], delayMs: number): void {
    const waiting = this.pending.get(link.address)
    if (waiting !== undefined) {
      const p = waiting.packet
      for (const a of answers) if (!p.answers!.some(x => JSON.stringify(x) === JSON.stringify(a))) p.answers!.push(a)
      for (const a of additionals) if (!p.additionals!.some(x => JSON.stringify(x) === JSON.stringify(a))) p.additionals!.push(a)
      if (delayMs > 0) return
      clearTimeout(waiting.timer)
      this.pending.delete(link.address)
      this.send(link, encodePacket(p))
      return
    }
    const packet: Partial<Packet> = { response: true, authoritative: true, answers: [...answers], additionals: [...additionals] }
    if (delayMs === 0) { this.send(link, encodePacket(packet)); return }
    const timer = setTimeout(() => {
      this.pending.delete(link.address)
      this.send(link, encodePacket(packet))
    }, delayMs)
    this.pending.set(link.address, { packet, timer })
  }

  private onResponse (packet: Packet, from: string): void {
    for (const peer of peersInResponse(packet)) {
      if (peer.peerId === this.peerId) continue
      try {
        peerIdFromString(peer.peerId)
      } catch {
        this.log.debug('ignoring a record with an invalid peer id', { from, peerId: peer.peerId })
        continue
      }
      if (peer.ttl === 0) {
        if (this.known.delete(peer.peerId)) this.log.info('peer said goodbye', { peerId: peer.peerId })
        this.components.dialer.unwant(peer.peerId)
        continue
      }
      if (peer.addrs.length === 0) continue
      const isNew = !this.known.has(peer.peerId)
      if (isNew && this.known.size >= MAX_PEERS) continue
      const expires = Date.now() + peer.ttl * 1000
      this.known.set(peer.peerId, { addrs: peer.addrs, expires })
      if (isNew) this.log.info('found peer', { peerId: peer.peerId, addrs: peer.addrs, from })
      this.components.dialer.want(peer.peerId, {
        peerId: peer.peerId,
        addrs: peer.addrs,
        via: 'mdns',
        until: expires,
        // both sides learn of each other at once: the smaller peer id dials, the other only if that did not happen
        delayMs: this.peerId < peer.peerId ? 0 : TIE_BREAK_DELAY_MS
      })
    }
  }
}

/** The mDNS discovery component. */
export function mdnsDiscovery (init: MdnsInit = {}): ComponentFactory<MdnsDiscovery> {
  return components => new MdnsDiscovery(components, init)
}
