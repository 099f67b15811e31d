/**
 * The ceiling of bench/exchange.ts: one libp2p TCP + Noise + Yamux stream
 * between two processes, the same stack and options as the agent's node,
 * pushing `bytes` as fast as the stream takes them (1 MiB writes, waiting for
 * 'drain' when told to). Run with node's type stripping (no tsx):
 *
 *   node bench/exchange-peer.ts sink            prints {"addr": …}, then {"bytes", "seconds", "cpu"} once all arrived
 *   node bench/exchange-peer.ts source ADDR N   pushes N bytes to the sink, prints {"cpu"}
 *
 * And the floor of any verified transfer into a store like ours (the same
 * stream, plus only the work the design asks of every block): the source
 * reads each block's file and checks its sha-256 before sending, the sink
 * checks each block's sha-256 and writes it as a file of its own (a temp
 * file renamed into its shard, as the store does). No protocol, no
 * scheduler, no threads: what is left between this and our fetch is the
 * exchange's own cost.
 *
 *   node bench/exchange-peer.ts store-sink DIR N        as sink, storing N bytes of blocks under DIR
 *   node bench/exchange-peer.ts store-source ADDR LIST  sends the blocks of LIST (JSON [[cid, path], …])
 *
 * And the same into a pack store (many blocks per file): the source reads a
 * megabyte of blocks from one pack file at a time, the sink appends each
 * message's verified blocks to one pack file with one writev and their
 * names and offsets to an index:
 *
 *   node bench/exchange-peer.ts pack-sink DIR N
 *   node bench/exchange-peer.ts pack-source ADDR LIST PACK   (PACK: made from LIST first, untimed)
 *
 * On the stream, each block is u32 length | u8 name length | CID string | bytes.
 */
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { Uint8ArrayList } from 'uint8arraylist'
import { createHash } from 'node:crypto'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, writeSync, writevSync } from 'node:fs'
import { join } from 'node:path'

const PROTOCOL = '/xo-mesh/bench-push/1.0.0'
const STORE_PROTOCOL = '/xo-mesh/bench-blocks/1.0.0'
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

type Stream = Parameters<Parameters<typeof node.handle>[1]>[0]

/** Serves `protocol`: each message goes to take(), which returns the bytes it counts; once `want` are counted, reports and closes (which tells the source everything arrived). */
async function sink (protocol: string, want: number, take: (data: Uint8Array | Uint8ArrayList) => number): Promise<void> {
  await node.handle(protocol, stream => {
    let got = 0
    let start = 0
    const cpu0 = cpuSeconds()
    stream.addEventListener('message', evt => {
      if (start === 0) start = performance.now()
      got += take(evt.data)
      if (want > 0 && got >= want) {
        process.stdout.write(JSON.stringify({ bytes: got, seconds: (performance.now() - start) / 1000, cpu: cpuSeconds() - cpu0 }) + '\n')
        void stream.close().finally(async () => { await node.stop(); process.exit(0) })
      }
    })
  })
  process.stdout.write(JSON.stringify({ addr: node.getMultiaddrs()[0]!.toString() }) + '\n')
}

/** Closes the source's end, waits for the sink to close its own (it has every byte), reports the CPU since cpu0 and exits. */
async function finish (stream: Stream, cpu0: number): Promise<never> {
  const done = new Promise<void>(resolve => { stream.addEventListener('close', () => { resolve() }) })
  await stream.close()
  await Promise.race([done, new Promise(resolve => setTimeout(resolve, 120_000))])
  process.stdout.write(JSON.stringify({ cpu: cpuSeconds() - cpu0 }) + '\n')
  await node.stop()
  process.exit(0)
}

/** Throws unless the block's sha-256 is the one its CID names: the check every block gets on both sides. */
function verify (name: string, bytes: Uint8Array): void {
  if (!createHash('sha256').update(bytes).digest().equals(CID.parse(name).multihash.digest)) throw new Error(`block ${name}: wrong sha-256`)
}

