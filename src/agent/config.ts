// DATA/config.yaml: every key optional, defaults in constants.ts, flags of
// `xo-mesh agent` override the file. An unknown key or a wrong type is an
// error naming the key, so a typo does not silently fall back to a default.
// On first start the agent writes the file with every key commented out at
// its default, as documentation (docs/agent.md has the same list).
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { LOG_LEVELS, type LogLevel } from '../net/logger.ts'
import * as D from './constants.ts'
import { ConfigError } from './errors.ts'

export interface AgentConfig {
  /** Multiaddrs libp2p listens on. */
  listen: string[]
  /** Static peers: dialled on start and redialled with backoff for ever. */
  peers: string[]
  /** HOST:PORT of the local HTTP API (port 0: any free port). */
  api: string
  mdns: {
    enabled: boolean
    /** Interface names; empty: every up, multicast-capable IPv4 interface. */
    interfaces: string[]
    query_interval_s: number
    ttl_s: number
  }
  dial: { backoff_min_s: number, backoff_max_s: number, timeout_s: number }
  connections: { max: number }
  log: {
    level: LogLevel
    /** A file name (relative: inside the data directory), or null for stderr. */
    file: string | null
    max_bytes: number
  }
  /** What this agent is in the staging tree (docs/upstream.md): a school's laptop (or server), a staging agent, the mothership. */
  role: AgentRole
  /** The next hop towards the mothership: a multiaddr ending in /p2p/<peer id>, or null (docs/upstream.md). */
  upstream: string | null
  /** The upstream relay (/xo-mesh/relay/1.0.0). */
  relay: {
    /** Take custody of other agents' items (a school server, a staging agent). */
    accept: boolean
    /** Bytes of item bodies the outbox holds at most; past it, custody is refused. */
    max_bytes: number
    /** This agent is the mothership: items are stored in DATA/mothership.db and go no further. */
    sink: boolean
    /** The mothership's peer id: `xo-mesh usb` believes only receipts it signed. null: none believed. */
    mothership: string | null
    /** Longest wait before offering again after a refusal, a timeout or a lost link, seconds (the wait doubles up to it). */
    retry_max_s: number
    /** An offer unanswered this long is offered again, seconds. */
    receipt_timeout_s: number
  }
  /** The block exchange (/xo-mesh/blocks/1.0.0). */
  blocks: {
    /** Peers served at once; the others are choked until a slot frees. */
    upload_slots: number
    /** Upload cap in bytes per second, all peers together; 0: none. */
    upload_rate: number
    /** Bytes a peer may send ahead of what we have stored (the muxer's receive window per stream). */
    receive_window: number
  }
  /** The school server election (/xo-mesh/election/1.0.0, docs/election.md). */
  election: {
    /** This agent is the school's server whenever it is up: it beats every unpinned peer. */
    pinned: boolean
    /** A URL (http://host:port/…) or multiaddr (/ip4/…/tcp/…) of the upstream; reachable means "has uplink". null: none. */
    upstream: string | null
    upstream_check_s: number
    /** "auto": read /sys/class/power_supply; "ac" or "battery" to state it (XO_MESH_POWER overrides both). */
    power: 'auto' | 'ac' | 'battery'
    /** Battery percent to state instead of reading it (XO_MESH_BATTERY overrides); null: read it. */
    battery: number | null
    heartbeat_s: number
    failure_timeout_s: number
    settle_s: number
    startup_grace_s: number
    hold_s: number
    battery_margin: number
    facts_interval_s: number
  }
  /** The deployment channel (docs/deployment.md): the root key this laptop trusts and what it is, for targets. */
  advisory: {
    /** The deployment's root public key, 64 hex digits (root.pub of `xo-mesh deploy keygen`); null: advisories off. */
    root_key: string | null
    school: string | null
    group: string | null
    /** Hardware model as advisories name it: "XO-1.5", "XO-1.75", "XO-4", … */
    model: string | null
    serial: string | null
  }
  /** Desired state: applying the advised builds (docs/deployment.md, "Applying"). */
  deploy: {
    /** false: advised builds are fetched but never applied. */
    enabled: boolean
    /** Where OS builds are applied (versions/, current); null: DATA/os. */
    os_root: string | null
    /** A command (sh -c) run once an OS build is written and verified, before it becomes current; null: none. */
    post_install: string | null
    hook_timeout_s: number
    /** Sugar's Activities folder; null: ~/Activities. */
    activities_dir: string | null
    /** Where config builds' files go; null: DATA/config-root. */
    config_root: string | null
    /** A reconcile pass at least this often. */
    interval_s: number
    /** After a failed install, the next attempt waits this long. */
    retry_s: number
  }
  /** The Sugar journal's datastore (statistics read it, backups copy it); `~` is the user's home. */
  journal: string
  /** Backups of the journal, encrypted to the owner's key (docs/upstream.md, "Backups"). */
  backup: {
    /** Back up this laptop's journal every interval_s (and on `xo-mesh backup --now`). */
    enabled: boolean
    interval_s: number
    /** Names at the top of the journal left out: Sugar's index, which it rebuilds when index_updated is missing. */
    exclude: string[]
    /** Keep the backup chunks relayed for other laptops (a school server), to serve restores. */
    keep_relayed: boolean
    /** Bytes of others' backups kept at most. */
    keep_max_bytes: number
  }
  /** Statistics samples (docs/upstream.md, "Statistics"): what is sampled, and how often. */
  statistics: {
    enabled: boolean
    interval_s: number
    /** Where the kernel lists power supplies (tests point it at a fixture). */
    power_supply: string
    /** Where `xo-mesh apply --root` installs builds: the build installed is read from its `current`; null: not reported. */
    install_root: string | null
    /** Each field of a sample, on or off. Nothing names a child; serial is off unless the deployment turns it on. */
    fields: {
      activities: boolean
      journal: boolean
      disk: boolean
      battery: boolean
      build: boolean
      school: boolean
      serial: boolean
    }
  }
  /** Activation leases (docs/deployment.md, "Leases"). The serial is advisory.serial. */
  lease: {
    /** A shell command run once when this laptop's lease expires (the deployment decides: lock, warn, …); null: none. */
    hook: string | null
    check_s: number
    renew_before_s: number
  }
  /** Registration with the school server (docs/upstream.md, "Registration"). */
  registration: {
    /** The owner's nickname, as Sugar shows it; null: the user name. */
    nickname: string | null
    /** This machine's id; null: /etc/machine-id (XO_MESH_MACHINE_ID overrides both). */
    machine_id: string | null
    interval_s: number
  }
}

