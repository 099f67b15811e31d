/**
 * `npm run bench -- add`: how fast a build goes into the store and out again.
 *
 * On a 1 GiB mixed tree (many small text-like files, mid-size libraries, a
 * few large images; made once, deterministically, in .bench/cache), in one
 * run, with the page cache warm for everyone:
 *   - `sha256sum` of every file: the hashing limit of the machine's own tool;
 *   - `casync make` (default chunking, zstd chunks): the reference chunker;
 *   - `xo-mesh add` into a fresh data directory;
 *   - `xo-mesh apply` of that build into a fresh root, beside `casync extract`
 *     of the same tree and `cp -a` (a plain copy, the floor for writing it).
 * Targets: add faster than casync make, and at least 40% of sha256sum's rate.
 *
 * Options: --size=MiB (default 1024), --runs=N (default 1: each figure is one
 * run; the machine is shared, so compare ratios within a run).
 */
import { createCipheriv, createHash } from 'node:crypto'
import { mkdir, open, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BENCH_DIR, CACHE_DIR, REPO_ROOT, exists, formatBytes, formatTable, log, run, treeStats, type BenchContext, type BenchOutput } from './util.js'

export const description = 'add/apply throughput on a 1 GiB mixed tree vs sha256sum, casync make/extract and cp -a'

const BIN = join(REPO_ROOT, 'bin', 'xo-mesh.js')

function stream (seed: string): (n: number) => Buffer {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16)
  const c = createCipheriv('aes-128-ctr', key, Buffer.alloc(16))
  return n => c.update(Buffer.alloc(n))
}

/** Text-like bytes: words from a small vocabulary, compressible like source and docs. */
function textBytes (rand: (n: number) => Buffer, n: number): Buffer {
  const words = ['the', 'laptop', 'school', 'server', 'mesh', 'build', 'block', 'function', 'return', 'const', 'import', 'from', 'activity', 'journal', 'sugar', '{', '}', '(', ')', ';', '\n']
  const r = rand(n)
  const out = Buffer.allocUnsafe(n)
  let o = 0
  for (let i = 0; o < n; i++) {
    const w = words[r[i % n]! % words.length]!
    o += out.write(w + ' ', o)
  }
  return out.subarray(0, n)
}

/** The tree: ~12% small text files, ~25% mid-size binaries, the rest a few large images. */
async function makeTree (dir: string, totalMiB: number): Promise<void> {
  const marker = join(dir, '.complete')
  if (await exists(marker)) return
  await rm(dir, { recursive: true, force: true })
  const rand = stream('xo-mesh-add-bench')
  const total = totalMiB << 20
  let made = 0
  const small = Math.floor(total * 0.12)
  for (let i = 0; made < small; i++) {
    const d = join(dir, 'usr/share', `pkg${Math.floor(i / 50)}`)
    if (i % 50 === 0) await mkdir(d, { recursive: true })
    const n = 500 + (rand(2).readUInt16LE(0) % 16000)
    await writeFile(join(d, `file${i}.txt`), textBytes(rand, n))
    made += n
  }
  const mid = Math.floor(total * 0.25)
  await mkdir(join(dir, 'usr/lib'), { recursive: true })
  for (let i = 0; made < small + mid; i++) {
    const n = (512 << 10) + (rand(4).readUInt32LE(0) % (3 << 20))
    await writeFile(join(dir, 'usr/lib', `lib${i}.so`), rand(n))
    made += n
  }
  await mkdir(join(dir, 'images'), { recursive: true })
  for (let i = 0; made < total; i++) {
    const n = Math.min(total - made, 200 << 20)
    const fh = await open(join(dir, 'images', `image${i}.img`), 'w')
    for (let left = n; left > 0; left -= 4 << 20) await fh.write(rand(Math.min(left, 4 << 20)))
    await fh.close()
    made += n
  }
  await writeFile(marker, '')
}

async function warm (dir: string): Promise<void> {
  await run('sh', ['-c', `find "${dir}" -type f -print0 | xargs -0 cat > /dev/null`])
}

