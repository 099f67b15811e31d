// Opening SQLite databases with Node's built-in node:sqlite (DatabaseSync).
//
// Why node:sqlite: it ships with Node 22 (SQLite 3.51 here), so nothing is
// compiled at install time; better-sqlite3 is a native addon that must be
// built against the very Node ABI that runs it, and the project's Node (the
// `node` package) is not the system's. Synchronous calls suit a queue whose
// every commit waits on fsync anyway. docs/upstream.md has the measurement
// behind the choice of SQLite over an append-only log.
//
// Node 22 flags node:sqlite experimental and prints an ExperimentalWarning
// when it loads. That line would land in every CLI command's stderr, so it is
// filtered, that one warning only, while the module loads; every other
// warning goes through untouched.

type SqliteModule = typeof import('node:sqlite')

async function loadSqlite (): Promise<SqliteModule> {
  const original = process.emitWarning
  process.emitWarning = function (this: NodeJS.Process, warning: string | Error, ...rest: unknown[]): void {
    const text = typeof warning === 'string' ? warning : warning.message
    const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string } | undefined)?.type
    if (type === 'ExperimentalWarning' && text.startsWith('SQLite is an experimental feature')) return
    ;(original as (...a: unknown[]) => void).call(this, warning, ...rest)
  } as typeof process.emitWarning
  try {
    return await import('node:sqlite')
  } finally {
    process.emitWarning = original
  }
}

const sqlite = await loadSqlite()

export type Database = InstanceType<SqliteModule['DatabaseSync']>

/**
 * Opens (creating) the database at path in WAL mode with synchronous=FULL:
 * a transaction that has committed survives a SIGKILL or a power cut.
 */
export function openDatabase (path: string): Database {
  const db = new sqlite.DatabaseSync(path)
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON')
  return db
}

/** Runs fn inside BEGIN IMMEDIATE … COMMIT; rolls back and rethrows if it throws. */
export function transaction<T> (db: Database, fn: () => T): T {
  db.exec('BEGIN IMMEDIATE')
  try {
    const result = fn()
    db.exec('COMMIT')
    return result
  } catch (err) {
    if (db.isTransaction) db.exec('ROLLBACK')
    throw err
  }
}
