// Helpers of the block exchange tests: pseudo-random trees, free ports, agent
// data directories with a config, the API, a check that a store holds only
// good blocks, and HostilePeer: a libp2p node in the test process that speaks
// /xo-mesh/blocks/1.0.0 with the real codec and misbehaves on purpose.
import { createCipheriv, createHash, randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { join } from 'node:path'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { multiaddr } from '@multiformats/multiaddr'
import type { Stream } from '@libp2p/interface'
import { FrameReader, PROTOCOL, decodeFrame, encodeBlocksHead, encodeFrame } from '../../src/core/exchange/index.ts'
import type { ControlMessage, Message } from '../../src/core/exchange/index.ts'
import { BlockStore } from '../../src/content/blockstore.ts'
import { CID } from '../../src/content/cid.ts'

/** A deterministic byte stream (AES-CTR of zeros under a key from seed). */
export function byteStream (seed: string): (n: number) => Buffer {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16)
  const c = createCipheriv('aes-128-ctr', key, Buffer.alloc(16))
  return n => c.update(Buffer.alloc(n))
}

/** A tree of pseudo-random files adding up to `bytes`: a few large files and some small ones, in subdirectories. */
export async function makeTree (dir: string, bytes: number, seed = 'xo-mesh-blocks'): Promise<void> {
  const rand = byteStream(seed)
  let left = bytes
  for (let i = 0; left > 0; i++) {
    const sub = join(dir, `dir${i % 3}`)
    await mkdir(sub, { recursive: true })
    const n = Math.min(left, i % 4 === 3 ? 3000 + i * 101 : (3 << 20) + ((i * 7919) % (2 << 20)))
    await writeFile(join(sub, `file${i}.bin`), rand(n))
    left -= n
  }
}

export { freePort } from '../support/wait.ts'

/** Writes DATA/config.yaml (the agent reads it at start). */
export async function writeConfig (dataDir: string, yaml: string): Promise<void> {
  await mkdir(dataDir, { recursive: true })
  await writeFile(join(dataDir, 'config.yaml'), yaml)
}

/** A request to the agent's API from the test process; resolves with status and parsed body. */
export async function api (url: string, path: string, body?: unknown): Promise<{ status: number, body: unknown }> {
  const payload = body !== undefined ? JSON.stringify(body) : undefined
  return await new Promise((resolve, reject) => {
    const req = request(new URL('/api/v1' + path, url), {
      method: payload !== undefined ? 'POST' : 'GET',
      headers: payload !== undefined ? { 'Content-Type': 'application/json' } : {},
      timeout: 5_000
    }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { text += d })
      res.on('end', () => {
        try { resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }) } catch (err) { reject(err) }
      })
    })
    req.on('timeout', () => { req.destroy(new Error('API request timed out')) })
    req.on('error', reject)
    req.end(payload)
  })
}

export interface Progress { cid: string, phase: string, complete: boolean, bytes: number, have_bytes: number, leaves: number, sources: Array<{ peerId: string, bytes: number, blocks: number }>, error: string | null }
export interface BlockCounters { bytes_received: number, blocks_received: number, bytes_sent: number, blocks_sent: number, corrupt_blocks: number }

/** GET /builds/:cid, or undefined when the agent does not hold it (yet). */
export async function progressOf (url: string, cid: string): Promise<Progress | undefined> {
  const r = await api(url, `/builds/${cid}`)
  return r.status === 200 ? r.body as Progress : undefined
}

/** The blocks counters of each connected peer, by peer id. */
export async function blockCounters (url: string): Promise<Map<string, BlockCounters>> {
  const r = await api(url, '/peers')
  const out = new Map<string, BlockCounters>()
  for (const p of (r.body as { peers: Array<{ peerId: string, blocks?: BlockCounters }> }).peers) {
    if (p.blocks !== undefined) out.set(p.peerId, p.blocks)
  }
  return out
}