export async function run_ (ctx: BenchContext): Promise<BenchOutput> {
  const sizeMiB = Number(ctx.options.get('size') ?? 1024)
  const tree = join(CACHE_DIR, `add-tree-${sizeMiB}`)
  const work = join(BENCH_DIR, 'work', 'add')
  log(`making the ${sizeMiB} MiB tree (cached)…`)
  await makeTree(tree, sizeMiB)
  const stats = await treeStats(tree)
  const bytes = stats.bytes
  await rm(work, { recursive: true, force: true })
  await mkdir(work, { recursive: true })
  await warm(tree)

  log('sha256sum…')
  const sha = await run('sh', ['-c', `cd "${tree}" && find . -type f -print0 | xargs -0 sha256sum > /dev/null`])
  log('casync make…')
  const casMake = await run('casync', ['make', `--store=${join(work, 'castr')}`, join(work, 'tree.caidx'), tree])
  await warm(tree)
  log('xo-mesh add…')
  const add = await run(process.execPath, [BIN, '--data', join(work, 'data'), 'add', tree, '--name', 'bench', '--kind', 'os'], { env: { ...process.env, XO_MESH_NO_PROGRESS: '1' } })
  const cid = add.stdout.trim().split('\n').pop()!.trim()
  log('xo-mesh apply…')
  const apply = await run(process.execPath, [BIN, '--data', join(work, 'data'), 'apply', cid, '--root', join(work, 'root')], { env: { ...process.env, XO_MESH_NO_PROGRESS: '1' } })
  log('casync extract…')
  const casExtract = await run('casync', ['extract', `--store=${join(work, 'castr')}`, join(work, 'tree.caidx'), join(work, 'castree')])
  log('cp -a…')
  const cp = await run('cp', ['-a', tree, join(work, 'cptree')])
  await rm(work, { recursive: true, force: true })

  const mbs = (s: number): number => bytes / 1e6 / s
  const rows = [
    ['sha256sum (hashing limit)', sha.seconds.toFixed(1), mbs(sha.seconds).toFixed(0), '1.00'],
    ['casync make', casMake.seconds.toFixed(1), mbs(casMake.seconds).toFixed(0), (sha.seconds / casMake.seconds).toFixed(2)],
    ['xo-mesh add', add.seconds.toFixed(1), mbs(add.seconds).toFixed(0), (sha.seconds / add.seconds).toFixed(2)],
    ['cp -a (copy floor)', cp.seconds.toFixed(1), mbs(cp.seconds).toFixed(0), (sha.seconds / cp.seconds).toFixed(2)],
    ['casync extract', casExtract.seconds.toFixed(1), mbs(casExtract.seconds).toFixed(0), (sha.seconds / casExtract.seconds).toFixed(2)],
    ['xo-mesh apply', apply.seconds.toFixed(1), mbs(apply.seconds).toFixed(0), (sha.seconds / apply.seconds).toFixed(2)]
  ]
  const verdict = [
    `add vs casync make: ${(casMake.seconds / add.seconds).toFixed(2)}x as fast (target > 1)`,
    `add vs sha256sum rate: ${(100 * sha.seconds / add.seconds).toFixed(0)}% (target >= 40%)`,
    `apply vs casync extract: ${(casExtract.seconds / apply.seconds).toFixed(2)}x as fast`
  ]
  return {
    tables: [
      `tree: ${formatBytes(bytes)} in ${stats.files} files`,
      formatTable(['step', 'seconds', 'MB/s', 'rate / sha256sum'], rows, 'lrrr'),
      verdict.join('\n')
    ],
    results: {
      bytes,
      files: stats.files,
      seconds: { sha256sum: sha.seconds, casyncMake: casMake.seconds, add: add.seconds, apply: apply.seconds, casyncExtract: casExtract.seconds, cp: cp.seconds },
      ratios: { addVsCasyncMake: casMake.seconds / add.seconds, addVsSha256sumRate: sha.seconds / add.seconds, applyVsCasyncExtract: casExtract.seconds / apply.seconds }
    }
  }
}

export { run_ as run }