/** Roles in the staging tree: `staging` and `mothership` take no part in a school's election and hold every advised build. */
export const AGENT_ROLES = ['laptop', 'staging', 'mothership'] as const
export type AgentRole = typeof AGENT_ROLES[number]

export function defaultConfig (): AgentConfig {
  return {
    listen: [...D.DEFAULT_LISTEN],
    peers: [],
    api: D.DEFAULT_API,
    mdns: { enabled: true, interfaces: [], query_interval_s: D.DEFAULT_MDNS_QUERY_INTERVAL_S, ttl_s: D.DEFAULT_MDNS_TTL_S },
    dial: { backoff_min_s: D.DEFAULT_BACKOFF_MIN_S, backoff_max_s: D.DEFAULT_BACKOFF_MAX_S, timeout_s: D.DEFAULT_DIAL_TIMEOUT_S },
    connections: { max: D.DEFAULT_MAX_CONNECTIONS },
    log: { level: D.DEFAULT_LOG_LEVEL, file: null, max_bytes: D.DEFAULT_LOG_MAX_BYTES },
    blocks: { upload_slots: D.DEFAULT_UPLOAD_SLOTS, upload_rate: D.DEFAULT_UPLOAD_RATE, receive_window: D.DEFAULT_RECEIVE_WINDOW },
    election: {
      pinned: false,
      upstream: null,
      upstream_check_s: D.DEFAULT_ELECTION_UPSTREAM_CHECK_S,
      power: 'auto',
      battery: null,
      heartbeat_s: D.DEFAULT_ELECTION_HEARTBEAT_S,
      failure_timeout_s: D.DEFAULT_ELECTION_FAILURE_TIMEOUT_S,
      settle_s: D.DEFAULT_ELECTION_SETTLE_S,
      startup_grace_s: D.DEFAULT_ELECTION_STARTUP_GRACE_S,
      hold_s: D.DEFAULT_ELECTION_HOLD_S,
      battery_margin: D.DEFAULT_ELECTION_BATTERY_MARGIN,
      facts_interval_s: D.DEFAULT_ELECTION_FACTS_INTERVAL_S
    },
    advisory: { root_key: null, school: null, group: null, model: null, serial: null },
    role: 'laptop',
    deploy: { enabled: true, os_root: null, post_install: null, hook_timeout_s: D.DEFAULT_DEPLOY_HOOK_TIMEOUT_S, activities_dir: null, config_root: null, interval_s: D.DEFAULT_DEPLOY_INTERVAL_S, retry_s: D.DEFAULT_DEPLOY_RETRY_S },
    journal: D.DEFAULT_JOURNAL,
    backup: { enabled: true, interval_s: D.DEFAULT_BACKUP_INTERVAL_S, exclude: [...D.DEFAULT_BACKUP_EXCLUDE], keep_relayed: true, keep_max_bytes: D.DEFAULT_BACKUP_KEEP_MAX_BYTES },
    statistics: {
      enabled: true,
      interval_s: D.DEFAULT_STATISTICS_INTERVAL_S,
      power_supply: '/sys/class/power_supply',
      install_root: null,
      fields: { activities: true, journal: true, disk: true, battery: true, build: true, school: true, serial: false }
    },
    upstream: null,
    relay: { accept: true, max_bytes: D.DEFAULT_RELAY_MAX_BYTES, sink: false, mothership: null, retry_max_s: D.DEFAULT_RELAY_RETRY_MAX_S, receipt_timeout_s: D.DEFAULT_RELAY_RECEIPT_TIMEOUT_S },
    lease: { hook: null, check_s: D.DEFAULT_LEASE_CHECK_S, renew_before_s: D.DEFAULT_LEASE_RENEW_BEFORE_S },
    registration: { nickname: null, machine_id: null, interval_s: D.DEFAULT_REGISTRATION_INTERVAL_S }
  }
}

