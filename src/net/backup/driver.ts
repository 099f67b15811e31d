// /xo-mesh/backup/1.0.0 (codec.ts): the school server hands back the
// encrypted backups it keeps (DATA/backups.db, src/store/backups.ts) to
// whoever names an owner bucket, and a laptop restoring its journal asks its
// next hop (the elected school server, else the configured upstream) for
// them. The server keeps what it relays: the relay calls keepRelayed() with
// each batch of backup-chunk items before it takes custody of them.
//
// What a server hands out is opaque ciphertext; the bucket id is known only
// to the owner's key, so asking is itself the capability.
import type { Stream, StreamMessageEvent } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Uint8ArrayList } from 'uint8arraylist'
import { LengthPrefixedReader, lengthPrefixed } from '../../core/wire/frames.ts'
import type { Item } from '../../core/relay/index.ts'
import { KeptBackups } from '../../store/backups.ts'
import type { MeshComponent, MeshComponents, StatusPart } from '../component.ts'
import type { Logger } from '../logger.ts'
import type { NextHop } from '../relay/next-hop.ts'
import { MAX_REQUEST, MAX_REQUEST_IDS, MAX_RESPONSE, PROTOCOL, decodeRequest, decodeResponse, encodeRequest, encodeResponse, responseRecordSize, type BackupRequest, type BackupResponse } from './codec.ts'

export interface BackupServiceInit {
  /** Keep the backup chunks this agent relays, to serve restores (a school server). Default true. */
  keep?: boolean
  /** Bytes of blobs kept at most. */
  maxBytes?: number
  /** Where restores ask: the next hop towards the mothership. */
  nextHop?: NextHop
  /** A request must be answered within this long, ms (default 30 000). */
  timeoutMs?: number
}

/** The client's view of a server's kept backups for one bucket (content/backup/restore.ts's BlobSource). */
export interface RemoteBlobSource {
  snapshots: () => Promise<Array<{ id: Uint8Array, bytes: Uint8Array }>>
  blobs: (ids: Uint8Array[]) => Promise<Map<string, Uint8Array>>
  /** The peer asked. */
  peer: string
}

/** No next hop to ask, or it did not answer. */
export class BackupUnreachableError extends Error {
  readonly code = 'ERR_BACKUP_UNREACHABLE'
}

export class BackupService implements MeshComponent {
  readonly name = 'backup-service'
  private readonly c: MeshComponents
  private readonly log: Logger
  private readonly init: BackupServiceInit
  private keptStore: KeptBackups | undefined
  private stopped = false
  readonly counters = { requests: 0, malformed: 0, blobsServed: 0 }

  constructor (components: MeshComponents, init: BackupServiceInit = {}) {
    this.c = components
    this.log = components.logger.child('backup')
    this.init = init
  }

  /** The kept backups (opened on first use). */
  get kept (): KeptBackups | undefined {
    if (this.init.keep === false || this.stopped) return undefined
    this.keptStore ??= KeptBackups.open(this.c.dataDir, this.init.maxBytes !== undefined ? { maxBytes: this.init.maxBytes } : {})
    return this.keptStore
  }

  /** The relay's hook: keeps the backup chunks among items offered to this hop (before custody is taken). */
  keepRelayed (items: Item[]): void {
    const packs = items.filter(it => it.kind === 'backup-chunk').map(it => ({ origin: it.origin, body: it.body }))
    if (packs.length === 0) return
    try {
      this.kept?.keep(packs)
    } catch (err) {
      // a cache beside custody: the items go on upstream whatever happens here
      this.log.warn('keeping relayed backup chunks failed', { error: err })
    }
  }

  async beforeStart (): Promise<void> {
    await this.c.node.handle(PROTOCOL, (stream, connection) => { void this.serve(stream, connection.remotePeer.toString()) }, { maxInboundStreams: 8 })
  }

  async stop (): Promise<void> {
    this.stopped = true
    try { await this.c.node.unhandle(PROTOCOL) } catch { /* stopping anyway */ }
    this.keptStore?.close()
  }

  status (): StatusPart {
    return { extra: { kept: this.keptStore?.summary() ?? null, ...this.counters } }
  }

  private answer (req: BackupRequest): BackupResponse {
    const kept = this.kept
    if (req.type === 'snapshots') {
      const records = kept?.snapshots(req.bucket).map(s => ({ id: s.id, bytes: s.bytes })) ?? []
      // snapshots are small (~200 bytes); a bucket with more than fit is cut to the newest
      let size = 2
      const out: typeof records = []
      for (const r of records.reverse()) {
        if (size + responseRecordSize(r.bytes.length) > MAX_RESPONSE || out.length >= 0xffff) break
        size += responseRecordSize(r.bytes.length)
        out.push(r)
      }
      return { answered: out.length, records: out }
    }
    const records: BackupResponse['records'] = []
    let size = 2
    let answered = 0
    for (const id of req.ids) {
      const body = kept?.blobs(req.bucket, [id]).get(Buffer.from(id).toString('hex'))
      if (body !== undefined) {
        if (size + responseRecordSize(body.length) > MAX_RESPONSE) break
        size += responseRecordSize(body.length)
        records.push({ id, bytes: body })
      }
      answered++
    }
    this.counters.blobsServed += records.length
    return { answered, records }
  }

