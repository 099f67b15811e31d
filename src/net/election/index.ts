// The school server election as an agent component (src/agent/components.ts):
//
//   election({ facts: () => readFacts(), config: { heartbeatMs: 2000 } })
//
// registers /xo-mesh/election/1.0.0, runs the election core over libp2p
// streams, reports role, server and term in the status and each neighbour's
// facts in /peers, and emits 'election:role' on the event bus.
import type { ComponentFactory } from '../component.ts'
import { ElectionDriver, type ElectionDriverInit } from './driver.ts'

export { ElectionDriver, type ElectionDriverInit } from './driver.ts'
export { ed25519Authenticator } from './keys.ts'

export function election (init: ElectionDriverInit): ComponentFactory<ElectionDriver> {
  return components => new ElectionDriver(components, init)
}
