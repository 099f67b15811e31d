// The block exchange as an agent component (src/agent/components.ts):
//
//   blocks({ uploadRate: 2_000_000 })
//
// registers /xo-mesh/blocks/1.0.0, runs the exchange core over libp2p streams
// and the block store, and adds POST /fetch and GET /builds/:cid to the API.
import type { ComponentFactory } from '../component.ts'
import { addBlocksRoutes } from './api.ts'
import { BlocksDriver, type BlocksInit } from './driver.ts'

export { BlocksDriver, type BlocksInit, type BuildProgress, type PeerCounters } from './driver.ts'
export type { BuildsReply } from './api.ts'

export function blocks (init: BlocksInit = {}): ComponentFactory<BlocksDriver> {
  return components => {
    const driver = new BlocksDriver(components, init)
    addBlocksRoutes(components.api, driver, components.repo)
    return driver
  }
}
