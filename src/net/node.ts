// The libp2p node every agent runs: TCP, Noise, Yamux, identify (architecture.md,
// "Mesh"). Discovery is not a libp2p peerDiscovery module here: mdns.ts and
// dialer.ts find peers and dial them themselves (libp2p 3 dials nothing it
// discovers).
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { nodeNoiseCrypto } from './noise-crypto.ts'

export interface NodeInit {
  privateKey: PrivateKey
  /** Multiaddrs to listen on, e.g. /ip4/0.0.0.0/tcp/0. */
  listen: string[]
  /** Above this, libp2p prunes connections. */
  maxConnections: number
  /** Give up one dial after this long (ms). */
  dialTimeoutMs: number
  /** Reported by identify as the agent version. */
  version: string
}

/** Creates the node, not started: components register handlers before it listens. */
export async function createNode (init: NodeInit): Promise<Libp2p> {
  return createLibp2p({
    start: false,
    privateKey: init.privateKey,
    nodeInfo: { name: 'xo-mesh', version: init.version },
    addresses: { listen: init.listen },
    transports: [tcp()],
    // Noise on OpenSSL alone: no WebAssembly in an idle agent (noise-crypto.ts)
    connectionEncrypters: [noise({ crypto: nodeNoiseCrypto })],
    streamMuxers: [yamux()],
    services: { identify: identify() },
    connectionManager: {
      maxConnections: init.maxConnections,
      dialTimeout: init.dialTimeoutMs
    }
  })
}