const role = process.argv[2]
if (role === 'sink') {
  await sink(PROTOCOL, Number(process.argv[3] ?? 0), data => data.byteLength)
} else if (role === 'source') {
  const total = Number(process.argv[4])
  const stream = await node.dialProtocol(multiaddr(process.argv[3]!), PROTOCOL)
  const cpu0 = cpuSeconds()
  const chunk = new Uint8Array(CHUNK).map((_, i) => (i * 7919) & 0xff)
  for (let sent = 0; sent < total; sent += CHUNK) {
    const n = Math.min(CHUNK, total - sent)
    if (!stream.send(n === CHUNK ? chunk : chunk.subarray(0, n))) await stream.onDrain()
  }
  await finish(stream, cpu0)
} else if (role === 'store-sink' || role === 'pack-sink') {
  const dir = process.argv[3]!
  const tmp = join(dir, '.tmp')
  mkdirSync(tmp, { recursive: true })
  const shards = new Set<string>()
  let n = 0
  // pack-sink: the verified blocks of each message appended to one pack file
  // with one writev, their names and offsets to an index with one write
  const pack = role === 'pack-sink' ? openSync(join(dir, 'pack'), 'a') : -1
  const index = role === 'pack-sink' ? openSync(join(dir, 'pack.index'), 'a') : -1
  let packed: Uint8Array[] = []
  let entries = ''
  let offset = 0
  const flushPack = (): void => {
    if (packed.length === 0) return
    writevSync(pack, packed)
    writeSync(index, entries)
    packed = []
    entries = ''
  }
  const store = (name: string, bytes: Uint8Array): void => {
    verify(name, bytes)
    if (pack >= 0) {
      packed.push(bytes)
      entries += `${name} ${offset} ${bytes.length}\n`
      offset += bytes.length
      return
    }
    const shard = name.slice(-3, -1)
    if (!shards.has(shard)) { mkdirSync(join(dir, shard), { recursive: true }); shards.add(shard) }
    const t = join(tmp, `w${n++}`)
    const fd = openSync(t, 'wx', 0o644)
    try {
      for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off)
    } finally {
      closeSync(fd)
    }
    renameSync(t, join(dir, shard, name))
  }
  const buf = new Uint8ArrayList()
  await sink(STORE_PROTOCOL, Number(process.argv[4] ?? 0), data => {
    buf.append(data)
    let got = 0
    while (buf.length >= 5) {
      const len = buf.getUint32(0)
      if (buf.length < 4 + len) break
      const nameLen = buf.get(4)
      const name = new TextDecoder().decode(buf.subarray(5, 5 + nameLen))
      const bytes = buf.subarray(5 + nameLen, 4 + len)
      buf.consume(4 + len)
      store(name, bytes)
      got += bytes.length
    }
    flushPack()
    return got
  })
} else if (role === 'store-source' || role === 'pack-source') {
  const list = JSON.parse(readFileSync(process.argv[4]!, 'utf8')) as Array<[string, string]>
  // pack-source: the leaves first copied (untimed) into one pack file, then
  // read a megabyte of blocks at a time, one read per frame
  const packFile = process.argv[5]
  const sizes: number[] = []
  if (role === 'pack-source') {
    if (packFile === undefined) throw new Error('pack-source needs a pack file')
    const fd = openSync(packFile, 'w')
    for (const [, path] of list) { const b = readFileSync(path); writeSync(fd, b); sizes.push(b.length) }
    closeSync(fd)
  }
  const packFd = packFile !== undefined && existsSync(packFile) ? openSync(packFile, 'r') : -1
  const stream = await node.dialProtocol(multiaddr(process.argv[3]!), STORE_PROTOCOL)
  const cpu0 = cpuSeconds()
  let out = new Uint8ArrayList()
  let frame = Buffer.alloc(0)
  let frameAt = 0
  let offset = 0
  for (let i = 0; i < list.length; i++) {
    const [name, path] = list[i]!
    let bytes: Uint8Array
    if (packFd < 0) bytes = readFileSync(path)
    else {
      if (offset + sizes[i]! > frameAt + frame.length) {
        let end = offset
        for (let j = i; j < list.length && end - offset < CHUNK; j++) end += sizes[j]!
        frame = Buffer.allocUnsafe(end - offset)
        readSync(packFd, frame, 0, frame.length, offset)
        frameAt = offset
      }
      bytes = frame.subarray(offset - frameAt, offset - frameAt + sizes[i]!)
      offset += sizes[i]!
    }
    verify(name, bytes)
    const head = Buffer.alloc(5 + name.length)
    head.writeUInt32BE(1 + name.length + bytes.length, 0)
    head[4] = name.length
    head.write(name, 5, 'latin1')
    // a MiB of blocks per send, as the exchange sends frames (a send per
    // block costs the stream more than the store work it measures)
    out.append(head, bytes)
    if (out.byteLength >= CHUNK || i === list.length - 1) {
      const full = !stream.send(out)
      out = new Uint8ArrayList()
      if (full) await stream.onDrain()
    }
  }
  await finish(stream, cpu0)
} else {
  process.stderr.write('usage: exchange-peer.ts sink BYTES | source ADDR BYTES | store-sink DIR BYTES | store-source ADDR LIST | pack-sink DIR BYTES | pack-source ADDR LIST PACK\n')
  process.exit(2)
}
