// The libp2p driver of /xo-mesh/relay/1.0.0 (protocols/relay.md): feeds the
// sans-IO relay core (src/core/relay) with what happens on streams, on the
// clock and in the store, and carries out what it decides.
//
//   upstream   one stream we open to the next hop (NextHop: config today, the
//              election later), kept connected through the dialer; offers go
//              out on it and receipts come back on it
//   downstream the streams peers open to us: their offers in, our receipts out
//   the store  an Outbox (laptop, school server, staging agent) or, with
//              `sink`, the MothershipStore; both answer accept() durably before
//              the receipt is written
//
// Peer ids given to the core are the Noise-authenticated remote peers of the
// connections, so a receipt is believed only from the peer the batch went to.
// Inputs are queued and fed one at a time (the core is not re-entrant).
import type { Connection, Stream } from '@libp2p/interface'
import { PROTOCOL, Relay, encodeFrame } from '../../core/relay/index.ts'
import type { Item, ItemKind, RelayInit as CoreInit, RelayInput, RelayOutput } from '../../core/relay/index.ts'
import { Outbox, OutboxFullError } from '../../store/outbox.ts'
import type { AcceptResult } from '../../store/outbox.ts'
import { MothershipStore } from '../../store/mothership.ts'
import type { MeshComponent, MeshComponents, StatusPart } from '../component.ts'
import type { Logger } from '../logger.ts'
import { CoreRunner } from '../core-runner.ts'
import type { NextHop, UpstreamHop } from './next-hop.ts'
import { mothershipTrip, schoolTrip, type SchoolAnswer, type SchoolTripResult } from '../../store/usb.ts'
import { publicKeyOfPeer, signingKeyOf, type UsbInit } from './usb.ts'
import { RelayStream } from './stream.ts'

declare module '../events.ts' {
  interface MeshEvents {
    /** Ask the relay to read its NextHop again now (the election moved the server role). */
    'relay:next-hop-changed': Record<string, never>
  }
}

export interface RelayDriverInit {
  /** The next hop towards the mothership; default: none. */
  nextHop?: NextHop
  /** How often nextHop is read again, ms (default 5000). */
  nextHopPollMs?: number
  /** This agent is the mothership: items end in DATA/mothership.db and go no further. */
  sink?: boolean
  /** Take custody of others' items (default true). */
  accept?: boolean
  /** Bytes of item bodies the outbox holds at most (default: the outbox's). */
  maxBytes?: number
  /** Opening our stream may take this long; a write may wait this long for the peer to read, ms (10 000, 30 000). */
  openTimeoutMs?: number
  writeTimeoutMs?: number
  /** Core tuning (tests, benchmarks). */
  core?: Partial<Omit<CoreInit, 'random'>>
  /** What the USB round trip needs from the config. */
  usb?: UsbInit
  /**
   * Called with the items of each offer before they are stored for custody
   * (a school server keeps the backup chunks it relays, src/net/backup). It
   * runs first so that what a receipt vouches for has been seen by it; it
   * must not throw (a throw refuses the offer).
   */
  beforeCustody?: (items: Item[]) => void
}

/** What one `xo-mesh usb` run did. */
export type UsbTripResult = ({ role: 'school' } & SchoolTripResult) | { role: 'mothership', schools: SchoolAnswer[] }

const DIAL_KEY = 'relay-upstream'
/** Offers stored in one transaction at most (8 × 256 items: a fraction of a second of the disk). */
const PERSIST_GROUP = 8

export class RelayDriver implements MeshComponent {
  readonly name = 'relay'
  readonly outbox: Outbox | undefined
  readonly sinkStore: MothershipStore | undefined
  readonly core: Relay
  private readonly c: MeshComponents
  private readonly log: Logger
  private readonly init: Required<Pick<RelayDriverInit, 'nextHopPollMs' | 'openTimeoutMs' | 'writeTimeoutMs'>> & RelayDriverInit
  private hop: UpstreamHop | null = null
  private up: RelayStream | undefined
  private opening = false
  private readonly downstream = new Map<string, RelayStream>()
  private readonly runner: CoreRunner<RelayInput, RelayOutput>
  private readonly persists: Array<Extract<RelayOutput, { type: 'persist' }>> = []
  private persistTimer: NodeJS.Immediate | undefined
  private poll: NodeJS.Timeout | undefined
  private reopen: NodeJS.Timeout | undefined
  private readonly unsubscribe: Array<() => void> = []
  private stopped = false
  private trips: Promise<unknown> = Promise.resolve()
  /** When the next hop last answered (a receipt or a refusal), ms since the epoch. */
  private lastUpstream: number | undefined
  /** Items taken into custody, and duplicates dropped, since start. */
  readonly counters = { itemsAccepted: 0, duplicatesDropped: 0, itemsForgotten: 0, malformedFrames: 0 }

