// Journal backups in one process: a Sugar datastore backed up into packs,
// the packs kept as a school server keeps them, and restored onto a fresh
// directory with only the owner's key: byte for byte, modes and mtimes. The
// server's copy holds no plaintext and opens under no other key; a second
// backup sends only what changed; a damaged blob fails the restore by name
// and leaves no half tree.
import assert from 'node:assert/strict'
import { mkdir, readFile, readdir, rm, writeFile, appendFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from '../support/cli.ts'
import { snapshot } from '../support/trees.ts'
import { makeJournal } from '../support/journal.ts'
import { generateOwnerKey } from '../../src/agent/owner.ts'
import { BackupCorruptError, backupKeys, openBlob, type BackupKeys } from '../../src/content/backup/crypto.ts'
import { backupDirectory } from '../../src/content/backup/write.ts'
import { BackupIncompleteError, chooseSnapshot, listSnapshots, restoreSnapshot } from '../../src/content/backup/restore.ts'
import { decodePack } from '../../src/content/backup/pack.ts'
import { BackupIndexStore } from '../../src/store/backup-index.ts'
import { KeptBackups } from '../../src/store/backups.ts'
import { openDatabase } from '../../src/store/sqlite.ts'
import { CID } from '../../src/content/cid.ts'

const EXCLUDE = ['index', 'index_updated']

/** Every entry of a tree but the excluded top-level names. */
async function tree (dir: string): Promise<Map<string, unknown>> {
  const all = await snapshot(dir)
  for (const k of [...all.keys()]) if (EXCLUDE.some(e => k === e || k.startsWith(e + '/'))) all.delete(k)
  return all
}

describe('journal backups (in process)', function () {
  this.timeout(60_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  let keys: BackupKeys
  let journal: string
  let kept: KeptBackups
  let index: BackupIndexStore
  const packs: Uint8Array[] = []
  const enqueue = async (body: Uint8Array): Promise<void> => {
    packs.push(body)
    kept.keep([{ origin: '12D3KooWLaptop', body }])
  }

  before(async () => {
    t = await tempDir('xo-mesh-backup-')
    keys = backupKeys(generateOwnerKey())
    journal = join(t.dir, 'laptop', 'datastore')
    await makeJournal(journal, { entries: 24, bytes: 3 << 20 })
    await mkdir(join(t.dir, 'laptop-data'))
    await mkdir(join(t.dir, 'server'))
    index = BackupIndexStore.open(join(t.dir, 'laptop-data'))
    kept = KeptBackups.open(join(t.dir, 'server'))
  })
  after(async () => {
    index.close()
    kept.close()
    await t.cleanup()
  })

  it('restores a journal byte for byte onto a fresh directory with only the owner key', async () => {
    const r = await backupDirectory(journal, keys, index, enqueue, { exclude: EXCLUDE })
    assert.equal(r.files, 24 * 17 + 1) // data + 16 metadata files per entry, and `version`
    assert.ok(r.newBlobs > 50 && r.newBlobs === r.blobs, `${r.newBlobs} of ${r.blobs} blobs sent`)
    assert.ok(packs.length >= 3, `${packs.length} packs`)
    for (const p of packs) assert.ok(decodePack(p) !== undefined && p.length <= 1 << 20)
    const target = join(t.dir, 'fresh', 'datastore')
    const { snapshots, unreadable } = await listSnapshots(kept.source(keys.bucket), keys)
    assert.equal(unreadable, 0)
    assert.equal(snapshots.length, 1)
    await mkdir(join(t.dir, 'fresh-data'))
    const freshIndex = BackupIndexStore.open(join(t.dir, 'fresh-data'))
    const res = await restoreSnapshot(kept.source(keys.bucket), keys, snapshots[0]!, target, { onDone: ids => { freshIndex.add(ids) } })
    assert.equal(res.files, r.files)
    assert.deepEqual(await tree(target), await tree(journal))
    assert.ok(!existsSync(join(target, 'index')), 'the derived index is not backed up (Sugar rebuilds it)')
    // the restored journal backs up to the very same blocks (mtimes kept to the microsecond): nothing is sent again
    const again = await backupDirectory(target, keys, freshIndex, async () => {}, { exclude: EXCLUDE })
    freshIndex.close()
    assert.equal(again.newBlobs, 0)
    assert.equal(again.root, r.root)
  })

  it('keeps nothing readable on the server: no plaintext, no titles, and no other key opens it', async () => {
    const db = openDatabase(kept.path)
    db.exec('PRAGMA wal_checkpoint(TRUNCATE)')
    db.close()
    const raw = await readFile(kept.path)
    // samples of every file of the journal, 48 bytes from three places each
    const files: string[] = []
    const walk = async (d: string): Promise<void> => {
      for (const e of await readdir(d, { withFileTypes: true })) {
        if (e.isDirectory()) await walk(join(d, e.name))
        else files.push(join(d, e.name))
      }
    }
    await walk(journal)
    let checked = 0
    for (const f of files) {
      if (f.includes('/index')) continue
      const bytes = await readFile(f)
      if (bytes.length < 12) continue
      for (const at of [0, Math.floor(bytes.length / 2), bytes.length - 48]) {
        const sample = bytes.subarray(Math.max(0, at), Math.max(0, at) + Math.min(48, bytes.length))
        assert.equal(raw.indexOf(sample), -1, `plaintext of ${f} at ${at} is in the server's store`)
        checked++
      }
    }
    assert.ok(checked > 300)
    assert.equal(raw.indexOf(Buffer.from('Ana María')), -1)
    assert.equal(raw.indexOf(Buffer.from('TurtleArt')), -1)

    const other = backupKeys(generateOwnerKey())
    // the other key names another bucket: nothing there
    assert.equal((await listSnapshots(kept.source(other.bucket), other)).snapshots.length, 0)
    // and with the owner's bucket, nothing opens under it
    const listed = await listSnapshots(kept.source(keys.bucket), other)
    assert.equal(listed.snapshots.length, 0)
    assert.equal(listed.unreadable, 1)
    const mine = await listSnapshots(kept.source(keys.bucket), keys)
    const root = CID.parse(mine.snapshots[0]!.snapshot.root)
    const { blobId } = await import('../../src/content/backup/crypto.ts')
    const blob = kept.blobs(keys.bucket, [blobId(keys, root)]).get(Buffer.from(blobId(keys, root)).toString('hex'))
    assert.ok(blob !== undefined)
    assert.ok(openBlob(keys, root, blob).length > 0)
    assert.throws(() => openBlob(other, root, blob), BackupCorruptError)
  })

  it('sends only what changed on a second backup, and restores the newest or an older one by date', async () => {
    const before = packs.length
    const first = index.backups()
    assert.equal(first.length, 0) // the test enqueues directly: noteBackup is the agent's
    // one entry's data edited, one new entry's metadata file
    const entryDirs = (await readdir(journal)).filter(n => n.length === 2).sort()
    const uidDir = join(journal, entryDirs[0]!, (await readdir(join(journal, entryDirs[0]!)))[0]!)
    await appendFile(join(uidDir, 'data'), 'one more stroke')
    await writeFile(join(uidDir, 'metadata', 'title'), 'Mi dibujo, otra vez')
    const r2 = await backupDirectory(journal, keys, index, enqueue, { exclude: EXCLUDE, created: Date.now() + 1000 })
    const sentBytes = packs.slice(before).reduce((n, p) => n + p.length, 0)
    assert.ok(r2.newBlobs <= 8, `${r2.newBlobs} blobs sent again`)
    assert.ok(sentBytes < r2.bytes / 10, `second backup sent ${sentBytes} of ${r2.bytes} bytes`)
    assert.ok(r2.unchangedFiles > r2.files - 4, `${r2.unchangedFiles} of ${r2.files} files not read again`)
    const { snapshots } = await listSnapshots(kept.source(keys.bucket), keys)
    assert.equal(snapshots.length, 2)
    const newest = chooseSnapshot(snapshots)!
    assert.equal(newest.id, r2.snapshot)
    const older = chooseSnapshot(snapshots, r2.created - 1)!
    assert.notEqual(older.id, r2.snapshot)
    const target = join(t.dir, 'fresh2', 'datastore')
    await restoreSnapshot(kept.source(keys.bucket), keys, newest, target)
    assert.deepEqual(await tree(target), await tree(journal))
  })

  it('fails a restore from a corrupted or truncated blob, naming it, and writes no half tree', async () => {
    const { snapshots } = await listSnapshots(kept.source(keys.bucket), keys)
    const entry = chooseSnapshot(snapshots)!
    const db = openDatabase(kept.path)
    // the largest blobs are chunks of the big data files
    const rows = db.prepare('SELECT id, body FROM blobs ORDER BY length(body) DESC LIMIT 2').all() as Array<{ id: Uint8Array, body: Uint8Array }>
    const flipped = Buffer.from(rows[0]!.body)
    flipped[1000] = flipped[1000]! ^ 0x40
    db.prepare('UPDATE blobs SET body = ? WHERE id = ?').run(flipped, rows[0]!.id)
    const target = join(t.dir, 'fresh3', 'datastore')
    await mkdir(target, { recursive: true })
    await writeFile(join(target, 'what-was-there'), 'untouched')
    await assert.rejects(restoreSnapshot(kept.source(keys.bucket), keys, entry, target), (err: Error) => {
      assert.ok(err instanceof BackupCorruptError, String(err))
      assert.match(err.message, new RegExp(Buffer.from(rows[0]!.id).toString('hex').slice(0, 16)))
      assert.match(err.message, /chunk \d+ of \d+ of [0-9a-f]{2}\/[0-9a-f-]{36}\/data/)
      return true
    })
    assert.deepEqual(await readdir(target), ['what-was-there'])
    assert.ok(!existsSync(target + '.xo-mesh-restore'))
    // truncated
    db.prepare('UPDATE blobs SET body = ? WHERE id = ?').run(rows[0]!.body, rows[0]!.id)
    db.prepare('UPDATE blobs SET body = ? WHERE id = ?').run(Buffer.from(rows[1]!.body).subarray(0, 5000), rows[1]!.id)
    await assert.rejects(restoreSnapshot(kept.source(keys.bucket), keys, entry, target), /truncated/)
    assert.deepEqual(await readdir(target), ['what-was-there'])
    // missing
    db.prepare('DELETE FROM blobs WHERE id = ?').run(rows[1]!.id)
    await assert.rejects(restoreSnapshot(kept.source(keys.bucket), keys, entry, target), BackupIncompleteError)
    assert.deepEqual(await readdir(target), ['what-was-there'])
    db.close()
    await rm(target, { recursive: true })
  })
})
