/**
 * Our side of the update benchmark: the bytes of the CAR bundle that takes a
 * holder of OLD to NEW, made and used through our own CLI exactly as a
 * teacher would (USB stick or mesh transfer of one file).
 *
 *   D1 (the sender):  xo-mesh --data D1 add OLD --name old   → old CID (last stdout line)
 *                     xo-mesh --data D1 add NEW --name new   → new CID
 *                     xo-mesh --data D1 export NEWCID -o upd.car --have OLDCID
 *   bytes = size of upd.car
 *   D2 (the laptop):  xo-mesh --data D2 add OLD --name old
 *                     xo-mesh --data D2 import upd.car
 *                     xo-mesh --data D2 apply NEWCID --root R
 *   rebuilt = R/current equals NEW (paths, file bytes, file modes, symlinks)
 *   seconds = wall time of export + import + apply (the update itself; the
 *             adds are what both sides did before)
 *
 * When the CLI is not there yet (bin/xo-mesh.js or src/cli/main.ts missing)
 * or a step fails, the result is undefined (shown as "n/a"); the reason goes
 * to stderr. Only the exported `measureOurs` is the hook delta.ts calls.
 */
import { rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { compareTrees, ensureDir, exists, log, REPO_ROOT, run } from './util.js'

export interface OursResult {
  /** Size of the update bundle (upd.car). */
  bytes: number
  /** The receiving side rebuilt NEW exactly from OLD + the bundle. */
  rebuilt: boolean
  seconds: number
}

/**
 * The CLI. XO_MESH_BENCH_CLI may name another script to run instead (a stub,
 * to test this adaptor); then src/cli/main.ts is not required.
 */
const BIN = process.env.XO_MESH_BENCH_CLI ?? join(REPO_ROOT, 'bin', 'xo-mesh.js')
const MAIN = process.env.XO_MESH_BENCH_CLI ?? join(REPO_ROOT, 'src', 'cli', 'main.ts')

/** Runs `xo-mesh --data <data> <args…>` with this Node (22, via npm run); returns stdout. */
async function cli (data: string, args: string[]): Promise<{ stdout: string, seconds: number }> {
  const res = await run(process.execPath, [BIN, '--data', data, ...args], { cwd: REPO_ROOT, timeoutSeconds: 1800 })
  return { stdout: res.stdout, seconds: res.seconds }
}

/** The root CID printed by `add`: its last non-empty stdout line. */
function lastLine (stdout: string): string {
  const lines = stdout.split('\n').map(l => l.trim()).filter(l => l.length > 0)
  const last = lines[lines.length - 1]
  if (!last) throw new Error('add printed nothing')
  return last
}

export async function measureOurs (oldDir: string, newDir: string, workDir: string): Promise<OursResult | undefined> {
  if (!(await exists(BIN)) || !(await exists(MAIN))) {
    log('  ours: CLI not present (bin/xo-mesh.js or src/cli/main.ts missing): n/a')
    return undefined
  }
  const d1 = join(workDir, 'ours-d1')
  const d2 = join(workDir, 'ours-d2')
  const root = join(workDir, 'ours-root')
  const car = join(workDir, 'upd.car')
  const cleanup = async (): Promise<void> => {
    for (const p of [d1, d2, root, car]) await rm(p, { recursive: true, force: true })
  }
  await cleanup()
  try {
    await ensureDir(workDir)
    const oldCid = lastLine((await cli(d1, ['add', oldDir, '--name', 'old'])).stdout)
    const newCid = lastLine((await cli(d1, ['add', newDir, '--name', 'new'])).stdout)
    const exp = await cli(d1, ['export', newCid, '-o', car, '--have', oldCid])
    const bytes = (await stat(car)).size
    const oldCid2 = lastLine((await cli(d2, ['add', oldDir, '--name', 'old'])).stdout)
    if (oldCid2 !== oldCid) log(`  ours: warning: OLD got another CID in a fresh data dir (${oldCid2} vs ${oldCid})`)
    const imp = await cli(d2, ['import', car])
    const app = await cli(d2, ['apply', newCid, '--root', root])
    const current = join(root, 'current')
    let rebuilt = false
    if (await exists(current)) {
      const diffs = await compareTrees(current, newDir)
      if (diffs.length > 0) log(`  ours: R/current differs from NEW:\n    ${diffs.join('\n    ')}`)
      rebuilt = diffs.length === 0
    } else {
      log('  ours: apply left no R/current')
    }
    return { bytes, rebuilt, seconds: exp.seconds + imp.seconds + app.seconds }
  } catch (e) {
    log(`  ours: failed: ${(e as Error).message.split('\n').join('\n    ')}`)
    return undefined
  } finally {
    await cleanup()
  }
}
