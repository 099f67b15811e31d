// `xo-mesh report [--school NAME]`: what the mothership knows, per school:
// laptops seen, builds installed, last contact, backlog (docs/upstream.md).
// Reads the mothership store of the data directory directly (SQLite in WAL
// mode: a reader does not block the agent writing it) through the same
// functions the overview's API serves (src/store/overview.ts). Exit 1 when
// the data directory holds no mothership store.
import type { Command } from 'commander'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { defaultDataDir } from '../content/repo.ts'

function out (text: string): void {
  process.stdout.write(text + '\n')
}

function when (ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString().slice(0, 16).replace('T', ' ')
}

function short (cid: string): string {
  return cid.length > 16 ? `${cid.slice(0, 8)}…${cid.slice(-6)}` : cid
}

export function addReportCommand (program: Command): void {
  program.command('report')
    .description('on the mothership: per school, laptops seen, builds installed and last contact')
    .option('--school <name>', 'list the laptops of one school instead')
    .action(async (flags: { school?: string }) => {
      const g = program.opts<{ data?: string, json?: boolean }>()
      const dataDir = resolve(g.data ?? defaultDataDir())
      const { MOTHERSHIP_FILE } = await import('../store/mothership.ts')
      const { Overview } = await import('../store/overview.ts')
      if (!existsSync(join(dataDir, MOTHERSHIP_FILE))) {
        process.stderr.write(`xo-mesh: no mothership store in ${dataDir} (${MOTHERSHIP_FILE}: the mothership agent keeps it)\n`)
        process.exitCode = 1
        return
      }
      const store = Overview.open(dataDir)
      try {
        if (flags.school !== undefined) {
          const rows = store.laptops(flags.school)
          if (g.json === true) return out(JSON.stringify({ school: flags.school, laptops: rows }, null, 2))
          if (rows.length === 0) return out(`no laptops seen in ${flags.school}`)
          out(['LAPTOP'.padEnd(52), 'BUILD'.padEnd(24), 'LAST CONTACT'.padEnd(16), 'ITEMS'.padStart(7)].join(' '))
          for (const r of rows) out([r.origin.padEnd(52), (r.build_name ?? (r.build !== null ? short(r.build) : '-')).padEnd(24), when(r.last_contact).padEnd(16), String(r.items).padStart(7)].join(' '))
          return
        }
        const { schools, items: counts } = store.overview()
        if (g.json === true) return out(JSON.stringify({ schools, items: counts }, null, 2))
        if (schools.length === 0) return out('no laptops seen yet')
        out(['SCHOOL'.padEnd(24), 'LAPTOPS'.padStart(7), 'LAST CONTACT'.padEnd(16), 'BUILDS INSTALLED'].join('  '))
        for (const s of schools) {
          const builds = s.builds.map(b => `${b.name ?? short(b.build)} ×${b.laptops}`)
          if (s.unreported > 0) builds.push(`none reported ×${s.unreported}`)
          if (s.failed_installs > 0) builds.push(`(${s.failed_installs} failed installs)`)
          if (s.backlog.missing > 0 || (s.backlog.reported ?? 0) > 0) builds.push(`(backlog: ${s.backlog.missing} missing${s.backlog.reported !== null ? `, ${s.backlog.reported} in outboxes` : ''})`)
          out([s.school.padEnd(24), String(s.laptops).padStart(7), when(s.last_contact).padEnd(16), builds.join(', ')].join('  '))
        }
        out(`${counts.items} items from ${counts.origins} laptops: ${counts.byKind.statistics} statistics samples, ${counts.byKind['install-report']} install reports, ${counts.byKind['backup-chunk']} backup chunks${counts.conflicts > 0 ? `; ${counts.conflicts} conflicts (one identity on two laptops?)` : ''}`)
      } finally {
        store.close()
      }
    })
}
