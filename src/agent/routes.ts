// The agent's own API routes: /id, /status, /peers. Components add theirs
// through the same ApiRoutes (a driver's /fetch, the election's /server).
import type { Connection, Libp2p, PeerId } from '@libp2p/interface'
import type { Repo } from '../content/repo.ts'
import type { ApiRoutes, BuildStatus, MeshComponent, StatusPart, Traffic } from '../net/component.ts'
import type { Dialer } from '../net/dialer.ts'
import type { Capability } from '../core/election/index.ts'

export interface RouteContext {
  node: Libp2p
  repo: Repo
  dialer: Dialer
  traffic: Traffic
  components: () => MeshComponent[]
  startedAt: number
  version: string
}

/** GET /api/v1/id */
export interface IdReply { peerId: string, addrs: string[] }

/** GET /api/v1/status (interfaces.md: at least peerId, role, server, term, peers, builds). */
export interface StatusReply {
  peerId: string
  /** "server" when this agent is the elected school server. */
  role: 'server' | 'peer'
  /** Peer id of the school server this agent follows (itself when serving); null while there is none. */
  server: string | null
  /** The server's term (one more at every election the group has held); with no server, the highest known. */
  term: number
  addrs: string[]
  peers: Array<{ peerId: string, addrs: string[] }>
  builds: BuildStatus[]
  uptime_s: number
  version: string
  /** What each component reports beyond the fields above, by component name. */
  components: Record<string, Record<string, unknown>>
}

/** GET /api/v1/peers */
export interface PeersReply {
  peers: Array<{
    peerId: string
    /** The peer's listen addresses (from identify), else the addresses we are connected through. */
    addrs: string[]
    connections: Array<{ remoteAddr: string, direction: 'inbound' | 'outbound', since: string }>
    connected_since: string
    rtt_ms: number | null
    bytes_sent: number
    bytes_received: number
    /** How we found it: "mdns", "static", or "inbound" (it found us). */
    via: 'mdns' | 'static' | 'inbound'
    /** What components add, by component name (blocks: block bytes and counts sent to and received from the peer). */
    [component: string]: unknown
    /** The facts the neighbour states in its election claim (pinned, upstream, ac, battery, freeDiskMiB, uptimeS); null before its first claim. */
    capability: Capability | null
  }>
}

function byPeer (node: Libp2p): Map<string, { id: PeerId, connections: Connection[] }> {
  const out = new Map<string, { id: PeerId, connections: Connection[] }>()
  for (const c of node.getConnections()) {
    if (c.status !== 'open') continue
    const key = c.remotePeer.toString()
    const e = out.get(key) ?? { id: c.remotePeer, connections: [] }
    e.connections.push(c)
    out.set(key, e)
  }
  return out
}

async function listenAddrs (node: Libp2p, id: PeerId, connections: Connection[]): Promise<string[]> {
  try {
    const peer = await node.peerStore.get(id)
    // the peer's loopback addresses mean nothing here: last
    const addrs = peer.addresses.map(a => a.multiaddr.toString()).sort((x, y) => Number(x.startsWith('/ip4/127.')) - Number(y.startsWith('/ip4/127.')))
    if (addrs.length > 0) return addrs
  } catch {
    // not in the peer store yet (identify has not run)
  }
  return connections.map(c => c.remoteAddr.decapsulateCode(421).toString())
}

async function statusParts (components: MeshComponent[]): Promise<Array<[string, StatusPart]>> {
  const out: Array<[string, StatusPart]> = []
  for (const c of components) if (c.status !== undefined) out.push([c.name, await c.status()])
  return out
}

export function addCoreRoutes (api: ApiRoutes, ctx: RouteContext): void {
  const id = (): IdReply => ({
    peerId: ctx.node.peerId.toString(),
    addrs: ctx.node.getMultiaddrs().map(m => m.toString())
  })

  api.add('GET', '/id', () => ({ body: id() }))

  api.add('GET', '/status', async () => {
    const peers: StatusReply['peers'] = []
    for (const [peerId, p] of byPeer(ctx.node)) peers.push({ peerId, addrs: await listenAddrs(ctx.node, p.id, p.connections) })
    const builds = new Map<string, BuildStatus>()
    for (const b of await ctx.repo.builds()) builds.set(b.cid, { cid: b.cid, name: b.name, bytes: b.bytes, have_bytes: b.bytes, complete: true })
    const reply: StatusReply = {
      ...id(),
      role: 'peer',
      server: null,
      term: 0,
      peers,
      builds: [],
      uptime_s: Math.round((Date.now() - ctx.startedAt) / 1000),
      version: ctx.version,
      components: {}
    }
    for (const [name, part] of await statusParts(ctx.components())) {
      for (const b of part.builds ?? []) builds.set(b.cid, b)
      if (part.role !== undefined) reply.role = part.role
      if (part.server !== undefined) reply.server = part.server
      if (part.term !== undefined) reply.term = part.term
      if (part.extra !== undefined) reply.components[name] = part.extra
    }
    reply.builds = [...builds.values()]
    return { body: reply }
  })

  api.add('GET', '/peers', async () => {
    const peers: PeersReply['peers'] = []
    for (const [peerId, p] of byPeer(ctx.node)) {
      const since = Math.min(...p.connections.map(c => c.timeline.open))
      const rtts = p.connections.map(c => c.rtt).filter((r): r is number => r !== undefined)
      const t = ctx.traffic.get(peerId)
      const parts = Object.fromEntries(ctx.components().flatMap(c => {
        const info = c.peerInfo?.(peerId)
        return info !== undefined ? [[c.name, info]] : []
      }))
      peers.push({
        peerId,
        addrs: await listenAddrs(ctx.node, p.id, p.connections),
        connections: p.connections.map(c => ({ remoteAddr: c.remoteAddr.toString(), direction: c.direction, since: new Date(c.timeline.open).toISOString() })),
        connected_since: new Date(since).toISOString(),
        rtt_ms: rtts.length > 0 ? Math.min(...rtts) : null,
        bytes_sent: t.sent,
        bytes_received: t.received,
        via: ctx.dialer.via(peerId) ?? 'inbound',
        capability: ((parts.election as { capability?: Capability | null } | undefined)?.capability) ?? null,
        ...parts
      })
    }
    const reply: PeersReply = { peers }
    return { body: reply }
  })
}
