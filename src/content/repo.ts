// A data directory: the block store and the index of builds it holds whole.
//
//   DATA/blocks/    the block store
//   DATA/builds/    one small JSON file per complete build (name, kind, size)
//   DATA/deltas/    static deltas computed here (see delta.ts)
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { BlockStore } from './blockstore.ts'
import { CID, parseCid } from './cid.ts'
import type { BuildRecord, Kind } from './build.ts'

/** The data directory: --data, else $XO_MESH_HOME, else ~/.xo-mesh. */
export function defaultDataDir (): string {
  return process.env.XO_MESH_HOME ?? join(homedir(), '.xo-mesh')
}

export interface BuildSummary { cid: string, name: string, kind: Kind, created: string, bytes: number, files: number }

export class Repo {
  readonly dir: string
  readonly store: BlockStore

  constructor (dir: string) {
    this.dir = dir
    this.store = new BlockStore(join(dir, 'blocks'))
  }

  static async open (dir: string): Promise<Repo> {
    const repo = new Repo(dir)
    await repo.store.open()
    await mkdir(join(dir, 'builds'), { recursive: true })
    return repo
  }

  /** Records that a build is complete in the store. */
  async noteBuild (cid: CID, record: BuildRecord): Promise<void> {
    const summary: BuildSummary = { cid: cid.toString(), name: record.name, kind: record.kind, created: record.created, bytes: record.meta.bytes, files: record.meta.files }
    const path = join(this.dir, 'builds', cid.toString())
    await writeFile(path + '.tmp', JSON.stringify(summary) + '\n')
    await rename(path + '.tmp', path)
  }

  /** The builds noted as complete, newest first. */
  async builds (): Promise<BuildSummary[]> {
    const out: BuildSummary[] = []
    for (const name of await readdir(join(this.dir, 'builds'))) {
      if (name.endsWith('.tmp')) continue
      try {
        parseCid(name)
        out.push(JSON.parse(await readFile(join(this.dir, 'builds', name), 'utf8')) as BuildSummary)
      } catch {
        // not ours
      }
    }
    return out.sort((a, b) => b.created.localeCompare(a.created))
  }
}
