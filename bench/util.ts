/**
 * Shared helpers of the benchmarks: where things live (all relative to the
 * repository root, found from this file's URL), running external tools,
 * timing, walking and comparing directory trees, and printing tables.
 *
 * Nothing here measures anything by itself; see delta.ts, refs.ts, trees.ts.
 */
import { spawn, type SpawnOptions } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { lstat, mkdir, readdir, readFile, readlink, realpath } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The repository root (the parent of bench/). */
export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url))
/** Everything the benchmarks write lives under here (gitignored). */
export const BENCH_DIR = join(REPO_ROOT, '.bench')
/** Downloads and assembled trees, kept between runs. */
export const CACHE_DIR = join(BENCH_DIR, 'cache')
/** JSON results, one file per bench. */
export const RESULTS_DIR = join(BENCH_DIR, 'results')
/** Scratch space of a run, emptied per pair. */
export const WORK_DIR = join(BENCH_DIR, 'work')

/** Progress and diagnostics go to stderr, so stdout holds only the tables. */
export function log (...parts: unknown[]): void {
  process.stderr.write(parts.map(String).join(' ') + '\n')
}

export interface RunResult {
  code: number
  stdout: string
  stderr: string
  seconds: number
}

export interface RunOptions extends SpawnOptions {
  /** Throw when the exit code is not 0 (default true). */
  check?: boolean
  /** Kill the process after this many seconds. */
  timeoutSeconds?: number
  /** Data written to the process's stdin. */
  input?: string | Buffer
}

/** Runs a program (no shell) and collects its output. */
export function run (cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const { check = true, timeoutSeconds, input, ...spawnOpts } = opts
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...spawnOpts, stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout?.on('data', (b: Buffer) => out.push(b))
    child.stderr?.on('data', (b: Buffer) => err.push(b))
    let timer: NodeJS.Timeout | undefined
    if (timeoutSeconds !== undefined) {
      timer = setTimeout(() => child.kill('SIGKILL'), timeoutSeconds * 1000)
    }
    child.on('error', (e) => {
      if (timer) clearTimeout(timer)
      reject(e)
    })
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer)
      const res: RunResult = {
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        seconds: (performance.now() - started) / 1000
      }
      if (check && res.code !== 0) {
        // the head of the output carries the message, the tail a stack or a summary
        const lines = (res.stderr || res.stdout).trim().split('\n')
        const gist = lines.length <= 14 ? lines : [...lines.slice(0, 10), '…', ...lines.slice(-3)]
        reject(new Error(`${cmd} ${args.join(' ')} exited with ${signal ?? res.code}\n${gist.join('\n')}`))
      } else {
        resolve(res)
      }
    })
    if (input !== undefined) child.stdin?.end(input)
    else child.stdin?.end()
  })
}

/** Runs `fn` and returns its value with the wall-clock seconds it took. */
export async function timed<T> (fn: () => Promise<T>): Promise<{ value: T, seconds: number }> {
  const started = performance.now()
  const value = await fn()
  return { value, seconds: (performance.now() - started) / 1000 }
}

export async function ensureDir (dir: string): Promise<string> {
  await mkdir(dir, { recursive: true })
  return dir
}

export async function exists (path: string): Promise<boolean> {
  try {
    await lstat(path)
    return true
  } catch {
    return false
  }
}

export interface TreeEntry {
  /** Path relative to the tree root, '/'-separated. */
  path: string
  type: 'file' | 'dir' | 'symlink' | 'other'
  /** Permission bits (mode & 0o7777). */
  mode: number
  size: number
  /** Symlink target. */
  target?: string
}

/** All entries below `root` (not the root itself), sorted by path. */
export async function walkTree (root: string): Promise<TreeEntry[]> {
  const entries: TreeEntry[] = []
  async function walk (dir: string): Promise<void> {
    const names = (await readdir(dir)).sort()
    for (const name of names) {
      const abs = join(dir, name)
      const st = await lstat(abs)
      const path = relative(root, abs).split('\\').join('/')
      const mode = st.mode & 0o7777
      if (st.isDirectory()) {
        entries.push({ path, type: 'dir', mode, size: 0 })
        await walk(abs)
      } else if (st.isFile()) {
        entries.push({ path, type: 'file', mode, size: st.size })
      } else if (st.isSymbolicLink()) {
        entries.push({ path, type: 'symlink', mode, size: 0, target: await readlink(abs) })
      } else {
        entries.push({ path, type: 'other', mode, size: 0 })
      }
    }
  }
  await walk(root)
  return entries
}

