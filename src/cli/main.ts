// The xo-mesh command line. Content commands work on a data directory
// directly (the block store is safe to share with a running agent: blocks
// appear by atomic rename). Errors print one line on stderr and exit 1.
import { Command, Option } from 'commander'
import { resolve } from 'node:path'
import { stat } from 'node:fs/promises'
import { Repo, defaultDataDir } from '../content/repo.ts'
import { CID, parseCid } from '../content/cid.ts'
import { ContentError, IncompleteBuildError, InvalidInputError } from '../content/errors.ts'
import { addDirectory, treeBytes } from '../content/add.ts'
import { addImage } from '../content/image.ts'
import { KINDS, buildCids, readRecord, walkTree, type Kind } from '../content/build.ts'
import { applyBuild, verifyInstalled } from '../content/apply.ts'
import { exportBundle, importBundle } from '../content/bundle.ts'
import { planUpdate } from '../content/delta.ts'
import { Progress, humanBytes } from './progress.ts'
import { addAgentCommand } from './agent.ts'
import { addMeshCommands } from './mesh.ts'
import { addFetchCommand } from './fetch.ts'
import { addEventsCommand } from './events.ts'
import { addDeployCommands } from './deploy.ts'
import { TrustError } from '../trust/errors.ts'
import { addReportCommand } from './report.ts'
import { addLeaseCommands } from './lease.ts'
import { addRosterCommand } from './roster.ts'
import { addSimCommand } from './sim.ts'
import { addUsbCommand } from './usb.ts'
import { addBackupCommands } from './backup.ts'
import { addPasswdCommand } from './passwd.ts'

interface Globals { data?: string, json?: boolean }

const program = new Command()
program
  .name('xo-mesh')
  .description('Keeps a school\'s XO laptops supplied with builds over a peer-to-peer mesh.')
  .option('--data <dir>', 'data directory (default $XO_MESH_HOME or ~/.xo-mesh)')
  .option('--json', 'print data as JSON')
  .showHelpAfterError()

function globals (): Globals {
  return program.opts<Globals>()
}

async function repo (): Promise<Repo> {
  return Repo.open(resolve(globals().data ?? defaultDataDir()))
}

function out (text: string): void {
  process.stdout.write(text + '\n')
}

/** CIDs print as their string (JSON.stringify has already turned them into {"/": "..."} by toJSON). */
function plain (_k: string, v: unknown): unknown {
  if (v instanceof CID) return v.toString()
  if (typeof v === 'bigint') return Number(v)
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const keys = Object.keys(v)
    const link = (v as Record<string, unknown>)['/']
    if (keys.length === 1 && typeof link === 'string') return link
  }
  return v
}

function json (value: unknown): void {
  out(JSON.stringify(value, plain, 2))
}

function parseDate (text: string): Date {
  const d = new Date(text)
  if (Number.isNaN(d.getTime())) throw new InvalidInputError(`not a date: ${JSON.stringify(text)} (use ISO 8601, e.g. 2026-11-26T00:00:00Z)`)
  return d
}

function modeString (mode: number | undefined, type: string): string {
  const t = type === 'directory' ? 'd' : type === 'symlink' ? 'l' : '-'
  if (mode === undefined) return t + '?????????'
  const rwx = (m: number): string => (m & 4 ? 'r' : '-') + (m & 2 ? 'w' : '-') + (m & 1 ? 'x' : '-')
  return t + rwx(mode >> 6) + rwx(mode >> 3) + rwx(mode)
}

