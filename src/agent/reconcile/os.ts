// OS builds: materialised beside the running one and switched to atomically
// by src/content/apply.ts (two versions kept; a kill leaves the old version
// current and the new one resumable). The deployment's post-install hook runs
// once the new version is whole and verified and before `current` switches,
// with the version's directory in XO_MESH_VERSION_DIR: when it fails, the old
// version stays current and the failure is reported. Rebooting into the new
// version is left to the user or to the hook (a policy of the deployment).
import { execFile } from 'node:child_process'
import { lstatSync } from 'node:fs'
import { join } from 'node:path'
import { VERSIONS, applyBuild, currentVersion, tidyVersions } from '../../content/apply.ts'
import type { CID } from '../../content/cid.ts'
import type { Advisory } from '../../trust/index.ts'
import type { HandlerContext, KindHandler } from './handler.ts'

/** The post-install hook exited non-zero, timed out or could not run. */
export class HookFailedError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'HookFailedError'
  }
}

/** Runs the hook with `sh -c`; rejects with HookFailedError and the end of its stderr. */
export async function runHook (command: string, env: Record<string, string>, timeoutMs: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile('sh', ['-c', command], { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 1024 * 1024 }, (err, _stdout, stderr) => {
      if (err === null) { resolve(); return }
      const tail = String(stderr).trim().split('\n').slice(-3).join(' | ').slice(0, 500)
      const why = (err as { killed?: boolean }).killed === true ? `timed out after ${timeoutMs / 1000} s` : `exited ${(err as { code?: unknown }).code ?? '?'}`
      reject(new HookFailedError(`post-install hook ${why}${tail !== '' ? `: ${tail}` : ''}`))
    })
  })
}

export function osHandler (ctx: HandlerContext): KindHandler {
  const root = ctx.settings.osRoot
  return {
    async installed (a: Advisory): Promise<boolean> {
      let current: CID | undefined
      try { current = await currentVersion(root) } catch { return false }
      return current?.equals(a.build) === true && lstatSync(join(root, VERSIONS, a.build.toString()), { throwIfNoEntry: false })?.isDirectory() === true
    },

    async tidy (a: Advisory): Promise<void> {
      // a kill between the switch and the prune leaves three versions: the switch is done, the prune is redone here
      await tidyVersions(root, a.build)
    },

    async apply (a: Advisory): Promise<string> {
      const hook = ctx.settings.postInstall
      const r = await applyBuild(ctx.repo.store, a.build, root, undefined, {
        beforeSwitch: hook === null
          ? undefined
          : async (dir, previous) => {
            ctx.log.info('running the post-install hook', { build: a.build.toString(), dir })
            await runHook(hook, { XO_MESH_BUILD: a.build.toString(), XO_MESH_NAME: a.name, XO_MESH_VERSION_DIR: dir, XO_MESH_ROOT: root, XO_MESH_PREVIOUS: previous?.toString() ?? '' }, ctx.settings.hookTimeoutMs)
          }
      })
      return r.alreadyCurrent
        ? 'already current'
        : `switched to ${a.build} (${r.written} files written, ${r.linked} linked from ${r.previous?.toString() ?? 'no previous version'}, ${r.kept} in place); runs after the next reboot`
    }
  }
}
