// The lease service of an agent (docs/deployment.md, "Leases"; protocols/lease.md):
//
//   on every agent  holds verified leases in DATA/lease/leases.cbor: a school
//                   server the batch of its school, a laptop its own; answers
//                   /xo-mesh/lease/1.0.0 with the leases asked for and the
//                   root versions that verify them
//   on a laptop     checks its own lease every check interval; when it is
//                   missing or expires within renew_before, asks the elected
//                   school server (or, with none, a connected peer); when it
//                   has expired, says so (log, `lease:expired` event, status)
//                   and runs the configured hook once
//
// Every lease is verified against the root this laptop trusts
// (DATA/trust/state.cbor, owned by the advisory channel) walked up through
// the roots carried with it, in memory. What is kept is saved before use.
import { spawn } from 'node:child_process'
import type { MeshComponent, MeshComponents, StatusPart } from '../component.ts'
import type { Logger } from '../logger.ts'
import { ask, serve } from '../request.ts'
import { InvalidMessageError } from '../../core/wire/errors.ts'
import { MAX_FRAME_SIZE, MAX_ROOTS, MAX_SERIALS, PROTOCOL, decodeLeaseMessage, encodeLeaseMessage } from '../../core/lease/index.ts'
import {
  acceptLeases, loadLeaseStore, loadState, readLeaseFile, readTrustedLease, saveLeaseStore,
  type Lease, type LeaseBatch, type LeaseRefusal, type LeaseStore, type Root
} from '../../trust/index.ts'
import type {} from '../election/index.ts'

declare module '../events.ts' {
  interface MeshEvents {
    /** A newer lease is held for this laptop. */
    'lease:renewed': { serial: string, expires: number, from: string }
    /** This laptop's lease has expired (once per expiry). */
    'lease:expired': { serial: string, expired: number }
    /** A lease was refused (forged, another serial, expired, a key the root does not name). */
    'lease:refused': { serial: string | null, code: string, reason: string, from: string }
  }
}

export interface LeaseInit {
  /** The provisioned root public key; undefined: leases are off until the trust state exists. */
  rootKey?: Uint8Array
  /** This laptop's serial number; undefined: it keeps no lease of its own (a server only holds and serves). */
  serial?: string
  /** How often this laptop's lease is checked, ms. */
  checkMs: number
  /** Renewal starts this long before expiry, ms. */
  renewBeforeMs: number
  /** A shell command run when this laptop's lease expires (XO_MESH_LEASE_SERIAL, XO_MESH_LEASE_EXPIRED in its environment); null: none. */
  hook: string | null
  /** Bound on one question and its answer, ms. */
  timeoutMs?: number
}

export type LeaseState = 'off' | 'none' | 'valid' | 'renewing' | 'expired'

const MAX_REFUSALS_SHOWN = 10

export class LeaseDriver implements MeshComponent {
  readonly name = 'lease'
  private readonly c: MeshComponents
  private readonly init: LeaseInit
  private readonly log: Logger
  private store: LeaseStore = { leases: [], roots: [], clock: 0 }
  private held = new Map<string, Lease>()
  private server: string | null = null
  private timer: NodeJS.Timeout | undefined
  private checking: Promise<void> | undefined
  private stopped = false
  private expiredNoted: number | undefined
  private lastFrom: string | null = null
  private lastAsked: { peer: string, at: string, result: string } | null = null
  private hookRuns = 0
  private readonly refusals: Array<LeaseRefusal & { from: string, time: string }> = []
  private readonly unsubscribe: Array<() => void> = []
  /** Serialises changes to the store (verification, save). */
  private writing: Promise<unknown> = Promise.resolve()

  constructor (components: MeshComponents, init: LeaseInit) {
    this.c = components
    this.init = init
    this.log = components.logger.child('lease')
  }

  async beforeStart (): Promise<void> {
    this.store = await loadLeaseStore(this.c.dataDir)
    this.index()
    await serve(this.c.node, PROTOCOL, MAX_FRAME_SIZE, this.timeoutMs, async (body, peer) => await this.answer(body, peer), (peer, err) => {
      this.log.warn('lease question not answered', { peerId: peer, reason: err.message })
    })
  }

  async start (): Promise<void> {
    this.unsubscribe.push(this.c.events.on('election:role', s => {
      const was = this.server
      this.server = s.server
      // a new server: ask it at once when our lease wants renewing
      if (s.server !== was && s.server !== null) this.kick()
    }))
    this.kick()
  }

