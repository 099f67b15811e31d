// The next hop towards the mothership: the seam the election fills.
//
// Today the next hop comes from config (`upstream`, a multiaddr ending in
// /p2p/<peer id>). When the election lands, a laptop's next hop is the
// elected school server (and the server's is its configured upstream): give
// the relay driver a NextHop that reads the election's state. The driver asks
// again every few seconds and on `relay:next-hop-changed`, so a moved server
// role is picked up without a restart.
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
