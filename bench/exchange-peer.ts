/**
 * The ceiling of bench/exchange.ts: one libp2p TCP + Noise + Yamux stream
 * between two processes, the same stack and options as the agent's node,
 * pushing `bytes` as fast as the stream takes them (1 MiB writes, waiting for
 * 'drain' when told to). Run with node's type stripping (no tsx):
 *
 *   node bench/exchange-peer.ts sink            prints {"addr": …}, then {"bytes", "seconds", "cpu"} once all arrived
 *   node bench/exchange-peer.ts source ADDR N   pushes N bytes to the sink, prints {"cpu"}
 */
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { multiaddr } from '@multiformats/multiaddr'

const PROTOCOL = '/xo-mesh/bench-push/1.0.0'
const CHUNK = 1 << 20

function cpuSeconds (): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify() }
})

const role = process.argv[2]
if (role === 'sink') {
  const want = Number(process.argv[3] ?? 0)
  await node.handle(PROTOCOL, stream => {
    let got = 0
    let start = 0
    const cpu0 = cpuSeconds()
    stream.addEventListener('message', evt => {
      if (start === 0) start = performance.now()
      got += evt.data.byteLength
      if (want > 0 && got >= want) {
        process.stdout.write(JSON.stringify({ bytes: got, seconds: (performance.now() - start) / 1000, cpu: cpuSeconds() - cpu0 }) + '\n')
        // closing our end tells the source everything arrived
        void stream.close().finally(async () => { await node.stop(); process.exit(0) })
      }
    })
  })
  process.stdout.write(JSON.stringify({ addr: node.getMultiaddrs()[0]!.toString() }) + '\n')
} else if (role === 'source') {
  const addr = process.argv[3]!
  const total = Number(process.argv[4])
  const stream = await node.dialProtocol(multiaddr(addr), PROTOCOL)
  const cpu0 = cpuSeconds()
  const chunk = new Uint8Array(CHUNK).map((_, i) => (i * 7919) & 0xff)
  for (let sent = 0; sent < total; sent += CHUNK) {
    const n = Math.min(CHUNK, total - sent)
    if (!stream.send(n === CHUNK ? chunk : chunk.subarray(0, n))) await stream.onDrain()
  }
  const done = new Promise<void>(resolve => { stream.addEventListener('close', () => { resolve() }) })
  await stream.close()
  // the sink closes its end once it has every byte
  await Promise.race([done, new Promise(resolve => setTimeout(resolve, 120_000))])
  process.stdout.write(JSON.stringify({ cpu: cpuSeconds() - cpu0 }) + '\n')
  await node.stop()
  process.exit(0)
} else {
  process.stderr.write('usage: exchange-peer.ts sink BYTES | source ADDR BYTES\n')
  process.exit(2)
}