/** The file written on first start: every key, commented out, at its default. */
export const CONFIG_TEMPLATE = `# xo-mesh agent configuration (docs/agent.md). Every key is optional; the
# values shown are the defaults. Flags of \`xo-mesh agent\` override this file.

# Multiaddrs to listen on. Give a fixed port if other agents list this one as a static peer.
# listen: ["${D.DEFAULT_LISTEN.join('", "')}"]

# Static peers, dialled on start and redialled with backoff (1 s doubling to 60 s) for ever.
# A /p2p/<peer id> suffix is optional.
# peers: ["/ip4/10.0.0.1/tcp/4001"]

# The local HTTP API (JSON under /api/v1). Keep it on loopback: it has no authentication.
# api: "${D.DEFAULT_API}"

# mdns:
#   enabled: true                # announce _xo-mesh._tcp on the LAN and dial the peers found
#   interfaces: []               # e.g. [wlan0, eth0]; empty: every up, multicast-capable IPv4 interface
#   query_interval_s: ${D.DEFAULT_MDNS_QUERY_INTERVAL_S}          # ask again for peers this often (announcements happen on start and on change)
#   ttl_s: ${D.DEFAULT_MDNS_TTL_S}                   # how long peers may cache our records

# dial:
#   backoff_min_s: ${D.DEFAULT_BACKOFF_MIN_S}
#   backoff_max_s: ${D.DEFAULT_BACKOFF_MAX_S}
#   timeout_s: ${D.DEFAULT_DIAL_TIMEOUT_S}

# connections:
#   max: ${D.DEFAULT_MAX_CONNECTIONS}

# log:
#   level: ${D.DEFAULT_LOG_LEVEL}                  # debug, info, warn or error
#   file: null                   # null: JSON lines on stderr (the journal); a name: a file in the data directory
#   max_bytes: ${D.DEFAULT_LOG_MAX_BYTES}           # then the file is renamed to <file>.1 and a new one started

# blocks:
#   upload_slots: ${D.DEFAULT_UPLOAD_SLOTS}              # peers served at once; the others wait their turn
#   upload_rate: ${D.DEFAULT_UPLOAD_RATE}               # bytes per second to all peers together; 0: no cap
#   receive_window: ${D.DEFAULT_RECEIVE_WINDOW}      # bytes a peer may send ahead of what we have stored: more is faster
#                                # on a fast link, and more is sent twice when a fetch is killed

# election:                      # the school server election (docs/election.md)
#   pinned: false                # true: this agent is the school server whenever it is up
#   upstream: null               # URL or multiaddr of the upstream (e.g. "http://10.1.0.1:8080/"); reachable = has uplink
#   upstream_check_s: ${D.DEFAULT_ELECTION_UPSTREAM_CHECK_S}
#   power: auto                  # auto (read /sys/class/power_supply), ac or battery; XO_MESH_POWER overrides
#   battery: null                # a percent to state instead of reading it; XO_MESH_BATTERY overrides
#   heartbeat_s: ${D.DEFAULT_ELECTION_HEARTBEAT_S}                 # a claim this often
#   failure_timeout_s: ${D.DEFAULT_ELECTION_FAILURE_TIMEOUT_S}           # a peer unheard this long has left (the lease)
#   settle_s: ${D.DEFAULT_ELECTION_SETTLE_S}                    # a vacant role is taken after this much quiet
#   startup_grace_s: ${D.DEFAULT_ELECTION_STARTUP_GRACE_S}             # no role this soon after a start
#   hold_s: ${D.DEFAULT_ELECTION_HOLD_S}                     # a clearly better candidate takes over after this long
#   battery_margin: ${D.DEFAULT_ELECTION_BATTERY_MARGIN}              # battery points that make a candidate clearly better
#   facts_interval_s: ${D.DEFAULT_ELECTION_FACTS_INTERVAL_S}            # re-read power, battery, disk and uptime this often

# advisory:                      # the deployment channel (docs/deployment.md)
#   root_key: null               # the deployment's root public key (64 hex digits, its root.pub); null: advisories off
#   school: null                 # what this laptop is, matched against advisories' targets
#   group: null
#   model: null                  # XO-1.5, XO-1.75, XO-4, …
#   serial: null

# What this agent is in the staging tree (docs/upstream.md): laptop (a school's laptop or server),
# staging (a regional server: no school election, holds every advised build, relays up) or
# mothership (the sink of the outboxes, DATA/mothership.db). \`xo-mesh agent --role\` overrides.
# role: laptop
# deploy:                        # applying the advised builds (docs/deployment.md)
#   enabled: true                # false: advised builds are fetched, never applied
#   os_root: null                # where OS builds go (versions/<cid>, current); null: DATA/os
#   post_install: null           # sh -c command run when an OS build is written and verified, before it becomes
#                                # current (XO_MESH_VERSION_DIR, XO_MESH_BUILD, XO_MESH_PREVIOUS); non-zero: not switched
#   hook_timeout_s: ${D.DEFAULT_DEPLOY_HOOK_TIMEOUT_S}
#   activities_dir: null         # Sugar's Activities folder; null: ~/Activities
#   config_root: null            # where config builds' files go; null: DATA/config-root
#   interval_s: ${D.DEFAULT_DEPLOY_INTERVAL_S}                # a reconcile pass at least this often
#   retry_s: ${D.DEFAULT_DEPLOY_RETRY_S}                 # a failed install is tried again after this long

# The next hop towards the mothership (docs/upstream.md): a multiaddr ending in /p2p/<peer id>.
# Statistics, install reports and backups in the outbox are handed to it under custody receipts.
# upstream: null                 # e.g. "/ip4/10.0.0.1/tcp/4001/p2p/12D3KooW..."

# relay:
#   accept: true                 # take custody of other agents' items (school server, staging agent)
#   max_bytes: ${D.DEFAULT_RELAY_MAX_BYTES}        # item bytes the outbox holds at most; past it, custody is refused
#   sink: false                  # true on the mothership: items end in DATA/mothership.db (as role: mothership)
#   mothership: null             # the mothership's peer id: \`xo-mesh usb\` believes only receipts it signed
#   retry_max_s: ${D.DEFAULT_RELAY_RETRY_MAX_S}              # after a refusal, a timeout or a lost link, offer again after 1 s doubling up to this
#   receipt_timeout_s: ${D.DEFAULT_RELAY_RECEIPT_TIMEOUT_S}        # an offer unanswered this long is offered again

# The Sugar journal's datastore: statistics read it, backups copy it.
# journal: "${D.DEFAULT_JOURNAL}"

# backup:                        # the journal, encrypted to the owner's key (DATA/owner.key), to the school server and the mothership
#   enabled: true
#   interval_s: ${D.DEFAULT_BACKUP_INTERVAL_S}             # a backup this often; only what changed is sent
#   exclude: ["${D.DEFAULT_BACKUP_EXCLUDE.join('", "')}"]   # top-level names left out (Sugar rebuilds its index)
#   keep_relayed: true           # as a school server, keep the backups relayed for others, to restore them
#   keep_max_bytes: ${D.DEFAULT_BACKUP_KEEP_MAX_BYTES}

# statistics:                    # samples sent upstream; nothing names a child
#   enabled: true
#   interval_s: ${D.DEFAULT_STATISTICS_INTERVAL_S}
#   power_supply: /sys/class/power_supply
#   install_root: null           # the --root of xo-mesh apply, to report the build installed
#   fields: {activities: true, journal: true, disk: true, battery: true, build: true, school: true, serial: false}
#                                # each part of a sample on or off: activities launched (bundle ids) with how often and
#                                # how long; journal entries and bytes (never titles); free and total disk; battery charge,
#                                # wear and cycles; the build installed; advisory.school; advisory.serial (it identifies
#                                # the laptop: off unless the deployment needs it)

# lease:                         # activation leases (docs/deployment.md, "Leases"); the serial is advisory.serial
#   hook: null                   # shell command run once when this laptop's lease expires; null: none
#   check_s: ${D.DEFAULT_LEASE_CHECK_S}                 # check this laptop's lease this often
#   renew_before_s: ${D.DEFAULT_LEASE_RENEW_BEFORE_S}        # ask the school server for a newer lease this long before expiry

# registration:                  # registration with the school server (docs/upstream.md)
#   nickname: null               # the owner's nickname; null: the user name
#   machine_id: null             # null: /etc/machine-id
#   interval_s: ${D.DEFAULT_REGISTRATION_INTERVAL_S}              # register again (and refresh the roster) this often
`

