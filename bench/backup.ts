/**
 * `npm run bench -- backup`: journal backups (docs/upstream.md §9) beside the
 * build add of the same tree, in one process, one after the other:
 *
 *   (a) the reference: `xo-mesh add`'s addDirectory into a block store
 *       (FastCDC, sha-256, blocks written to disk);
 *   (b) a first backup: the same chunking and hashing, plus sealing every
 *       block (ChaCha20-Poly1305) and packing it into outbox items
 *       (src/store/outbox.ts, every item committed with fsync);
 *   (c) a second backup after an edit of one entry in twenty (dedup: what
 *       is sent, and how long an unchanged journal takes);
 *   (d) a restore of (c) from the kept copy a school server would hold.
 *
 * Options: --mb=N journal size (64), --entries=N (200).
 */
import { appendFile, mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { makeJournal } from '../test/support/journal.js'
import { BlockStore } from '../src/content/blockstore.js'
import { addDirectory } from '../src/content/add.js'
import { backupKeys } from '../src/content/backup/crypto.js'
import { backupDirectory } from '../src/content/backup/write.js'
import { listSnapshots, chooseSnapshot, restoreSnapshot } from '../src/content/backup/restore.js'
import { generateOwnerKey } from '../src/agent/owner.js'
import { BackupIndexStore } from '../src/store/backup-index.js'
import { KeptBackups } from '../src/store/backups.js'
import { Outbox } from '../src/store/outbox.js'
import { WORK_DIR, formatTable, log, type BenchContext, type BenchOutput } from './util.js'

export const description = 'journal backups (seal, pack, outbox) beside the build add of the same tree; dedup of a second backup; restore'

const EXCLUDE = ['index', 'index_updated']

export async function run (ctx: BenchContext): Promise<BenchOutput> {
  const mb = Number(ctx.options.get('mb') ?? 64)
  const entries = Number(ctx.options.get('entries') ?? 200)
  const dir = join(WORK_DIR, 'backup')
  await rm(dir, { recursive: true, force: true })
  const journal = join(dir, 'datastore')
  const made = await makeJournal(journal, { entries, bytes: mb << 20 })
  for (const d of ['store', 'laptop', 'server']) await mkdir(join(dir, d), { recursive: true })
  const bytes = made.reduce((n, e) => n + e.dataBytes, 0)
  log(`journal: ${entries} entries, ${(bytes / 1e6).toFixed(1)} MB of data`)

  const t0 = performance.now()
  await addDirectory(new BlockStore(join(dir, 'store')), journal, { name: 'bench', kind: 'content', created: new Date(0) })
  const addS = (performance.now() - t0) / 1000

  const keys = backupKeys(generateOwnerKey())
  const index = BackupIndexStore.open(join(dir, 'laptop'))
  const outbox = Outbox.open(join(dir, 'laptop'), { maxBytes: 4 * 1024 ** 3 })
  const kept = KeptBackups.open(join(dir, 'server'), { maxBytes: 4 * 1024 ** 3 })
  let counter = 0
  const enqueue = async (body: Uint8Array): Promise<void> => {
    outbox.enqueue('12D3KooWBenchLaptop', 'backup-chunk', body, ++counter)
    kept.keep([{ origin: '12D3KooWBenchLaptop', body }])
  }
  const t1 = performance.now()
  const first = await backupDirectory(journal, keys, index, enqueue, { exclude: EXCLUDE, created: 1 })
  const firstS = (performance.now() - t1) / 1000

  for (const e of made.filter((_, i) => i % 20 === 0)) {
    await appendFile(join(journal, e.uid.slice(0, 2), e.uid, 'data'), 'a few more strokes')
    await writeFile(join(journal, e.uid.slice(0, 2), e.uid, 'metadata', 'title'), 'otra vez')
  }
  const t2 = performance.now()
  const second = await backupDirectory(journal, keys, index, enqueue, { exclude: EXCLUDE, created: 2 })
  const secondS = (performance.now() - t2) / 1000
  const t3 = performance.now()
  const third = await backupDirectory(journal, keys, index, enqueue, { exclude: EXCLUDE, created: 3 })
  const thirdS = (performance.now() - t3) / 1000

  const { snapshots } = await listSnapshots(kept.source(keys.bucket), keys)
  const t4 = performance.now()
  await restoreSnapshot(kept.source(keys.bucket), keys, chooseSnapshot(snapshots)!, join(dir, 'restored'))
  const restoreS = (performance.now() - t4) / 1000
  index.close()
  outbox.close()
  kept.close()
  await rm(dir, { recursive: true, force: true })

  const mbs = (s: number): string => (bytes / 1e6 / s).toFixed(1)
  const rows = [
    ['add (reference)', addS.toFixed(2), mbs(addS), '1.00', '-'],
    ['first backup', firstS.toFixed(2), mbs(firstS), (firstS / addS).toFixed(2), `${(first.newBytes / 1e6).toFixed(1)} MB in ${first.packs} items`],
    ['second backup, 1 entry in 20 edited', secondS.toFixed(2), mbs(secondS), (secondS / addS).toFixed(2), `${(second.newBytes / 1e3).toFixed(1)} kB (${(100 * second.newBytes / second.bytes).toFixed(2)}%), ${second.unchangedFiles} of ${second.files} files not read`],
    ['third backup, nothing changed', thirdS.toFixed(2), mbs(thirdS), (thirdS / addS).toFixed(2), `${third.newBlobs} blobs`],
    ['restore', restoreS.toFixed(2), mbs(restoreS), (restoreS / addS).toFixed(2), '-']
  ]
  return {
    tables: [formatTable(['path', 'seconds', 'MB/s of journal', '× add', 'sent'], rows)],
    results: { mb, entries, bytes, addS, first: { s: firstS, ...first }, second: { s: secondS, ...second }, third: { s: thirdS, ...third }, restoreS }
  }
}