  constructor (components: MeshComponents, init: RelayDriverInit = {}) {
    this.c = components
    this.log = components.logger.child('relay')
    this.init = { nextHopPollMs: 5_000, openTimeoutMs: 10_000, writeTimeoutMs: 30_000, ...init }
    if (init.sink === true) this.sinkStore = MothershipStore.open(components.dataDir)
    else this.outbox = Outbox.open(components.dataDir, init.maxBytes !== undefined ? { maxBytes: init.maxBytes } : {})
    this.core = new Relay({ random: Math.random, accept: init.accept ?? true, ...init.core })
    this.runner = new CoreRunner({ name: 'relay', core: this.core, act: o => { this.act(o) }, now: () => performance.now(), timer: { type: 'timer' }, log: this.log })
  }

  private get self (): string { return this.c.node.peerId.toString() }

  // ---- lifecycle ----------------------------------------------------------------

  async beforeStart (): Promise<void> {
    await this.c.node.handle(PROTOCOL, (stream, connection) => { this.onInbound(stream, connection) }, { maxInboundStreams: 4, maxOutboundStreams: 4 })
  }

  start (): void {
    const { events } = this.c
    this.unsubscribe.push(events.on('peer:connect', ({ peerId }) => { if (peerId === this.hop?.peerId) void this.openUpstream() }))
    this.unsubscribe.push(events.on('peer:disconnect', ({ peerId }) => {
      if (peerId === this.hop?.peerId) this.up?.end('disconnected')
      this.downstream.get(peerId)?.end('disconnected')
    }))
    this.unsubscribe.push(events.on('relay:next-hop-changed', () => { this.readNextHop() }))
    this.readNextHop()
    this.poll = setInterval(() => { this.readNextHop() }, this.init.nextHopPollMs)
    this.poll.unref()
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    for (const u of this.unsubscribe.splice(0)) u()
    clearInterval(this.poll)
    this.runner.stop()
    clearTimeout(this.reopen)
    if (this.persistTimer !== undefined) clearImmediate(this.persistTimer)
    try { await this.c.node.unhandle(PROTOCOL) } catch { /* stopping anyway */ }
    this.up?.end('the agent stops')
    for (const s of [...this.downstream.values()]) s.end('the agent stops')
    this.outbox?.close()
    this.sinkStore?.close()
  }

  status (): StatusPart {
    return { extra: this.summary() }
  }

  /** What GET /api/v1/relay and the status show. */
  summary (): Record<string, unknown> {
    return {
      upstream: this.hop?.peerId ?? null,
      upstream_connected: this.up !== undefined && !this.up.ended,
      last_upstream_contact: this.lastUpstream !== undefined ? new Date(this.lastUpstream).toISOString() : null,
      sink: this.sinkStore !== undefined,
      outbox: this.outbox?.size ?? null,
      batches_in_flight: this.core.batchesInFlight,
      downstream: [...this.downstream.keys()],
      ...this.counters,
      core: this.core.stats
    }
  }

  // ---- this agent's own items -----------------------------------------------------

  /**
   * Adds an item of this agent's own to its outbox (durably) and lets the
   * relay offer it. On the mothership the item goes straight into its store.
   * Throws OutboxFullError when the outbox is full.
   */
  enqueue (kind: ItemKind, body: Uint8Array, created = Date.now()): Item {
    if (this.outbox === undefined) {
      // The mothership's own items (its install reports) go straight into its store.
      const it: Item = { origin: this.self, counter: this.sinkStore!.nextCounter(this.self), kind, created, body }
      this.sinkStore!.accept([it])
      return it
    }
    const it = this.outbox.enqueue(this.self, kind, body, created)
    this.input({ type: 'enqueued' })
    return it
  }

