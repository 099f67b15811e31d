// What the election keeps across restarts, in DATA/election.json: the
// incarnation (one more at every start, so claims of a previous life cannot
// be replayed as fresh) and the highest term known (so a restarted peer does
// not start counting terms again from 0). Written through a temp file and a
// rename; a missing or unreadable file starts from zero.
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export const STATE_FILE = 'election.json'

export interface ElectionState { incarnation: number, term: number }

export async function readState (dataDir: string): Promise<ElectionState> {
  try {
    const v = JSON.parse(await readFile(join(dataDir, STATE_FILE), 'utf8')) as Partial<ElectionState>
    const n = (x: unknown): number => (Number.isSafeInteger(x) && (x as number) >= 0 ? x as number : 0)
    return { incarnation: n(v.incarnation), term: n(v.term) }
  } catch {
    return { incarnation: 0, term: 0 }
  }
}

export async function writeState (dataDir: string, state: ElectionState): Promise<void> {
  const path = join(dataDir, STATE_FILE)
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, JSON.stringify(state) + '\n')
  await rename(tmp, path)
}
