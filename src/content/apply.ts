// apply and verify: a build materialised beside the running one, checked,
// and switched to atomically; two versions kept (olpc-update's scheme, done
// so that a kill at any moment leaves the old version current and intact).
//
//   ROOT/current            -> versions/<cid>   (a symlink, replaced by rename)
//   ROOT/versions/<cid>/     a finished, verified version
//   ROOT/versions/.staging-<cid>/   a version being written; resumed by a rerun
import { lstatSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, type Stats } from 'node:fs'
import { join } from 'node:path'
import { CID, parseCid } from './cid.ts'
import { IncompleteBuildError, InvalidInputError } from './errors.ts'
import { buildCids, readRecord, walkTree, type BuildRecord } from './build.ts'
import { PARTIAL, checkFileContent, isRoot, linkInto, ownerOf, sameMtime, setMeta, syncFs, writeFileFromStore, writeSpecial, writeSymlink } from './materialise.ts'
import type { BlockStore } from './blockstore.ts'
import type { Mtime } from './unixfs.ts'

export const VERSIONS = 'versions'
export const CURRENT = 'current'
const STAGING = '.staging-'

export interface ApplyProgress { phase: 'check' | 'write' | 'verify' | 'switch', done: number, total: number }

export interface ApplyResult {
  cid: CID
  path: string
  /** Files written from the store. */
  written: number
  /** Files hard-linked from the previous version. */
  linked: number
  /** Files a rerun found already in place. */
  kept: number
  previous: CID | undefined
  alreadyCurrent: boolean
}

/** Steps a caller adds to apply (the deployment's post-install hook). */
export interface ApplyHooks {
  /**
   * Runs once the new version is written and verified in `dir`, before
   * `current` is switched to it (also on a rerun that resumes there). Throw
   * to keep the old version current.
   */
  beforeSwitch?: (dir: string, previous: CID | undefined) => Promise<void>
}

/** The build the current link of root points to, if any. */
export async function currentVersion (root: string): Promise<CID | undefined> {
  let target: string
  try {
    target = readlinkSync(join(root, CURRENT))
  } catch {
    return undefined
  }
  const name = target.split('/').pop() ?? ''
  try {
    return parseCid(name)
  } catch {
    throw new InvalidInputError(`${join(root, CURRENT)} points to ${target}, which is not a version this tool made`)
  }
}

function exists (path: string): boolean {
  return lstatSync(path, { throwIfNoEntry: false }) !== undefined
}

/** Paths of each file of a build by file node CID (a file moved or copied still links). */
async function filesByCid (store: BlockStore, record: BuildRecord): Promise<Map<string, string>> {
  const map = new Map<string, string>()
  for await (const e of walkTree(store, record.tree)) {
    if (e.node.type === 'file' && !map.has(e.cid.toString())) map.set(e.cid.toString(), e.path)
  }
  return map
}

function sameOwner (st: Stats, owner: [number, number]): boolean {
  return !isRoot() || (st.uid === owner[0] && st.gid === owner[1])
}

/**
 * Materialises a build into root/versions/<cid>, verifies every file, hard
 * links unchanged files from the current version, switches root/current
 * atomically and keeps exactly two versions. Idempotent: a rerun after a kill
 * resumes the staging directory; a rerun after success changes nothing.
 */
