// The libp2p driver of /xo-mesh/election/1.0.0 (protocols/election.md): feeds
// the sans-IO election core (src/core/election) with what happens on streams
// and on the clock, and carries out what it decides. The only code that
// touches the election's streams.
//
//   streams   per neighbour: the stream we open carries our frames, the one it
//             opens carries its frames (each used one way, as in blocks)
//   the clock performance.now(); one timer at core.nextDeadline()
//   facts     the agent's `facts()` (power, battery, disk, uptime, upstream),
//             re-read every factsIntervalMs and fed as `capability`
//   disk      DATA/election.json: incarnation and highest term (state.ts)
//   the agent role events on the bus ('election:role') and in the log,
//             status (role, server, term), each neighbour's facts for /peers
//
// Election frames are small and repeat every heartbeat: when a neighbour does
// not read, frames to it are dropped rather than queued.
import type { Connection, Stream, StreamMessageEvent } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { Election, FrameReader, InvalidMessageError, PROTOCOL, decodeFrame, encodeFrame } from '../../core/election/index.ts'
import type { Capability, ElectionConfig, ElectionInput, ElectionOutput, RoleState } from '../../core/election/index.ts'
import type { MeshComponent, MeshComponents, StatusPart } from '../component.ts'
import type { Logger } from '../logger.ts'
import { CoreRunner } from '../core-runner.ts'
import { ed25519Authenticator } from './keys.ts'
import { readState, writeState } from './state.ts'

declare module '../events.ts' {
  interface MeshEvents {
    /** The election's view changed: this agent's role, the server it follows, or the term. */
    'election:role': RoleState & { previous: RoleState }
  }
}

export interface ElectionDriverInit {
  /** Reads this agent's facts (the agent knows where: /sys, statfs, the upstream check). */
  facts: () => Capability | Promise<Capability>
  /** How often the facts are re-read, ms (default 10 000). */
  factsIntervalMs?: number
  /** Timers of the core (protocols/election.md; the core's defaults when absent). */
  config?: Partial<ElectionConfig>
  /** Opening our stream may take this long, ms (default 10 000). */
  openTimeoutMs?: number
}

/** One neighbour's election streams. */
interface Link {
  peer: string
  out: Stream | undefined
  in: Stream | undefined
  opening: boolean
  /** The core was told neighbour-up. */
  up: boolean
  reader: FrameReader
  detachIn: (() => void) | undefined
  retry: NodeJS.Timeout | undefined
  retryDelay: number
  dropped: number
}

const RETRY_MIN_MS = 1000
const RETRY_MAX_MS = 30_000

export class ElectionDriver implements MeshComponent {
  readonly name = 'election'
  core: Election | undefined
  private readonly c: MeshComponents
  private readonly init: ElectionDriverInit
  private readonly log: Logger
  private readonly links = new Map<string, Link>()
  private readonly bans = new Map<string, { until: number, reason: string, at: string }>()
  private runner: CoreRunner<ElectionInput, ElectionOutput> | undefined
  private factsTimer: NodeJS.Timeout | undefined
  private readonly unsubscribe: Array<() => void> = []
  private stopped = false
  private savedTerm = 0
  private saving: Promise<void> = Promise.resolve()
  /** Role events so far (status). */
  private changes = 0
  private lastChange: string | null = null

  constructor (components: MeshComponents, init: ElectionDriverInit) {
    this.c = components
    this.init = init
    this.log = components.logger.child('election')
  }

  private now (): number {
    return performance.now()
  }

  // ---- lifecycle --------------------------------------------------------------

  async beforeStart (): Promise<void> {
    const state = await readState(this.c.dataDir)
    // one more than the last start; the wall clock (seconds) keeps it growing even if the file was lost
    const incarnation = Math.max(state.incarnation + 1, Math.floor(Date.now() / 1000))
    await writeState(this.c.dataDir, { incarnation, term: state.term })
    this.savedTerm = state.term
    const capability = await this.init.facts()
    this.core = new Election({
      self: this.c.node.peerId.toString(),
      capability,
      authenticator: ed25519Authenticator(this.c.privateKey),
      random: Math.random,
      incarnation,
      term: state.term,
      config: this.init.config ?? {},
      now: this.now()
    })
    this.runner = new CoreRunner({ name: 'election', core: this.core, act: o => { this.act(o) }, now: () => this.now(), timer: { type: 'timer' }, log: this.log })
    this.log.info('election ready', { incarnation, term: state.term, capability, config: this.core.config })
    await this.c.node.handle(PROTOCOL, (stream, connection) => { this.onInbound(stream, connection) }, { maxInboundStreams: 2, maxOutboundStreams: 2 })
  }

