// The components every agent runs, in start order. A protocol driver is one
// more line here, e.g. when the block exchange lands:
//
//   import { blocks } from '../net/blocks.ts'
//   ...
//   blocks({ uploadCapBytesPerSecond: … }),
//
// Each entry is a ComponentFactory (src/net/component.ts): it receives the
// shared components (libp2p node, repo, logger, events, API routes, dialer,
// traffic counters) and returns an object with beforeStart/start/stop/status.
import { mdnsDiscovery } from '../net/mdns.ts'
import { blocks } from '../net/blocks/index.ts'
import { advisory } from '../net/advisory/index.ts'
import { configuredNextHop, relay } from '../net/relay/index.ts'
import type { ComponentFactory } from '../net/component.ts'
import type { AgentConfig } from './config.ts'

export function defaultComponents (config: AgentConfig): ComponentFactory[] {
  const list: ComponentFactory[] = []
  if (config.mdns.enabled) {
    list.push(mdnsDiscovery({
      interfaces: config.mdns.interfaces,
      queryIntervalMs: config.mdns.query_interval_s * 1000,
      ttl: config.mdns.ttl_s
    }))
  }
  list.push(blocks({ uploadSlots: config.blocks.upload_slots, uploadRate: config.blocks.upload_rate, receiveWindow: config.blocks.receive_window }))
  // after blocks: the builds it advises are handed to the exchange as it starts
  const a = config.advisory
  const device = Object.fromEntries(Object.entries({ school: a.school, group: a.group, model: a.model, serial: a.serial }).filter(([, v]) => v !== null)) as { school?: string, group?: string, model?: string, serial?: string }
  list.push(advisory({ ...(a.root_key !== null ? { rootKey: new Uint8Array(Buffer.from(a.root_key, 'hex')) } : {}), device }))
  // The next hop comes from config until the election provides one (src/net/relay/next-hop.ts).
  list.push(relay({ nextHop: configuredNextHop(config.upstream), accept: config.relay.accept, maxBytes: config.relay.max_bytes, sink: config.relay.sink }))
  return list
}