  /**
   * One USB round trip on the stick mounted at `stick` (docs/upstream.md):
   * on the mothership, ingest every school's outbox and write back receipts
   * and bundles; elsewhere, import the mothership's answer, then write the
   * outbox and the want-list. Trips run one at a time.
   */
  async usbTrip (stick: string): Promise<UsbTripResult> {
    const run = async (): Promise<UsbTripResult> => {
      const usb = this.init.usb ?? {}
      const base = { stick, dataDir: this.c.dataDir, self: this.self, repo: this.c.repo, now: Date.now() }
      if (this.sinkStore !== undefined) {
        return { role: 'mothership', schools: await mothershipTrip({ ...base, store: this.sinkStore, key: signingKeyOf(this.c.privateKey) }) }
      }
      const key = usb.mothership != null ? publicKeyOfPeer(usb.mothership) : undefined
      const r = await schoolTrip({ ...base, school: usb.school ?? null, outbox: this.outbox!, ...(key !== undefined ? { mothershipKey: key } : {}), ...(usb.rootKey !== undefined ? { rootKey: usb.rootKey } : {}) })
      this.counters.itemsForgotten += r.receipt.forgotten
      this.log.info('usb trip', { stick, receipt: r.receipt.status, reason: r.receipt.reason, forgotten: r.receipt.forgotten, advisories: r.advisories.status, builds: r.builds.length, written: r.written.items })
      return { role: 'school', ...r }
    }
    const p = this.trips.then(run, run)
    this.trips = p.catch(() => {})
    return await p
  }

  // ---- the next hop -----------------------------------------------------------------

  private readNextHop (): void {
    if (this.stopped) return
    let next: UpstreamHop | null = null
    try {
      next = this.sinkStore !== undefined ? null : (this.init.nextHop?.() ?? null)
    } catch (err) {
      this.log.warn('reading the next hop failed', { error: err })
    }
    if (next?.peerId === this.self) next = null // never our own upstream
    if (next?.peerId === this.hop?.peerId) return
    this.log.info('next hop', { peerId: next?.peerId ?? null })
    this.up?.end('the next hop changed')
    this.up = undefined
    this.hop = next
    this.c.dialer.unwant(DIAL_KEY)
    this.input({ type: 'upstream', peer: next?.peerId ?? null })
    if (next !== null) {
      if (next.addrs.length > 0) this.c.dialer.want(DIAL_KEY, { peerId: next.peerId, addrs: next.addrs, via: 'static' })
      void this.openUpstream()
    }
  }

  private connectionTo (peer: string): Connection | undefined {
    return this.c.node.getConnections().find(c => c.remotePeer.toString() === peer && c.status === 'open')
  }

  private async openUpstream (): Promise<void> {
    const hop = this.hop
    if (this.stopped || hop === null || this.opening || (this.up !== undefined && !this.up.ended)) return
    const conn = this.connectionTo(hop.peerId)
    if (conn === undefined) return // the dialer connects; peer:connect brings us back
    this.opening = true
    let stream: Stream
    try {
      stream = await conn.newStream(PROTOCOL, { signal: AbortSignal.timeout(this.init.openTimeoutMs) })
    } catch (err) {
      this.opening = false
      this.log.debug('cannot open the relay stream upstream', { peerId: hop.peerId, error: err })
      this.scheduleReopen()
      return
    }
    this.opening = false
    if (this.stopped || this.hop?.peerId !== hop.peerId) {
      try { stream.abort(new Error('the next hop changed')) } catch { /* closed */ }
      return
    }
    const peer = hop.peerId
    const s: RelayStream = new RelayStream(peer, stream, {
      message: m => { this.lastUpstream = Date.now(); this.input({ type: 'message', peer, message: m }) },
      malformed: reason => { this.counters.malformedFrames++; this.log.warn('malformed frame from upstream', { peerId: peer, reason }) },
      ended: why => {
        if (this.up === s) this.up = undefined
        this.input({ type: 'disconnected', peer })
        this.log.debug('relay stream upstream ended', { peerId: peer, why })
        this.scheduleReopen()
      }
    }, this.init.writeTimeoutMs)
    this.up = s
    this.input({ type: 'connected', peer })
  }

  private scheduleReopen (): void {
    if (this.stopped || this.reopen !== undefined) return
    this.reopen = setTimeout(() => { this.reopen = undefined; void this.openUpstream() }, 1000 + Math.floor(Math.random() * 1000))
    this.reopen.unref()
  }