type Shape = { [k: string]: 'role' | 'string' | 'strings' | 'multiaddrs' | 'upstream' | 'boolean' | 'number' | 'integer' | 'rate' | 'level' | 'nullable-string' | 'text-or-null' | 'hostport' | 'seconds' | 'power' | 'nullable-percent' | 'nullable-upstream' | Shape }

const SHAPE: Shape = {
  listen: 'multiaddrs',
  peers: 'multiaddrs',
  api: 'hostport',
  mdns: { enabled: 'boolean', interfaces: 'strings', query_interval_s: 'number', ttl_s: 'integer' },
  dial: { backoff_min_s: 'number', backoff_max_s: 'number', timeout_s: 'number' },
  connections: { max: 'integer' },
  log: { level: 'level', file: 'nullable-string', max_bytes: 'integer' },
  blocks: { upload_slots: 'integer', upload_rate: 'rate', receive_window: 'integer' },
  election: {
    pinned: 'boolean',
    upstream: 'nullable-upstream',
    upstream_check_s: 'number',
    power: 'power',
    battery: 'nullable-percent',
    heartbeat_s: 'number',
    failure_timeout_s: 'number',
    settle_s: 'seconds',
    startup_grace_s: 'seconds',
    hold_s: 'number',
    battery_margin: 'integer',
    facts_interval_s: 'number'
  },
  advisory: { root_key: 'text-or-null', school: 'text-or-null', group: 'text-or-null', model: 'text-or-null', serial: 'text-or-null' },
  role: 'role',
  deploy: { enabled: 'boolean', os_root: 'text-or-null', post_install: 'text-or-null', hook_timeout_s: 'number', activities_dir: 'text-or-null', config_root: 'text-or-null', interval_s: 'number', retry_s: 'seconds' },
  upstream: 'upstream',
  relay: { accept: 'boolean', max_bytes: 'integer', sink: 'boolean', mothership: 'text-or-null', retry_max_s: 'number', receipt_timeout_s: 'number' },
  journal: 'string',
  backup: { enabled: 'boolean', interval_s: 'number', exclude: 'strings', keep_relayed: 'boolean', keep_max_bytes: 'integer' },
  statistics: {
    enabled: 'boolean',
    interval_s: 'number',
    power_supply: 'string',
    install_root: 'text-or-null',
    fields: { activities: 'boolean', journal: 'boolean', disk: 'boolean', battery: 'boolean', build: 'boolean', school: 'boolean', serial: 'boolean' }
  },
  lease: { hook: 'text-or-null', check_s: 'number', renew_before_s: 'number' },
  registration: { nickname: 'text-or-null', machine_id: 'text-or-null', interval_s: 'number' }
}