  private async serve (stream: Stream, peer: string): Promise<void> {
    this.counters.requests++
    try {
      const body = await readFrame(stream, MAX_REQUEST, this.init.timeoutMs ?? 30_000)
      let req: BackupRequest
      try {
        req = decodeRequest(body)
      } catch (err) {
        this.counters.malformed++
        this.log.warn('malformed backup request', { peerId: peer, reason: (err as Error).message })
        stream.abort(err as Error)
        return
      }
      await writeFrame(stream, encodeResponse(this.answer(req)), this.init.timeoutMs ?? 30_000)
      await stream.close({ signal: AbortSignal.timeout(5000) }).catch(() => {})
    } catch (err) {
      this.log.debug('backup request failed', { peerId: peer, error: err })
      try { stream.abort(err as Error) } catch { /* closed */ }
    }
  }

  /** Asks the next hop once; throws BackupUnreachableError when there is none or it does not answer. */
  private async ask (req: BackupRequest): Promise<{ peer: string, res: BackupResponse }> {
    const hop = this.init.nextHop?.() ?? null
    if (hop === null) throw new BackupUnreachableError('no school server or upstream to restore from (none is elected and no upstream is configured)')
    const timeoutMs = this.init.timeoutMs ?? 30_000
    let stream: Stream
    try {
      const target = hop.addrs.length > 0 ? hop.addrs.map(a => multiaddr(a)) : peerIdFromString(hop.peerId)
      stream = await this.c.node.dialProtocol(target, PROTOCOL, { signal: AbortSignal.timeout(timeoutMs) })
    } catch (err) {
      throw new BackupUnreachableError(`cannot reach ${hop.peerId} to restore from: ${(err as Error).message}`)
    }
    try {
      await writeFrame(stream, encodeRequest(req), timeoutMs)
      const res = decodeResponse(await readFrame(stream, MAX_RESPONSE, timeoutMs))
      await stream.close({ signal: AbortSignal.timeout(5000) }).catch(() => {})
      return { peer: hop.peerId, res }
    } catch (err) {
      try { stream.abort(err as Error) } catch { /* closed */ }
      throw new BackupUnreachableError(`${hop.peerId} did not answer a backup request: ${(err as Error).message}`)
    }
  }

  /** The backups the next hop keeps of a bucket. */
  remote (bucket: Uint8Array): RemoteBlobSource {
    const source: RemoteBlobSource = {
      peer: this.init.nextHop?.()?.peerId ?? '',
      snapshots: async () => {
        const { peer, res } = await this.ask({ type: 'snapshots', bucket })
        source.peer = peer
        return res.records
      },
      blobs: async ids => {
        const out = new Map<string, Uint8Array>()
        for (let i = 0; i < ids.length;) {
          const slice = ids.slice(i, i + MAX_REQUEST_IDS)
          const { res } = await this.ask({ type: 'blobs', bucket, ids: slice })
          if (res.answered === 0) throw new BackupUnreachableError('the server answered none of the blobs asked (a blob too large for a response?)')
          const asked = new Set(slice.slice(0, res.answered).map(id => Buffer.from(id).toString('hex')))
          for (const r of res.records) {
            const hex = Buffer.from(r.id).toString('hex')
            if (asked.has(hex)) out.set(hex, r.bytes)
          }
          i += Math.min(res.answered, slice.length)
        }
        return out
      }
    }
    return source
  }
}

/** Reads one length-prefixed frame from a stream (at most max bytes), within timeoutMs. */
async function readFrame (stream: Stream, max: number, timeoutMs: number): Promise<Uint8Array> {
  const reader = new LengthPrefixedReader(max)
  return await new Promise<Uint8Array>((resolve, reject) => {
    const timer = setTimeout(() => { done(new Error(`no answer within ${timeoutMs} ms`)) }, timeoutMs)
    const onMessage = (evt: StreamMessageEvent): void => {
      try {
        const data: Uint8Array | Uint8ArrayList = evt.data
        for (const c of data instanceof Uint8Array ? [data] : [...data]) {
          const frames = reader.push(c)
          if (frames.length > 0) { done(undefined, frames[0]!.slice()); return }
        }
      } catch (err) {
        done(err as Error)
      }
    }
    const onClose = (): void => { done(new Error('the stream closed before a whole frame')) }
    const done = (err?: Error, frame?: Uint8Array): void => {
      clearTimeout(timer)
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('close', onClose)
      stream.removeEventListener('remoteCloseWrite', onClose)
      if (err !== undefined) reject(err)
      else resolve(frame!)
    }
    stream.addEventListener('message', onMessage)
    stream.addEventListener('close', onClose)
    stream.addEventListener('remoteCloseWrite', onClose)
  })
}

async function writeFrame (stream: Stream, body: Uint8Array, timeoutMs: number): Promise<void> {
  stream.send(lengthPrefixed(body))
  if (stream.writableNeedsDrain) await stream.onDrain({ signal: AbortSignal.timeout(timeoutMs) })
}
