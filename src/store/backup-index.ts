// A laptop's memory of its backups (DATA/backup.db): the ids of the blobs it
// has handed to its outbox, the node of each file as of its last backup (so
// an unchanged file is not read again) and the backups made. It implements
// the content layer's BackupIndex. The ids are HMACs under the owner's key:
// the table says nothing of the journal's content to someone who copies it.
import { join } from 'node:path'
import type { BackupIndex, BackupResult } from '../content/backup/write.ts'
import { openDatabase, transaction, type Database } from './sqlite.ts'

export const BACKUP_INDEX_FILE = 'backup.db'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS sent (id BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (
  path  TEXT    PRIMARY KEY,
  stamp TEXT    NOT NULL,           -- size, mtime, ctime, inode and mode when its node was made
  cid   BLOB    NOT NULL,
  size  INTEGER NOT NULL,
  tsize INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS backups (
  snapshot TEXT    PRIMARY KEY,     -- hex id
  created  INTEGER NOT NULL,
  result   TEXT    NOT NULL         -- BackupResult as JSON
) WITHOUT ROWID;
`

export class BackupIndexStore implements BackupIndex {
  private readonly db: Database
  private readonly hasStmt
  private readonly addStmt
  private readonly fileStmt

  private constructor (path: string) {
    this.db = openDatabase(path)
    this.db.exec(SCHEMA)
    this.hasStmt = this.db.prepare('SELECT 1 AS x FROM sent WHERE id = ?')
    this.addStmt = this.db.prepare('INSERT OR IGNORE INTO sent (id) VALUES (?)')
    this.fileStmt = this.db.prepare('SELECT stamp, cid, size, tsize FROM files WHERE path = ?')
  }

  static open (dataDir: string): BackupIndexStore {
    return new BackupIndexStore(join(dataDir, BACKUP_INDEX_FILE))
  }

  has (id: Uint8Array): boolean {
    return this.hasStmt.get(id) !== undefined
  }

  add (ids: Uint8Array[]): void {
    transaction(this.db, () => { for (const id of ids) this.addStmt.run(id) })
  }

  file (path: string): { stamp: string, cid: Uint8Array, size: number, tsize: number } | undefined {
    return this.fileStmt.get(path) as { stamp: string, cid: Uint8Array, size: number, tsize: number } | undefined
  }

  setFiles (files: Array<{ path: string, stamp: string, cid: Uint8Array, size: number, tsize: number }>): void {
    transaction(this.db, () => {
      // what is not in this backup is gone from the journal
      this.db.exec('DELETE FROM files')
      const put = this.db.prepare('INSERT OR REPLACE INTO files (path, stamp, cid, size, tsize) VALUES (?, ?, ?, ?, ?)')
      for (const f of files) put.run(f.path, f.stamp, f.cid, f.size, f.tsize)
    })
  }

  /** Records a finished backup. */
  noteBackup (result: BackupResult): void {
    this.db.prepare('INSERT OR REPLACE INTO backups (snapshot, created, result) VALUES (?, ?, ?)').run(result.snapshot, result.created, JSON.stringify(result))
  }

  /** Backups made here, newest first. */
  backups (limit = 20): BackupResult[] {
    return (this.db.prepare('SELECT result FROM backups ORDER BY created DESC LIMIT ?').all(limit) as Array<{ result: string }>).map(r => JSON.parse(r.result) as BackupResult)
  }

  /** Blobs known as sent. */
  get sentCount (): number {
    return (this.db.prepare('SELECT count(*) AS n FROM sent').get() as { n: number }).n
  }

  close (): void {
    if (this.db.isOpen) this.db.close()
  }
}