  async stop (): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    for (const u of this.unsubscribe.splice(0)) u()
    await this.checking
    await this.writing
    try { await this.c.node.unhandle(PROTOCOL) } catch { /* never handled */ }
  }

  private get timeoutMs (): number { return this.init.timeoutMs ?? 10_000 }

  private index (): void {
    this.held = new Map()
    for (const b of this.store.leases) {
      const l = readTrustedLease(b)
      if (l !== undefined) this.held.set(l.doc.serial, l)
    }
  }

  private async trusted (): Promise<{ root: Root, chain: Uint8Array[] } | undefined> {
    try {
      const s = await loadState(this.c.dataDir, this.init.rootKey)
      return s === undefined ? undefined : { root: s.root, chain: s.chain }
    } catch (err) {
      this.log.warn('cannot read the trust state: leases are not verified', { error: err })
      return undefined
    }
  }

  /**
   * Verifies a batch from `from` (a peer id, or "file <path>") and keeps what
   * holds (this laptop's serial only, unless `all`). Resolves with what was
   * accepted and refused; each refusal is logged and emitted.
   */
  async take (batch: LeaseBatch, from: string, all: boolean): Promise<{ accepted: Lease[], refused: LeaseRefusal[] }> {
    const run = this.writing.then(async () => {
      const t = await this.trusted()
      if (t === undefined) {
        const r = { serial: null, code: 'not-provisioned', reason: 'this agent trusts no root (advisory.root_key): leases cannot be verified' }
        this.refuse(r, from)
        return { accepted: [], refused: [r] }
      }
      const serial = all ? undefined : this.init.serial
      const r = acceptLeases(t.root, this.store, batch, serial, Date.now())
      // a laptop drops others' leases it was handed without noise; everything else refused is logged
      for (const x of r.refused) if (!(serial !== undefined && x.code === 'wrong-serial' && !from.startsWith('file'))) this.refuse(x, from)
      await saveLeaseStore(this.c.dataDir, r.store)
      this.store = r.store
      this.index()
      for (const l of r.accepted) {
        this.log.info('lease held', { serial: l.doc.serial, expires: new Date(l.doc.expires).toISOString(), from })
        if (l.doc.serial === this.init.serial) {
          this.lastFrom = from
          this.expiredNoted = undefined
          this.c.events.emit('lease:renewed', { serial: l.doc.serial, expires: l.doc.expires, from })
        }
      }
      return { accepted: r.accepted, refused: r.refused }
    })
    this.writing = run.catch(() => {})
    return await run
  }

  /** Reads a lease bundle or lease file on this machine and takes every lease in it (a stick at the school server). */
  async load (path: string): Promise<{ accepted: Lease[], refused: LeaseRefusal[] }> {
    const b = await readLeaseFile(path)
    if ('ok' in b) {
      const r = { serial: null, code: b.code, reason: b.reason }
      this.refuse(r, `file ${path}`)
      return { accepted: [], refused: [r] }
    }
    const out = await this.take(b, `file ${path}`, true)
    this.kick()
    return out
  }

  private refuse (r: LeaseRefusal, from: string): void {
    this.log.warn('lease refused', { serial: r.serial, code: r.code, reason: r.reason, from })
    this.c.events.emit('lease:refused', { ...r, from })
    this.refusals.push({ ...r, from, time: new Date().toISOString() })
    if (this.refusals.length > MAX_REFUSALS_SHOWN) this.refusals.shift()
  }

  // ---- serving ----------------------------------------------------------------

  private async answer (body: Uint8Array, peer: string): Promise<Uint8Array | undefined> {
    let m
    try {
      m = decodeLeaseMessage(body)
    } catch (err) {
      if (err instanceof InvalidMessageError) this.log.warn('malformed lease question', { peerId: peer, reason: err.message })
      return undefined
    }
    if (m.type !== 'request') return undefined
    const now = Date.now()
    const wanted = m.serials.length === 0 ? [...this.held.values()] : m.serials.map(s => this.held.get(s)).filter(l => l !== undefined)
    const leases = wanted.filter(l => l.doc.expires > now).slice(0, MAX_SERIALS).map(l => l.bytes)
    const t = await this.trusted()
    const roots = [...new Set([...(t?.chain ?? []), ...this.store.roots])].slice(-MAX_ROOTS)
    this.log.debug('lease question answered', { peerId: peer, asked: m.serials.length, leases: leases.length })
    try {
      return encodeLeaseMessage({ type: 'reply', leases, roots })
    } catch (err) {
      this.log.warn('cannot answer a lease question within the limits', { peerId: peer, error: err })
      return undefined
    }
  }

  // ---- this laptop's lease -------------------------------------------------------

  /** This laptop's lease and what it means now. */
  mine (now = Date.now()): { state: LeaseState, lease?: Lease } {
    if (this.init.serial === undefined) return { state: 'off' }
    const lease = this.held.get(this.init.serial)
    const clock = Math.max(now, this.store.clock)
    if (lease === undefined) return { state: this.expiredNoted !== undefined ? 'expired' : 'none' }
    if (lease.doc.expires <= clock) return { state: 'expired', lease }
    if (lease.doc.expires - clock <= this.init.renewBeforeMs) return { state: 'renewing', lease }
    return { state: 'valid', lease }
  }

  private kick (): void {
    if (this.stopped) return
    clearTimeout(this.timer)
    this.checking ??= this.check().finally(() => {
      this.checking = undefined
      if (this.stopped) return
      this.timer = setTimeout(() => { this.kick() }, this.init.checkMs)
      this.timer.unref()
    })
  }

  private async check (): Promise<void> {
    if (this.init.serial === undefined) return
    // nothing to verify a lease with: do not ask (a laptop of a deployment without leases)
    if (this.init.rootKey === undefined && await this.trusted() === undefined) return
    let m = this.mine()
    if (m.state === 'none' || m.state === 'renewing' || m.state === 'expired') {
      await this.renew()
      m = this.mine()
    }
    if (m.state === 'expired') this.expired(m.lease?.doc.expires ?? this.expiredNoted ?? 0)
  }

  private async renew (): Promise<void> {
    const self = this.c.node.peerId.toString()
    const peers = this.server !== null && this.server !== self
      ? [this.server]
      : this.server === self ? [] : this.c.node.getConnections().map(c => c.remotePeer.toString()).filter((p, i, a) => a.indexOf(p) === i).slice(0, 3)
    for (const peer of peers) {
      let result: string
      try {
        const body = await ask(this.c.node, peer, PROTOCOL, encodeLeaseMessage({ type: 'request', serials: [this.init.serial!] }), MAX_FRAME_SIZE, this.timeoutMs)
        const reply = decodeLeaseMessage(body)
        if (reply.type !== 'reply') throw new InvalidMessageError('a request where a reply was due')
        const r = await this.take({ leases: reply.leases, roots: reply.roots }, peer, false)
        result = r.accepted.length > 0 ? 'renewed' : reply.leases.length === 0 ? 'no lease for this serial' : 'nothing newer'
      } catch (err) {
        result = `failed: ${(err as Error).message}`
        this.log.debug('lease renewal failed', { peerId: peer, error: (err as Error).message })
      }
      this.lastAsked = { peer, at: new Date().toISOString(), result }
      if (result === 'renewed') return
    }
  }

  /** Once per expiry: log, event, hook. */
  private expired (at: number): void {
    if (this.expiredNoted === at) return
    this.expiredNoted = at
    const serial = this.init.serial!
    this.log.warn('this laptop\'s lease has expired', { serial, expired: new Date(at).toISOString(), hook: this.init.hook })
    this.c.events.emit('lease:expired', { serial, expired: at })
    if (this.init.hook === null || this.init.hook.trim() === '') return
    this.hookRuns++
    const child = spawn('/bin/sh', ['-c', this.init.hook], {
      stdio: 'ignore',
      env: { ...process.env, XO_MESH_LEASE_SERIAL: serial, XO_MESH_LEASE_EXPIRED: new Date(at).toISOString(), XO_MESH_DATA: this.c.dataDir }
    })
    child.on('error', err => { this.log.error('the lease hook could not run', { hook: this.init.hook, error: err }) })
    child.on('exit', (code, signal) => { this.log.info('the lease hook ran', { hook: this.init.hook, code, signal }) })
  }

  /** What `xo-mesh lease status` and GET /lease show. */
  summary (): Record<string, unknown> {
    const m = this.mine()
    const l = m.lease
    return {
      serial: this.init.serial ?? null,
      state: m.state,
      lease: l === undefined ? null : { serial: l.doc.serial, issued: new Date(l.doc.issued).toISOString(), expires: new Date(l.doc.expires).toISOString(), school: l.doc.school ?? null, signers: l.signers },
      from: this.lastFrom,
      server: this.server,
      last_asked: this.lastAsked,
      held: this.held.size,
      hook: this.init.hook,
      hook_runs: this.hookRuns,
      refused: this.refusals
    }
  }

  /** The leases held, for GET /leases (a school server's batch). */
  heldLeases (): Array<{ serial: string, expires: string, school: string | null }> {
    return [...this.held.values()].sort((a, b) => a.doc.serial.localeCompare(b.doc.serial)).map(l => ({ serial: l.doc.serial, expires: new Date(l.doc.expires).toISOString(), school: l.doc.school ?? null }))
  }

  status (): StatusPart {
    const m = this.mine()
    return { extra: { state: m.state, expires: m.lease === undefined ? null : new Date(m.lease.doc.expires).toISOString(), held: this.held.size } }
  }
}
