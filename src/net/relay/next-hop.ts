// The next hop towards the mothership: the seam the election fills.
//
// A laptop's next hop is the elected school server (electedNextHop); the
// server's, and anyone's while no server is elected, is the configured
// upstream (`upstream`, a multiaddr ending in /p2p/<peer id>). The driver
// asks again every few seconds and on `relay:next-hop-changed` (emitted on
// every `election:role`), so a moved server role is picked up without a
// restart.
import { multiaddr } from '@multiformats/multiaddr'

/** A peer to hand the outbox to. */
export interface UpstreamHop {
  /** Its peer id: receipts are taken only from this authenticated peer. */
  peerId: string
  /** Addresses to dial it at (may be empty when it is already connected, e.g. found by mDNS). */
  addrs: string[]
}

/** Returns the current next hop, or null when there is none (the mothership; no link; no server elected). */
export type NextHop = () => UpstreamHop | null

/** The next hop named by a multiaddr with a /p2p/ part; throws on one without. */
export function hopFromMultiaddr (text: string): UpstreamHop {
  const ma = multiaddr(text)
  const peerId = ma.getComponents().findLast(c => c.name === 'p2p')?.value
  if (peerId === undefined) throw new Error(`upstream ${JSON.stringify(text)} has no /p2p/<peer id>: receipts must come from a known peer`)
  return { peerId, addrs: [text] }
}

/** A fixed next hop (config), or none. */
export function configuredNextHop (upstream: string | null): NextHop {
  const hop = upstream === null ? null : hopFromMultiaddr(upstream)
  return () => hop
}

/** What the election says of this agent (src/net/election): its role and the school server of its group. */
export interface ElectedRole { role: 'server' | 'peer', server: string | null }

/**
 * The next hop a school's laptops use: the elected school server while this
 * agent is a peer in a group that has one; otherwise (it is the server
 * itself, or none is elected yet) the configured upstream, if any. Ask again
 * on every `election:role` event (`relay:next-hop-changed`).
 */
export function electedNextHop (configured: NextHop, elected: () => ElectedRole): NextHop {
  return () => {
    const e = elected()
    if (e.role === 'peer' && e.server !== null) return { peerId: e.server, addrs: [] }
    return configured()
  }
}
