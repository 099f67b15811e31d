// Keeps wanted peers connected. Static peers (config, --peer) are wanted for
// ever; peers found by mDNS until their record expires or says goodbye. A
// failed dial or a dropped connection is retried with exponential backoff and
// jitter, so a laptop that sleeps or walks out of range is picked up again
// without a storm of dials when the whole class comes back at once.
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Libp2p, PeerId } from '@libp2p/interface'
import type { Logger } from './logger.ts'
import type { EventBus } from './events.ts'

export const DEFAULT_BACKOFF_MIN_MS = 1_000
export const DEFAULT_BACKOFF_MAX_MS = 60_000

/** What to keep connected. */
export interface DialTarget {
  /** The peer's id when known (mDNS, a /p2p/ address); learnt on the first connection otherwise. */
  peerId?: string
  /** Addresses to dial, with or without /p2p/<id>. */
  addrs: string[]
  via: 'static' | 'mdns'
  /** Stop wanting it at this time (Date.now() ms); undefined: until unwant. */
  until?: number
  /** Wait this long before the first dial (ms). */
  delayMs?: number
}

/** Public face of the dialer, as components see it. */
export interface Dialer {
  /** Keeps a peer connected under `key` (replacing an earlier target with that key). */
  want (key: string, target: DialTarget): void
  /** Stops redialling `key`; an open connection stays open. */
  unwant (key: string): void
  /** How each connected peer was found, by peer id (for `xo-mesh peers`). */
  via (peerId: string): 'static' | 'mdns' | undefined
}

export interface DialerInit {
  backoffMinMs?: number
  backoffMaxMs?: number
  /** In [0, 1); tests pass a seeded one. */
  random?: () => number
}

interface Entry {
  target: DialTarget
  peerId?: string
  failures: number
  timer?: NodeJS.Timeout
  dialing: boolean
}

export class PeerDialer implements Dialer {
  readonly name = 'dialer'
  private readonly node: Libp2p
  private readonly log: Logger
  private readonly events: EventBus
  private readonly min: number
  private readonly max: number
  private readonly random: () => number
  private readonly entries = new Map<string, Entry>()
  private readonly found = new Map<string, 'static' | 'mdns'>()
  private unsubscribe?: () => void
  private stopped = true

  constructor (components: { node: Libp2p, logger: Logger, events: EventBus }, init: DialerInit = {}) {
    this.node = components.node
    this.log = components.logger.child('dialer')
    this.events = components.events
    this.min = init.backoffMinMs ?? DEFAULT_BACKOFF_MIN_MS
    this.max = init.backoffMaxMs ?? DEFAULT_BACKOFF_MAX_MS
    this.random = init.random ?? Math.random
  }

  start (): void {
    this.stopped = false
    this.unsubscribe = this.events.on('peer:disconnect', ({ peerId }) => {
      for (const [key, e] of this.entries) {
        if (e.peerId === peerId && !e.dialing) this.schedule(key, e, this.jitter(this.min))
      }
    })
    for (const [key, e] of this.entries) this.schedule(key, e, e.target.delayMs ?? 0)
  }

  stop (): void {
    this.stopped = true
    this.unsubscribe?.()
    for (const e of this.entries.values()) clearTimeout(e.timer)
  }

  want (key: string, target: DialTarget): void {
    const old = this.entries.get(key)
    const peerId = target.peerId ?? old?.peerId ?? peerIdOf(target.addrs)
    if (old !== undefined) {
      // a refresh (mDNS answers every query): new addresses and expiry, same backoff state
      old.target = target
      old.peerId = peerId
      if (old.timer === undefined && !old.dialing && !this.isConnected(peerId)) this.schedule(key, old, target.delayMs ?? 0)
      return
    }
    const e: Entry = { target, failures: 0, dialing: false, ...(peerId !== undefined ? { peerId } : {}) }
    this.entries.set(key, e)
    if (peerId !== undefined) {
      this.found.set(peerId, target.via)
      this.events.emit('peer:discovery', { peerId, addrs: target.addrs, via: target.via })
    }
    if (!this.stopped) this.schedule(key, e, target.delayMs ?? 0)
  }

