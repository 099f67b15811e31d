// The reconciler's memory, in DATA/deploy/ (each file written atomically:
// temp, fsync, rename):
//
//   journal.json   the step in progress: written before a handler applies a
//                  build, removed once its outcome is recorded; found at start,
//                  it says a step was interrupted (the step is simply redone:
//                  every handler compares desired with current first)
//   state.json     per advisory, the last outcome (build, ok, when, detail or
//                  error, attempts) and the recent install reports
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { writeAtomic } from '../../trust/index.ts'

export const DEPLOY_DIR = 'deploy'
const JOURNAL = 'journal.json'
const STATE = 'state.json'
/** Install reports kept for the status and the API. */
export const RECENT_REPORTS = 50

/** What was applied, when, with what result: the install report's body (src/store/reports.ts) and the reconciler's record. */
export interface InstallOutcome {
  /** The deployment's school (config), for the mothership's tables. */
  school?: string
  build: string
  name: string
  kind: string
  ok: boolean
  /** ms since the epoch (laptop clock). */
  installed_at: number
  detail?: string
  error?: string
  /** The advisory snapshot version in force. */
  snapshot: number
  /** The rollout wave (1-based), when the advisory has waves. */
  wave?: number
  attempt: number
}

export interface Step { advisory: string, build: string, kind: string, started: number, attempt: number }

export interface DeployState {
  installs: Record<string, InstallOutcome>
  reports: InstallOutcome[]
}

export class DeployJournal {
  private readonly dir: string

  constructor (dataDir: string) {
    this.dir = join(dataDir, DEPLOY_DIR)
  }

  async interrupted (): Promise<Step | undefined> {
    try {
      return JSON.parse(await readFile(join(this.dir, JOURNAL), 'utf8')) as Step
    } catch {
      return undefined
    }
  }

  async begin (step: Step): Promise<void> {
    await writeAtomic(join(this.dir, JOURNAL), new TextEncoder().encode(JSON.stringify(step) + '\n'))
  }

  async end (): Promise<void> {
    await rm(join(this.dir, JOURNAL), { force: true })
  }

  async load (): Promise<DeployState> {
    try {
      const v = JSON.parse(await readFile(join(this.dir, STATE), 'utf8')) as Partial<DeployState>
      return { installs: v.installs ?? {}, reports: Array.isArray(v.reports) ? v.reports : [] }
    } catch {
      return { installs: {}, reports: [] }
    }
  }

  async save (state: DeployState): Promise<void> {
    await writeAtomic(join(this.dir, STATE), new TextEncoder().encode(JSON.stringify(state) + '\n'))
  }
}
