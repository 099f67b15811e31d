// The facts the election weighs (docs/election.md, "Capability"), read by the
// agent itself: its power source and battery from /sys/class/power_supply
// (or stated in the config, or by XO_MESH_POWER / XO_MESH_BATTERY for tests),
// the free space of its data directory, how long it has run, and whether its
// configured upstream answers a TCP connection. Reading never throws: what
// cannot be read counts as the weaker value.
import { readdir, readFile, statfs } from 'node:fs/promises'
import { connect } from 'node:net'
import { join } from 'node:path'
import type { Capability } from '../core/election/index.ts'
import type { AgentConfig } from './config.ts'
import { parseUpstream } from './config.ts'
import type { Logger } from '../net/logger.ts'

export const POWER_SUPPLY_DIR = '/sys/class/power_supply'
/** An upstream that does not accept a connection within this long is unreachable, ms. */
const UPSTREAM_TIMEOUT_MS = 3000

export interface Power { ac: boolean, battery: number }

async function readTrim (path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim()
  } catch {
    return undefined
  }
}

/**
 * Power as the kernel reports it: on AC when a mains (or USB) supply is
 * online, or when there is no battery at all (a desktop, a VM); the battery
 * level is the first battery's capacity (100 without one).
 */
export async function readPowerSupply (dir = POWER_SUPPLY_DIR): Promise<Power> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch {
    return { ac: true, battery: 100 }
  }
  let mains = false
  let battery: number | undefined
  for (const name of names.sort()) {
    const type = await readTrim(join(dir, name, 'type'))
    if (type === 'Battery') {
      if (battery !== undefined) continue
      const capacity = Number(await readTrim(join(dir, name, 'capacity')))
      battery = Number.isFinite(capacity) ? Math.max(0, Math.min(100, Math.round(capacity))) : 0
    } else if (type === 'Mains' || type === 'USB') {
      if ((await readTrim(join(dir, name, 'online'))) === '1') mains = true
    }
  }
  if (battery === undefined) return { ac: true, battery: 100 }
  return { ac: mains, battery }
}

/** Power after the config and the environment have had their say (XO_MESH_POWER=ac|battery, XO_MESH_BATTERY=0..100 win). */
export async function readPower (config: AgentConfig['election'], env: NodeJS.ProcessEnv = process.env, dir = POWER_SUPPLY_DIR): Promise<Power> {
  const envPower = env.XO_MESH_POWER
  const power = envPower === 'ac' || envPower === 'battery' ? envPower : config.power
  const envBattery = env.XO_MESH_BATTERY !== undefined && /^\d{1,3}$/.test(env.XO_MESH_BATTERY) ? Math.min(100, Number(env.XO_MESH_BATTERY)) : undefined
  const stated = envBattery ?? config.battery ?? undefined
  if (power !== 'auto' && stated !== undefined) return { ac: power === 'ac', battery: stated }
  const read = await readPowerSupply(dir)
  return { ac: power === 'auto' ? read.ac : power === 'ac', battery: stated ?? read.battery }
}

/** Free space of the file system holding dir, MiB (0 when unreadable). */
export async function freeDiskMiB (dir: string): Promise<number> {
  try {
    const s = await statfs(dir)
    return Math.floor(Number(s.bavail) * Number(s.bsize) / (1024 * 1024))
  } catch {
    return 0
  }
}

/** Whether host:port accepts a TCP connection within timeoutMs. */
export async function reachable (host: string, port: number, timeoutMs = UPSTREAM_TIMEOUT_MS): Promise<boolean> {
  return await new Promise(resolve => {
    const socket = connect({ host, port, timeout: timeoutMs })
    const done = (ok: boolean): void => {
      socket.removeAllListeners()
      socket.on('error', () => {})
      socket.destroy()
      resolve(ok)
    }
    socket.once('connect', () => { done(true) })
    socket.once('timeout', () => { done(false) })
    socket.once('error', () => { done(false) })
  })
}

/**
 * The agent's fact reader for the election component: power, battery and
 * disk are read at each call; the upstream is checked at most every
 * upstream_check_s (the last answer is used in between).
 */
export function factsReader (dataDir: string, config: AgentConfig['election'], log: Logger, startedAt = Date.now()): () => Promise<Capability> {
  const upstream = config.upstream !== null ? parseUpstream(config.upstream) : undefined
  let upstreamUp = false
  let checkedAt = -Infinity
  let checking: Promise<void> | undefined
  const check = async (): Promise<void> => {
    if (upstream === undefined) return
    const ok = await reachable(upstream.host, upstream.port)
    if (ok !== upstreamUp) log.info(ok ? 'the upstream is reachable' : 'the upstream is unreachable', { upstream: config.upstream })
    upstreamUp = ok
    checkedAt = Date.now()
  }
  return async () => {
    if (upstream !== undefined && Date.now() - checkedAt >= config.upstream_check_s * 1000) {
      checking ??= check().finally(() => { checking = undefined })
      await checking
    }
    const power = await readPower(config)
    return {
      pinned: config.pinned,
      upstream: upstreamUp,
      ac: power.ac,
      battery: power.battery,
      freeDiskMiB: await freeDiskMiB(dataDir),
      uptimeS: Math.floor((Date.now() - startedAt) / 1000)
    }
  }
}
