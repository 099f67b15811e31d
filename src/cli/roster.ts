// `xo-mesh roster`: the school's roster as the running agent knows it (on the
// school server its registry, on a laptop what its server last sent): who is
// registered and who is in reach now (docs/upstream.md, "Registration").
import type { Command } from 'commander'
import { resolve } from 'node:path'
import { defaultDataDir } from '../content/repo.ts'
import { callAgent } from '../agent/client.ts'

interface Roster { role: string, server: string | null, updated: string | null, laptops: Array<{ peer_id: string, nickname: string, serial: string, in_reach: boolean }> }

export function addRosterCommand (program: Command): void {
  program.command('roster')
    .description('the school\'s registered laptops, and which are in reach now')
    .action(async () => {
      const g = program.opts<{ data?: string, json?: boolean }>()
      const r = await callAgent(resolve(g.data ?? defaultDataDir()), '/roster') as Roster
      if (g.json === true) { process.stdout.write(JSON.stringify(r, null, 2) + '\n'); return }
      process.stdout.write(`${r.laptops.length} laptop(s) registered${r.role === 'server' ? ' here (school server)' : r.server !== null ? ` with ${r.server}` : ''}${r.updated !== null ? `, as of ${r.updated}` : ''}\n`)
      for (const l of r.laptops) process.stdout.write(`${l.in_reach ? '●' : '○'} ${l.nickname.padEnd(16)} ${l.serial.padEnd(14)} ${l.peer_id}\n`)
    })
}