export interface TreeStats {
  files: number
  dirs: number
  /** Sum of regular file sizes. */
  bytes: number
}

export async function treeStats (root: string): Promise<TreeStats> {
  const entries = await walkTree(root)
  let files = 0
  let dirs = 0
  let bytes = 0
  for (const e of entries) {
    if (e.type === 'dir') dirs++
    else if (e.type === 'file') {
      files++
      bytes += e.size
    }
  }
  return { files, dirs, bytes }
}

export interface CompareOptions {
  /** Also require equal permission bits on directories (default false). */
  dirModes?: boolean
}

/**
 * Compares two trees: same paths, same entry types, same file contents,
 * same file permission bits, same symlink targets. Returns the differences
 * (empty when equal); at most `limit` are listed. `a` and `b` may be
 * symlinks to directories.
 */
export async function compareTrees (a: string, b: string, opts: CompareOptions = {}, limit = 20): Promise<string[]> {
  const ra = await realpath(a)
  const rb = await realpath(b)
  const [ea, eb] = await Promise.all([walkTree(ra), walkTree(rb)])
  const mb = new Map(eb.map(e => [e.path, e]))
  const diffs: string[] = []
  const note = (s: string): boolean => {
    diffs.push(s)
    return diffs.length >= limit
  }
  for (const x of ea) {
    const y = mb.get(x.path)
    mb.delete(x.path)
    if (!y) {
      if (note(`only in first: ${x.path}`)) return diffs
      continue
    }
    if (x.type !== y.type) {
      if (note(`type differs: ${x.path} (${x.type} vs ${y.type})`)) return diffs
      continue
    }
    if (x.type === 'file') {
      if (x.mode !== y.mode && note(`mode differs: ${x.path} (${x.mode.toString(8)} vs ${y.mode.toString(8)})`)) return diffs
      if (x.size !== y.size) {
        if (note(`size differs: ${x.path} (${x.size} vs ${y.size})`)) return diffs
      } else {
        const [ba, bb] = await Promise.all([readFile(join(ra, x.path)), readFile(join(rb, x.path))])
        if (!ba.equals(bb) && note(`content differs: ${x.path}`)) return diffs
      }
    } else if (x.type === 'dir') {
      if (opts.dirModes && x.mode !== y.mode && note(`dir mode differs: ${x.path}`)) return diffs
    } else if (x.type === 'symlink') {
      if (x.target !== y.target && note(`symlink differs: ${x.path}`)) return diffs
    }
  }
  for (const path of mb.keys()) {
    if (note(`only in second: ${path}`)) return diffs
  }
  return diffs
}

/** sha256 of a string, hex. */
export function sha256 (s: string): string {
  return createHash('sha256').update(s).digest('hex')
}

/** 1234567 → "1.18 MiB". */
export function formatBytes (n: number | undefined | null): string {
  if (n === undefined || n === null || !Number.isFinite(n)) return 'n/a'
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[i]}`
}

/**
 * A plain-text table. `align` has one letter per column, 'l' or 'r'; by
 * default the first column is left-aligned and the others right-aligned.
 */
export function formatTable (header: string[], rows: string[][], align?: string): string {
  const all = [header, ...rows]
  const widths = header.map((_, i) => Math.max(...all.map(r => (r[i] ?? '').length)))
  const left = (i: number): boolean => align ? align[i] === 'l' : i === 0
  const line = (r: string[]): string => r.map((c, i) => left(i) ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)).join('  ').trimEnd()
  const sep = widths.map(w => '-'.repeat(w)).join('  ')
  return [line(header), sep, ...rows.map(line)].join('\n')
}

/** What a bench module exports; run.ts calls `run` and prints/saves the result. */
export interface BenchContext {
  /** Arguments after the bench names that start with `--` (e.g. `--pairs=a,b`). */
  options: Map<string, string>
}

export interface BenchOutput {
  /** Plain-text tables for stdout. */
  tables: string[]
  /** Saved as .bench/results/<name>.json (with machine and timing info). */
  results: unknown
}

export interface BenchModule {
  /** One line saying what the bench measures. */
  description: string
  run (ctx: BenchContext): Promise<BenchOutput>
}

export function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

export { freePort, until } from '../test/support/wait.js'

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const CLK_TCK = 100

/** CPU seconds (user + system) a process has used, from /proc; NaN once it is gone. */
export function procCpu (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) / CLK_TCK
  } catch {
    return NaN
  }
}

/** A kB field of /proc/<pid>/status (VmRSS, VmHWM); NaN once the process is gone. */
export function procKb (pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? NaN : Number(m[1])
  } catch {
    return NaN
  }
}
