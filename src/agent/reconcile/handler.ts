// What a handler of one kind of build does for the reconciler: say whether
// the desired state is already in place (compared before every step, so a
// rerun after a kill does only what is left), and put it in place. Every
// apply is idempotent and leaves, at any moment it may be killed, either the
// old state or the new one whole (the four kinds say how).
import type { Repo } from '../../content/repo.ts'
import type { Logger } from '../../net/logger.ts'
import type { Advisory } from '../../trust/index.ts'

/** Where the handlers install, from `deploy:` in config.yaml (docs/deployment.md). */
export interface DeploySettings {
  /** OS builds: ROOT/versions/<cid>, ROOT/current (src/content/apply.ts). */
  osRoot: string
  /** Run with `sh -c` once an OS build is written and verified, before `current` switches to it; null: none. */
  postInstall: string | null
  hookTimeoutMs: number
  /** Sugar activities: <dir>/<Name>.activity. */
  activitiesDir: string
  /** Config builds: each file of the build at <root>/<path>. */
  configRoot: string
}

export interface HandlerContext {
  repo: Repo
  dataDir: string
  settings: DeploySettings
  log: Logger
}

export interface KindHandler {
  /** True when what the advisory asks for is in place already. Never throws for a build that is merely absent or broken: false. */
  installed (a: Advisory): Promise<boolean>
  /**
   * Puts it in place from the verified build in the store. Idempotent and
   * safe to rerun after a kill at any point. Resolves with a line for the
   * report; throws (the message goes in the report) when it cannot.
   */
  apply (a: Advisory): Promise<string>
  /**
   * Clears what an apply killed after the build was in place and before it
   * finished left behind (an OS apply's old versions past two). Run when the
   * reconciler finds the build in place without a recorded success.
   */
  tidy?: (a: Advisory) => Promise<void>
}
