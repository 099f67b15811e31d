// Registration and the school's roster (docs/upstream.md, "Registration";
// protocols/registration.md):
//
//   a laptop      registers with the elected school server when one is
//                 elected or changes, then every interval: serial, machine
//                 id, boot id, the owner's nickname and X25519 public key.
//                 Answered "conflict" (its peer id belongs to another
//                 machine: a cloned image), it hands over to the agent,
//                 which makes a new identity and restarts, keeping its data.
//   every agent   answers registrations (laptops ask only the server) and
//                 keeps a registry (DATA/registry.json, written atomically
//                 before the answer leaves); what is new, changed or a
//                 conflict goes upstream as a `registration` outbox item.
//   the roster    who is registered and who is in reach now: GET /roster.
import { readFile, rename, writeFile, mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { MeshComponent, MeshComponents, StatusPart } from '../component.ts'
import type { Logger } from '../logger.ts'
import { ask, serve } from '../request.ts'
import {
  MAX_FRAME_SIZE, MAX_ROSTER, PROTOCOL, applyDecision, decide, decodeRegisterMessage, encodeRegisterMessage,
  type Decision, type Registration, type RegistryEntry, type RosterEntry
} from '../../core/registration/index.ts'
import type {} from '../election/index.ts'

declare module '../events.ts' {
  interface MeshEvents {
    /** The school server registered this laptop (status ok). */
    'registration:registered': { server: string }
    /** The school server says this peer id belongs to another machine: the agent makes a new identity. */
    'registration:conflict': { server: string, reason: string }
    /** (On the server) a registration was refused as a cloned identity. */
    'registration:clone': { peerId: string, serial: string, holderSerial: string, reason: string }
  }
}

export const REGISTRY_FILE = 'registry.json'
/** Peers a laptop that serves (or sees no server) registers with at once. */
const MAX_PEERS_ASKED = 8

/** What this laptop says about itself; undefined when it cannot register (no serial known). */
export type Self = Omit<Registration, 'type'>

export interface RegistrationInit {
  /** This laptop's facts (read at each registration). */
  self: () => Promise<Self | undefined>
  /** Registers again this often, ms (the roster is refreshed with it). */
  intervalMs: number
  /** Hands a registration record to the outbox (towards the mothership); absent: not relayed. */
  enqueue?: (body: Uint8Array) => void
  /** The server answered "conflict": make a new identity (the agent restarts). Called once. */
  onConflict: (reason: string) => void | Promise<void>
  timeoutMs?: number
}

interface RosterView { server: string | null, updated: string | null, entries: RosterEntry[] }

export class RegistrationDriver implements MeshComponent {
  readonly name = 'registration'
  private readonly c: MeshComponents
  private readonly init: RegistrationInit
  private readonly log: Logger
  private registry = new Map<string, RegistryEntry>()
  private server: string | null = null
  private role: 'server' | 'peer' = 'peer'
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined
  private stopped = false
  private conflicted = false
  private last: { server: string, at: string, status: string, reason: string } | null = null
  private roster: RosterView = { server: null, updated: null, entries: [] }
  private clones = 0
  private readonly unsubscribe: Array<() => void> = []
  private writing: Promise<unknown> = Promise.resolve()

  constructor (components: MeshComponents, init: RegistrationInit) {
    this.c = components
    this.init = init
    this.log = components.logger.child('registration')
  }

  private get path (): string { return join(this.c.dataDir, REGISTRY_FILE) }
  private get self (): string { return this.c.node.peerId.toString() }

  async beforeStart (): Promise<void> {
    try {
      const v = JSON.parse(await readFile(this.path, 'utf8')) as { entries?: RegistryEntry[] }
      for (const e of v.entries ?? []) if (typeof e?.peerId === 'string') this.registry.set(e.peerId, e)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn('the registry does not read: starting empty', { path: this.path, error: (err as Error).message })
    }
    await serve(this.c.node, PROTOCOL, MAX_FRAME_SIZE, this.timeoutMs, async (body, peer) => await this.answer(body, peer), (peer, err) => {
      this.log.warn('registration not answered', { peerId: peer, reason: err.message })
    })
  }

  async start (): Promise<void> {
    this.unsubscribe.push(this.c.events.on('election:role', s => {
      const changed = s.server !== this.server || s.role !== this.role
      this.server = s.server
      this.role = s.role
      if (changed) this.kick()
    }))
    this.kick()
  }

  async stop (): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    for (const u of this.unsubscribe.splice(0)) u()
    await this.running
    await this.writing
    try { await this.c.node.unhandle(PROTOCOL) } catch { /* never handled */ }
  }

  private get timeoutMs (): number { return this.init.timeoutMs ?? 10_000 }

  private kick (): void {
    if (this.stopped) return
    clearTimeout(this.timer)
    this.running ??= this.register().finally(() => {
      this.running = undefined
      if (this.stopped || this.conflicted) return
      this.timer = setTimeout(() => { this.kick() }, this.init.intervalMs)
      this.timer.unref()
    })
  }

  // ---- the laptop's side -------------------------------------------------------------

  private async register (): Promise<void> {
    const me = await this.init.self()
    if (me === undefined) return
    const serving = this.role === 'server' || this.server === this.self
    if (serving) {
      // the server is a laptop of the school too: it registers in its own registry
      await this.decideAndKeep(this.self, { type: 'registration', ...me })
      this.roster = this.view()
    }
    // A clone may believe it is the server: the real one's heartbeats reach the
    // original over the one identity both present. So a laptop that serves, or
    // sees no server, registers with the peers it is connected to as well.
    const targets = !serving && this.server !== null
      ? [this.server]
      : [...new Set(this.c.node.getConnections().map(c => c.remotePeer.toString()))].filter(p => p !== this.self).slice(0, MAX_PEERS_ASKED)
    for (const peer of targets) {
      if (this.stopped || this.conflicted) return
      await this.registerWith(peer, me, peer === this.server)
    }
  }

  private async registerWith (server: string, me: Self, elected: boolean): Promise<void> {
    try {
      const body = await ask(this.c.node, server, PROTOCOL, encodeRegisterMessage({ type: 'registration', ...me }), MAX_FRAME_SIZE, this.timeoutMs)
      const a = decodeRegisterMessage(body)
      if (a.type !== 'answer') throw new Error('a registration where an answer was due')
      if (elected || a.status !== 'ok') this.last = { server, at: new Date().toISOString(), status: a.status, reason: a.reason }
      if (a.status === 'ok') {
        if (!elected) return
        this.roster = { server, updated: new Date().toISOString(), entries: a.roster }
        this.log.info('registered with the school server', { server, roster: a.roster.length })
        this.c.events.emit('registration:registered', { server })
      } else if (a.status === 'conflict') {
        this.conflicted = true
        this.log.warn('this identity belongs to another laptop (a cloned image): making a new one', { peerId: server, reason: a.reason })
        this.c.events.emit('registration:conflict', { server, reason: a.reason })
        await this.init.onConflict(a.reason)
      } else {
        this.log.warn('registration refused', { server, reason: a.reason })
      }
    } catch (err) {
      if (elected) this.last = { server, at: new Date().toISOString(), status: 'failed', reason: (err as Error).message }
      this.log.debug('registration failed', { peerId: server, error: (err as Error).message })
    }
  }

  // ---- the server's side ---------------------------------------------------------------

  private async answer (body: Uint8Array, peer: string): Promise<Uint8Array | undefined> {
    let g
    try {
      g = decodeRegisterMessage(body)
    } catch (err) {
      this.log.warn('malformed registration', { peerId: peer, reason: (err as Error).message })
      return encodeRegisterMessage({ type: 'answer', status: 'refused', reason: 'malformed registration', roster: [] })
    }
    if (g.type !== 'registration') return undefined
    const d = await this.decideAndKeep(peer, g)
    if (d.verdict === 'conflict') return encodeRegisterMessage({ type: 'answer', status: 'conflict', reason: d.reason, roster: [] })
    return encodeRegisterMessage({ type: 'answer', status: 'ok', reason: '', roster: this.view().entries })
  }

  /** Decides, persists the registry, relays what is news upstream; serialised. */
  private async decideAndKeep (peer: string, g: Registration): Promise<Decision> {
    const run = this.writing.then(async () => {
      const d = decide(this.registry, peer, g, Date.now())
      // only the school server's registry travels upstream (any agent answers, to catch a clone that thinks it serves);
      // an entry taken before this agent served goes up at its first renewal here as the server
      const serving = this.role === 'server' || this.server === this.self
      const reported = this.registry.get(peer)?.relayed === true
      const relay = serving && (d.verdict !== 'renewed' || !reported)
      if (d.verdict !== 'conflict') d.entry.relayed = relay || (d.verdict === 'renewed' && reported)
      const next = applyDecision(this.registry, d)
      if (d.verdict !== 'conflict') {
        await this.save(next)
        this.registry = next
      }
      if (d.verdict === 'conflict') {
        this.clones++
        this.log.warn('cloned identity: registration refused', { peerId: peer, serial: g.serial, holder: d.holder.serial, reason: d.reason })
        this.c.events.emit('registration:clone', { peerId: peer, serial: g.serial, holderSerial: d.holder.serial, reason: d.reason })
      } else if (d.verdict !== 'renewed') {
        this.log.info('laptop registered', { peerId: peer, serial: g.serial, nickname: g.nickname, verdict: d.verdict, ...(d.verdict === 'registered' && d.replaced !== undefined ? { replaces: d.replaced.peerId } : {}) })
      }
      if (relay) this.relay(peer, g, d)
      return d
    })
    this.writing = run.catch(() => {})
    return await run
  }

  private relay (peer: string, g: Registration, d: Decision): void {
    if (this.init.enqueue === undefined) return
    const record = {
      type: 'registration',
      // a renewal relayed is an entry this server has not reported yet: its registration
      verdict: d.verdict === 'renewed' ? 'registered' : d.verdict,
      peer_id: peer,
      serial: g.serial,
      machine_id: g.machineId,
      nickname: g.nickname,
      owner_key: Buffer.from(g.ownerKey).toString('hex'),
      school: g.school === '' ? null : g.school,
      server: this.self,
      at: Date.now(),
      ...(d.verdict === 'registered' && d.replaced !== undefined ? { replaces: d.replaced.peerId } : {}),
      ...(d.verdict === 'conflict' ? { holder_serial: d.holder.serial, holder_machine_id: d.holder.machineId } : {})
    }
    try {
      this.init.enqueue(new TextEncoder().encode(JSON.stringify(record)))
    } catch (err) {
      this.log.warn('a registration record could not go to the outbox', { peerId: peer, error: (err as Error).message })
    }
  }

  private async save (entries: Map<string, RegistryEntry>): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true })
    const tmp = `${this.path}.${process.pid}.tmp`
    await writeFile(tmp, JSON.stringify({ entries: [...entries.values()] }, null, 1) + '\n')
    await rename(tmp, this.path)
  }

  /** The roster held here (a server's registry with who is connected now). */
  private view (): RosterView {
    const connected = new Set(this.c.node.getConnections().map(c => c.remotePeer.toString()))
    connected.add(this.self)
    const entries = [...this.registry.values()]
      .sort((a, b) => a.nickname.localeCompare(b.nickname) || a.peerId.localeCompare(b.peerId))
      .slice(0, MAX_ROSTER)
      .map(e => ({ peerId: e.peerId, nickname: e.nickname, serial: e.serial, inReach: connected.has(e.peerId) }))
    return { server: this.self, updated: new Date().toISOString(), entries }
  }

  /** GET /roster: on the school server its registry, on a laptop the roster its server last sent. */
  rosterView (): Record<string, unknown> {
    const serving = this.role === 'server' || this.server === this.self
    const v = serving ? this.view() : this.roster
    const registered = serving ? this.registry : undefined
    return {
      role: serving ? 'server' : 'peer',
      server: this.server,
      updated: v.updated,
      laptops: v.entries.map(e => ({
        peer_id: e.peerId,
        nickname: e.nickname,
        serial: e.serial,
        in_reach: e.inReach,
        ...(registered !== undefined ? { registered: new Date(registered.get(e.peerId)?.registeredAt ?? 0).toISOString(), last_seen: new Date(registered.get(e.peerId)?.lastSeen ?? 0).toISOString(), owner_key: registered.get(e.peerId)?.ownerKey ?? null } : {})
      }))
    }
  }

  status (): StatusPart {
    return { extra: { registered: this.last?.status === 'ok', last: this.last, registry: this.registry.size, clones_refused: this.clones } }
  }
}
