// The libp2p driver of /xo-mesh/advisory/1.0.0 (protocols/advisory.md): feeds
// the sans-IO advisory core (src/core/advisory) with streams and the clock,
// verifies with the trust layer against the laptop's persisted trust state,
// persists what it adopts before anything uses it, and turns the advisories
// that target this laptop into wanted builds (the `build:want` event, which
// the block exchange fetches).
//
//   peers      one stream out (our frames) and one in (theirs) per peer
//   the clock  performance.now() for the core; Date.now() for expiry, floored
//              by the highest clock ever seen (trust/policy.ts)
//   the disk   DATA/trust/state.cbor (trust/store.ts), written atomically;
//              re-read when `xo-mesh deploy accept` changes it (a stick)
import { stat } from 'node:fs/promises'
import type { Connection, Stream, StreamMessageEvent } from '@libp2p/interface'
import { Advisory, InvalidMessageError, PROTOCOL, decodeMessage, encodeMessage, type AdvisoryInput, type AdvisoryOutput, type AdvisoryMessage, type Held, type VerifyResult } from '../../core/advisory/index.ts'
import { MAX_MESSAGE_SIZE } from '../../core/advisory/constants.ts'
import { LengthPrefixedReader } from '../../core/wire/frames.ts'
import { putUvarint, uvarintLength } from '../../core/wire/protobuf.ts'
import {
  acceptSnapshot, advisoriesFor, loadState, saveState, snapshotInForce, statePath,
  type Device, type Priority, type TrustState, type Advisory as AdvisoryEntry
} from '../../trust/index.ts'
import type { MeshComponent, MeshComponents, StatusPart } from '../component.ts'
import type { Logger } from '../logger.ts'

export interface AdvisoryInit {
  /** The provisioned root public key (64 hex digits), or undefined: advisories are off until provisioned. */
  rootKey?: Uint8Array
  /** What this laptop is, for targets. */
  device?: Omit<Device, 'current'>
  /** How often DATA/trust/state.cbor is checked for a change by the CLI, ms (default 5000). */
  statePollMs?: number
  /** Trickle's Imin, ms (tests). */
  iminMs?: number
  /**
   * Want every advised build, whatever it targets: a staging agent or the
   * mothership holds them for the schools below it (docs/upstream.md).
   */
  stageAll?: boolean
}

/** Fetch priority of the block exchange for each advisory priority. */
const PRIORITY: Record<Priority, number> = { low: -10, normal: 0, high: 10, urgent: 20 }
const MAX_REFUSALS_SHOWN = 10

interface Link { out?: Stream, opening: boolean, reader: LengthPrefixedReader, connected: boolean, detach?: () => void }

function frame (m: AdvisoryMessage): Uint8Array {
  const body = encodeMessage(m)
  const out = new Uint8Array(uvarintLength(body.length) + body.length)
  out.set(body, putUvarint(out, 0, body.length))
  return out
}

function heldOf (state: TrustState): Held | undefined {
  const s = state.snapshot
  if (s === undefined) return undefined
  return { version: s.doc.version, hash: s.cid.bytes, snapshot: s.bytes, rootVersion: state.root.doc.version, roots: state.chain }
}

export class AdvisoryDriver implements MeshComponent {
  readonly name = 'advisory'
  private readonly c: MeshComponents
  private readonly init: AdvisoryInit
  private readonly log: Logger
  private state: TrustState | undefined
  /** The state verify last produced (adopted or refused), saved after the input that made it. */
  private pending: TrustState | undefined
  private core: Advisory | undefined
  private readonly links = new Map<string, Link>()
  private readonly inputs: AdvisoryInput[] = []
  private pumping: Promise<void> | undefined
  private timer: NodeJS.Timeout | undefined
  private poll: NodeJS.Timeout | undefined
  private stateMtime = 0
  private stopped = false
  private readonly unsubscribe: Array<() => void> = []
  private readonly refusals: Array<{ time: string, peer: string | null, code: string, reason: string }> = []
  private readonly wanted = new Set<string>()

  constructor (components: MeshComponents, init: AdvisoryInit) {
    this.c = components
    this.init = init
    this.log = components.logger.child('advisory')
  }

  private now (): number { return performance.now() }

  async beforeStart (): Promise<void> {
    this.state = await loadState(this.c.dataDir, this.init.rootKey)
    if (this.state === undefined) {
      this.log.info('no root key provisioned (advisory.root_key): advisories are off')
      return
    }
    await this.c.node.handle(PROTOCOL, (stream, connection) => { this.onInbound(stream, connection) }, { maxInboundStreams: 2, maxOutboundStreams: 2 })
  }

