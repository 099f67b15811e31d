/**
 * Real version pairs for the update benchmarks, built from public npm
 * releases.
 *
 * Why npm: it is the one public source of real, versioned software trees this
 * project's machines can reach, and its releases have the shapes an XO update
 * has: many small files of which a few change (a patch release), one big
 * binary or bundle that is rebuilt (a native tool, a compiled bundle), an
 * "image" of many packages of which only a few move, and a major upgrade.
 *
 * How: each release is fetched with npm's own client (`npm pack <spec>`, so
 * npm's registry settings and cache apply) into .bench/cache/tgz/ and unpacked
 * with `tar` into .bench/cache/npm/<name>@<version>/ (the tarball's top folder
 * stripped). An image is assembled by copying packages into
 * .bench/cache/trees/<pair>/{old,new}/<name>/. Everything is cached: a
 * package already unpacked, or a tree already assembled, is not fetched or
 * built again, and an interrupted run resumes where it stopped (unpacking
 * goes to a temporary folder renamed into place at the end).
 *
 * Timestamps: npm tarballs give every file the same mtime (1985-10-26
 * 08:15:00 UTC) and have no directory entries; we give directories that same
 * mtime and mode 755, so a tree is byte-for-byte reproducible on any machine.
 * The consequence for the references: old and new files have equal mtimes
 * and often equal sizes, so rsync's quick check (size + mtime) would skip
 * changed files; rsync must run with -c (checksums) to be correct.
 *
 * Run alone to prefetch: `npx node --import tsx bench/trees.ts [pair…]`.
 */
import { rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { CACHE_DIR, ensureDir, exists, log, run, sha256, treeStats } from './util.js'

/** npm's fixed mtime for every file in a tarball: 1985-10-26T08:15:00Z. */
export const NPM_MTIME = 499162500

/** One package at one version, e.g. { name: '@esbuild/linux-x64', version: '0.25.10' }. */
export interface PkgSpec {
  name: string
  version: string
}

/** A package of an image; `next` set when the new image has another version. */
export interface ImagePkg {
  name: string
  version: string
  next?: string
}

export interface PairDef {
  /** Short id, used in file names and on the command line (`--pairs=`). */
  id: string
  /** What kind of update this is. */
  kind: string
  /** Human description with the exact versions. */
  label: string
  /** A single package from one version to another … */
  pkg?: { name: string, from: string, to: string }
  /** … or an image of many packages. */
  image?: ImagePkg[]
}

/**
 * The image: 22 popular packages (about 170 MB unpacked) of which three move
 * to their next release (a minor of three.js, a patch of prettier and of
 * sass) and the rest stay identical.
 */
export const IMAGE: ImagePkg[] = [
  { name: 'typescript', version: '5.6.3' },
  { name: 'date-fns', version: '3.6.0' },
  { name: 'three', version: '0.169.0', next: '0.170.0' },
  { name: 'bootstrap', version: '5.3.3' },
  { name: 'react-dom', version: '18.3.1' },
  { name: 'lodash', version: '4.17.21' },
  { name: 'moment', version: '2.30.1' },
  { name: 'rxjs', version: '7.8.1' },
  { name: 'prettier', version: '3.3.2', next: '3.3.3' },
  { name: 'eslint', version: '9.12.0' },
  { name: 'webpack', version: '5.95.0' },
  { name: '@babel/core', version: '7.25.8' },
  { name: 'highlight.js', version: '11.10.0' },
  { name: 'katex', version: '0.16.11' },
  { name: 'chart.js', version: '4.4.4' },
  { name: 'd3', version: '7.9.0' },
  { name: 'jquery', version: '3.7.1' },
  { name: 'vue', version: '3.5.12' },
  { name: '@fortawesome/fontawesome-free', version: '6.6.0' },
  { name: '@types/node', version: '22.7.5' },
  { name: 'sass', version: '1.79.4', next: '1.79.5' },
  { name: 'mathjs', version: '13.2.0' }
]

/** The pairs, in the order they are run and shown. */
export const PAIRS: PairDef[] = [
  {
    id: 'patch-many',
    kind: 'patch, many small files',
    label: 'rxjs 7.8.1 → 7.8.2',
    pkg: { name: 'rxjs', from: '7.8.1', to: '7.8.2' }
  },
  {
    id: 'patch-bundles',
    kind: 'patch, big bundled JS files',
    label: 'typescript 5.9.2 → 5.9.3',
    pkg: { name: 'typescript', from: '5.9.2', to: '5.9.3' }
  },
  {
    id: 'patch-binary',
    kind: 'patch, one big native binary',
    label: '@esbuild/linux-x64 0.25.10 → 0.25.11',
    pkg: { name: '@esbuild/linux-x64', from: '0.25.10', to: '0.25.11' }
  },
  {
    id: 'image',
    kind: `image of ${IMAGE.length} packages, ${IMAGE.filter(p => p.next).length} move`,
    label: IMAGE.filter(p => p.next).map(p => `${p.name} ${p.version} → ${p.next}`).join(', '),
    image: IMAGE
  },
  {
    id: 'major',
    kind: 'major version jump',
    label: 'typescript 4.9.5 → 5.0.4',
    pkg: { name: 'typescript', from: '4.9.5', to: '5.0.4' }
  }
]

/** A pair ready on disk. */
export interface Pair {
  def: PairDef
  oldDir: string
  newDir: string
}

const TGZ_DIR = join(CACHE_DIR, 'tgz')
const PKG_DIR = join(CACHE_DIR, 'npm')
const TREE_DIR = join(CACHE_DIR, 'trees')

/** '@esbuild/linux-x64' + '0.25.10' → '@esbuild+linux-x64@0.25.10' (a file name). */
function slug (p: PkgSpec): string {
  return `${p.name.replace('/', '+')}@${p.version}`
}

/** The folder a package version is (or will be) unpacked in. */
export function packageDir (p: PkgSpec): string {
  return join(PKG_DIR, slug(p))
}

/** Sets every directory below (and including) `root` to mode 755 and npm's mtime. */
async function normaliseDirs (root: string): Promise<void> {
  await run('find', [root, '-type', 'd', '-exec', 'chmod', '755', '{}', '+'])
  await run('find', [root, '-type', 'd', '-exec', 'touch', '-h', '-d', `@${NPM_MTIME}`, '{}', '+'])
}

/**
 * Makes sure `p` is unpacked in its cache folder; fetches it with `npm pack`
 * if needed. Returns the folder.
 */
export async function fetchPackage (p: PkgSpec): Promise<string> {
  const dir = packageDir(p)
  if (await exists(dir)) return dir
  await ensureDir(TGZ_DIR)
  await ensureDir(PKG_DIR)
  const tgz = join(TGZ_DIR, `${slug(p)}.tgz`)
  if (!(await exists(tgz))) {
    log(`  fetching ${p.name}@${p.version} (npm pack)`)
    // npm pack names the file itself (scope folded in); pack into a private
    // temporary folder, then move the one .tgz into place.
    const tmp = join(TGZ_DIR, `.tmp-${slug(p)}-${process.pid}`)
    await rm(tmp, { recursive: true, force: true })
    await ensureDir(tmp)
    try {
      const res = await run('npm', ['pack', `${p.name}@${p.version}`, '--pack-destination', tmp, '--json', '--silent'], {
        cwd: tmp,
        timeoutSeconds: 600
      })
      const info = JSON.parse(res.stdout) as Array<{ filename: string, version: string }>
      const first = info[0]
      if (!first || first.version !== p.version) throw new Error(`npm pack ${p.name}@${p.version}: unexpected answer ${res.stdout.slice(0, 200)}`)
      // npm >= 9 gives the file name with the scope folded in ('esbuild-linux-x64-0.25.10.tgz').
      const file = first.filename.replace(/^@/, '').replace('/', '-')
      await rename(join(tmp, file), tgz)
    } finally {
      await rm(tmp, { recursive: true, force: true })
    }
  }
  log(`  unpacking ${p.name}@${p.version}`)
  const tmpDir = `${dir}.tmp-${process.pid}`
  await rm(tmpDir, { recursive: true, force: true })
  await ensureDir(tmpDir)
  await run('tar', ['-xzf', tgz, '-C', tmpDir, '--strip-components=1', '--no-same-owner'])
  await normaliseDirs(tmpDir)
  await rename(tmpDir, dir)
  return dir
}

/** Runs `fn` over `items`, at most `limit` at a time. */
async function pool<T> (items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T
      await fn(item)
    }
  })
  await Promise.all(workers)
}