program.command('add')
  .description('chunk and store a tree (or an image builder tarball) as a build; prints its root CID last')
  .argument('[dir]', 'directory to add')
  .option('--name <name>', 'build name (required with a directory)')
  .addOption(new Option('--kind <kind>', 'what the build is (default: content; os for --image)').choices([...KINDS]))
  .option('--image <tarball>', 'an image builder NAME-tree.tar.bz2 (with its .md5 and NAME.name beside it)')
  .option('--created <date>', 'when the build was made, ISO 8601 (default $SOURCE_DATE_EPOCH, else now): the same tree and date give the same CID')
  .action(async (dir: string | undefined, opts: { name?: string, kind?: Kind, image?: string, created?: string }) => {
    const r = await repo()
    const progress = new Progress('add')
    let result
    if (opts.image !== undefined) {
      if (dir !== undefined) throw new InvalidInputError('give either a directory or --image, not both')
      result = await addImage(r.store, resolve(opts.image), {
        kind: opts.kind ?? 'os',
        ...(opts.created !== undefined ? { created: parseDate(opts.created) } : {}),
        onCompressedBytes: (n, total) => { progress.update(n, total) }
      })
    } else {
      if (dir === undefined) throw new InvalidInputError('add needs a directory or --image')
      if (opts.name === undefined || opts.name.trim() === '') throw new InvalidInputError('add needs --name for a directory')
      // the denominator costs a walk of the tree: only worth it when a bar is drawn
      let total: number | undefined
      if (progress.visible) { try { total = treeBytes(resolve(dir)) } catch { total = undefined } }
      result = await addDirectory(r.store, resolve(dir), { name: opts.name, kind: opts.kind ?? 'content', ...(opts.created !== undefined ? { created: parseDate(opts.created) } : {}), onProgress: n => { progress.update(n, total) } })
    }
    progress.done()
    await r.noteBuild(result.cid, result.record)
    if (globals().json === true) json({ cid: result.cid, name: result.record.name, kind: result.record.kind, bytes: result.record.meta.bytes, files: result.record.meta.files })
    else {
      process.stderr.write(`added ${result.record.kind} build "${result.record.name}": ${result.record.meta.files} files, ${humanBytes(result.record.meta.bytes)}\n`)
      out(result.cid.toString())
    }
  })

program.command('ls')
  .description('list a build\'s files, or the builds in the data directory')
  .argument('[cid]', 'a build')
  .action(async (cidText: string | undefined) => {
    const r = await repo()
    if (cidText === undefined) {
      const builds = await r.builds()
      if (globals().json === true) return json(builds)
      for (const b of builds) out(`${b.cid}  ${b.kind.padEnd(8)} ${humanBytes(b.bytes).padStart(10)}  ${b.created}  ${b.name}`)
      return
    }
    const cid = parseCid(cidText)
    const record = await readRecord(r.store, cid)
    const rows = []
    for await (const e of walkTree(r.store, record.tree)) {
      if (e.path === '') continue
      const n = e.node
      rows.push({ path: e.path, type: n.type, mode: n.mode, size: n.type === 'file' ? n.size : 0, target: n.type === 'symlink' ? n.target : undefined, cid: e.cid.toString() })
    }
    if (globals().json === true) return json({ cid, name: record.name, kind: record.kind, created: record.created, meta: record.meta, files: rows })
    for (const row of rows) out(`${modeString(row.mode, row.type)} ${String(row.size).padStart(12)}  ${row.path}${row.target !== undefined ? ` -> ${row.target}` : ''}`)
  })

program.command('apply')
  .description('materialise a build into ROOT/versions/<cid>, verify it, switch ROOT/current atomically, keep two versions')
  .argument('<cid>', 'the build')
  .requiredOption('--root <dir>', 'where versions live')
  .action(async (cidText: string, opts: { root: string }) => {
    const r = await repo()
    const cid = parseCid(cidText)
    const progress = new Progress('apply')
    const result = await applyBuild(r.store, cid, resolve(opts.root), p => { if (p.phase === 'write') progress.update(p.done, p.total) })
    progress.done()
    if (globals().json === true) return json(result)
    if (result.alreadyCurrent) out(`${cid} is already current in ${opts.root}`)
    else out(`applied ${cid}: ${result.written} files written, ${result.linked} linked from the previous version, ${result.kept} already in place; current -> versions/${cid}`)
  })

program.command('verify')
  .description('check the current version under ROOT against its build, and repair it from the store')
  .requiredOption('--root <dir>', 'where versions live')
  .option('--no-repair', 'only report')
  .action(async (opts: { root: string, repair: boolean }) => {
    const r = await repo()
    const { cid, problems } = await verifyInstalled(r.store, resolve(opts.root), { repair: opts.repair })
    if (globals().json === true) json({ cid, problems })
    else {
      for (const p of problems) out(`${p.repaired ? 'repaired' : 'found'}: ${p.path}: ${p.problem}`)
      out(problems.length === 0 ? `${cid}: every file matches the build` : `${cid}: ${problems.length} problem(s)${opts.repair ? ', repaired where the store could' : ''}`)
    }
    const unrepaired = problems.filter(p => !p.repaired && p.problem !== 'not in the build')
    if (unrepaired.length > 0) process.exitCode = 3
  })

