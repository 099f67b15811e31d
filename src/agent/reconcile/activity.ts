// Activities: a build holding one Sugar `.xo` bundle is installed the way
// Sugar installs it, into the Activities folder as <Name>.activity, and
// only over an older activity_version (a newer one installed by hand or by
// Sugar is kept). Atomic: unpacked into a hidden staging directory beside
// it, flushed, then renamed into place; an older copy is first renamed
// aside and removed after. A kill leaves the old copy, the new one, or
// (between the two renames) neither and a hidden `.xo-mesh-old-…` that the
// next run puts back before it compares.
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync, chmodSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { CID } from '../../content/cid.ts'
import { InvalidInputError } from '../../content/errors.ts'
import { readRecord, walkTree } from '../../content/build.ts'
import { fileLayout } from '../../content/unixfs.ts'
import { syncFs } from '../../content/sync-fs.ts'
import type { Advisory } from '../../trust/index.ts'
import { compareVersions, installedActivityVersion, openActivityBundle, type ActivityBundle } from './activity-bundle.ts'
import type { HandlerContext, KindHandler } from './handler.ts'

/** The largest `.xo` read into memory (an XO has 512 MB to 1 GB of RAM). */
export const MAX_BUNDLE_BYTES = 256 * 1024 * 1024
const STAGING = '.xo-mesh-staging-'
const OLD = '.xo-mesh-old-'

/** The one `.xo` of a build, read from the store (every block verified when it was stored). */
async function readBundle (ctx: HandlerContext, build: CID): Promise<ActivityBundle> {
  const record = await readRecord(ctx.repo.store, build)
  const found: Array<{ path: string, cid: CID, size: number }> = []
  for await (const e of walkTree(ctx.repo.store, record.tree)) {
    if (e.node.type === 'file' && e.path.endsWith('.xo')) found.push({ path: e.path, cid: e.cid, size: e.node.size })
  }
  if (found.length !== 1) throw new InvalidInputError(`an activity build holds one .xo bundle, this one ${found.length}`)
  const f = found[0]!
  if (f.size > MAX_BUNDLE_BYTES) throw new InvalidInputError(`${f.path}: ${f.size} bytes, more than an activity bundle may take (${MAX_BUNDLE_BYTES})`)
  const { leaves, inline } = await fileLayout(ctx.repo.store, f.cid)
  const buf = new Uint8Array(f.size)
  for (const i of inline) buf.set(i.bytes, i.offset)
  for (const l of leaves) buf.set(await ctx.repo.store.get(l.cid), l.offset)
  return openActivityBundle(buf)
}

export function activityHandler (ctx: HandlerContext): KindHandler {
  const dir = ctx.settings.activitiesDir
  const cache = new Map<string, ActivityBundle>()
  const bundle = async (build: CID): Promise<ActivityBundle> => {
    let b = cache.get(build.toString())
    if (b === undefined) {
      b = await readBundle(ctx, build)
      if (cache.size > 8) cache.clear()
      cache.set(build.toString(), b)
    }
    return b
  }
  /** A kill between the two renames of a replacement: the old copy goes back. */
  const recover = (name: string): void => {
    const final = join(dir, name)
    const old = join(dir, OLD + name)
    if (!existsSync(final) && existsSync(old)) renameSync(old, final)
  }

  return {
    async installed (a: Advisory): Promise<boolean> {
      let b: ActivityBundle
      try { b = await bundle(a.build) } catch { return false }
      recover(b.dir)
      const have = installedActivityVersion(join(dir, b.dir))
      return have !== undefined && compareVersions(have, b.info.version) >= 0
    },

    async apply (a: Advisory): Promise<string> {
      const b = await bundle(a.build)
      mkdirSync(dir, { recursive: true })
      recover(b.dir)
      const final = join(dir, b.dir)
      const have = installedActivityVersion(final)
      if (have !== undefined && compareVersions(have, b.info.version) >= 0) return `${b.dir} ${have.join('.')} installed, not older than ${b.info.versionText}: kept`
      const staging = join(dir, STAGING + b.dir)
      rmSync(staging, { recursive: true, force: true })
      mkdirSync(staging, { recursive: true })
      for (const e of b.entries) {
        if (e.symlink) throw new InvalidInputError(`${e.name}: a symbolic link in an activity bundle is refused`)
        const dest = join(staging, e.name.slice(b.dir.length + 1))
        if (e.directory) { mkdirSync(dest, { recursive: true }); continue }
        mkdirSync(dirname(dest), { recursive: true })
        writeFileSync(dest, e.read())
        // executables stay executable (bin/ scripts); nothing becomes setuid or world-writable
        chmodSync(dest, (e.mode ?? 0o644) & 0o755)
      }
      await syncFs(staging)
      const old = join(dir, OLD + b.dir)
      rmSync(old, { recursive: true, force: true })
      if (existsSync(final)) renameSync(final, old)
      renameSync(staging, final)
      rmSync(old, { recursive: true, force: true })
      return `${b.dir} ${b.info.versionText} installed in ${dir}${have !== undefined ? ` over ${have.join('.')}` : ''}`
    }
  }
}
