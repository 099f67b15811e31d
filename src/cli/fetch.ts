// `xo-mesh fetch <cid> [--wait]`: asks the running agent to fetch a build
// from its peers (POST /api/v1/fetch). With --wait, follows its progress
// (GET /api/v1/builds/<cid>, a bar on a terminal) and exits when it is
// complete: 0 when complete, 1 when the agent gives up on it (or --timeout
// passes), 5 with no agent.
import type { Command } from 'commander'
import { resolve } from 'node:path'
import { defaultDataDir } from '../content/repo.ts'
import { parseCid } from '../content/cid.ts'
import { callAgent } from '../agent/client.ts'
import { AgentError } from '../agent/errors.ts'
import type { BuildProgress } from '../net/blocks/index.ts'
import { reportAgentErrors } from './agent.ts'
import { Progress, humanBytes } from './progress.ts'

const POLL_MS = 250

function out (text: string): void {
  process.stdout.write(text + '\n')
}

export function addFetchCommand (program: Command): void {
  program.command('fetch')
    .description('ask the running agent to fetch a build from its peers; with --wait, show progress and exit when complete')
    .argument('<cid>', 'the build')
    .option('--wait', 'follow the fetch until the build is complete')
    .option('--priority <n>', 'higher first when several builds are fetched (default 0)')
    .option('--timeout <seconds>', 'with --wait: give up waiting after this long (the agent goes on fetching)')
    .action(async (cidText: string, opts: { wait?: boolean, priority?: string, timeout?: string }) => {
      await reportAgentErrors(async () => {
        const g = program.opts<{ data?: string, json?: boolean }>()
        const dataDir = resolve(g.data ?? defaultDataDir())
        const cid = parseCid(cidText).toString()
        const priority = opts.priority !== undefined ? Number(opts.priority) : 0
        if (!Number.isSafeInteger(priority)) throw new AgentError('ERR_USAGE', `--priority must be an integer, got ${JSON.stringify(opts.priority)}`)
        const timeoutS = opts.timeout !== undefined ? Number(opts.timeout) : undefined
        if (timeoutS !== undefined && !(timeoutS > 0)) throw new AgentError('ERR_USAGE', `--timeout must be a positive number of seconds, got ${JSON.stringify(opts.timeout)}`)
        let p = await callAgent(dataDir, '/fetch', { body: { cid, priority } }) as BuildProgress
        if (opts.wait !== true) {
          if (g.json === true) return out(JSON.stringify(p, null, 2))
          return out(p.complete ? `${cid} is complete here` : `fetching ${cid} (xo-mesh fetch ${cid} --wait follows it; xo-mesh status shows it)`)
        }
        const bar = new Progress('fetch')
        const deadline = timeoutS !== undefined ? Date.now() + timeoutS * 1000 : Infinity
        while (!p.complete && p.error === null) {
          if (Date.now() > deadline) {
            bar.done()
            throw new AgentError('ERR_TIMEOUT', `${cid}: ${humanBytes(p.have_bytes)} of ${humanBytes(p.bytes)} after ${timeoutS} s; the agent goes on fetching`)
          }
          bar.update(p.have_bytes, p.bytes > 0 ? p.bytes : undefined)
          await new Promise(resolve => setTimeout(resolve, POLL_MS))
          p = await callAgent(dataDir, `/builds/${cid}`) as BuildProgress
        }
        if (p.complete) bar.update(p.bytes, p.bytes, true)
        bar.done()
        if (g.json === true) out(JSON.stringify(p, null, 2))
        if (p.error !== null) throw new AgentError('ERR_FETCH', `${cid}: ${p.error}`)
        if (g.json !== true) {
          const secs = p.started !== null && p.completed !== null ? (Date.parse(p.completed) - Date.parse(p.started)) / 1000 : undefined
          const from = p.sources.length > 0 ? `, from ${p.sources.length} peer(s)` : ''
          out(`${cid} complete: ${humanBytes(p.bytes)}${secs !== undefined && secs > 0 ? ` in ${secs.toFixed(1)} s` : ''}${from}`)
        }
      })
    })
}
