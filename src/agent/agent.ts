// The daemon: takes the data directory, loads the identity, builds the libp2p
// node and the shared components, starts the components in order, opens the
// API and writes its address to DATA/api. stop() undoes all of it in reverse.
import { readFileSync } from 'node:fs'
import { rename, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Libp2p, PeerId, PrivateKey } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { Repo } from '../content/repo.ts'
import type { ComponentFactory, MeshComponent, MeshComponents, Traffic } from '../net/component.ts'
import { PeerDialer } from '../net/dialer.ts'
import { EventBus } from '../net/events.ts'
import type { Logger } from '../net/logger.ts'
import { createNode } from '../net/node.ts'
import { ApiServer } from './api.ts'
import { BuildIndexWatcher } from './build-index.ts'
import { defaultComponents } from './components.ts'
import type { AgentConfig } from './config.ts'
import { parseHostPort } from './config.ts'
import { API_FILE } from './constants.ts'
import { ListenError } from './errors.ts'
import { loadIdentity } from './identity.ts'
import { LiveFeed } from './live.ts'
import { DataDirLock } from './lock.ts'
import { MemoryTrimmer, loadCollect, loadMallocTrim } from './memory.ts'
import { addMothershipPages } from './overview.ts'
import { dashboardPages } from './pages.ts'
import { addCoreRoutes } from './routes.ts'

export interface AgentInit {
  /** Absolute path of the data directory. */
  dataDir: string
  config: AgentConfig
  logger: Logger
  /** The components to run; default: defaultComponents(config). */
  components?: ComponentFactory[]
}

/** Set by the bundler (scripts/build-agentd.ts): the bundle does not sit two levels below package.json. */
declare const XO_MESH_BUNDLED_VERSION: string | undefined

/** The package version, for identify and /status. */
export const VERSION: string = (() => {
  if (typeof XO_MESH_BUNDLED_VERSION === 'string') return XO_MESH_BUNDLED_VERSION
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
  } catch {
    return '0.0.0'
  }
})()

class TrafficCounters implements Traffic {
  private readonly counters = new Map<string, { sent: number, received: number }>()
  /** Bytes sent and received with every peer so far. */
  total = 0
  add (peerId: string, sent: number, received: number): void {
    this.total += sent + received
    const c = this.counters.get(peerId) ?? { sent: 0, received: 0 }
    c.sent += sent
    c.received += received
    this.counters.set(peerId, c)
  }

  get (peerId: string): { sent: number, received: number } {
    return { ...(this.counters.get(peerId) ?? { sent: 0, received: 0 }) }
  }
}

/** Writes `text` to `path` through a temp file and a rename: readers see the old content or the new, never half. */
async function writeAtomic (path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, text, { mode: 0o644 })
  await rename(tmp, path)
}

export class Agent {
  readonly dataDir: string
  readonly node: Libp2p
  readonly components: MeshComponents
  /** Where the CLI reaches the API (also in DATA/api). */
  apiUrl = ''
  private readonly log: Logger
  private readonly traffic = new TrafficCounters()
  private readonly config: AgentConfig
  private readonly lock: DataDirLock
  private readonly api: ApiServer
  private readonly dialer: PeerDialer
  private readonly watcher: BuildIndexWatcher
  private readonly parts: MeshComponent[] = []
  private readonly undo: Array<{ what: string, fn: () => unknown }> = []
  private stopping?: Promise<void>

  private constructor (init: AgentInit, lock: DataDirLock, node: Libp2p, repo: Repo, privateKey: PrivateKey) {
    this.dataDir = init.dataDir
    this.config = init.config
    this.log = init.logger
    this.lock = lock
    this.node = node
    const events = new EventBus((name, err) => { this.log.error('event listener failed', { event: name, error: err }) })
    this.api = new ApiServer(init.logger, { pages: dashboardPages() })
    this.dialer = new PeerDialer({ node, logger: init.logger, events }, {
      backoffMinMs: init.config.dial.backoff_min_s * 1000,
      backoffMaxMs: init.config.dial.backoff_max_s * 1000
    })
    this.components = { node, repo, logger: init.logger, events, api: this.api, dialer: this.dialer, traffic: this.traffic, dataDir: init.dataDir, privateKey }
    this.watcher = new BuildIndexWatcher(this.components)
  }

  /**
   * Starts an agent on the data directory. Throws AgentRunningError when one
   * already runs there, ConfigError/IdentityError/ListenError for what the
   * user can fix; whatever was started is stopped again before it throws.
   */
  static async start (init: AgentInit): Promise<Agent> {
    const lock = await DataDirLock.acquire(init.dataDir)
    let agent: Agent | undefined
    try {
      const repo = await Repo.open(init.dataDir)
      const { key, created } = await loadIdentity(init.dataDir, init.logger)
      const node = await createNode({
        privateKey: key,
        listen: init.config.listen,
        maxConnections: init.config.connections.max,
        dialTimeoutMs: init.config.dial.timeout_s * 1000,
        version: VERSION
      })
      init.logger.info(created ? 'created a new identity' : 'loaded identity', { peerId: node.peerId.toString() })
      agent = new Agent(init, lock, node, repo, key)
      await agent.run(init.components ?? defaultComponents(init.config, init.dataDir))
      return agent
    } catch (err) {
      if (agent !== undefined) await agent.stop()
      else await lock.release()
      throw err
    }
  }