/** Splits "host:port" / "[v6]:port"; throws ConfigError. */
export function parseHostPort (text: string, where = 'api'): { host: string, port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text)
  const port = m !== null ? Number(m[3]) : NaN
  if (m === null || port > 65535) throw new ConfigError(`${where}: expected HOST:PORT (e.g. ${D.DEFAULT_API}), got ${JSON.stringify(text)}`)
  return { host: m[1] ?? m[2]!, port }
}

function check (kind: Shape[string], value: unknown, key: string, src: string): void {
  const bad = (what: string): never => { throw new ConfigError(`${src}: ${key === '' ? 'the file' : key} must be ${what}, got ${JSON.stringify(value)}`) }
  if (typeof kind === 'object') {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) bad('a mapping')
    for (const [k, v] of Object.entries(value as object)) {
      const sub = kind[k]
      const path = key === '' ? k : `${key}.${k}`
      if (sub === undefined) throw new ConfigError(`${src}: unknown key ${path} (known: ${Object.keys(kind).join(', ')})`)
      check(sub, v, path, src)
    }
    return
  }
  switch (kind) {
    case 'boolean': if (typeof value !== 'boolean') bad('true or false'); break
    case 'number': if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) bad('a positive number'); break
    case 'integer': if (!Number.isSafeInteger(value) || (value as number) <= 0) bad('a positive integer'); break
    case 'rate': if (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value)) bad('a number of bytes per second (0: none)'); break
    case 'string': if (typeof value !== 'string') bad('a string'); break
    case 'seconds': if (typeof value !== 'number' || !(value >= 0) || !Number.isFinite(value)) bad('a number of seconds (0 or more)'); break
    case 'role': if (!AGENT_ROLES.includes(value as AgentRole)) bad(AGENT_ROLES.join(', ')); break
    case 'power': if (value !== 'auto' && value !== 'ac' && value !== 'battery') bad('auto, ac or battery'); break
    case 'nullable-percent': if (value !== null && (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 100)) bad('a percent 0..100 or null'); break
    case 'nullable-upstream':
      if (value === null) break
      if (typeof value !== 'string') bad('a URL, a multiaddr or null')
      parseUpstream(value as string, `${src}: ${key}`)
      break
    case 'nullable-string': if (value !== null && (typeof value !== 'string' || value === '')) bad('a file name or null'); break
    case 'text-or-null': if (value !== null && (typeof value !== 'string' || value === '')) bad('a string or null'); break
    case 'level': if (!LOG_LEVELS.includes(value as LogLevel)) bad(LOG_LEVELS.join(', ')); break
    case 'hostport': if (typeof value !== 'string') bad('"HOST:PORT"'); parseHostPort(value as string, `${src}: ${key}`); break
    case 'strings': if (!Array.isArray(value) || !value.every(s => typeof s === 'string')) bad('a list of strings'); break
    case 'upstream':
      if (value === null) break
      if (typeof value !== 'string') bad('a multiaddr ending in /p2p/<peer id>, or null')
      checkMultiaddr(value as string, `${src}: ${key}`)
      if (!/\/p2p\/[A-Za-z0-9]+$/.test(value as string)) bad('a multiaddr ending in /p2p/<peer id> (receipts are taken only from that peer)')
      break
    case 'multiaddrs':
      if (!Array.isArray(value) || !value.every(s => typeof s === 'string')) bad('a list of multiaddrs')
      for (const s of value as string[]) checkMultiaddr(s, `${src}: ${key}`)
      break
  }
}

