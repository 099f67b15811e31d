// The laptop's journal backups as an agent component (docs/upstream.md,
// "Backups"): every backup.interval_s, and on POST /backup, the journal is
// backed up into the outbox (content/backup/write.ts) under the owner's key
// (owner.ts); POST /backup/restore brings a backup back from the school
// server (the next hop, net/backup).
//
//   POST /backup {full?}                     a backup now; 200 with what it sent
//   GET  /backup                             the journal, the last backups, the owner's public key
//   GET  /backup/snapshots                   the owner's backups the school server holds
//   POST /backup/restore {to?, before?, snapshot?}   restore one (default: the newest) into `to` (default: the journal)
import { homedir } from 'node:os'
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { ApiError, type MeshComponent, type MeshComponents, type StatusPart } from '../net/component.ts'
import type { Logger } from '../net/logger.ts'
import type { ItemKind } from '../core/relay/index.ts'
import { BackupUnreachableError, type BackupService } from '../net/backup/index.ts'
import { backupKeys, type BackupKeys } from '../content/backup/crypto.ts'
import { backupDirectory, type BackupResult } from '../content/backup/write.ts'
import { chooseSnapshot, listSnapshots, restoreSnapshot, type RestoreResult } from '../content/backup/restore.ts'
import { ContentError } from '../content/errors.ts'
import { BackupIndexStore } from '../store/backup-index.ts'
import { OutboxFullError } from '../store/outbox.ts'
import { loadOrCreateOwnerKey } from './owner.ts'

/** `~` and `~/…` are the user's home; a relative path is taken from the current directory. */
export function expandHome (path: string): string {
  if (path === '~') return homedir()
  if (path.startsWith('~/')) return resolve(homedir(), path.slice(2))
  return resolve(path)
}

export interface JournalBackupInit {
  journal: string
  enabled: boolean
  intervalS: number
  exclude: string[]
  /** Adds an item of this agent's own to the outbox (the relay driver's enqueue). */
  enqueue: (kind: ItemKind, body: Uint8Array) => unknown
  /** The mesh side: where restores read from. */
  service: () => BackupService | undefined
}

/** Backs up a journal into the outbox with the given keys (the agent's component and the CLI without an agent share it). */
export async function backupJournal (dataDir: string, journal: string, keys: BackupKeys, exclude: string[], enqueue: (body: Uint8Array) => void | Promise<void>, full = false): Promise<BackupResult> {
  const index = BackupIndexStore.open(dataDir)
  try {
    const result = await backupDirectory(journal, keys, index, async body => { await enqueue(body) }, { exclude, full })
    index.noteBackup(result)
    return result
  } finally {
    index.close()
  }
}

export class JournalBackup implements MeshComponent {
  readonly name = 'backup'
  private readonly c: MeshComponents
  private readonly log: Logger
  private readonly init: JournalBackupInit
  private keys: Promise<BackupKeys> | undefined
  private running: Promise<BackupResult> | undefined
  private timer: NodeJS.Timeout | undefined
  private last: BackupResult | undefined
  private lastError: string | undefined

  constructor (components: MeshComponents, init: JournalBackupInit) {
    this.c = components
    this.log = components.logger.child('backup')
    this.init = init
    this.addRoutes()
  }

  get journal (): string { return expandHome(this.init.journal) }

  private async ownerKeys (): Promise<BackupKeys> {
    this.keys ??= loadOrCreateOwnerKey(this.c.dataDir).then(k => {
      if (k.created) this.log.info('made the owner key (DATA/owner.key): export it with `xo-mesh owner export` and keep it safe', {})
      return backupKeys(k)
    })
    return await this.keys
  }

  start (): void {
    if (!this.init.enabled) return
    // the first backup a little after start (discovery first), then every interval
    const first = Math.min(this.init.intervalS, 300) * 1000 * (0.5 + Math.random() / 2)
    const tick = (): void => {
      if (existsSync(this.journal)) this.backup().catch(() => {})
      this.timer = setTimeout(tick, this.init.intervalS * 1000)
      this.timer.unref()
    }
    this.timer = setTimeout(tick, first)
    this.timer.unref()
  }

  stop (): void {
    clearTimeout(this.timer)
  }

  status (): StatusPart {
    return { extra: { journal: this.journal, running: this.running !== undefined, last: this.last ?? null, error: this.lastError ?? null } }
  }

