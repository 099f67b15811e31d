// `xo-mesh events [--follow]`: what happened on the running agent (peers
// coming and going, builds asked for, fetched, added), from the same feed the
// dashboard reads: GET /api/v1/events/recent, then with --follow the
// server-sent events of GET /api/v1/events until Ctrl-C. --json: one event per
// line, as the API gives it.
import type { Command } from 'commander'
import { resolve } from 'node:path'
import { defaultDataDir } from '../content/repo.ts'
import { callAgent, followAgent } from '../agent/client.ts'
import type { RecentEvent, RecentReply } from '../agent/live.ts'
import { reportAgentErrors } from './agent.ts'

/** "10:15:53  peer:connect      peerId=12D3… direction=outbound" */
function line (e: RecentEvent): string {
  const d = e.detail !== null && typeof e.detail === 'object' ? e.detail as Record<string, unknown> : { detail: e.detail }
  const facts = Object.entries(d).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')
  const t = new Date(e.time)
  const clock = Number.isNaN(t.getTime()) ? e.time : t.toTimeString().slice(0, 8)
  return `${clock}  ${e.name.padEnd(16)} ${facts}`
}

export function addEventsCommand (program: Command): void {
  program.command('events')
    .description('the running agent\'s recent events; with --follow, then each one as it happens (Ctrl-C ends)')
    .option('--follow', 'keep following the agent\'s events')
    .action(async (opts: { follow?: boolean }) => {
      await reportAgentErrors(async () => {
        const g = program.opts<{ data?: string, json?: boolean }>()
        const dataDir = resolve(g.data ?? defaultDataDir())
        let last = 0
        const show = (e: RecentEvent): void => {
          if (e.seq <= last) return
          last = e.seq
          process.stdout.write((g.json === true ? JSON.stringify(e) : line(e)) + '\n')
        }
        const recent = await callAgent(dataDir, '/events/recent') as RecentReply
        for (const e of recent.events) show(e)
        if (opts.follow !== true) return
        const stop = new AbortController()
        const onSignal = (): void => { stop.abort() }
        process.once('SIGINT', onSignal)
        process.once('SIGTERM', onSignal)
        try {
          await followAgent(dataDir, '/events', ({ event, data }) => {
            if (event === 'mesh') show(data as RecentEvent)
            // a reconnected stream starts with the recent ones: those not shown yet
            else if (event === 'recent') for (const e of (data as RecentReply).events) show(e)
          }, stop.signal)
        } finally {
          process.off('SIGINT', onSignal)
          process.off('SIGTERM', onSignal)
        }
      })
    })
}
