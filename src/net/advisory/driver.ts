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
//              re-read when another process changes it; `xo-mesh deploy
//              accept` offers a stick's snapshot through POST /advisory/offer
//              when this agent runs, so only one process writes the file.
//              DATA/trust/results.cbor: the install results held (results.ts)
//
// Install results: the reconciler's outcome for each build, signed with this
// agent's identity key (publishResult), and everyone else's, spread by the
// core; tally() counts them for the staged rollout.
import { createHash } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import * as dagCbor from '@ipld/dag-cbor'
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { CID as CIDClass, type CID } from 'multiformats/cid'
import type { Connection, Stream, StreamMessageEvent } from '@libp2p/interface'
import {
  Advisory, INSTALL_RESULT_CONTEXT, InvalidMessageError, PROTOCOL, decodeMessage, decodeResult, encodeMessage, encodeResult, resultBody,
  type AdvisoryInput, type AdvisoryOutput, type AdvisoryMessage, type CheckedResult, type Held, type InstallResult, type Tally, type VerifyResult
} from '../../core/advisory/index.ts'
import { MAX_MESSAGE_SIZE } from '../../core/advisory/constants.ts'
import { LengthPrefixedReader } from '../../core/wire/frames.ts'
import { putUvarint, uvarintLength } from '../../core/wire/protobuf.ts'
import {
  TRUST_DIR, acceptSnapshot, advisoriesFor, loadState, saveState, snapshotInForce, statePath, verifyBytes, writeAtomic,
  type Device, type Priority, type SnapshotDoc, type TrustState, type Advisory as AdvisoryEntry
} from '../../trust/index.ts'
import { ApiError, type MeshComponent, type MeshComponents, type StatusPart } from '../component.ts'
import type { Logger } from '../logger.ts'

declare module '../events.ts' {
  interface MeshEvents {
    /** A new advisory snapshot is in force here (adopted from a peer, a stick or the CLI). */
    'advisory:adopted': { version: number }
    /** Install results new to this agent arrived (builds as CID strings): the staged rollout may have moved. */
    'advisory:results': { builds: string[] }
  }
}

/** DATA/trust/results.cbor: the install result records held, as a dag-cbor list of bytes. */
export const RESULTS_FILE = 'results.cbor'

/** What an offer of a snapshot from this machine came to. */
/** The offer's answer when the agent runs with advisories off (no root key): it never writes the trust state. */
export const ADVISORIES_OFF = 'advisories-off'

export type OfferOutcome =
  | { accepted: true, changed: boolean, version: number, rootVersion: number }
  | { accepted: false, code: string, reason: string }

/** A result as status and the reconciler show it. */
export interface ResultView { origin: string, build: string, ok: boolean, at: string }

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

function checkResult (record: Uint8Array): CheckedResult | undefined {
  let r: InstallResult
  try {
    r = decodeResult(record)
  } catch {
    return undefined
  }
  if (!verifyBytes(r.originKey, INSTALL_RESULT_CONTEXT, resultBody(r), r.signature)) return undefined
  return { result: r, id: new Uint8Array(createHash('sha256').update(record).digest()) }
}

function originOf (key: Uint8Array): string {
  try { return peerIdFromPublicKey(publicKeyFromRaw(key)).toString() } catch { return Buffer.from(key).toString('hex') }
}

/** Fetch priority of the block exchange for each advisory priority. */
const PRIORITY: Record<Priority, number> = { low: -10, normal: 0, high: 10, urgent: 20 }
const MAX_REFUSALS_SHOWN = 10

interface Link {
  out?: Stream
  conn?: Connection
  opening: boolean
  reader: LengthPrefixedReader
  /** The core was told of this peer (our stream to it is open). */
  connected: boolean
  /** Its messages that came before our stream to it opened, handed to the core right after `connected` (at most MAX_EARLY). */
  early: AdvisoryMessage[]
  detach?: () => void
}

/** Messages of a peer kept until our stream to it opens; a peer that sends more before that loses the rest (it advertises again). */
const MAX_EARLY = 16

function frame (m: AdvisoryMessage): Uint8Array {
  const body = encodeMessage(m)
  const out = new Uint8Array(uvarintLength(body.length) + body.length)
  out.set(body, putUvarint(out, 0, body.length))
  return out
}