  /** A backup now (or the one running). */
  async backup (full = false): Promise<BackupResult> {
    if (this.running !== undefined) return await this.running
    const run = (async () => {
      const keys = await this.ownerKeys()
      const started = Date.now()
      const result = await backupJournal(this.c.dataDir, this.journal, keys, this.init.exclude, body => { this.init.enqueue('backup-chunk', body) }, full)
      this.log.info('journal backed up', { files: result.files, bytes: result.bytes, newBlobs: result.newBlobs, newBytes: result.newBytes, packs: result.packs, ms: Date.now() - started })
      return result
    })()
    this.running = run
    try {
      this.last = await run
      this.lastError = undefined
      return this.last
    } catch (err) {
      this.lastError = (err as Error).message
      this.log.warn('journal backup failed', { error: err })
      throw err
    } finally {
      this.running = undefined
    }
  }

  private remote (keys: BackupKeys): ReturnType<BackupService['remote']> {
    const service = this.init.service()
    if (service === undefined) throw new ApiError(503, 'the backup service is not running')
    return service.remote(keys.bucket)
  }

  private addRoutes (): void {
    const api = this.c.api
    api.add('POST', '/backup', async req => {
      const full = (req.body as { full?: unknown } | undefined)?.full === true
      if (!existsSync(this.journal)) throw new ApiError(404, `there is no journal at ${this.journal} (config key journal)`)
      try {
        return { body: await this.backup(full) }
      } catch (err) {
        if (err instanceof OutboxFullError) throw new ApiError(507, `${err.message}: the backup goes on once the outbox drains`)
        if (err instanceof ContentError) throw new ApiError(422, err.message)
        throw err
      }
    })
    api.add('GET', '/backup', async () => {
      const keys = await this.ownerKeys()
      const index = BackupIndexStore.open(this.c.dataDir)
      try {
        return { body: { journal: this.journal, enabled: this.init.enabled, owner: Buffer.from(keys.publicKey).toString('hex'), running: this.running !== undefined, blobs_sent: index.sentCount, backups: index.backups(10), error: this.lastError ?? null } }
      } finally {
        index.close()
      }
    })
    api.add('GET', '/backup/snapshots', async () => {
      const keys = await this.ownerKeys()
      const source = this.remote(keys)
      try {
        const { snapshots, unreadable } = await listSnapshots(source, keys)
        return { body: { server: source.peer, snapshots: snapshots.map(s => ({ id: s.id, ...s.snapshot })), unreadable } }
      } catch (err) {
        if (err instanceof BackupUnreachableError) throw new ApiError(503, err.message)
        throw err
      }
    })
    api.add('POST', '/backup/restore', async req => {
      const b = (req.body ?? {}) as { to?: unknown, before?: unknown, snapshot?: unknown }
      if (b.to !== undefined && typeof b.to !== 'string') throw new ApiError(400, 'to must be a path')
      if (b.before !== undefined && (typeof b.before !== 'number' || !Number.isFinite(b.before))) throw new ApiError(400, 'before must be ms since the epoch')
      if (b.snapshot !== undefined && typeof b.snapshot !== 'string') throw new ApiError(400, 'snapshot must be an id (hex)')
      const keys = await this.ownerKeys()
      const source = this.remote(keys)
      try {
        const { snapshots } = await listSnapshots(source, keys)
        const entry = b.snapshot !== undefined ? snapshots.find(s => s.id === b.snapshot) : chooseSnapshot(snapshots, b.before as number | undefined)
        if (entry === undefined) throw new ApiError(404, snapshots.length === 0 ? `the school server (${source.peer}) holds no backup of this owner` : 'no backup matches (made before that date?)')
        const target = b.to !== undefined ? resolve(b.to as string) : this.journal
        // What the school server holds need not be sent to it again: the next backup sends only what changed since.
        const result: RestoreResult = await restoreSnapshot(source, keys, entry, target, {
          onDone: ids => {
            const index = BackupIndexStore.open(this.c.dataDir)
            try { index.add(ids) } finally { index.close() }
          }
        })
        this.log.info('journal restored', { snapshot: entry.id, created: entry.snapshot.created, files: result.files, bytes: result.bytes, target })
        return { body: { snapshot: { id: entry.id, ...entry.snapshot }, server: source.peer, ...result } }
      } catch (err) {
        if (err instanceof BackupUnreachableError) throw new ApiError(503, err.message)
        if (err instanceof ContentError) throw new ApiError(422, err.message)
        throw err
      }
    })
  }
}

export function journalBackup (init: JournalBackupInit): (components: MeshComponents) => JournalBackup {
  return components => new JournalBackup(components, init)
}
