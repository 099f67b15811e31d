// A Sugar journal datastore for the tests, laid out as sugar-datastore's
// layoutmanager does (~/.sugar/default/datastore): `version`, `checksums/`,
// `index/` (the Xapian index, derived), and one directory per entry,
// `<uid[0:2]>/<uid>/` holding `data` (the object itself, often binary) and
// `metadata/`, one small file per property (activity, title, timestamp,
// mtime, launch-times, spent-times, preview, …).
import { copyFile, mkdir, utimes, writeFile, chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { prng, writeLargeFile } from './trees.ts'
import { REPO_ROOT } from './cli.ts'

export const ACTIVITIES = ['org.laptop.TurtleArtActivity', 'org.laptop.WebActivity', 'org.laptop.sugar.ReadActivity', 'org.vpri.EtoysActivity']

export interface JournalEntry { uid: string, activity: string, title: string, launches: number[], spent: number[], dataBytes: number }

function uidOf (i: number): string {
  const h = prng(1000 + i, 16).toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`
}

/**
 * Writes a journal of `entries` entries (about `bytes` of data in all, a
 * JPEG among them) into dir; returns what it wrote. Launch times start at
 * `t0` (unix seconds), an hour apart.
 */
export async function makeJournal (dir: string, options: { entries?: number, bytes?: number, t0?: number } = {}): Promise<JournalEntry[]> {
  const n = options.entries ?? 24
  const bytes = options.bytes ?? 3 << 20
  const t0 = options.t0 ?? 1_790_000_000
  await mkdir(join(dir, 'checksums', 'queue'), { recursive: true })
  await mkdir(join(dir, 'index'), { recursive: true })
  await writeFile(join(dir, 'version'), '2')
  await writeFile(join(dir, 'index_updated'), '')
  await writeFile(join(dir, 'index', 'postlist.glass'), prng(9, 40_000))
  const out: JournalEntry[] = []
  for (let i = 0; i < n; i++) {
    const uid = uidOf(i)
    const entry = join(dir, uid.slice(0, 2), uid)
    await mkdir(join(entry, 'metadata'), { recursive: true })
    const activity = ACTIVITIES[i % ACTIVITIES.length]!
    const launches = Array.from({ length: 1 + (i % 3) }, (_, k) => t0 + i * 3600 + k * 600)
    const spent = launches.map((_, k) => 60 + ((i * 7 + k * 13) % 300))
    const title = `Mi dibujo número ${i} de Ana María`
    // every 6th entry's data is big (several chunks), one is the JPEG, the rest small
    let dataBytes: number
    if (i === 1) {
      await copyFile(join(REPO_ROOT, 'test', 'fixtures', 'SekienAkashita.jpg'), join(entry, 'data'))
      dataBytes = 109_466
    } else if (i % 6 === 0) {
      dataBytes = Math.floor(bytes / Math.ceil(n / 6))
      await writeLargeFile(join(entry, 'data'), dataBytes, 100 + i)
    } else {
      dataBytes = 200 + i * 937
      await writeFile(join(entry, 'data'), prng(200 + i, dataBytes))
    }
    const meta: Record<string, string | Buffer> = {
      activity,
      activity_id: prng(300 + i, 20).toString('hex'),
      title,
      title_set_by_user: '1',
      keep: i % 5 === 0 ? '1' : '0',
      mime_type: i === 1 ? 'image/jpeg' : 'application/x-turtle-art',
      timestamp: String(launches[launches.length - 1]),
      mtime: new Date(launches[launches.length - 1]! * 1000).toISOString().slice(0, 19),
      creation_time: String(launches[0]),
      'launch-times': launches.join(', '),
      'spent-times': spent.join(', '),
      'icon-color': '#FF2B34,#005FE4',
      'share-scope': 'private',
      uid,
      filesize: String(dataBytes),
      preview: prng(400 + i, 1500 + i * 10)
    }
    for (const [k, v] of Object.entries(meta)) await writeFile(join(entry, 'metadata', k), v)
    if (i % 7 === 3) await chmod(join(entry, 'data'), 0o600)
    const t = launches[launches.length - 1]! + 0.123456
    for (const k of Object.keys(meta)) await utimes(join(entry, 'metadata', k), t, t)
    await utimes(join(entry, 'data'), t, t)
    await utimes(join(entry, 'metadata'), t, t)
    await utimes(entry, t, t)
    out.push({ uid, activity, title, launches, spent, dataBytes })
  }
  return out
}
