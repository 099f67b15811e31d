// Structured logs: one JSON object per line, {time, level, component, msg,
// ...fields}, to stderr or to a file in the data directory. The agent and
// every protocol driver log through the same Logger so one `jq` reads all.
import { closeSync, openSync, renameSync, statSync, writeSync } from 'node:fs'

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const
export type LogLevel = typeof LOG_LEVELS[number]

export type LogFields = Record<string, unknown>

export interface Logger {
  debug (msg: string, fields?: LogFields): void
  info (msg: string, fields?: LogFields): void
  warn (msg: string, fields?: LogFields): void
  error (msg: string, fields?: LogFields): void
  /** True when a message at this level would be written (skip building costly fields otherwise). */
  enabled (level: LogLevel): boolean
  /** The same sink and level, another component name ("mdns", "blocks"). */
  child (component: string): Logger
}

/** Where log lines go. `write` gets one complete line, newline included. */
export interface LogSink {
  write (line: string): void
  close (): void
}

/** Writes to stderr (systemd's journal when run as a service). */
export const stderrSink: LogSink = {
  write (line) { process.stderr.write(line) },
  close () {}
}

/**
 * Appends to a file; when it passes `maxBytes` it is renamed to `<path>.1`
 * (replacing the previous one) and a new file is started, so the logs never
 * take more than about twice `maxBytes` of the XO's flash.
 */
export class FileSink implements LogSink {
  readonly path: string
  private readonly maxBytes: number
  private fd: number
  private size: number

  constructor (path: string, maxBytes: number) {
    this.path = path
    this.maxBytes = maxBytes
    this.fd = openSync(path, 'a', 0o640)
    this.size = statSync(path).size
  }

  write (line: string): void {
    const bytes = Buffer.from(line)
    if (this.size + bytes.length > this.maxBytes && this.size > 0) this.rotate()
    writeSync(this.fd, bytes)
    this.size += bytes.length
  }

  private rotate (): void {
    closeSync(this.fd)
    renameSync(this.path, this.path + '.1')
    this.fd = openSync(this.path, 'a', 0o640)
    this.size = 0
  }

  close (): void {
    closeSync(this.fd)
  }
}

/** Fields that JSON cannot carry as they are: errors, bigints, Uint8Arrays. */
function replacer (_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as NodeJS.ErrnoException).code
    return { name: value.name, message: value.message, ...(code !== undefined ? { code } : {}) }
  }
  if (typeof value === 'bigint') return Number(value)
  if (value instanceof Uint8Array) return `<${value.byteLength} bytes>`
  return value
}

export interface LoggerInit {
  level: LogLevel
  sink: LogSink
  /** Milliseconds since the epoch; tests pass a fixed clock. */
  now?: () => number
}

/** A logger for `component` writing JSON lines at `level` and above. */
export function createLogger (init: LoggerInit, component = 'agent'): Logger {
  const threshold = LOG_LEVELS.indexOf(init.level)
  const now = init.now ?? Date.now
  const at = (level: LogLevel) => (msg: string, fields?: LogFields): void => {
    if (LOG_LEVELS.indexOf(level) < threshold) return
    let line: string
    try {
      line = JSON.stringify({ time: new Date(now()).toISOString(), level, component, msg, ...fields }, replacer)
    } catch {
      line = JSON.stringify({ time: new Date(now()).toISOString(), level, component, msg, fields: '<unserialisable>' })
    }
    init.sink.write(line + '\n')
  }
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    enabled: level => LOG_LEVELS.indexOf(level) >= threshold,
    child: name => createLogger(init, name)
  }
}

/** A logger that drops everything (tests, tools). */
export const silentLogger: Logger = createLogger({ level: 'error', sink: { write () {}, close () {} } })
