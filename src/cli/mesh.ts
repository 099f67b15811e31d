// `xo-mesh id`, `status` and `peers`: ask the agent running on the data
// directory, through its local API (src/agent/client.ts). With no agent there,
// one line on stderr and exit 5.
import type { Command } from 'commander'
import { resolve } from 'node:path'
import { defaultDataDir } from '../content/repo.ts'
import { callAgent } from '../agent/client.ts'
import type { IdReply, PeersReply, StatusReply } from '../agent/routes.ts'
import { reportAgentErrors } from './agent.ts'
import { humanBytes } from './progress.ts'
import type { BuildProgress } from '../net/blocks/index.ts'

/** Rate and sources of the builds in progress (GET /builds, as the dashboard reads them); empty without the block exchange. */
async function progressByCid (dataDir: string): Promise<Map<string, BuildProgress>> {
  try {
    const r = await callAgent(dataDir, '/builds') as { builds: BuildProgress[] }
    return new Map(r.builds.map(b => [b.cid, b]))
  } catch {
    return new Map()
  }
}

function out (text: string): void {
  process.stdout.write(text + '\n')
}

function ago (iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))
  if (s < 120) return `${s} s`
  if (s < 7200) return `${Math.round(s / 60)} min`
  return `${Math.round(s / 3600)} h`
}

/** A neighbour's election facts in a few words: "server pinned uplink ac 80% 12 GiB up 3 h". */
function facts (p: PeersReply['peers'][number]): string {
  const c = p.capability
  if (c === null) return '-'
  const serving = (p.election as { serving?: boolean } | undefined)?.serving === true
  const up = c.uptimeS < 120 ? `${c.uptimeS} s` : c.uptimeS < 7200 ? `${Math.round(c.uptimeS / 60)} min` : `${Math.round(c.uptimeS / 3600)} h`
  return [serving ? 'server' : '', c.pinned ? 'pinned' : '', c.upstream ? 'uplink' : '', c.ac ? 'ac' : 'battery', `${c.battery}%`, humanBytes(c.freeDiskMiB * 1024 * 1024), `up ${up}`].filter(w => w !== '').join(' ')
}

export function addMeshCommands (program: Command): void {
  const opts = (): { dataDir: string, json: boolean } => {
    const g = program.opts<{ data?: string, json?: boolean }>()
    return { dataDir: resolve(g.data ?? defaultDataDir()), json: g.json === true }
  }

  program.command('id')
    .description('print the running agent\'s peer id and listen addresses')
    .action(async () => {
      await reportAgentErrors(async () => {
        const { dataDir, json } = opts()
        const id = await callAgent(dataDir, '/id') as IdReply
        if (json) return out(JSON.stringify(id, null, 2))
        out(id.peerId)
        for (const a of id.addrs) out(a)
      })
    })

  program.command('status')
    .description('role, elected server, neighbours and builds of the running agent')
    .action(async () => {
      await reportAgentErrors(async () => {
        const { dataDir, json } = opts()
        const s = await callAgent(dataDir, '/status') as StatusReply
        if (json) return out(JSON.stringify(s, null, 2))
        out(`peer id  ${s.peerId}`)
        out(`role     ${s.role}${s.role === 'peer' && s.server === null ? ' (no school server elected)' : ''}`)
        out(`server   ${s.server ?? 'none'}`)
        out(`term     ${s.term}`)
        out(`peers    ${s.peers.length}`)
        for (const p of s.peers) out(`  ${p.peerId}  ${p.addrs[0] ?? ''}`)
        out(`builds   ${s.builds.length}`)
        const progress = s.builds.some(b => !b.complete) ? await progressByCid(dataDir) : new Map<string, BuildProgress>()
        for (const b of s.builds) {
          const p = progress.get(b.cid)
          const state = b.complete ? 'complete' : `${humanBytes(b.have_bytes)} of ${humanBytes(b.bytes)}${p !== undefined ? `, ${humanBytes(p.rate)}/s from ${p.sources.length} peer(s)` : ''}`
          out(`  ${b.cid}  ${b.name}  ${humanBytes(b.bytes)}  ${state}`)
        }
      })
    })

  program.command('peers')
    .description('the running agent\'s neighbours: address, how found, since when, bytes sent and received, election facts')
    .action(async () => {
      await reportAgentErrors(async () => {
        const { dataDir, json } = opts()
        const r = await callAgent(dataDir, '/peers') as PeersReply
        if (json) return out(JSON.stringify(r, null, 2))
        if (r.peers.length === 0) return out('no peers connected')
        out(['PEER ID'.padEnd(52), 'VIA'.padEnd(7), 'SINCE'.padStart(7), 'RTT'.padStart(7), 'SENT'.padStart(10), 'RECEIVED'.padStart(10), ' ' + 'ELECTION'.padEnd(36), 'ADDRESS'].join(' '))
        for (const p of r.peers) {
          out([
            p.peerId.padEnd(52),
            p.via.padEnd(7),
            ago(p.connected_since).padStart(7),
            (p.rtt_ms !== null ? `${Math.round(p.rtt_ms)} ms` : '-').padStart(7),
            humanBytes(p.bytes_sent).padStart(10),
            humanBytes(p.bytes_received).padStart(10),
            ' ' + facts(p).padEnd(36),
            p.connections[0]?.remoteAddr ?? p.addrs[0] ?? ''
          ].join(' '))
        }
      })
    })
}
