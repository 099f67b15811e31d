// Registration records at the mothership: each `registration` outbox item
// (made by a school server when a laptop registers, changes its owner
// details, or is refused as a cloned identity) unpacked into a row, so the
// centre knows every laptop's serial, owner nickname and owner public key
// (which backups are encrypted to), and which identities were cloned.
import type { Database } from './sqlite.ts'

export const REGISTRATIONS_SCHEMA = `
CREATE TABLE IF NOT EXISTS registrations (
  origin     TEXT    NOT NULL,          -- the school server that made the item
  counter    BIGINT  NOT NULL,
  peer_id    TEXT    NOT NULL,          -- the laptop's identity
  verdict    TEXT    NOT NULL,          -- registered, changed, conflict
  serial     TEXT    NOT NULL,
  machine_id TEXT,
  nickname   TEXT,
  owner_key  TEXT,                      -- hex X25519 public key
  school     TEXT,
  at         BIGINT,                    -- the server's clock
  replaces   TEXT,                      -- the peer id this serial had before (a new identity)
  PRIMARY KEY (origin, counter)
);
CREATE INDEX IF NOT EXISTS registrations_peer ON registrations (peer_id);
`

export interface RegistrationRecord {
  verdict: 'registered' | 'changed' | 'conflict'
  peer_id: string
  serial: string
  machine_id?: string
  nickname?: string
  owner_key?: string
  school?: string | null
  at?: number
  replaces?: string
}

/** Parses a registration item's body (JSON); undefined when it is not one. */
export function parseRegistration (body: Uint8Array): RegistrationRecord | undefined {
  let v: unknown
  try { v = JSON.parse(new TextDecoder().decode(body)) } catch { return undefined }
  if (v === null || typeof v !== 'object') return undefined
  const r = v as Record<string, unknown>
  if (r.verdict !== 'registered' && r.verdict !== 'changed' && r.verdict !== 'conflict') return undefined
  if (typeof r.peer_id !== 'string' || typeof r.serial !== 'string' || r.peer_id.length > 128 || r.serial.length > 64) return undefined
  const str = (x: unknown, max: number): string | undefined => typeof x === 'string' && x.length <= max ? x : undefined
  return {
    verdict: r.verdict,
    peer_id: r.peer_id,
    serial: r.serial,
    ...(str(r.machine_id, 64) !== undefined ? { machine_id: r.machine_id as string } : {}),
    ...(str(r.nickname, 128) !== undefined ? { nickname: r.nickname as string } : {}),
    ...(str(r.owner_key, 64) !== undefined ? { owner_key: r.owner_key as string } : {}),
    ...(str(r.school, 256) !== undefined ? { school: r.school as string } : {}),
    ...(typeof r.at === 'number' && Number.isSafeInteger(r.at) ? { at: r.at } : {}),
    ...(str(r.replaces, 128) !== undefined ? { replaces: r.replaces as string } : {})
  }
}

/** Stores one record (inside the caller's transaction). */
export function insertRegistration (db: Database, origin: string, counter: number, r: RegistrationRecord): void {
  db.prepare(`INSERT INTO registrations (origin, counter, peer_id, verdict, serial, machine_id, nickname, owner_key, school, at, replaces)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
    .run(origin, counter, r.peer_id, r.verdict, r.serial, r.machine_id ?? null, r.nickname ?? null, r.owner_key ?? null, r.school ?? null, r.at ?? null, r.replaces ?? null)
}

export interface RegisteredLaptop { peer_id: string, serial: string, nickname: string | null, owner_key: string | null, school: string | null, at: number | null }

/** Every laptop's latest registration (conflicts left out), by serial: an identity replaced by a newer one for the same serial is left out too. */
export function registeredLaptops (db: Database): RegisteredLaptop[] {
  return db.prepare(`SELECT r.peer_id, r.serial, r.nickname, r.owner_key, r.school, r.at FROM registrations r
    WHERE r.verdict <> 'conflict'
      AND NOT EXISTS (SELECT 1 FROM registrations n WHERE n.serial = r.serial AND n.verdict <> 'conflict' AND (n.at > r.at OR (n.at = r.at AND n.counter > r.counter AND n.origin = r.origin)))
    ORDER BY r.school, r.serial`).all() as unknown as RegisteredLaptop[]
}

/** Cloned identities reported by school servers. */
export function registrationConflicts (db: Database): Array<{ peer_id: string, serial: string, school: string | null, at: number | null }> {
  return db.prepare('SELECT peer_id, serial, school, at FROM registrations WHERE verdict = \'conflict\' ORDER BY at').all() as unknown as Array<{ peer_id: string, serial: string, school: string | null, at: number | null }>
}
