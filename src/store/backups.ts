// The backups a school server keeps for fast restore (DATA/backups.db): the
// encrypted blobs and snapshots of the packs (backup-chunk items) it relays,
// per owner bucket. It cannot read them (docs/upstream.md, "Backups"); it
// hands them back to whoever names the bucket (only the owner's key yields
// it). Packs are untrusted input: one that does not decode is relayed but
// not kept. A kept copy is a cache beside custody: the items go on upstream
// whatever happens here, and past max_bytes nothing more is kept.
import { join } from 'node:path'
import { decodePack, type Pack } from '../content/backup/pack.ts'
import { openDatabase, transaction, type Database } from './sqlite.ts'

export const BACKUPS_FILE = 'backups.db'
/** Bytes of blobs kept at most, unless configured. */
export const DEFAULT_KEPT_BYTES = 4 * 1024 * 1024 * 1024

const SCHEMA = `
CREATE TABLE IF NOT EXISTS blobs (
  bucket   BLOB    NOT NULL,
  id       BLOB    NOT NULL,
  received INTEGER NOT NULL,
  body     BLOB    NOT NULL,
  PRIMARY KEY (bucket, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (
  bucket   BLOB    NOT NULL,
  id       BLOB    NOT NULL,
  origin   TEXT    NOT NULL,          -- the laptop whose outbox it came from
  received INTEGER NOT NULL,
  body     BLOB    NOT NULL,
  PRIMARY KEY (bucket, id)
) WITHOUT ROWID;
`

export interface KeptBackupsInit {
  maxBytes?: number
  clock?: () => number
}

export class KeptBackups {
  readonly path: string
  private readonly db: Database
  private readonly maxBytes: number
  private readonly clock: () => number
  private bytes: number
  private readonly putBlob
  private readonly putSnapshot
  private readonly getBlob
  /** Packs kept, packs that did not decode, packs not kept for want of room. */
  readonly counters = { packs: 0, malformed: 0, overQuota: 0 }

  private constructor (path: string, init: KeptBackupsInit) {
    this.path = path
    this.maxBytes = init.maxBytes ?? DEFAULT_KEPT_BYTES
    this.clock = init.clock ?? Date.now
    this.db = openDatabase(path)
    this.db.exec(SCHEMA)
    this.putBlob = this.db.prepare('INSERT OR IGNORE INTO blobs (bucket, id, received, body) VALUES (?, ?, ?, ?)')
    this.putSnapshot = this.db.prepare('INSERT OR IGNORE INTO snapshots (bucket, id, origin, received, body) VALUES (?, ?, ?, ?, ?)')
    this.getBlob = this.db.prepare('SELECT body FROM blobs WHERE bucket = ? AND id = ?')
    this.bytes = (this.db.prepare('SELECT coalesce(sum(length(body)), 0) AS n FROM blobs').get() as { n: number }).n
  }

  /** Opens (creating) DATA/backups.db. */
  static open (dataDir: string, init: KeptBackupsInit = {}): KeptBackups {
    return new KeptBackups(join(dataDir, BACKUPS_FILE), init)
  }

  /** Keeps the blobs and snapshots of packs (item bodies) from origin, in one transaction. Never throws on a bad pack. */
  keep (packs: Array<{ origin: string, body: Uint8Array }>): void {
    const now = this.clock()
    const decoded: Array<{ origin: string, pack: Pack }> = []
    for (const p of packs) {
      const pack = decodePack(p.body)
      if (pack === undefined) { this.counters.malformed++; continue }
      if (this.bytes + p.body.length > this.maxBytes) { this.counters.overQuota++; continue }
      decoded.push({ origin: p.origin, pack })
    }
    if (decoded.length === 0) return
    transaction(this.db, () => {
      for (const { origin, pack } of decoded) {
        for (const r of pack.records) {
          if (r.type === 'blob') {
            if (this.putBlob.run(pack.bucket, r.id, now, r.bytes).changes > 0) this.bytes += r.bytes.length
          } else this.putSnapshot.run(pack.bucket, r.id, origin, now, r.bytes)
        }
        this.counters.packs++
      }
    })
  }

  /** The snapshots of a bucket, oldest arrival first. */
  snapshots (bucket: Uint8Array): Array<{ id: Uint8Array, bytes: Uint8Array, received: number }> {
    return (this.db.prepare('SELECT id, body, received FROM snapshots WHERE bucket = ? ORDER BY received, id').all(bucket) as Array<{ id: Uint8Array, body: Uint8Array, received: number }>)
      .map(r => ({ id: r.id, bytes: r.body, received: r.received }))
  }

  /** The blobs of these ids that are kept, by id in hex. */
  blobs (bucket: Uint8Array, ids: Uint8Array[]): Map<string, Uint8Array> {
    const out = new Map<string, Uint8Array>()
    for (const id of ids) {
      const r = this.getBlob.get(bucket, id) as { body: Uint8Array } | undefined
      if (r !== undefined) out.set(Buffer.from(id).toString('hex'), r.body)
    }
    return out
  }

  /** A BlobSource (content/backup/restore.ts) over one bucket: restoring from a server's data directory. */
  source (bucket: Uint8Array): { snapshots: () => Promise<Array<{ id: Uint8Array, bytes: Uint8Array }>>, blobs: (ids: Uint8Array[]) => Promise<Map<string, Uint8Array>> } {
    return {
      snapshots: async () => this.snapshots(bucket),
      blobs: async ids => this.blobs(bucket, ids)
    }
  }

  /** Buckets, blobs and bytes kept. */
  summary (): { buckets: number, blobs: number, snapshots: number, bytes: number } {
    const b = this.db.prepare('SELECT count(DISTINCT bucket) AS buckets, count(*) AS blobs FROM blobs').get() as { buckets: number, blobs: number }
    const s = this.db.prepare('SELECT count(*) AS n FROM snapshots').get() as { n: number }
    return { buckets: b.buckets, blobs: b.blobs, snapshots: s.n, bytes: this.bytes }
  }

  close (): void {
    if (this.db.isOpen) this.db.close()
  }
}