/**
 * The host and TCP port of an upstream given as a URL (http, https) or a
 * multiaddr with /ip4, /ip6 or /dns* and /tcp. Throws ConfigError.
 */
export function parseUpstream (text: string, where = 'election.upstream'): { host: string, port: number } {
  if (text.startsWith('/')) {
    let parts: Array<{ name: string, value?: string }>
    try {
      parts = multiaddr(text).getComponents()
    } catch (err) {
      throw new ConfigError(`${where}: not a multiaddr: ${JSON.stringify(text)} (${(err as Error).message})`)
    }
    const host = parts.find(p => ['ip4', 'ip6', 'dns', 'dns4', 'dns6'].includes(p.name))?.value
    const port = Number(parts.find(p => p.name === 'tcp')?.value)
    if (host === undefined || !Number.isInteger(port) || port <= 0) throw new ConfigError(`${where}: the multiaddr needs a host and /tcp/PORT: ${JSON.stringify(text)}`)
    return { host, port }
  }
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new ConfigError(`${where}: expected a URL (http://host:port/) or a multiaddr, got ${JSON.stringify(text)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`${where}: only http and https URLs, got ${url.protocol}`)
  const port = url.port !== '' ? Number(url.port) : url.protocol === 'https:' ? 443 : 80
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port }
}

/** Throws ConfigError unless `text` parses as a multiaddr. */
export function checkMultiaddr (text: string, where: string): void {
  try {
    multiaddr(text)
  } catch (err) {
    throw new ConfigError(`${where}: not a multiaddr: ${JSON.stringify(text)} (${(err as Error).message})`)
  }
}

/** Deep-merges checked YAML over the defaults. */
function merge<T> (base: T, over: unknown): T {
  if (over === null || typeof over !== 'object' || Array.isArray(over)) return over as T
  const out = { ...base } as Record<string, unknown>
  for (const [k, v] of Object.entries(over)) {
    const b = (base as Record<string, unknown>)[k]
    out[k] = b !== null && typeof b === 'object' && !Array.isArray(b) ? merge(b, v) : v
  }
  return out as T
}

/** True when the text holds nothing but comments and blank lines (the template as written). */
function onlyComments (text: string): boolean {
  return text.split('\n').every(l => /^\s*(#.*)?$/.test(l))
}

/**
 * Parses config text (the YAML of config.yaml). Throws ConfigError naming
 * `src` and the key. The YAML parser is loaded only for a file that sets
 * something: it costs ~5 MB of resident memory for the agent's lifetime.
 */
export async function parseConfig (text: string, src = 'config.yaml'): Promise<AgentConfig> {
  if (onlyComments(text)) return defaultConfig()
  const { parse } = await import('yaml')
  let doc: unknown
  try {
    doc = parse(text)
  } catch (err) {
    throw new ConfigError(`${src}: not valid YAML: ${(err as Error).message.split('\n')[0]}`)
  }
  if (doc === null || doc === undefined) return defaultConfig()
  check(SHAPE, doc, '', src)
  const config = merge(defaultConfig(), doc)
  if (config.dial.backoff_max_s < config.dial.backoff_min_s) throw new ConfigError(`${src}: dial.backoff_max_s is smaller than dial.backoff_min_s`)
  if (config.election.failure_timeout_s <= config.election.heartbeat_s) throw new ConfigError(`${src}: election.failure_timeout_s must exceed election.heartbeat_s (a peer would be declared gone between two of its heartbeats)`)
  if (config.relay.mothership !== null && !/^[A-Za-z0-9]{20,128}$/.test(config.relay.mothership)) throw new ConfigError(`${src}: relay.mothership must be the mothership's peer id, got ${JSON.stringify(config.relay.mothership)}`)
  if (config.advisory.root_key !== null && !/^[0-9a-fA-F]{64}$/.test(config.advisory.root_key)) throw new ConfigError(`${src}: advisory.root_key must be 64 hex digits (the deployment's root.pub), got ${JSON.stringify(config.advisory.root_key)}`)
  return config
}

/**
 * Reads DATA/config.yaml, writing the commented template first when there is
 * none (a read-only data directory just gets the defaults).
 */
export async function loadConfig (dataDir: string): Promise<AgentConfig> {
  const path = join(dataDir, D.CONFIG_FILE)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    await writeFile(path, CONFIG_TEMPLATE, { flag: 'wx' }).catch(() => {})
    return defaultConfig()
  }
  return await parseConfig(text, path)
}