/** Reads every block of a store through the verifying read; returns how many there are and which fail. */
export async function checkStore (dataDir: string): Promise<{ blocks: number, bad: string[] }> {
  const store = new BlockStore(join(dataDir, 'blocks'))
  let blocks = 0
  const bad: string[] = []
  for await (const cid of store.cids()) {
    blocks++
    try { await store.get(cid) } catch { bad.push(cid.toString()) }
  }
  return { blocks, bad }
}

/** What a hostile peer does once its stream to the agent is open, and with each frame the agent sends it. */
export interface Behaviour {
  onOpen?: (p: HostilePeer) => void | Promise<void>
  onFrame?: (p: HostilePeer, m: Message) => void
}

/**
 * A libp2p node (TCP, Noise, Yamux) in the test process that dials an agent
 * and speaks the block exchange with the real codec, doing what `behaviour`
 * says. It records what the agent sends it and whether its streams were closed.
 */
export class HostilePeer {
  node!: Libp2p
  out: Stream | undefined
  readonly received: Message[] = []
  closed = false
  private readonly behaviour: Behaviour

  constructor (behaviour: Behaviour) {
    this.behaviour = behaviour
  }

  get peerId (): string {
    return this.node.peerId.toString()
  }

  async start (): Promise<this> {
    this.node = await createLibp2p({
      addresses: { listen: [] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()]
    })
    await this.node.handle(PROTOCOL, stream => {
      const reader = new FrameReader()
      stream.addEventListener('message', evt => {
        try {
          const chunks = evt.data instanceof Uint8Array ? [evt.data] : [...evt.data]
          for (const c of chunks) {
            for (const body of reader.push(c)) {
              const m = decodeFrame(body)
              this.received.push(m)
              this.behaviour.onFrame?.(this, m)
            }
          }
        } catch {
          // the agent never sends garbage; a test failure shows elsewhere
        }
      })
      stream.addEventListener('close', () => { this.closed = true })
    })
    return this
  }

  /** Dials the agent at `addr` (a multiaddr with /p2p/) and opens our stream. */
  async connect (addr: string): Promise<void> {
    const conn = await this.node.dial(multiaddr(addr))
    this.out = await conn.newStream(PROTOCOL)
    this.out.addEventListener('close', () => { this.closed = true })
    await this.behaviour.onOpen?.(this)
  }

  /** Writes raw bytes on our stream (false once it is closed). */
  sendBytes (bytes: Uint8Array): boolean {
    if (this.out === undefined || this.out.status !== 'open' || this.out.writeStatus !== 'writable') return false
    try {
      this.out.send(bytes)
      return true
    } catch {
      return false
    }
  }

  send (m: ControlMessage): boolean {
    return this.sendBytes(encodeFrame(m))
  }

  /** A data frame with these leaves and sizes, every block random bytes. */
  sendGarbageLeaves (root: Uint8Array, indices: ArrayLike<number>, sizes: ArrayLike<number>): boolean {
    const head = encodeBlocksHead({ root, indices, cids: [], sizes })
    let total = 0
    for (let i = 0; i < sizes.length; i++) total += sizes[i]!
    const frame = new Uint8Array(head.length + total)
    frame.set(head)
    frame.set(randomBytes(total), head.length)
    return this.sendBytes(frame)
  }

  /** A data frame with these manifest CIDs, every block `size` random bytes. */
  sendGarbageManifest (root: Uint8Array, cids: Uint8Array[], size: number): boolean {
    const head = encodeBlocksHead({ root, indices: [], cids, sizes: cids.map(() => size) })
    const frame = new Uint8Array(head.length + size * cids.length)
    frame.set(head)
    frame.set(randomBytes(size * cids.length), head.length)
    return this.sendBytes(frame)
  }

  async stop (): Promise<void> {
    await this.node.stop()
  }
}

/** The agent's multiaddr on 127.0.0.1 with its peer id. */
export function agentAddr (port: number, peerId: string): string {
  return `/ip4/127.0.0.1/tcp/${port}/p2p/${peerId}`
}

export { CID }