  async start (): Promise<void> {
    if (this.state === undefined) return
    const held = heldOf(this.state)
    this.core = new Advisory({
      verify: (s, r) => this.verify(s, r),
      random: Math.random,
      ...(held !== undefined ? { held } : { rootVersion: this.state.root.doc.version }),
      ...(this.init.iminMs !== undefined ? { iminMs: this.init.iminMs } : {})
    })
    this.stateMtime = await this.mtime()
    const { events } = this.c
    this.unsubscribe.push(events.on('peer:connect', ({ peerId }) => { void this.open(peerId) }))
    this.unsubscribe.push(events.on('peer:disconnect', ({ peerId }) => { this.drop(peerId) }))
    for (const conn of this.c.node.getConnections()) void this.open(conn.remotePeer.toString())
    this.poll = setInterval(() => { void this.checkStateFile() }, this.init.statePollMs ?? 5000)
    this.poll.unref()
    this.input({ type: 'timer' })
    this.want()
  }

  async stop (): Promise<void> {
    this.stopped = true
    for (const u of this.unsubscribe.splice(0)) u()
    clearTimeout(this.timer)
    clearInterval(this.poll)
    await this.pumping
    for (const [peer] of this.links) this.drop(peer)
    try { await this.c.node.unhandle(PROTOCOL) } catch { /* never handled */ }
  }

  // ---- trust ------------------------------------------------------------------

  private verify (snapshot: Uint8Array, roots: Uint8Array[]): VerifyResult {
    const r = acceptSnapshot(this.pending ?? this.state!, snapshot, roots, Date.now())
    this.pending = r.state
    for (const a of r.roots.adopted) this.log.info('root trusted', { version: a.doc.version })
    for (const j of r.roots.rejections) this.log.warn('root refused', { code: j.code, reason: j.reason })
    if (r.roots.dropped !== undefined) this.log.warn(r.roots.dropped)
    if (!r.ok) return { ok: false, code: r.code, reason: r.reason, retry: r.code === 'root-expired', ...(r.roots.adopted.length > 0 ? { rootVersion: r.state.root.doc.version, roots: r.state.chain } : {}) }
    return { ok: true, version: r.snapshot.doc.version, hash: r.snapshot.cid.bytes, rootVersion: r.state.root.doc.version, roots: r.state.chain }
  }

  private async mtime (): Promise<number> {
    try { return (await stat(statePath(this.c.dataDir))).mtimeMs } catch { return 0 }
  }

  /** A stick accepted with the CLI while we run: offer its snapshot to the core like any other. */
  private async checkStateFile (): Promise<void> {
    const m = await this.mtime()
    if (m === this.stateMtime || this.stopped) return
    this.stateMtime = m
    try {
      const fresh = await loadState(this.c.dataDir, this.init.rootKey)
      if (fresh?.snapshot !== undefined) this.input({ type: 'offer', snapshot: fresh.snapshot.bytes, roots: fresh.chain })
    } catch (err) {
      this.log.warn('cannot read the trust state written by another process', { error: err })
    }
  }

  // ---- the core ---------------------------------------------------------------

  private input (i: AdvisoryInput): void {
    if (this.stopped || this.core === undefined) return
    this.inputs.push(i)
    this.pumping ??= this.pump().finally(() => { this.pumping = undefined })
  }

  private async pump (): Promise<void> {
    for (let i = this.inputs.shift(); i !== undefined; i = this.inputs.shift()) {
      let outs: AdvisoryOutput[]
      try {
        outs = this.core!.handle(i, this.now())
      } catch (err) {
        this.log.error('the advisory core threw', { input: i.type, error: err })
        continue
      }
      // what verify decided is on disk before any output is acted on (TUF: persist before use)
      if (this.pending !== undefined) {
        const next = this.pending
        this.pending = undefined
        try {
          await saveState(this.c.dataDir, next)
          this.state = next
          this.stateMtime = await this.mtime()
        } catch (err) {
          this.log.error('cannot persist the trust state: the snapshot is not used', { error: err })
          continue
        }
      }
      for (const o of outs) this.act(o)
    }
    this.arm()
  }

  private act (o: AdvisoryOutput): void {
    switch (o.type) {
      case 'send': this.send(o.peer, o.message); break
      case 'adopt':
        this.log.info('advisory snapshot adopted', { version: o.held.version, rootVersion: o.held.rootVersion })
        this.want()
        break
      case 'refuse':
        this.log.warn('advisory snapshot refused', { peerId: o.peer, code: o.code, reason: o.reason })
        this.refusals.push({ time: new Date().toISOString(), peer: o.peer ?? null, code: o.code, reason: o.reason })
        if (this.refusals.length > MAX_REFUSALS_SHOWN) this.refusals.shift()
    }
  }