  private async run (factories: ComponentFactory[]): Promise<void> {
    const { node, events } = this.components
    const started = Date.now()
    addCoreRoutes(this.api, { node, repo: this.components.repo, dialer: this.dialer, traffic: this.components.traffic, components: () => this.parts, startedAt: started, version: VERSION })
    // the dashboard's feed keeps the bus's recent events from here on
    const live = new LiveFeed({ events, read: async path => await this.api.get(path), logger: this.log })
    live.addRoutes(this.api)
    live.start()
    this.undo.push({ what: 'live feed', fn: () => { live.stop() } })
    for (const factory of factories) this.parts.push(factory(this.components))
    for (const part of this.parts) await part.beforeStart?.()

    try {
      await node.start()
    } catch (err) {
      try { await node.stop() } catch { /* half started */ }
      throw new ListenError(`cannot listen on ${this.config.listen.join(', ')}: ${(err as Error).message}`, { cause: err })
    }
    this.undo.push({ what: 'libp2p', fn: async () => { await node.stop() } })
    this.log.info('listening', { addrs: node.getMultiaddrs().map(String) })

    // libp2p's events onto the bus, with what the API and drivers want to know
    const onConnect = (evt: CustomEvent<PeerId>): void => {
      const c = node.getConnections(evt.detail)[0]
      const detail = { peerId: evt.detail.toString(), remoteAddr: c?.remoteAddr.toString() ?? '', direction: c?.direction ?? 'inbound' }
      this.log.info('peer connected', detail)
      events.emit('peer:connect', detail)
    }
    const onDisconnect = (evt: CustomEvent<PeerId>): void => {
      this.log.info('peer disconnected', { peerId: evt.detail.toString() })
      events.emit('peer:disconnect', { peerId: evt.detail.toString() })
    }
    const onSelf = (): void => { events.emit('self:addresses', { addrs: node.getMultiaddrs().map(String) }) }
    node.addEventListener('peer:connect', onConnect)
    node.addEventListener('peer:disconnect', onDisconnect)
    node.addEventListener('self:peer:update', onSelf)
    this.undo.push({
      what: 'events',
      fn: () => {
        node.removeEventListener('peer:connect', onConnect)
        node.removeEventListener('peer:disconnect', onDisconnect)
        node.removeEventListener('self:peer:update', onSelf)
      }
    })

    this.dialer.start()
    this.undo.push({ what: 'dialer', fn: () => { this.dialer.stop() } })
    // one peers list for a whole school may name this laptop too: skip ourselves
    const self = node.peerId.toString()
    const own = new Set(node.getMultiaddrs().map(m => m.decapsulateCode(421).toString()))
    for (const peer of this.config.peers) {
      const ma = multiaddr(peer)
      if (ma.getComponents().some(c => c.name === 'p2p' && c.value === self) || own.has(ma.decapsulateCode(421).toString())) {
        this.log.info('not dialling a static peer that is this agent', { peer })
        continue
      }
      this.dialer.want(peer, { addrs: [peer], via: 'static' })
    }

    for (const part of this.parts) {
      await part.start?.()
      this.undo.push({ what: part.name, fn: async () => { await part.stop?.() } })
    }

    await this.watcher.start()
    this.undo.push({ what: 'build index', fn: () => { this.watcher.stop() } })

    const trim = loadMallocTrim()
    const collect = loadCollect()
    if (trim === undefined) this.log.debug('malloc_trim is not available: memory malloc freed after a transfer stays with the process')
    if (trim !== undefined || collect !== undefined) {
      const trimmer = new MemoryTrimmer({ activity: () => this.traffic.total, trim, collect, logger: this.log })
      trimmer.start()
      this.undo.push({ what: 'memory trimmer', fn: () => { trimmer.stop() } })
    }

    // the mothership's overview and login, keyed on its store being here (the relay's sink made it)
    const mothership = await addMothershipPages({ dataDir: this.dataDir, api: this.api, logger: this.log })
    if (mothership !== undefined) this.undo.push({ what: 'mothership pages', fn: mothership })

    const { host, port } = parseHostPort(this.config.api)
    const bound = await this.api.listen(host, port)
    this.undo.push({ what: 'api', fn: async () => { await this.api.close() } })
    this.apiUrl = bound.url
    const apiFile = join(this.dataDir, API_FILE)
    await writeAtomic(apiFile, bound.url + '\n')
    // removed first on the way down: from then on the CLI says "no agent"
    this.undo.push({ what: 'api file', fn: async () => { await unlink(apiFile).catch(() => {}) } })
    this.log.info('agent started', { peerId: node.peerId.toString(), api: bound.url, data: this.dataDir, components: this.parts.map(p => p.name), startup_ms: Date.now() - started })
  }

  /** Stops everything started, in reverse order, and releases the data directory. Never throws; safe to call twice. */
  async stop (): Promise<void> {
    this.stopping ??= (async () => {
      while (this.undo.length > 0) {
        const step = this.undo.pop()!
        try {
          await step.fn()
        } catch (err) {
          this.log.error('error while stopping', { step: step.what, error: err })
        }
      }
      await this.lock.release()
    })()
    return this.stopping
  }
}
