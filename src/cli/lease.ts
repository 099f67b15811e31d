// `xo-mesh lease …`: activation leases (docs/deployment.md, "Leases").
//
//   issue   the deployment team signs leases for serials (DEPLOYMENT/leases/),
//           and writes them as a bundle for the school server's stick
//   load    on the school server: take a bundle's leases (through the agent)
//   show    what a bundle or lease file holds, or the leases this data
//           directory holds, each checked against the trusted root
//   status  this laptop's lease: valid until, from whom
//
// XO_MESH_NOW replaces the wall clock for `issue` (rehearsals, tests).
import type { Command } from 'commander'
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { defaultDataDir } from '../content/repo.ts'
import { InvalidInputError } from '../content/errors.ts'
import {
  TrustError, issueLeases, parsePublicKeyHex, issuedLeases, loadLeaseStore, loadState, openDeployment, readLeaseFile, readTrustedLease,
  verifyLease, writeLeaseBundle, type Lease
} from '../trust/index.ts'
import { callAgent } from '../agent/client.ts'
import { humanBytes } from './progress.ts'
import { parseExpiry, wallClock } from './deploy.ts'

interface Globals { data?: string, json?: boolean }

function out (text: string): void {
  process.stdout.write(text + '\n')
}

function leaseJson (l: Lease): Record<string, unknown> {
  return { serial: l.doc.serial, school: l.doc.school ?? null, issued: new Date(l.doc.issued).toISOString(), expires: new Date(l.doc.expires).toISOString(), signers: l.signers }
}