  private arm (): void {
    clearTimeout(this.timer)
    const d = this.core?.nextDeadline()
    if (d === undefined || this.stopped) return
    this.timer = setTimeout(() => { this.input({ type: 'timer' }) }, Math.max(0, d - this.now()))
    this.timer.unref()
  }

  /** The advisories for this laptop, in force now. */
  mine (): AdvisoryEntry[] {
    if (this.state === undefined) return []
    const s = snapshotInForce(this.state, Date.now())
    if ('ok' in s) return []
    return advisoriesFor(s.doc, { ...this.init.device }).mine
  }

  /** Every advisory of the snapshot in force, for whichever laptops it targets. */
  private inForce (): AdvisoryEntry[] {
    if (this.state === undefined) return []
    const s = snapshotInForce(this.state, Date.now())
    return 'ok' in s ? [] : s.doc.advisories
  }

  /** Desired state: every build advised for this laptop is wanted from the block exchange. */
  private want (): void {
    for (const a of this.init.stageAll === true ? this.inForce() : this.mine()) {
      const cid = a.build.toString()
      if (this.wanted.has(cid)) continue
      this.wanted.add(cid)
      this.log.info('build advised for this laptop', { cid, name: a.name, kind: a.kind, size: a.size })
      this.c.events.emit('build:want', { cid, priority: PRIORITY[a.priority], maxBytes: a.size })
    }
  }

  // ---- streams ----------------------------------------------------------------

  private link (peer: string): Link {
    let l = this.links.get(peer)
    if (l === undefined) this.links.set(peer, l = { opening: false, reader: new LengthPrefixedReader(MAX_MESSAGE_SIZE), connected: false })
    return l
  }

  private async open (peer: string, connection?: Connection): Promise<void> {
    if (this.stopped) return
    const l = this.link(peer)
    if (l.out !== undefined || l.opening) return
    const conn = connection ?? this.c.node.getConnections().find(c => c.remotePeer.toString() === peer)
    if (conn === undefined) return
    l.opening = true
    try {
      l.out = await conn.newStream(PROTOCOL, { signal: AbortSignal.timeout(10_000) })
    } catch (err) {
      this.log.debug('no advisory stream to the peer', { peerId: peer, error: (err as Error).message })
      return
    } finally {
      l.opening = false
    }
    l.out.addEventListener('close', () => { if (this.links.get(peer) === l) this.drop(peer) })
    l.connected = true
    this.input({ type: 'connected', peer })
  }

  private onInbound (stream: Stream, connection: Connection): void {
    const peer = connection.remotePeer.toString()
    const l = this.link(peer)
    l.detach?.()
    l.reader = new LengthPrefixedReader(MAX_MESSAGE_SIZE)
    const onMessage = (evt: StreamMessageEvent): void => {
      try {
        const chunk = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()
        for (const body of l.reader.push(chunk)) this.input({ type: 'message', peer, message: decodeMessage(body) })
      } catch (err) {
        const why = err instanceof InvalidMessageError ? err.message : String(err)
        this.log.warn('malformed advisory frame: stream closed', { peerId: peer, reason: why })
        try { stream.abort(new Error(why)) } catch { /* closed */ }
      }
    }
    stream.addEventListener('message', onMessage)
    l.detach = () => { stream.removeEventListener('message', onMessage) }
    if (l.out === undefined && !l.opening) void this.open(peer, connection)
  }

  private send (peer: string, m: AdvisoryMessage): void {
    const out = this.links.get(peer)?.out
    if (out === undefined) return
    try {
      out.send(frame(m))
    } catch (err) {
      this.log.debug('advisory send failed', { peerId: peer, error: (err as Error).message })
    }
  }

  private drop (peer: string): void {
    const l = this.links.get(peer)
    if (l === undefined) return
    this.links.delete(peer)
    l.detach?.()
    if (l.out !== undefined) { try { l.out.abort(new Error('disconnected')) } catch { /* closed */ } }
    if (l.connected) this.input({ type: 'disconnected', peer })
  }

  status (): StatusPart {
    const s = this.state
    const snap = s?.snapshot
    return {
      extra: s === undefined
        ? { enabled: false }
        : {
            enabled: true,
            root_version: s.root.doc.version,
            snapshot: snap === undefined ? null : { version: snap.doc.version, cid: snap.cid.toString(), issued: new Date(snap.doc.issued).toISOString(), expires: new Date(snap.doc.expires).toISOString(), advisories: snap.doc.advisories.length },
            for_this_laptop: this.mine().map(a => ({ name: a.name, kind: a.kind, build: a.build.toString(), size: a.size, priority: a.priority })),
            refused: this.refusals,
            stats: this.core?.stats ?? null
          }
    }
  }
}
