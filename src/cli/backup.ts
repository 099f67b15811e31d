// Journal backups on the command line (docs/cli.md, docs/upstream.md "Backups"):
//
//   xo-mesh backup [--now] [--full]          status, or a backup now (through the agent, else in-process into the outbox)
//   xo-mesh restore [--from-date D] [--from server|DIR] [--to DIR] [--list]
//   xo-mesh owner export [-o FILE] | import FILE|- [--force] | show
//
// `restore --from server` goes through the agent (it reaches the school
// server over the mesh); `--from DIR` reads a server's backups.db in DIR (a
// copy of its data directory on a stick) without an agent.
import type { Command } from 'commander'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { defaultDataDir } from '../content/repo.ts'
import { callAgent } from '../agent/client.ts'
import { AgentError, NoAgentError } from '../agent/errors.ts'
import { encodeOwnerKey, importOwnerKey, loadOrCreateOwnerKey, loadOwnerKey } from '../agent/owner.ts'
import { reportAgentErrors } from './agent.ts'
import { humanBytes } from './progress.ts'

function out (text: string): void {
  process.stdout.write(text + '\n')
}

/** A long operation through the agent: a restore of a large journal takes minutes on an XO. */
const LONG_MS = 3_600_000

interface Globals { data?: string, json?: boolean }

function when (ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ')
}

function parseDate (text: string): number {
  const ms = Date.parse(text)
  if (Number.isNaN(ms)) throw new AgentError('ERR_USAGE', `not a date: ${JSON.stringify(text)} (use ISO 8601, e.g. 2026-11-26 or 2026-11-26T12:00:00Z)`)
  // a bare day means the whole of that day
  return /^\d{4}-\d{2}-\d{2}$/.test(text.trim()) ? ms + 86_400_000 - 1 : ms
}

interface BackupSummary { files: number, bytes: number, blobs: number, newBlobs: number, newBytes: number, packs: number, snapshot: string, created: number }

function printBackup (r: BackupSummary): void {
  out(`backed up ${r.files} files, ${humanBytes(r.bytes)}: ${r.newBlobs} of ${r.blobs} blocks new, ${humanBytes(r.newBytes)} in ${r.packs} outbox item(s); snapshot ${r.snapshot.slice(0, 16)}…`)
}

