// Named errors of the agent. The CLI prints `message` as one line on stderr
// and exits with `exitCode`.

export class AgentError extends Error {
  readonly code: string
  readonly exitCode: number
  constructor (code: string, message: string, options?: { cause?: unknown, exitCode?: number }) {
    super(message, options)
    this.code = code
    this.exitCode = options?.exitCode ?? 1
    this.name = new.target.name
  }
}

/** config.yaml or a flag is malformed. */
export class ConfigError extends AgentError {
  constructor (message: string) { super('ERR_CONFIG', message) }
}

/** Another agent holds the data directory. */
export class AgentRunningError extends AgentError {
  readonly pid: number
  constructor (dataDir: string, pid: number) {
    super('ERR_AGENT_RUNNING', `an agent is already running on ${dataDir} (pid ${pid}); stop it first, or give this one another --data`)
    this.pid = pid
  }
}

/** The identity file exists but is not a private key. */
export class IdentityError extends AgentError {
  constructor (message: string, options?: { cause?: unknown }) { super('ERR_IDENTITY', message, options) }
}

/** The API (or the libp2p node) cannot listen where asked. */
export class ListenError extends AgentError {
  constructor (message: string, options?: { cause?: unknown }) { super('ERR_LISTEN', message, options) }
}

/** No agent answers on this data directory (the CLI's id/status/peers). Exit 5. */
export class NoAgentError extends AgentError {
  constructor (message: string) { super('ERR_NO_AGENT', message, { exitCode: 5 }) }
}