  unwant (key: string): void {
    const e = this.entries.get(key)
    if (e === undefined) return
    clearTimeout(e.timer)
    this.entries.delete(key)
  }

  via (peerId: string): 'static' | 'mdns' | undefined {
    return this.found.get(peerId)
  }

  private isConnected (peerId: string | undefined): boolean {
    if (peerId === undefined) return false
    try {
      return this.node.getConnections(peerIdFromString(peerId)).some(c => c.status === 'open')
    } catch {
      return false
    }
  }

  /** delay × [0.8, 1.2): peers that lost the same link do not redial in step. */
  private jitter (ms: number): number {
    return Math.round(ms * (0.8 + 0.4 * this.random()))
  }

  private schedule (key: string, e: Entry, delayMs: number): void {
    clearTimeout(e.timer)
    e.timer = setTimeout(() => {
      e.timer = undefined
      void this.dial(key, e)
    }, delayMs)
  }

  private async dial (key: string, e: Entry): Promise<void> {
    if (this.stopped || this.entries.get(key) !== e || e.dialing) return
    if (e.target.until !== undefined && Date.now() > e.target.until) {
      this.log.debug('peer record expired', { key })
      this.entries.delete(key)
      return
    }
    if (this.isConnected(e.peerId)) {
      e.failures = 0
      return
    }
    const addrs = dialAddrs(e.target.addrs, e.peerId)
    if (addrs.length === 0) {
      this.log.warn('no usable address to dial', { key, addrs: e.target.addrs })
      this.entries.delete(key)
      return
    }
    e.dialing = true
    try {
      const target: Multiaddr | Multiaddr[] | PeerId = addrs.length === 1 ? addrs[0]! : addrs
      const connection = await this.node.dial(target)
      const peerId = connection.remotePeer.toString()
      if (e.failures > 0 || e.target.via === 'static') this.log.info('connected', { peerId, addr: connection.remoteAddr.toString(), via: e.target.via, ...(e.failures > 0 ? { after_failures: e.failures } : {}) })
      e.peerId = peerId
      e.failures = 0
      this.found.set(peerId, e.target.via)
    } catch (err) {
      if (this.stopped || this.entries.get(key) !== e) return
      e.failures++
      const delay = this.jitter(Math.min(this.max, this.min * 2 ** Math.min(e.failures - 1, 30)))
      // a static peer that cannot be reached is worth one line at warn; the retries are debug
      const level = e.failures === 1 && e.target.via === 'static' ? 'warn' : 'debug'
      this.log[level]('dial failed, will retry', { key, via: e.target.via, failures: e.failures, retry_ms: delay, error: err })
      this.schedule(key, e, delay)
    } finally {
      e.dialing = false
    }
  }
}

/** The peer id in a /p2p/ component of any of the addresses. */
function peerIdOf (addrs: string[]): string | undefined {
  for (const a of addrs) {
    try {
      const id = multiaddr(a).getComponents().findLast(c => c.name === 'p2p')?.value
      if (id !== undefined) return id
    } catch {
      // not a multiaddr: dialAddrs drops it
    }
  }
  return undefined
}

/** Parses the addresses, adding /p2p/<peerId> where it is known and missing. */
function dialAddrs (addrs: string[], peerId: string | undefined): Multiaddr[] {
  const out: Multiaddr[] = []
  for (const a of addrs) {
    try {
      let ma = multiaddr(a)
      if (peerId !== undefined && !ma.getComponents().some(c => c.name === 'p2p')) ma = ma.encapsulate(`/p2p/${peerId}`)
      out.push(ma)
    } catch {
      // skipped; the caller logs when nothing is left
    }
  }
  return out
}