export function addBackupCommands (program: Command): void {
  const g = (): Globals => program.opts<Globals>()
  const dataDir = (): string => resolve(g().data ?? defaultDataDir())

  program.command('backup')
    .description('the journal\'s backups: with --now, back it up (encrypted to the owner\'s key) into the outbox')
    .option('--now', 'back up now')
    .option('--full', 'with --now: send every block again, not only what changed (a new school server)')
    .action(async (opts: { now?: boolean, full?: boolean }) => {
      await reportAgentErrors(async () => {
        const data = dataDir()
        if (opts.now !== true) {
          const s = await callAgent(data, '/backup') as { journal: string, owner: string, blobs_sent: number, backups: BackupSummary[], error: string | null }
          if (g().json === true) return out(JSON.stringify(s, null, 2))
          out(`journal ${s.journal}; owner key ${s.owner.slice(0, 16)}…; ${s.blobs_sent} blocks sent so far`)
          for (const b of s.backups) out(`${when(b.created)}  ${b.files} files, ${humanBytes(b.bytes)}, ${humanBytes(b.newBytes)} new  ${b.snapshot.slice(0, 16)}…`)
          if (s.backups.length === 0) out('no backup made yet (xo-mesh backup --now)')
          if (s.error !== null) out(`the last backup failed: ${s.error}`)
          return
        }
        let result: BackupSummary
        try {
          result = await callAgent(data, '/backup', { body: { full: opts.full === true }, timeoutMs: LONG_MS }) as BackupSummary
        } catch (err) {
          if (!(err instanceof NoAgentError)) throw err
          result = await backupWithoutAgent(data, opts.full === true)
        }
        if (g().json === true) return out(JSON.stringify(result, null, 2))
        printBackup(result)
      })
    })

  program.command('restore')
    .description('restore the journal from a backup, with only the owner\'s key (xo-mesh owner import) on this laptop')
    .option('--from <source>', '"server": the school server, through the agent; or a directory holding a server\'s backups.db', 'server')
    .option('--from-date <date>', 'the newest backup made at or before this date (ISO 8601; a bare day means its end)')
    .option('--to <dir>', 'restore here instead of the journal (config key journal)')
    .option('--list', 'list the backups instead')
    .action(async (opts: { from: string, fromDate?: string, to?: string, list?: boolean }) => {
      await reportAgentErrors(async () => {
        const data = dataDir()
        const before = opts.fromDate !== undefined ? parseDate(opts.fromDate) : undefined
        if (opts.from === 'server') {
          if (opts.list === true) {
            const r = await callAgent(data, '/backup/snapshots', { timeoutMs: 120_000 }) as { server: string, snapshots: Array<{ id: string, created: number, files: number, bytes: number }> }
            if (g().json === true) return out(JSON.stringify(r, null, 2))
            out(`backups at ${r.server}:`)
            for (const s of r.snapshots) out(`${when(s.created)}  ${s.files} files, ${humanBytes(s.bytes)}  ${s.id.slice(0, 16)}…`)
            return
          }
          const r = await callAgent(data, '/backup/restore', { body: { ...(opts.to !== undefined ? { to: resolve(opts.to) } : {}), ...(before !== undefined ? { before } : {}) }, timeoutMs: LONG_MS }) as { snapshot: { created: number }, files: number, bytes: number, target: string, movedAside?: string }
          if (g().json === true) return out(JSON.stringify(r, null, 2))
          out(`restored the backup of ${when(r.snapshot.created)}: ${r.files} files, ${humanBytes(r.bytes)} into ${r.target}${r.movedAside !== undefined ? ` (what was there is now ${r.movedAside})` : ''}`)
          return
        }
        await restoreFromDirectory(data, resolve(opts.from), { before, to: opts.to, list: opts.list === true, json: g().json === true })
      })
    })

  const owner = program.command('owner').description('the laptop owner\'s key, to which backups are encrypted')
  owner.command('export')
    .description('print the owner key (secret: whoever holds it can read the backups); keep it to restore onto another laptop')
    .option('-o, --output <file>', 'write it to a file (mode 0600) instead')
    .action(async (opts: { output?: string }) => {
      await reportAgentErrors(async () => {
        const key = await loadOrCreateOwnerKey(dataDir())
        const text = encodeOwnerKey(key)
        if (opts.output !== undefined) {
          await writeFile(resolve(opts.output), text + '\n', { mode: 0o600, flag: 'wx' })
          process.stderr.write(`wrote the owner key to ${opts.output}\n`)
        } else out(text)
      })
    })
  owner.command('import')
    .description('install an owner key (from owner export) on this laptop, to restore its backups')
    .argument('<file>', 'the file owner export wrote, or - for stdin')
    .option('--force', 'replace a different owner key (its backups become unreadable here)')
    .action(async (file: string, opts: { force?: boolean }) => {
      await reportAgentErrors(async () => {
        const text = file === '-' ? await readStdin() : await readFile(resolve(file), 'utf8')
        const { key, replaced } = await importOwnerKey(dataDir(), text, { force: opts.force === true })
        out(`owner key ${Buffer.from(key.publicKey).toString('hex').slice(0, 16)}… installed${replaced ? ' (replacing the previous one)' : ''}`)
      })
    })
  owner.command('show')
    .description('print the owner\'s public key (hex)')
    .action(async () => {
      await reportAgentErrors(async () => {
        const key = await loadOwnerKey(dataDir())
        if (key === undefined) throw new AgentError('ERR_NO_OWNER_KEY', `no owner key in ${dataDir()} (the agent makes one; or xo-mesh owner import)`)
        out(Buffer.from(key.publicKey).toString('hex'))
      })
    })
}