  private onInbound (stream: Stream, connection: Connection): void {
    const peer = connection.remotePeer.toString()
    if (this.stopped) {
      try { stream.abort(new Error('stopping')) } catch { /* closed */ }
      return
    }
    this.downstream.get(peer)?.end('replaced by a newer stream')
    const s: RelayStream = new RelayStream(peer, stream, {
      message: m => {
        // A receiver answers offers; receipts and refusals come only on the streams we open.
        if (m.type === 'offer') this.input({ type: 'message', peer, message: m })
        else s.end(`a ${m.type} on a stream the peer opened`, true)
      },
      malformed: reason => { this.counters.malformedFrames++; this.log.warn('malformed frame', { peerId: peer, reason }) },
      ended: () => {
        if (this.downstream.get(peer) === s) {
          this.downstream.delete(peer)
          if (peer !== this.hop?.peerId) this.input({ type: 'disconnected', peer })
        }
      }
    }, this.init.writeTimeoutMs)
    this.downstream.set(peer, s)
  }

  // ---- the core -------------------------------------------------------------------

  private input (input: RelayInput): void {
    if (this.stopped && input.type !== 'disconnected') return
    this.runner.input(input)
  }

  /**
   * Group commit: the offers gathered since the last turn go into the store
   * in one transaction on the mothership (one fsync for all), one each in an
   * outbox; their receipts follow. Between groups the event loop turns, so
   * streams keep being read and written while the disk works.
   */
  private flushPersists (): void {
    // A bounded group, so one commit never holds the event loop long (libp2p's pings must be answered).
    const group = this.persists.splice(0, PERSIST_GROUP)
    if (this.persists.length > 0 && this.persistTimer === undefined) this.persistTimer = setImmediate(() => { this.persistTimer = undefined; this.flushPersists() })
    if (group.length === 0 || this.stopped) return
    let results: AcceptResult[]
    try {
      if (this.init.beforeCustody !== undefined) for (const p of group) this.init.beforeCustody(p.items)
      results = this.outbox !== undefined ? group.map(p => this.outbox!.accept(p.items)) : this.sinkStore!.acceptMany(group.map(p => p.items))
    } catch (err) {
      // A full disk, a broken database: nothing was committed, so nothing is claimed.
      this.log.warn('storing offered items failed', { error: err, full: err instanceof OutboxFullError })
      results = group.map(() => ({ ok: false, reason: 'full' }))
    }
    group.forEach((p, i) => {
      const r = results[i]!
      if (!r.ok) {
        this.runner.enqueue({ type: 'refused', peer: p.peer, batch: p.batch, reason: r.reason })
        return
      }
      this.counters.itemsAccepted += r.added
      this.counters.duplicatesDropped += r.duplicates
      this.runner.enqueue({ type: 'persisted', peer: p.peer, batch: p.batch, custody: r.custody })
    })
  }

  private act (o: RelayOutput): void {
    switch (o.type) {
      case 'load': {
        const r = this.outbox?.load(o.after, o.maxItems, o.maxBytes) ?? { items: [], more: false }
        // handled by the pump now running, after the inputs already queued
        this.runner.enqueue({ type: 'loaded', request: o.request, items: r.items, more: r.more })
        return
      }
      case 'persist':
        // Stored on the next turn of the event loop, together with every offer that arrived meanwhile.
        this.persists.push(o)
        if (this.persistTimer === undefined) this.persistTimer = setImmediate(() => { this.persistTimer = undefined; this.flushPersists() })
        return
      case 'forget':
        if (this.outbox !== undefined) this.counters.itemsForgotten += this.outbox.forget(o.custody)
        return
      case 'send': {
        const s = o.message.type === 'offer' ? (this.up?.peer === o.peer ? this.up : undefined) : this.downstream.get(o.peer)
        if (s === undefined) return // the stream went away: the core hears of it and offers again
        const frame = encodeFrame(o.message)
        s.send(frame)
        this.c.traffic.add(o.peer, frame.length, 0)
        return
      }
      case 'event':
        if (o.event.type === 'receipt-ignored') this.log.warn('receipt ignored', o.event)
        else this.log.debug(o.event.type, o.event)
    }
  }
}