function cidText (bytes: Uint8Array): string {
  try { return CIDClass.decode(bytes).toString() } catch { return Buffer.from(bytes).toString('hex') }
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
  /** Callbacks of local offers, by input. */
  private readonly waiters = new Map<AdvisoryInput, (outs: AdvisoryOutput[] | undefined) => void>()
  private resultsDirty = false
  private resultsTimer: NodeJS.Timeout | undefined
  private savedResults: Uint8Array[] = []

  constructor (components: MeshComponents, init: AdvisoryInit) {
    this.c = components
    this.init = init
    this.log = components.logger.child('advisory')
  }

  private now (): number { return performance.now() }

  async beforeStart (): Promise<void> {
    this.state = await loadState(this.c.dataDir, this.init.rootKey)
    this.c.api.add('POST', '/advisory/offer', async req => {
      // advisories off: this agent never writes the trust state, so the command may (it says so)
      if (this.state === undefined) return { body: { accepted: false, code: ADVISORIES_OFF, reason: 'this agent has no root key (advisory.root_key): advisories are off' } }
      const body = req.body as { snapshot?: unknown, roots?: unknown } | undefined
      const b64 = (v: unknown): Uint8Array | undefined => typeof v === 'string' && v.length <= 4 * 1024 * 1024 && /^[A-Za-z0-9+/=]*$/.test(v) ? new Uint8Array(Buffer.from(v, 'base64')) : undefined
      const snapshot = b64(body?.snapshot)
      const roots = Array.isArray(body?.roots) && body.roots.length <= 1024 ? body.roots.map(b64) : undefined
      if (snapshot === undefined || snapshot.length === 0 || roots === undefined || roots.some(r => r === undefined)) throw new ApiError(400, 'send {"snapshot": base64, "roots": [base64, …]}')
      return { body: await this.offer(snapshot, roots as Uint8Array[]) }
    })
    if (this.state === undefined) {
      this.log.info('no root key provisioned (advisory.root_key): advisories are off')
      return
    }
    await this.c.node.handle(PROTOCOL, (stream, connection) => { this.onInbound(stream, connection) }, { maxInboundStreams: 2, maxOutboundStreams: 2 })
    this.savedResults = await this.loadResults()
  }

  private async loadResults (): Promise<Uint8Array[]> {
    try {
      const v: unknown = dagCbor.decode(await readFile(join(this.c.dataDir, TRUST_DIR, RESULTS_FILE)))
      return Array.isArray(v) ? v.filter((x): x is Uint8Array => x instanceof Uint8Array) : []
    } catch {
      return [] // none yet, or unreadable: results come back from the mesh
    }
  }

  /** Writes the results held, at most once a second (they are a cache of what the mesh holds, not trust). */
  private scheduleResultsSave (): void {
    this.resultsDirty = true
    if (this.resultsTimer !== undefined || this.stopped) return
    this.resultsTimer = setTimeout(() => {
      this.resultsTimer = undefined
      void this.saveResults()
    }, 1000)
    this.resultsTimer.unref()
  }

  private async saveResults (): Promise<void> {
    if (!this.resultsDirty || this.core === undefined) return
    this.resultsDirty = false
    try {
      await writeAtomic(join(this.c.dataDir, TRUST_DIR, RESULTS_FILE), dagCbor.encode(this.core.results.records()))
    } catch (err) {
      this.log.warn('cannot save the install results', { error: err })
    }
  }

  /**
   * Verifies a snapshot given on this machine (a stick through `deploy
   * accept`) exactly as one from a peer, persists what it decides, and says
   * what came of it. Rejects when advisories are off here.
   */
  async offer (snapshot: Uint8Array, roots: Uint8Array[]): Promise<OfferOutcome> {
    if (this.core === undefined || this.stopped) throw new ApiError(409, 'advisories are off on this agent (no advisory.root_key)')
    const input: AdvisoryInput = { type: 'offer', snapshot, roots }
    const outs = await new Promise<AdvisoryOutput[] | undefined>(resolve => {
      this.waiters.set(input, resolve)
      this.input(input)
    })
    if (outs === undefined) throw new ApiError(503, 'the trust state could not be persisted: nothing was accepted')
    for (const o of outs) {
      if (o.type === 'adopt') return { accepted: true, changed: true, version: o.held.version, rootVersion: o.held.rootVersion }
      if (o.type === 'refuse') return { accepted: false, code: o.code, reason: o.reason }
    }
    const held = this.core.current
    return { accepted: true, changed: false, version: held?.version ?? 0, rootVersion: held?.rootVersion ?? 0 }
  }

  /**
   * Signs this laptop's install result for a build with its identity key
   * and spreads it. Resolves once the core holds it.
   */
  async publishResult (build: CID, ok: boolean, at: number): Promise<void> {
    if (this.core === undefined) return
    const originKey = this.c.privateKey.publicKey.raw
    const body = { originKey, build: build.bytes, ok, at }
    const signature = await this.c.privateKey.sign(new Uint8Array(Buffer.concat([Buffer.from(INSTALL_RESULT_CONTEXT + '\n'), resultBody(body)])))
    this.input({ type: 'result', record: encodeResult({ ...body, signature }) })
  }

  /** Install results seen for a build (one per laptop, this one included). */
  tally (build: CID): Tally {
    return this.core?.results.tally(build.bytes) ?? { ok: 0, failed: 0 }
  }

  /** The install results held, newest first, for status (at most `max`). */
  resultsView (max = 50): ResultView[] {
    const all = this.core?.results.results() ?? []
    return all.sort((a, b) => b.at - a.at).slice(0, max).map(r => ({ origin: originOf(r.originKey), build: cidText(r.build), ok: r.ok, at: new Date(r.at).toISOString() }))
  }

  /** The snapshot in force now (undefined: none, expired, or advisories off). */
  snapshotInForce (): SnapshotDoc | undefined {
    if (this.state === undefined) return undefined
    const s = snapshotInForce(this.state, Date.now())
    return 'ok' in s ? undefined : s.doc
  }

  /** What this laptop is, for targets (the reconciler adds the builds it runs). */
  get device (): Omit<Device, 'current'> { return { ...this.init.device } }

  async start (): Promise<void> {
    if (this.state === undefined) return
    const held = heldOf(this.state)
    this.core = new Advisory({
      verify: (s, r) => this.verify(s, r),
      random: Math.random,
      checkResult,
      results: this.savedResults,
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
    clearTimeout(this.resultsTimer)
    this.resultsTimer = undefined
    await this.pumping
    await this.saveResults()
    for (const [, w] of this.waiters) w(undefined)
    this.waiters.clear()
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

  /**
   * Queues an input for the core. Streams open from beforeStart (the handler
   * is registered there) while the core is made in start: what comes before
   * it waits in the queue, so a peer met during start-up is never lost (it
   * was: a laptop restarted after a kill kept its old snapshot while its peer
   * held a newer one, the core never having heard of that peer).
   */
  private input (i: AdvisoryInput): void {
    if (this.stopped || this.state === undefined) { this.waiters.get(i)?.(undefined); this.waiters.delete(i); return }
    this.inputs.push(i)
    this.kick()
  }

  /**
   * Runs the pump unless it runs. A pump with nothing to await ends in the
   * call that started it, but `pumping` is cleared a microtask later: an
   * input queued in between (the second frame of a chunk, the early messages
   * after `connected`) found it set and waited for the next input, up to a
   * Trickle interval (minutes). So the pump is started again when it ends
   * with inputs left.
   */
  private kick (): void {
    if (this.pumping !== undefined || this.core === undefined || this.stopped) return // start() kicks once the core exists
    this.pumping = this.pump().finally(() => {
      this.pumping = undefined
      if (this.inputs.length > 0) this.kick()
    })
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
          this.waiters.get(i)?.(undefined)
          this.waiters.delete(i)
          continue
        }
      }
      for (const o of outs) this.act(o)
      this.waiters.get(i)?.(outs)
      this.waiters.delete(i)
    }
    this.arm()
  }

  private act (o: AdvisoryOutput): void {
    switch (o.type) {
      case 'send': this.send(o.peer, o.message); break
      case 'adopt':
        this.log.info('advisory snapshot adopted', { version: o.held.version, rootVersion: o.held.rootVersion })
        this.want()
        this.c.events.emit('advisory:adopted', { version: o.held.version })
        break
      case 'results': {
        const builds = [...new Set(o.added.map(a => cidText(a.result.build)))]
        for (const a of o.added) if (!a.result.ok) this.log.warn('install failure reported', { origin: originOf(a.result.originKey), build: cidText(a.result.build), at: new Date(a.result.at).toISOString() })
        this.scheduleResultsSave()
        this.c.events.emit('advisory:results', { builds })
        break
      }
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
    if (l === undefined) this.links.set(peer, l = { opening: false, reader: new LengthPrefixedReader(MAX_MESSAGE_SIZE), connected: false, early: [] })
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
    l.conn = conn
    l.out.addEventListener('close', () => {
      if (this.links.get(peer) !== l) return
      this.drop(peer)
      // the peer came back on another connection before this one was seen to close: talk on that one
      if (!this.stopped && this.c.node.getConnections().some(c => c.remotePeer.toString() === peer && c.status === 'open')) void this.open(peer)
    })
    l.connected = true
    this.input({ type: 'connected', peer })
    for (const message of l.early.splice(0)) this.input({ type: 'message', peer, message })
  }

  private onInbound (stream: Stream, connection: Connection): void {
    const peer = connection.remotePeer.toString()
    const stale = this.links.get(peer)
    // a peer that restarted opens its stream on a new connection while ours still writes into the old one
    // (no peer:disconnect comes while another connection to it is open): start afresh on the new one
    if (stale?.conn !== undefined && stale.conn.id !== connection.id) this.drop(peer)
    const l = this.link(peer)
    l.detach?.()
    l.reader = new LengthPrefixedReader(MAX_MESSAGE_SIZE)
    const onMessage = (evt: StreamMessageEvent): void => {
      try {
        const chunk = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()
        for (const body of l.reader.push(chunk)) {
          const message = decodeMessage(body)
          // the core hears a peer only once told of it (and our stream to it opens after its to us, often):
          // what it says before that is kept and handed over then, not dropped
          if (l.connected) this.input({ type: 'message', peer, message })
          else if (l.early.length < MAX_EARLY) l.early.push(message)
        }
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
            results: { held: this.core?.results.size ?? 0, recent: this.resultsView(10) },
            stats: this.core?.stats ?? null
          }
    }
  }
}
