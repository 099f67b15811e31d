// `xo-mesh agent`: the daemon in the foreground until SIGTERM or SIGINT, then
// a clean stop (libp2p, components, API, DATA/api) and exit 0. A second
// signal, or a stop that takes longer than SHUTDOWN_TIMEOUT_S, exits 1.
import { mkdir } from 'node:fs/promises'
import { resolve } from 'node:path'
import { isConnectionFault } from '../net/faults.ts'
import { FileSink, createLogger, stderrSink, type LogSink } from '../net/logger.ts'
import { applyOverrides, loadConfig, type ConfigOverrides } from './config.ts'
import { SHUTDOWN_TIMEOUT_S } from './constants.ts'

export interface RunOptions {
  dataDir: string
  overrides: ConfigOverrides
  /** Called once the agent is up (tests, the CLI). */
  onStarted?: (info: { peerId: string, apiUrl: string }) => void
}

/** Runs the agent until a signal; resolves with the exit code once it has stopped. Startup errors are thrown. */
export async function runAgent (options: RunOptions): Promise<number> {
  const dataDir = resolve(options.dataDir)
  await mkdir(dataDir, { recursive: true, mode: 0o755 })
  const config = applyOverrides(await loadConfig(dataDir), options.overrides)
  const sink: LogSink = config.log.file !== null ? new FileSink(resolve(dataDir, config.log.file), config.log.max_bytes) : stderrSink
  const log = createLogger({ level: config.log.level, sink })

  const { Agent } = await import('./agent.ts')
  let agent: Awaited<ReturnType<typeof Agent.start>>
  // a signal during startup (DATA/api may already exist) stops the agent once it is up, cleanly
  let early: NodeJS.Signals | undefined
  const onEarly = (signal: NodeJS.Signals): void => {
    // a second one: the user means it (a start stuck on a dial)
    if (early !== undefined) process.exit(1)
    early = signal
  }
  process.on('SIGTERM', onEarly)
  process.on('SIGINT', onEarly)
  try {
    agent = await Agent.start({ dataDir, config, logger: log })
  } catch (err) {
    process.off('SIGTERM', onEarly)
    process.off('SIGINT', onEarly)
    // on stderr the CLI's one line says it; a log file should say it too
    if (sink !== stderrSink) log.error('agent failed to start', { error: err })
    sink.close()
    throw err
  }
  options.onStarted?.({ peerId: agent.node.peerId.toString(), apiUrl: agent.apiUrl })

  return await new Promise<number>(done => {
    let stopping = false
    // A component asked for a restart (a cloned identity was retired): stop, start again on the same data.
    let restarting: Promise<void> | undefined
    const watchRestart = (): void => {
      agent.components.events.on('agent:restart', ({ reason }) => {
        if (stopping || restarting !== undefined) return
        log.warn('restarting the agent', { reason })
        restarting = (async () => {
          await agent.stop()
          try {
            agent = await Agent.start({ dataDir, config, logger: log })
          } catch (err) {
            log.error('the agent could not start again', { error: err })
            finish(1)
            return
          }
          log.info('agent restarted', { peerId: agent.node.peerId.toString(), api: agent.apiUrl })
          watchRestart()
        })().finally(() => { restarting = undefined })
      })
    }
    watchRestart()
    const finish = (code: number): void => {
      process.off('SIGTERM', onSignal)
      process.off('SIGINT', onSignal)
      sink.close()
      done(code)
    }
    const shutdown = (why: string, code: number): void => {
      if (stopping) {
        log.warn('second stop request: exiting without waiting', { why })
        finish(1)
        return
      }
      stopping = true
      log.info('stopping', { why })
      const timer = setTimeout(() => {
        log.error(`stop took longer than ${SHUTDOWN_TIMEOUT_S} s: exiting anyway`)
        finish(1)
      }, SHUTDOWN_TIMEOUT_S * 1000)
      timer.unref()
      void (restarting ?? Promise.resolve()).then(async () => { await agent.stop() }).then(() => {
        clearTimeout(timer)
        log.info('stopped')
        finish(code)
      })
    }
    const onSignal = (signal: NodeJS.Signals): void => { shutdown(signal, 0) }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
    process.off('SIGTERM', onEarly)
    process.off('SIGINT', onEarly)
    if (early !== undefined) shutdown(early, 0)
    // libp2p internals occasionally reject a promise nobody awaits (an aborted dial): log it, keep running
    process.on('unhandledRejection', err => { log.error('unhandled rejection', { error: err }) })
    process.on('uncaughtException', err => {
      // a connection closing under a write inside libp2p ends that connection, not the agent (src/net/faults.ts)
      if (isConnectionFault(err)) {
        log.warn('a connection failed inside libp2p; carrying on', { error: err, stack: err.stack })
        return
      }
      log.error('uncaught exception', { error: err, stack: err.stack })
      shutdown('uncaught exception', 2)
    })
  })
}
