/**
 * The simulated clients of bench/relay.ts: `clients` libp2p nodes in one
 * process (TCP + Noise + Yamux, as the agent), each a school server relaying
 * the outboxes of `origins / clients` laptops to the sink, with the real relay
 * core (src/core/relay) and codec over an in-memory outbox.
 *
 *   node --import tsx bench/relay-clients.ts SINK_ADDR CLIENTS ORIGINS ITEMS BODY_BYTES
 *
 * prints {"ready": …} once every client is connected, then
 * {"items", "seconds", "cpu", "receipts"} when every outbox is empty.
 */
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { multiaddr } from '@multiformats/multiaddr'
import type { Stream } from '@libp2p/interface'
import { FrameReader, PROTOCOL, Relay, decodeFrame, encodeFrame } from '../src/core/relay/index.js'
import type { OutboxEntry, RelayOutput } from '../src/core/relay/index.js'

const [addr, clientsText, originsText, itemsText, bodyText] = process.argv.slice(2) as [string, string, string, string, string]
const CLIENTS = Number(clientsText)
const ORIGINS = Number(originsText)
const ITEMS = Number(itemsText)
const BODY = Number(bodyText)

function cpuSeconds (): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

/** A statistics sample's JSON, padded to about `size` bytes. */
function sample (school: number, k: number, size: number): Uint8Array {
  const head = JSON.stringify({ school: `Escuela ${school}`, sampled_at: 1_700_000_000_000 + k * 60_000, battery: 0.5, pad: '' })
  return new TextEncoder().encode(head.replace('"pad":""', `"pad":"${'x'.repeat(Math.max(0, size - head.length))}"`))
}

interface Client { node: Libp2p, stream: Stream, core: Relay, outbox: Map<number, OutboxEntry>, order: number[], timer?: NodeJS.Timeout }

let remaining = 0
let receipts = 0
let done: () => void = () => {}
const finished = new Promise<void>(resolve => { done = resolve })

function feed (c: Client, peer: string, input: Parameters<Relay['handle']>[0]): void {
  const queue = [input]
  for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
    for (const o of c.core.handle(i, performance.now())) act(c, peer, o, queue)
  }
  clearTimeout(c.timer)
  const d = c.core.nextDeadline()
  if (d !== undefined) c.timer = setTimeout(() => { feed(c, peer, { type: 'timer' }) }, Math.max(0, d - performance.now()))
}

function act (c: Client, peer: string, o: RelayOutput, queue: Array<Parameters<Relay['handle']>[0]>): void {
  switch (o.type) {
    case 'load': {
      const items: OutboxEntry[] = []
      let more = false
      for (const seq of c.order) {
        if (seq <= o.after) continue
        const e = c.outbox.get(seq)
        if (e === undefined) continue
        if (items.length >= o.maxItems) { more = true; break }
        items.push(e)
      }
      queue.push({ type: 'loaded', request: o.request, items, more })
      return
    }
    case 'send': {
      try {
        if (!c.stream.send(encodeFrame(o.message))) void c.stream.onDrain().catch(() => {})
      } catch {
        // the stream closed: its 'close' handler reopens it and the core offers again
      }
      return
    }
    case 'forget': {
      receipts++
      for (const cu of o.custody) {
        const above = new Set(cu.above)
        for (const [seq, e] of c.outbox) {
          if (e.origin === cu.origin && (e.counter <= cu.contiguous || above.has(e.counter))) {
            c.outbox.delete(seq)
            remaining--
          }
        }
      }
      c.order = c.order.filter(s => c.outbox.has(s))
      if (remaining === 0) done()
    }
  }
}

const clients: Client[] = []
const perClient = Math.ceil(ORIGINS / CLIENTS)
let origin = 0
for (let i = 0; i < CLIENTS; i++) {
  const node = await createLibp2p({ addresses: { listen: [] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
  const outbox = new Map<number, OutboxEntry>()
  let seq = 0
  // Each laptop's items, interleaved as a school server's outbox receives them.
  const mine = Array.from({ length: Math.min(perClient, ORIGINS - origin) }, () => `12D3KooWBenchLaptop${origin++}`)
  for (let k = 1; k <= ITEMS; k++) {
    for (const o of mine) {
      seq++
      outbox.set(seq, { seq, origin: o, counter: k, kind: k % 10 === 0 ? 'install-report' : 'statistics', created: 1_700_000_000_000 + k, body: sample(i, k, BODY) })
    }
  }
  remaining += outbox.size
  // libp2p takes at most 5 new inbound connections a second from one host
  // (inboundConnectionThreshold); every client here is 127.0.0.1, so a refused
  // dial is tried again a moment later.
  let stream: Stream | undefined
  for (let attempt = 0; stream === undefined; attempt++) {
    try {
      stream = await node.dialProtocol(multiaddr(addr), PROTOCOL)
    } catch (err) {
      if (attempt >= 60) throw err
      await new Promise(resolve => setTimeout(resolve, 250 + Math.random() * 250))
    }
  }
  const c: Client = { node, stream, core: new Relay({ random: Math.random }), outbox, order: [...outbox.keys()] }
  clients.push(c)
}
const total = remaining
process.stdout.write(JSON.stringify({ ready: clients.length, items: total }) + '\n')
const cpu0 = cpuSeconds()
const t0 = performance.now()
let reopened = 0
/** Reads frames from c's stream into its core; a closed stream is reopened (the core offers again). */
function attach (c: Client, peer: string): void {
  const reader = new FrameReader()
  const stream = c.stream
  stream.addEventListener('message', evt => {
    const chunks = evt.data instanceof Uint8Array ? [evt.data] : [...evt.data]
    for (const ch of chunks) for (const body of reader.push(ch)) feed(c, peer, { type: 'message', peer, message: decodeFrame(body) })
  })
  stream.addEventListener('close', evt => {
    if (remaining === 0) return
    reopened++
    process.stderr.write(`relay-clients: a stream closed (${String((evt as { error?: Error }).error?.message ?? 'closed')}); reopening\n`)
    feed(c, peer, { type: 'disconnected', peer })
    // Reopen until it works, as the agent's driver does (its dialer redials for ever).
    const reopen = (delay: number): void => {
      setTimeout(() => {
        c.node.dialProtocol(multiaddr(addr), PROTOCOL).then(s => {
          c.stream = s
          attach(c, peer)
          feed(c, peer, { type: 'connected', peer })
        }, () => { reopen(Math.min(10_000, delay * 2)) })
      }, delay)
    }
    reopen(500)
  })
}
for (const c of clients) {
  // The core's peer is the sink, the same for every stream of this client.
  const peer = 'sink'
  attach(c, peer)
  feed(c, peer, { type: 'upstream', peer })
  feed(c, peer, { type: 'connected', peer })
}
const timeout = setTimeout(() => { process.stdout.write(JSON.stringify({ error: `timed out with ${remaining} of ${total} items left` }) + '\n'); process.exit(1) }, 600_000)
await finished
clearTimeout(timeout)
process.stdout.write(JSON.stringify({ items: total, seconds: (performance.now() - t0) / 1000, cpu: cpuSeconds() - cpu0, receipts, reopened }) + '\n')
for (const c of clients) clearTimeout(c.timer)
await Promise.all(clients.map(async c => { await c.node.stop() }))
process.exit(0)