async function readStdin (): Promise<string> {
  const parts: Buffer[] = []
  for await (const c of process.stdin) parts.push(c as Buffer)
  return Buffer.concat(parts).toString('utf8')
}

/** `backup --now` with no agent running: straight into the data directory's outbox (the agent offers it when it starts). */
async function backupWithoutAgent (dataDir: string, full: boolean): Promise<BackupSummary> {
  const [{ loadConfig }, { loadIdentity }, { silentLogger }, { Outbox }, { backupJournal, expandHome }, { backupKeys }, { peerIdFromPrivateKey }] = await Promise.all([
    import('../agent/config.ts'), import('../agent/identity.ts'), import('../net/logger.ts'), import('../store/outbox.ts'), import('../agent/backup.ts'), import('../content/backup/crypto.ts'), import('@libp2p/peer-id')
  ])
  const config = await loadConfig(dataDir)
  const journal = expandHome(config.journal)
  if (!existsSync(journal)) throw new AgentError('ERR_NO_JOURNAL', `there is no journal at ${journal} (config key journal)`)
  const origin = peerIdFromPrivateKey((await loadIdentity(dataDir, silentLogger)).key).toString()
  const keys = backupKeys(await loadOrCreateOwnerKey(dataDir))
  const outbox = Outbox.open(dataDir, { maxBytes: config.relay.max_bytes })
  try {
    return await backupJournal(dataDir, journal, keys, config.backup.exclude, body => { outbox.enqueue(origin, 'backup-chunk', body, Date.now()) }, full)
  } finally {
    outbox.close()
  }
}

async function restoreFromDirectory (dataDir: string, dir: string, opts: { before?: number, to?: string, list: boolean, json: boolean }): Promise<void> {
  const [{ KeptBackups, BACKUPS_FILE }, { backupKeys }, { listSnapshots, chooseSnapshot, restoreSnapshot }, { loadConfig }, { expandHome }] = await Promise.all([
    import('../store/backups.ts'), import('../content/backup/crypto.ts'), import('../content/backup/restore.ts'), import('../agent/config.ts'), import('../agent/backup.ts')
  ])
  if (!existsSync(join(dir, BACKUPS_FILE))) throw new AgentError('ERR_NO_BACKUPS', `${dir} holds no ${BACKUPS_FILE} (a school server's data directory keeps one)`)
  const key = await loadOwnerKey(dataDir)
  if (key === undefined) throw new AgentError('ERR_NO_OWNER_KEY', `no owner key in ${dataDir}: import it first (xo-mesh owner import FILE)`)
  const keys = backupKeys(key)
  const kept = KeptBackups.open(dir)
  try {
    const source = kept.source(keys.bucket)
    const { snapshots } = await listSnapshots(source, keys)
    if (opts.list) {
      if (opts.json) return out(JSON.stringify(snapshots.map(s => ({ id: s.id, ...s.snapshot })), null, 2))
      for (const s of snapshots) out(`${when(s.snapshot.created)}  ${s.snapshot.files} files, ${humanBytes(s.snapshot.bytes)}  ${s.id.slice(0, 16)}…`)
      return
    }
    const entry = chooseSnapshot(snapshots, opts.before)
    if (entry === undefined) throw new AgentError('ERR_NO_BACKUP', snapshots.length === 0 ? `${dir} holds no backup of this owner` : 'no backup was made at or before that date')
    const target = opts.to !== undefined ? resolve(opts.to) : expandHome((await loadConfig(dataDir)).journal)
    const r = await restoreSnapshot(source, keys, entry, target)
    if (opts.json) return out(JSON.stringify({ snapshot: { id: entry.id, ...entry.snapshot }, ...r }, null, 2))
    out(`restored the backup of ${when(entry.snapshot.created)}: ${r.files} files, ${humanBytes(r.bytes)} into ${r.target}${r.movedAside !== undefined ? ` (what was there is now ${r.movedAside})` : ''}`)
  } finally {
    kept.close()
  }
}