program.command('export')
  .description('write a CARv1 bundle of a build, or of only what a holder of --have builds lacks')
  .argument('<cid>', 'the build')
  .requiredOption('-o, --output <file>', 'the .car file to write')
  .option('--have <cid...>', 'builds the receiver already holds')
  .option('--no-delta', 'send changed files as blocks, not as deltas against the --have builds')
  .action(async (cidText: string, opts: { output: string, have?: string[], delta: boolean }) => {
    const r = await repo()
    const cid = parseCid(cidText)
    const have = (opts.have ?? []).map(parseCid)
    const progress = new Progress('export')
    const result = await exportBundle(r.store, cid, resolve(opts.output), { have, delta: opts.delta && have.length > 0, onProgress: (done: number, total?: number) => { progress.update(done, total) } })
    progress.done()
    const size = (await stat(resolve(opts.output))).size
    if (globals().json === true) return json({ cid, file: opts.output, ...result, size })
    out(`wrote ${opts.output}: ${result.blocks} blocks, ${humanBytes(size)}${result.deltaFiles > 0 ? `, ${result.deltaFiles} file(s) as deltas` : ''}`)
  })

program.command('import')
  .description('verify every block of a CAR bundle and add it to the store')
  .argument('<file>', 'the .car file')
  .option('--expect <cid>', 'fail unless the bundle\'s root is this build')
  .action(async (file: string, opts: { expect?: string }) => {
    const r = await repo()
    const progress = new Progress('import')
    const result = await importBundle(r.store, resolve(file), { ...(opts.expect !== undefined ? { expect: parseCid(opts.expect) } : {}), onProgress: (done: number, total?: number) => { progress.update(done, total) } })
    progress.done()
    // the blocks reach the disk before a build entry can point at them (docs/content.md)
    await r.store.flush()
    const complete: string[] = []
    for (const root of result.roots) {
      try {
        const record = await readRecord(r.store, root)
        if ((await buildCids(r.store, root)).missing.length === 0) {
          await r.noteBuild(root, record)
          complete.push(root.toString())
        }
      } catch {
        // a root that is not a build record (a delta): nothing to note
      }
    }
    if (globals().json === true) return json({ ...result, complete })
    out(`imported ${result.blocks} blocks${result.rebuilt > 0 ? `, rebuilt ${result.rebuilt} from deltas` : ''}`)
    for (const c of complete) out(c)
  })

program.command('diff')
  .description('files changed between two builds, and the blocks and bytes the update costs')
  .argument('<old>', 'the build a laptop has')
  .argument('<new>', 'the build it should get')
  .action(async (oldText: string, newText: string) => {
    const r = await repo()
    const plan = await planUpdate(r.store, parseCid(oldText), parseCid(newText))
    if (globals().json === true) return json(plan)
    for (const p of plan.filesChanged) out(`changed   ${p}`)
    for (const p of plan.filesAdded) out(`added     ${p}`)
    for (const p of plan.filesRemoved) out(`removed   ${p}`)
    for (const p of plan.filesTouched) out(`metadata  ${p}`)
    out(`${plan.filesChanged.length} changed, ${plan.filesAdded.length} added, ${plan.filesRemoved.length} removed, ${plan.filesTouched.length} with new mode or mtime only`)
    out(`the update costs ${plan.blocks} blocks, ${humanBytes(plan.rawBytes)} as blocks${plan.deltaBytes !== undefined ? `, ${humanBytes(plan.deltaBytes)} with the stored delta` : ' (export --have computes a smaller delta)'}`)
  })

addAgentCommand(program)
addMeshCommands(program)
addFetchCommand(program)
addEventsCommand(program)
addDeployCommands(program)
addReportCommand(program)
addLeaseCommands(program)
addRosterCommand(program)
addSimCommand(program)
addUsbCommand(program)
addBackupCommands(program)
addPasswdCommand(program)

async function main (): Promise<void> {
  try {
    await program.parseAsync(process.argv)
  } catch (err) {
    if (err instanceof ContentError || err instanceof TrustError) {
      process.stderr.write(`xo-mesh: ${err.message}\n`)
      process.exitCode = err instanceof IncompleteBuildError ? 4 : 1
    } else {
      const e = err as NodeJS.ErrnoException
      process.stderr.write(`xo-mesh: ${e.code !== undefined ? `${e.code}: ` : ''}${e.message}\n`)
      if (process.env.XO_MESH_DEBUG !== undefined) process.stderr.write(`${e.stack}\n`)
      process.exitCode = 2
    }
  }
}

await main()