export async function applyBuild (store: BlockStore, cid: CID, root: string, onProgress?: (p: ApplyProgress) => void, hooks: ApplyHooks = {}): Promise<ApplyResult> {
  const record = await readRecord(store, cid)
  const { missing } = await buildCids(store, cid)
  if (missing.length > 0) throw new IncompleteBuildError(cid.toString(), missing.length)
  const name = cid.toString()
  const versions = join(root, VERSIONS)
  const final = join(versions, name)
  mkdirSync(versions, { recursive: true })

  const current = await currentVersion(root)
  const result: ApplyResult = { cid, path: final, written: 0, linked: 0, kept: 0, previous: current, alreadyCurrent: false }
  if (current?.equals(cid) === true && exists(final)) {
    result.alreadyCurrent = true
    await prune(root, cid, undefined)
    return result
  }

  if (!exists(final)) {
    const staging = join(versions, STAGING + name)
    mkdirSync(staging, { recursive: true })
    let previous: { dir: string, files: Map<string, string> } | undefined
    if (current !== undefined && await store.has(current)) {
      try {
        previous = { dir: join(versions, current.toString()), files: await filesByCid(store, await readRecord(store, current)) }
      } catch {
        previous = undefined // the old build's blocks were pruned: no links, write everything
      }
    }
    const total = record.meta.bytes
    let done = 0
    const dirs: Array<{ path: string, mode?: number, mtime?: Mtime, owner: [number, number] }> = []
    for await (const e of walkTree(store, record.tree)) {
      const dest = e.path === '' ? staging : join(staging, e.path)
      const owner = ownerOf(record.meta, e.path)
      const node = e.node
      if (node.type === 'directory') {
        const st = lstatSync(dest, { throwIfNoEntry: false })
        if (st !== undefined && !st.isDirectory()) rmSync(dest, { force: true, recursive: true })
        mkdirSync(dest, { recursive: true, mode: 0o700 })
        dirs.push({ path: dest, mode: node.mode, mtime: node.mtime, owner })
      } else if (node.type === 'symlink') {
        await writeSymlink(dest, node.target, node.mtime, owner)
      } else {
        const st = lstatSync(dest, { throwIfNoEntry: false })
        const inPlace = st !== undefined && st.isFile() && (st.mode & 0o7777) === node.mode && sameOwner(st, owner) &&
          sameMtime(BigInt(Math.round(st.mtimeMs * 1e6)), node.mtime) && await checkFileContent(store, e.cid, dest) === undefined
        if (inPlace) {
          result.kept++
        } else {
          const from = previous?.files.get(e.cid.toString())
          const source = from === undefined ? undefined : join(previous!.dir, from)
          const sst = source === undefined ? undefined : lstatSync(source, { throwIfNoEntry: false })
          // a link shares the inode, so it must already be exactly right: the old version is never touched
          const exact = sst?.isFile() === true && (sst.mode & 0o7777) === node.mode && sameOwner(sst, owner) && sameMtime(BigInt(Math.round(sst.mtimeMs * 1e6)), node.mtime)
          if (source !== undefined && exact && await checkFileContent(store, e.cid, source) === undefined) {
            await linkInto(source, dest)
            result.linked++
          } else {
            await writeFileFromStore(store, e.cid, dest)
            await setMeta(dest, node.mode, node.mtime, owner)
            result.written++
          }
        }
        done += node.size
        onProgress?.({ phase: 'write', done, total })
      }
    }
    for (const [path, special] of Object.entries(record.meta.special)) {
      await writeSpecial(join(staging, path), special, ownerOf(record.meta, path))
    }
    // directories last, deepest first: writing children changes their mtimes
    for (const d of dirs.reverse()) await setMeta(d.path, d.mode, d.mtime, d.owner)

    onProgress?.({ phase: 'verify', done: 0, total })
    // every file's bytes were checked on the way in (written from verified
    // blocks, or hashed before being kept or linked): this pass checks the
    // whole tree's shape, sizes and metadata without hashing it all again
    const problems = await verifyTree(store, cid, staging, { repair: false, content: false })
    if (problems.length > 0) {
      throw new InvalidInputError(`version ${name} failed verification after writing: ${problems[0]!.path}: ${problems[0]!.problem}`)
    }
    await syncFs(staging)
    renameSync(staging, final)
  }

  // the version is whole and verified; a hook that throws leaves the old one current (and a rerun runs it again)
  await hooks.beforeSwitch?.(final, current)
  onProgress?.({ phase: 'switch', done: 1, total: 1 })
  await switchCurrent(root, cid)
  await prune(root, cid, current)
  return result
}

/** Points root/current at versions/<cid> with one rename: never a moment without a current version. */
async function switchCurrent (root: string, cid: CID): Promise<void> {
  const link = join(root, CURRENT)
  const tmp = link + PARTIAL
  rmSync(tmp, { force: true })
  symlinkSync(join(VERSIONS, cid.toString()), tmp)
  renameSync(tmp, link)
  await syncFs(root)
}

/**
 * What an apply killed after its switch and before its prune left behind (a
 * third version, a half-removed one, a stale staging directory) removed:
 * `keep` (current) and the newest other version stay.
 */
export async function tidyVersions (root: string, keep: CID): Promise<void> {
  await prune(root, keep, undefined)
}

/** Keeps the current version and the previous one; removes other versions and stale staging directories. */
async function prune (root: string, keep: CID, previous: CID | undefined): Promise<void> {
  const versions = join(root, VERSIONS)
  let keepPrev = previous?.toString()
  const names = readdirSync(versions)
  if (keepPrev === undefined) {
    // a rerun that finds itself current: keep the newest other version as the previous one
    const others = names.filter(n => !n.startsWith('.') && n !== keep.toString())
    const withTimes = others.map(n => ({ n, t: statSync(join(versions, n)).ctimeMs }))
    keepPrev = withTimes.sort((a, b) => b.t - a.t)[0]?.n
  }
  for (const n of names) {
    if (n === keep.toString() || n === keepPrev) continue
    if (n.startsWith(STAGING) && n !== STAGING + keep.toString()) rmSync(join(versions, n), { recursive: true, force: true })
    else if (!n.startsWith('.')) rmSync(join(versions, n), { recursive: true, force: true })
  }
}