  start (): void {
    const { events } = this.c
    this.unsubscribe.push(events.on('peer:connect', ({ peerId }) => { void this.open(peerId) }))
    this.unsubscribe.push(events.on('peer:disconnect', ({ peerId }) => { this.close(peerId, 'disconnected') }))
    for (const conn of this.c.node.getConnections()) void this.open(conn.remotePeer.toString())
    const interval = this.init.factsIntervalMs ?? 10_000
    const refresh = async (): Promise<void> => {
      try {
        const capability = await this.init.facts()
        this.input({ type: 'capability', capability })
      } catch (err) {
        this.log.warn('reading the facts failed', { error: err })
      }
      if (!this.stopped) {
        this.factsTimer = setTimeout(() => { void refresh() }, interval)
        this.factsTimer.unref()
      }
    }
    this.factsTimer = setTimeout(() => { void refresh() }, interval)
    this.factsTimer.unref()
    this.input({ type: 'timer' })
  }

  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    for (const u of this.unsubscribe.splice(0)) u()
    this.runner?.stop()
    clearTimeout(this.factsTimer)
    for (const peer of [...this.links.keys()]) this.close(peer, 'the agent stops')
    try {
      await this.c.node.unhandle(PROTOCOL)
    } catch (err) {
      this.log.debug('unhandle failed', { error: err })
    }
    await this.saving
  }

  status (): StatusPart {
    const s = this.core?.state() ?? { role: 'peer' as const, server: null, term: 0 }
    const now = this.now()
    return {
      role: s.role,
      server: s.server,
      term: s.term,
      extra: {
        capability: this.core?.ownCapability() ?? null,
        incarnation: this.core?.currentIncarnation() ?? 0,
        neighbours: [...this.links.values()].filter(l => l.up).length,
        claims: this.core?.claims().map(c => ({ peerId: c.peer, serving: c.serving, term: c.term, hops: c.hops, age_ms: Math.round(now - c.heardAt) })) ?? [],
        changes: this.changes,
        last_change: this.lastChange,
        config: this.core?.config ?? null,
        stats: this.core?.stats ?? null,
        bans: [...this.bans].filter(([, b]) => b.until > now).map(([peerId, b]) => ({ peerId, reason: b.reason, since: b.at }))
      }
    }
  }

  peerInfo (peerId: string): Record<string, unknown> | undefined {
    const n = this.core?.neighbours().find(x => x.peer === peerId)
    const known = this.core?.claims().find(c => c.peer === peerId)
    if (n === undefined && known === undefined) return undefined
    return {
      capability: n?.capability ?? known?.capability ?? null,
      serving: n?.serving ?? known?.serving ?? false,
      term: n?.term ?? known?.term ?? 0,
      dropped_frames: this.links.get(peerId)?.dropped ?? 0
    }
  }

  // ---- the core ---------------------------------------------------------------

  /** Feeds an input (queued behind the one being handled), carries out the outputs, re-arms the timer. */
  input (input: ElectionInput): void {
    if (this.core === undefined || (this.stopped && input.type !== 'neighbour-down')) return
    this.runner?.input(input)
  }

  private act (o: ElectionOutput): void {
    switch (o.type) {
      case 'send': {
        const l = this.links.get(o.peer)
        if (l !== undefined) this.write(l, encodeFrame(o.message))
        return
      }
      case 'broadcast': {
        const frame = encodeFrame(o.message)
        for (const l of this.links.values()) if (l.up && l.peer !== o.except) this.write(l, frame)
        return
      }
      case 'role': return this.onRole(o.state, o.previous)
      case 'ban': return this.onBan(o.peer, o.reason, o.until)
    }
  }

  private onRole (state: RoleState, previous: RoleState): void {
    this.changes++
    this.lastChange = new Date().toISOString()
    const what = state.role !== previous.role ? (state.role === 'server' ? 'this agent is now the school server' : 'this agent is no longer the school server') : 'the school server changed'
    this.log.info(what, { role: state.role, server: state.server, term: state.term, previous })
    this.c.events.emit('election:role', { ...state, previous })
    const term = this.core?.highestTerm() ?? 0
    if (term > this.savedTerm) {
      this.savedTerm = term
      const incarnation = this.core?.currentIncarnation() ?? 0
      this.saving = this.saving.then(async () => { await writeState(this.c.dataDir, { incarnation, term }) }).catch(err => { this.log.warn('saving the election state failed', { error: err }) })
    }
  }

  private onBan (peer: string, reason: string, until: number): void {
    this.bans.set(peer, { until, reason, at: new Date().toISOString() })
    if (this.bans.size > 1024) this.bans.delete(this.bans.keys().next().value!)
    this.log.warn('peer banned from the election', { peerId: peer, reason, for_s: Math.round((until - this.now()) / 1000) })
    this.close(peer, `banned: ${reason}`)
    const t = setTimeout(() => { if (!this.stopped && this.connectionTo(peer) !== undefined) void this.open(peer) }, Math.max(0, until - this.now()) + 1000)
    t.unref()
  }

  private isBanned (peer: string): boolean {
    const b = this.bans.get(peer)
    return b !== undefined && b.until > this.now()
  }

  // ---- streams ----------------------------------------------------------------

  private linkOf (peer: string): Link {
    let l = this.links.get(peer)
    if (l === undefined) {
      l = { peer, out: undefined, in: undefined, opening: false, up: false, reader: new FrameReader(), detachIn: undefined, retry: undefined, retryDelay: 0, dropped: 0 }
      this.links.set(peer, l)
    }
    return l
  }

  private connectionTo (peer: string): Connection | undefined {
    try {
      return this.c.node.getConnections(peerIdFromString(peer)).find(c => c.status === 'open')
    } catch {
      return undefined
    }
  }

  /** Opens our stream to a connected peer and tells the core it is a neighbour. */
  private async open (peer: string): Promise<void> {
    if (this.stopped || this.isBanned(peer)) return
    const l = this.linkOf(peer)
    if (l.out !== undefined || l.opening) return
    const conn = this.connectionTo(peer)
    if (conn === undefined) return
    l.opening = true
    let stream: Stream
    try {
      stream = await conn.newStream(PROTOCOL, { signal: AbortSignal.timeout(this.init.openTimeoutMs ?? 10_000) })
    } catch (err) {
      l.opening = false
      if ((err as Error).name === 'UnsupportedProtocolError') {
        this.log.debug('the peer does not take part in the election', { peerId: peer })
        return
      }
      this.log.debug('cannot open an election stream', { peerId: peer, error: err })
      this.retry(l)
      return
    }
    l.opening = false
    if (this.stopped || this.isBanned(peer) || this.links.get(peer) !== l) {
      try { stream.abort(new Error('closed meanwhile')) } catch { /* closed */ }
      return
    }
    l.out = stream
    l.retryDelay = 0
    // the accepting side never writes on our stream: whatever comes is dropped
    stream.addEventListener('message', () => {})
    stream.addEventListener('close', () => {
      if (l.out !== stream) return
      l.out = undefined
      if (l.up) {
        l.up = false
        this.input({ type: 'neighbour-down', peer })
      }
      this.retry(l)
    })
    l.up = true
    this.log.debug('election link up', { peerId: peer })
    this.input({ type: 'neighbour-up', peer })
  }

  /** Tries our stream again later while the connection lasts (a reset stream, a slow peer). */
  private retry (l: Link): void {
    if (this.stopped || l.retry !== undefined || this.links.get(l.peer) !== l) return
    l.retryDelay = Math.min(RETRY_MAX_MS, Math.max(RETRY_MIN_MS, l.retryDelay * 2))
    l.retry = setTimeout(() => {
      l.retry = undefined
      if (this.connectionTo(l.peer) !== undefined) void this.open(l.peer)
    }, Math.round(l.retryDelay * (0.8 + 0.4 * Math.random())))
    l.retry.unref()
  }

  private onInbound (stream: Stream, connection: Connection): void {
    const peer = connection.remotePeer.toString()
    if (this.stopped || this.isBanned(peer)) {
      try { stream.abort(new Error('refused')) } catch { /* closed */ }
      return
    }
    const l = this.linkOf(peer)
    // a second stream replaces the first, and starts at a frame boundary
    l.detachIn?.()
    if (l.in !== undefined) {
      try { l.in.abort(new Error('replaced by a newer stream')) } catch { /* closed */ }
    }
    l.in = stream
    l.reader = new FrameReader()
    const onMessage = (evt: StreamMessageEvent): void => { this.onData(l, evt.data) }
    const onClose = (): void => {
      if (l.in === stream) { l.detachIn?.(); l.in = undefined }
    }
    stream.addEventListener('message', onMessage)
    stream.addEventListener('close', onClose)
    l.detachIn = () => {
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
      l.detachIn = undefined
    }
    if (l.out === undefined && !l.opening) void this.open(peer)
  }

  private onData (l: Link, data: Uint8Array | { [Symbol.iterator]: () => Iterator<Uint8Array>, byteLength: number }): void {
    this.c.traffic.add(l.peer, 0, data.byteLength)
    try {
      const chunks = data instanceof Uint8Array ? [data] : [...data]
      for (const chunk of chunks) {
        for (const body of l.reader.push(chunk)) {
          if (this.links.get(l.peer) !== l || this.isBanned(l.peer)) return
          this.input({ type: 'message', peer: l.peer, message: decodeFrame(body) })
        }
      }
    } catch (err) {
      const reason = err instanceof InvalidMessageError ? err.message : `reading a frame failed: ${(err as Error).message}`
      this.input({ type: 'malformed', peer: l.peer, reason })
    }
  }

  private write (l: Link, frame: Uint8Array): void {
    const s = l.out
    if (s === undefined || s.status !== 'open' || s.writeStatus !== 'writable') return
    if (s.writableNeedsDrain) {
      l.dropped++
      return
    }
    try {
      s.send(frame)
      this.c.traffic.add(l.peer, frame.length, 0)
    } catch (err) {
      this.log.debug('writing an election frame failed', { peerId: l.peer, error: err })
    }
  }

  /** Closes a neighbour's streams and forgets it (the core hears neighbour-down). */
  private close (peer: string, why: string): void {
    const l = this.links.get(peer)
    if (l === undefined) return
    this.links.delete(peer)
    clearTimeout(l.retry)
    l.detachIn?.()
    const err = new Error(why)
    for (const s of [l.in, l.out]) {
      if (s === undefined) continue
      try { s.abort(err) } catch { /* closed */ }
    }
    if (l.up) {
      l.up = false
      this.input({ type: 'neighbour-down', peer })
    }
  }
}