async function serialsOf (opts: { serial?: string[], serials?: string }): Promise<string[]> {
  const list = [...(opts.serial ?? [])]
  if (opts.serials !== undefined) {
    const text = await readFile(resolve(opts.serials), 'utf8')
    for (const line of text.split('\n')) {
      const s = line.replace(/#.*/, '').trim()
      if (s !== '') list.push(s)
    }
  }
  if (list.length === 0) throw new InvalidInputError('lease issue needs --serial S (repeatable) or --serials FILE (one serial a line)')
  return list
}

export function addLeaseCommands (program: Command): void {
  const globals = (): Globals => program.opts<Globals>()
  const json = (v: unknown): void => out(JSON.stringify(v, null, 2))
  const dataDir = (): string => resolve(globals().data ?? defaultDataDir())
  const cmd = program.command('lease').description('activation leases per serial number: issue, load, show, status (docs/deployment.md)')

  cmd.command('issue')
    .description('sign a lease per serial with the deployment\'s lease key; write a bundle for the school server')
    .requiredOption('--out <dir>', 'the deployment directory')
    .option('--serial <serial...>', 'serial numbers')
    .option('--serials <file>', 'a file of serial numbers, one a line (# comments)')
    .option('--expires <duration>', 'how long the leases last: 30d, 12h, or an ISO date', '30d')
    .option('--school <name>', 'the school whose server holds them (informational)')
    .option('-o, --output <file>', 'also write them (and every root version) as a bundle: a .car file')
    .action(async (opts: { out: string, serial?: string[], serials?: string, expires: string, school?: string, output?: string }) => {
      const now = wallClock()
      const serials = await serialsOf(opts)
      const d = await openDeployment(resolve(opts.out))
      const leases = await issueLeases(d, serials, { now, expiresMs: parseExpiry(opts.expires, now), ...(opts.school !== undefined ? { school: opts.school } : {}) })
      let bytes: number | undefined
      if (opts.output !== undefined) bytes = await writeLeaseBundle(resolve(opts.output), { leases: leases.map(l => l.bytes), roots: d.roots.map(r => r.bytes) })
      if (globals().json === true) return json({ leases: leases.map(leaseJson), bundle: opts.output ?? null, bytes: bytes ?? null })
      const until = new Date(leases[0]!.doc.expires).toISOString()
      out(`issued ${leases.length} lease(s) until ${until}, kept in ${opts.out}/leases/`)
      if (opts.output !== undefined) out(`wrote ${opts.output}: ${leases.length} lease(s), root versions 1-${d.roots.length}, ${humanBytes(bytes!)}`)
    })

  cmd.command('load')
    .description('on the school server: verify a bundle\'s leases and hold them for the school\'s laptops (the agent must run)')
    .argument('<file>', 'a lease bundle (.car) or one lease (.cbor)')
    .action(async (file: string) => {
      const r = await callAgent(dataDir(), '/leases', { body: { path: resolve(file) }, timeoutMs: 60_000 }) as { accepted: Array<{ serial: string, expires: string }>, refused: Array<{ serial: string | null, code: string, reason: string }> }
      if (globals().json === true) return json(r)
      out(`held ${r.accepted.length} lease(s); ${r.refused.length} refused`)
      for (const x of r.refused) process.stderr.write(`xo-mesh: refused lease ${x.serial ?? '(unreadable)'}: ${x.code}: ${x.reason}\n`)
      if (r.accepted.length === 0 && r.refused.length > 0) process.exitCode = 3
    })

  cmd.command('show')
    .description('the leases of a bundle or lease file, a deployment directory (--out), or this data directory; each checked against the trusted root')
    .argument('[file]', 'a lease bundle (.car) or one lease (.cbor)')
    .option('--out <dir>', 'a deployment directory: the leases it issued')
    .action(async (file: string | undefined, opts: { out?: string }) => {
      let rows: Array<Record<string, unknown>>
      if (opts.out !== undefined) {
        const d = await openDeployment(resolve(opts.out))
        const root = d.roots[d.roots.length - 1]!
        rows = (await issuedLeases(d)).map(l => {
          const v = verifyLease(root, l.bytes, [], undefined, 0, wallClock())
          return { ...leaseJson(l), verdict: 'lease' in v ? 'valid' : v.code }
        })
      } else {
        // the stored trust state, else the root key the agent's config provisions
        const { loadConfig } = await import('../agent/config.ts')
        const keyText = (await loadConfig(dataDir()).catch(() => undefined))?.advisory.root_key ?? undefined
        const state = await loadState(dataDir(), keyText !== undefined ? parsePublicKeyHex(keyText) : undefined)
        const batch = file !== undefined ? await readLeaseFile(resolve(file)) : await loadLeaseStore(dataDir())
        if ('ok' in batch) {
          process.stderr.write(`xo-mesh: refused ${file}: ${batch.code}: ${batch.reason}\n`)
          process.exitCode = 3
          return
        }
        const clock = 'clock' in batch && typeof batch.clock === 'number' ? batch.clock : 0
        rows = batch.leases.map(b => {
          const l = readTrustedLease(b)
          const v = state === undefined ? undefined : verifyLease(state.root, b, batch.roots, undefined, Math.max(clock, state.clock), Date.now())
          return { ...(l !== undefined ? leaseJson(l) : { serial: null }), verdict: v === undefined ? 'unchecked (no trusted root here)' : 'lease' in v ? 'valid' : `${v.code}: ${v.reason}` }
        })
      }
      if (globals().json === true) return json({ leases: rows })
      if (rows.length === 0) out('no leases')
      for (const r of rows) out(`${String(r.serial).padEnd(16)} until ${String(r.expires ?? '?')}  ${r.school !== null && r.school !== undefined ? `${String(r.school)}  ` : ''}${String(r.verdict)}`)
    })

  cmd.command('status')
    .description('this laptop\'s lease: valid until, from whom (asks the running agent)')
    .action(async () => {
      const s = await callAgent(dataDir(), '/lease') as { serial: string | null, state: string, lease: { expires: string, issued: string } | null, from: string | null, server: string | null, hook: string | null, hook_runs: number, refused: Array<{ code: string, reason: string, from: string }> }
      if (globals().json === true) return json(s)
      if (s.serial === null) throw new TrustError('ERR_NO_SERIAL', 'this laptop has no serial number configured (advisory.serial): it keeps no lease')
      const until = s.lease === null ? '' : ` until ${s.lease.expires}`
      out(`serial ${s.serial}: ${s.state}${until}${s.from !== null ? ` (from ${s.from})` : ''}`)
      if (s.state === 'expired') out(`the lease has expired${s.hook !== null ? `; hook ${JSON.stringify(s.hook)} ran ${s.hook_runs} time(s)` : '; no hook configured'}`)
      for (const r of s.refused.slice(-3)) out(`refused from ${r.from}: ${r.code}: ${r.reason}`)
      if (s.state === 'expired' || s.state === 'none') process.exitCode = 4
    })
}
