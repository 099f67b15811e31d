// Defaults of the agent, one place (docs/agent.md lists them as config keys).

/** Listen on every IPv4 interface, any free port. */
export const DEFAULT_LISTEN = ['/ip4/0.0.0.0/tcp/0']
/** The local HTTP API: loopback only. */
export const DEFAULT_API = '127.0.0.1:7337'
export const DEFAULT_MDNS_QUERY_INTERVAL_S = 60
export const DEFAULT_MDNS_TTL_S = 120
export const DEFAULT_BACKOFF_MIN_S = 1
export const DEFAULT_BACKOFF_MAX_S = 60
export const DEFAULT_DIAL_TIMEOUT_S = 10
/** A classroom is tens of laptops; each keeps a connection to every neighbour. */
export const DEFAULT_MAX_CONNECTIONS = 100
export const DEFAULT_LOG_LEVEL = 'info'
export const DEFAULT_LOG_MAX_BYTES = 1 << 20
/** The block exchange: peers served at once, and the upload cap in bytes per second (0: none). */
export const DEFAULT_UPLOAD_SLOTS = 4
export const DEFAULT_UPLOAD_RATE = 0
/** The block exchange's receive window per peer, bytes (src/net/blocks/session.ts says why it is capped). */
export const DEFAULT_RECEIVE_WINDOW = 2 * 1024 * 1024
/**
 * The school server election (docs/election.md): a classroom's timers. The
 * heartbeat is a claim every 2 s; a peer unheard for 7 s has left; the best
 * candidate takes a vacant role after 2 s of quiet, never in the first 6 s
 * after a start (discovery first); a clearly better candidate takes over a
 * sitting server after 30 s.
 */
export const DEFAULT_ELECTION_HEARTBEAT_S = 2
export const DEFAULT_ELECTION_FAILURE_TIMEOUT_S = 7
export const DEFAULT_ELECTION_SETTLE_S = 2
export const DEFAULT_ELECTION_STARTUP_GRACE_S = 6
export const DEFAULT_ELECTION_HOLD_S = 30
export const DEFAULT_ELECTION_BATTERY_MARGIN = 25
/** How often the facts (power, battery, disk, uptime) are re-read, and the upstream checked. */
export const DEFAULT_ELECTION_FACTS_INTERVAL_S = 10
export const DEFAULT_ELECTION_UPSTREAM_CHECK_S = 30
/** Seconds shutdown may take before the agent gives up waiting and exits 1. */
export const SHUTDOWN_TIMEOUT_S = 10

/** Files in the data directory. */
export const CONFIG_FILE = 'config.yaml'
export const IDENTITY_FILE = 'identity.key'
export const API_FILE = 'api'
export const LOCK_FILE = 'agent.lock'
/** Bytes of item bodies an outbox holds at most (statistics, reports, backup chunks on their way up). */
export const DEFAULT_RELAY_MAX_BYTES = 512 * 1024 * 1024
/** The relay's longest wait before offering again, and its receipt timeout, seconds (src/core/relay/constants.ts). */
export const DEFAULT_RELAY_RETRY_MAX_S = 60
export const DEFAULT_RELAY_RECEIPT_TIMEOUT_S = 30
/** Desired state (docs/deployment.md): a reconcile pass at least this often; a failed install retried after this long; the post-install hook's time limit. */
export const DEFAULT_DEPLOY_INTERVAL_S = 10
export const DEFAULT_DEPLOY_RETRY_S = 3600
export const DEFAULT_DEPLOY_HOOK_TIMEOUT_S = 600
/** The Sugar journal's datastore (sugar-datastore's layout manager puts it there). */
export const DEFAULT_JOURNAL = '~/.sugar/default/datastore'
/** A journal backup a day; only what changed is sent. */
export const DEFAULT_BACKUP_INTERVAL_S = 86_400
/** Sugar's Xapian index is derived: it rebuilds it when index_updated is missing. */
export const DEFAULT_BACKUP_EXCLUDE = ['index', 'index_updated']
/** Others' backups a school server keeps for restores, bytes. */
export const DEFAULT_BACKUP_KEEP_MAX_BYTES = 4 * 1024 * 1024 * 1024
/** A statistics sample an hour. */
export const DEFAULT_STATISTICS_INTERVAL_S = 3600

/** Activation leases (docs/deployment.md, "Leases"): how often this laptop's lease is checked, and how long before expiry renewal starts. */
export const DEFAULT_LEASE_CHECK_S = 300
export const DEFAULT_LEASE_RENEW_BEFORE_S = 7 * 86_400
/** Registration (docs/upstream.md): a laptop registers with its school server again this often (the roster is refreshed with it). */
export const DEFAULT_REGISTRATION_INTERVAL_S = 600
