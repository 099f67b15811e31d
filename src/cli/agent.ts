// `xo-mesh agent`: the daemon in the foreground (docs/agent.md). Loads
// nothing of libp2p until it runs, so the other commands stay quick. Also
// used by agentd.ts, the entry systemd runs without tsx.
import type { Command } from 'commander'
import { resolve } from 'node:path'
import { defaultDataDir } from '../content/repo.ts'
import { AgentError } from '../agent/errors.ts'

interface AgentFlags { listen?: string[], peer?: string[], mdns: boolean, api?: string, logLevel?: string, logFile?: string, role?: string }

/** Prints an AgentError as one line and sets its exit code; rethrows anything else. */
export async function reportAgentErrors (fn: () => Promise<void>): Promise<void> {
  try {
    await fn()
  } catch (err) {
    if (!(err instanceof AgentError)) throw err
    process.stderr.write(`xo-mesh: ${err.message}\n`)
    process.exitCode = err.exitCode
  }
}

export function addAgentCommand (program: Command): void {
  program.command('agent')
    .description('run the agent (the mesh daemon) in the foreground until SIGTERM or SIGINT')
    .option('--listen <multiaddr...>', 'listen on these multiaddrs (default /ip4/0.0.0.0/tcp/0)')
    .option('--peer <multiaddr...>', 'static peers: dialled at start and redialled with backoff')
    .option('--no-mdns', 'neither announce nor look for peers on the LAN')
    .option('--api <host:port>', 'the local HTTP API (default 127.0.0.1:7337; port 0: any free port)')
    .option('--log-level <level>', 'debug, info, warn or error (default info)')
    .option('--log-file <file>', 'JSON-lines log file (relative: in the data directory) instead of stderr')
    .option('--role <role>', 'laptop, staging or mothership (docs/upstream.md; default: the config\'s role, laptop)')
    .action(async (flags: AgentFlags) => {
      await reportAgentErrors(async () => {
        const { runAgent } = await import('../agent/run.ts')
        const data = program.opts<{ data?: string }>().data
        const code = await runAgent({
          dataDir: resolve(data ?? defaultDataDir()),
          overrides: {
            ...(flags.listen !== undefined ? { listen: flags.listen } : {}),
            ...(flags.peer !== undefined ? { peers: flags.peer } : {}),
            mdns: flags.mdns,
            ...(flags.api !== undefined ? { api: flags.api } : {}),
            ...(flags.logLevel !== undefined ? { logLevel: flags.logLevel } : {}),
            ...(flags.logFile !== undefined ? { logFile: flags.logFile } : {}),
            ...(flags.role !== undefined ? { role: flags.role } : {})
          }
        })
        process.exit(code)
      })
    })
}