/** What `xo-mesh agent` flags can set; absent means "as in the file". */
export interface ConfigOverrides {
  listen?: string[]
  peers?: string[]
  mdns?: boolean
  api?: string
  logLevel?: string
  logFile?: string
  /** --role: laptop, staging or mothership. */
  role?: string
}

/** Applies flags over a config; throws ConfigError for a malformed one. */
export function applyOverrides (config: AgentConfig, o: ConfigOverrides): AgentConfig {
  const out = structuredClone(config)
  if (o.listen !== undefined && o.listen.length > 0) {
    for (const a of o.listen) checkMultiaddr(a, '--listen')
    out.listen = o.listen
  }
  if (o.peers !== undefined && o.peers.length > 0) {
    for (const a of o.peers) checkMultiaddr(a, '--peer')
    out.peers = o.peers
  }
  if (o.mdns === false) out.mdns.enabled = false
  if (o.api !== undefined) { parseHostPort(o.api, '--api'); out.api = o.api }
  if (o.logLevel !== undefined) {
    if (!LOG_LEVELS.includes(o.logLevel as LogLevel)) throw new ConfigError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`)
    out.log.level = o.logLevel as LogLevel
  }
  if (o.logFile !== undefined) out.log.file = o.logFile
  if (o.role !== undefined) {
    if (!AGENT_ROLES.includes(o.role as AgentRole)) throw new ConfigError(`--role must be one of ${AGENT_ROLES.join(', ')}`)
    out.role = o.role as AgentRole
  }
  return out
}