/** Every package version a pair needs. */
function packagesOf (def: PairDef): PkgSpec[] {
  if (def.pkg) {
    return [{ name: def.pkg.name, version: def.pkg.from }, { name: def.pkg.name, version: def.pkg.to }]
  }
  const out: PkgSpec[] = []
  for (const p of def.image ?? []) {
    out.push({ name: p.name, version: p.version })
    if (p.next) out.push({ name: p.name, version: p.next })
  }
  return out
}

/** Copies packages into `<dest>/<name>/`, via a temporary folder renamed at the end. */
async function assembleImage (dest: string, pkgs: PkgSpec[]): Promise<void> {
  if (await exists(dest)) return
  const tmp = `${dest}.tmp-${process.pid}`
  await rm(tmp, { recursive: true, force: true })
  await ensureDir(tmp)
  for (const p of pkgs) {
    const target = join(tmp, p.name)
    // `cp -a` keeps modes and the 1985 mtimes (fs.cp would not keep modes of dirs).
    await ensureDir(join(target, '..'))
    await run('cp', ['-a', packageDir(p), target])
  }
  await normaliseDirs(tmp)
  await rename(tmp, dest)
}

/** Fetches, unpacks and assembles what `def` needs; returns its two trees. */
export async function preparePair (def: PairDef): Promise<Pair> {
  const pkgs = packagesOf(def)
  const missing: PkgSpec[] = []
  for (const p of pkgs) if (!(await exists(packageDir(p)))) missing.push(p)
  if (missing.length > 0) log(`[${def.id}] ${missing.length} of ${pkgs.length} package versions to fetch`)
  let done = 0
  await pool(missing, 4, async (p) => {
    await fetchPackage(p)
    done++
    log(`[${def.id}] ${done}/${missing.length} ready: ${p.name}@${p.version}`)
  })
  if (def.pkg) {
    return {
      def,
      oldDir: packageDir({ name: def.pkg.name, version: def.pkg.from }),
      newDir: packageDir({ name: def.pkg.name, version: def.pkg.to })
    }
  }
  const image = def.image ?? []
  // The folder name carries a hash of the package list: changing the list
  // makes a new image instead of silently reusing a stale one.
  const base = join(TREE_DIR, `${def.id}-${sha256(JSON.stringify(image)).slice(0, 12)}`)
  await ensureDir(base)
  const oldDir = join(base, 'old')
  const newDir = join(base, 'new')
  if (!(await exists(oldDir)) || !(await exists(newDir))) log(`[${def.id}] assembling image trees`)
  await assembleImage(oldDir, image.map(p => ({ name: p.name, version: p.version })))
  await assembleImage(newDir, image.map(p => ({ name: p.name, version: p.next ?? p.version })))
  return { def, oldDir, newDir }
}

/** The pairs whose ids are in `ids` (all when empty), in PAIRS order. */
export function selectPairs (ids: string[]): PairDef[] {
  if (ids.length === 0) return PAIRS
  const unknown = ids.filter(id => !PAIRS.some(p => p.id === id))
  if (unknown.length > 0) throw new Error(`unknown pair(s): ${unknown.join(', ')}; known: ${PAIRS.map(p => p.id).join(', ')}`)
  return PAIRS.filter(p => ids.includes(p.id))
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const def of selectPairs(process.argv.slice(2))) {
    const pair = await preparePair(def)
    const [o, n] = await Promise.all([treeStats(pair.oldDir), treeStats(pair.newDir)])
    log(`${def.id}: ${def.label}: old ${o.files} files ${o.bytes} B, new ${n.files} files ${n.bytes} B`)
  }
}
