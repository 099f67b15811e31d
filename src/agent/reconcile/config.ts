// Config builds: each regular file of the build written to the same path
// under the config root, each one atomically (a partial file renamed over
// the old), only where its bytes or mode differ. Files the build does not
// name are left alone. A kill leaves every file old or new, never half.
import { lstatSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { readRecord, walkTree } from '../../content/build.ts'
import { checkFileContent, setMeta, writeFileFromStore } from '../../content/materialise.ts'
import { syncFs } from '../../content/sync-fs.ts'
import type { Advisory } from '../../trust/index.ts'
import type { HandlerContext, KindHandler } from './handler.ts'

export function configHandler (ctx: HandlerContext): KindHandler {
  const root = ctx.settings.configRoot
  /** The files that differ (and the directories to make), walking the build. */
  const plan = async (a: Advisory): Promise<{ dirs: string[], files: Array<{ path: string, cid: Advisory['build'], mode: number | undefined }>, total: number }> => {
    const record = await readRecord(ctx.repo.store, a.build)
    const dirs: string[] = []
    const files: Array<{ path: string, cid: Advisory['build'], mode: number | undefined }> = []
    let total = 0
    for await (const e of walkTree(ctx.repo.store, record.tree)) {
      if (e.node.type === 'directory') { dirs.push(e.path); continue }
      if (e.node.type !== 'file') continue
      total++
      const dest = join(root, e.path)
      const st = lstatSync(dest, { throwIfNoEntry: false })
      const same = st?.isFile() === true && (e.node.mode === undefined || (st.mode & 0o7777) === e.node.mode) && await checkFileContent(ctx.repo.store, e.cid, dest) === undefined
      if (!same) files.push({ path: e.path, cid: e.cid, mode: e.node.mode })
    }
    return { dirs, files, total }
  }
  return {
    async installed (a: Advisory): Promise<boolean> {
      try { return (await plan(a)).files.length === 0 } catch { return false }
    },
    async apply (a: Advisory): Promise<string> {
      const p = await plan(a)
      for (const d of p.dirs) mkdirSync(join(root, d), { recursive: true })
      for (const f of p.files) {
        const dest = join(root, f.path)
        await writeFileFromStore(ctx.repo.store, f.cid, dest)
        await setMeta(dest, f.mode ?? 0o644, undefined, undefined)
      }
      if (p.files.length > 0) await syncFs(root)
      return `${p.files.length} of ${p.total} config file(s) written under ${root}`
    }
  }
}