export interface Problem { path: string, problem: string, repaired: boolean }

/**
 * Checks an installed tree (a version directory) against its build: every
 * file's bytes, mode, mtime and symlink target, and that nothing is missing.
 * With repair, rewrites what differs from the store. Extra files are
 * reported, never deleted: they may be someone's work.
 */
export async function verifyTree (store: BlockStore, cid: CID, dir: string, options: { repair: boolean, content?: boolean }): Promise<Problem[]> {
  const record = await readRecord(store, cid)
  const problems: Problem[] = []
  const expected = new Set<string>()
  const note = async (path: string, problem: string, fix: () => Promise<void>): Promise<void> => {
    if (options.repair) await fix()
    problems.push({ path, problem, repaired: options.repair })
  }
  for await (const e of walkTree(store, record.tree)) {
    expected.add(e.path)
    const dest = e.path === '' ? dir : join(dir, e.path)
    const node = e.node
    const owner = ownerOf(record.meta, e.path)
    const st = lstatSync(dest, { throwIfNoEntry: false })
    const show = e.path === '' ? '.' : e.path
    if (node.type === 'directory') {
      if (st?.isDirectory() !== true) await note(show, 'missing directory', async () => { rmSync(dest, { force: true }); mkdirSync(dest, { recursive: true }); await setMeta(dest, node.mode, node.mtime, owner) })
      else if (node.mode !== undefined && (st.mode & 0o7777) !== node.mode) await note(show, `mode ${(st.mode & 0o7777).toString(8)}, expected ${node.mode.toString(8)}`, async () => { await setMeta(dest, node.mode, undefined, owner) })
    } else if (node.type === 'symlink') {
      const target = st?.isSymbolicLink() === true ? readlinkSync(dest) : undefined
      if (target !== node.target) await note(show, target === undefined ? 'missing symlink' : `symlink to ${target}, expected ${node.target}`, async () => { await writeSymlink(dest, node.target, node.mtime, owner) })
    } else {
      const content = st?.isFile() !== true
        ? 'missing'
        : options.content === false
          ? (st.size === node.size ? undefined : `size ${st.size}, expected ${node.size}`)
          : await checkFileContent(store, e.cid, dest)
      if (content !== undefined) {
        await note(show, content, async () => { await writeFileFromStore(store, e.cid, dest); await setMeta(dest, node.mode, node.mtime, owner) })
      } else if (node.mode !== undefined && (st!.mode & 0o7777) !== node.mode) {
        await note(show, `mode ${(st!.mode & 0o7777).toString(8)}, expected ${node.mode.toString(8)}`, async () => { await setMeta(dest, node.mode, undefined, owner) })
      } else if (!sameMtime(BigInt(Math.round(st!.mtimeMs * 1e6)), node.mtime)) {
        await note(show, 'mtime differs', async () => { await setMeta(dest, undefined, node.mtime, undefined) })
      }
    }
  }
  for (const [path, special] of Object.entries(record.meta.special)) {
    expected.add(path)
    const st = lstatSync(join(dir, path), { throwIfNoEntry: false })
    const ok = st !== undefined && ((special.type === 'fifo' && st.isFIFO()) || (special.type === 'chr' && st.isCharacterDevice()) || (special.type === 'blk' && st.isBlockDevice()) || special.type === 'sock')
    const makeable = special.type === 'fifo' || (special.type !== 'sock' && isRoot())
    if (!ok && makeable) await note(path, `missing ${special.type}`, async () => { await writeSpecial(join(dir, path), special, ownerOf(record.meta, path)) })
  }
  // extra entries: reported only
  const scan = async (abs: string, rel: string): Promise<void> => {
    for (const name of readdirSync(abs)) {
      const r = rel === '' ? name : `${rel}/${name}`
      if (!expected.has(r)) { problems.push({ path: r, problem: 'not in the build', repaired: false }); continue }
      const st = lstatSync(join(abs, name))
      if (st.isDirectory()) await scan(join(abs, name), r)
    }
  }
  await scan(dir, '')
  return problems
}

/** verify --root: the current version against its build. */
export async function verifyInstalled (store: BlockStore, root: string, options: { repair: boolean }): Promise<{ cid: CID, problems: Problem[] }> {
  const cid = await currentVersion(root)
  if (cid === undefined) throw new InvalidInputError(`${root} has no current version (nothing applied there)`)
  const { missing } = await buildCids(store, cid)
  if (missing.length > 0 && options.repair) throw new IncompleteBuildError(cid.toString(), missing.length)
  return { cid, problems: await verifyTree(store, cid, join(root, VERSIONS, cid.toString()), options) }
}
