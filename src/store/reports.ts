// What a laptop says in its statistics samples and install reports: small
// JSON bodies. The relay carries bodies unread; the mothership parses them to
// fill its tables, and keeps an item whose body does not parse (it is still
// stored, and counted as unparsed). Only fields named here are read: anything
// else a later version adds is kept in the item, not in the tables.

/** An install report: a build was applied (or failed to apply) on a laptop. */
export interface InstallReport {
  /** The deployment's name for the laptop's school, from its agent's config. */
  school?: string
  /** The build's root CID. */
  build: string
  /** The build's name (`os-2026.11`). */
  name?: string
  /** When it was switched to, ms since the epoch (laptop clock). */
  installed_at?: number
  /** False when applying failed. */
  ok?: boolean
  error?: string
}

/** A statistics sample (the fields a deployment asks about; more come with issue 8's sampling). */
export interface StatisticsSample {
  school?: string
  /** The build currently installed. */
  build?: string
  /** When sampled, ms since the epoch (laptop clock). */
  sampled_at?: number
  [field: string]: unknown
}

/** Bodies longer than this are not parsed (a backup chunk mislabelled, or junk). */
const MAX_JSON = 64 * 1024
const decoder = new TextDecoder('utf-8', { fatal: true })

function text (v: unknown, max = 200): string | undefined {
  return typeof v === 'string' && v.length > 0 && v.length <= max ? v : undefined
}

function time (v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined
}

function object (body: Uint8Array): Record<string, unknown> | undefined {
  if (body.length > MAX_JSON) return undefined
  try {
    const v: unknown = JSON.parse(decoder.decode(body))
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

/** The install report in body, or undefined when it is not one. */
export function parseInstallReport (body: Uint8Array): InstallReport | undefined {
  const o = object(body)
  const build = text(o?.build)
  if (o === undefined || build === undefined) return undefined
  return { school: text(o.school), build, name: text(o.name), installed_at: time(o.installed_at), ok: typeof o.ok === 'boolean' ? o.ok : undefined, error: text(o.error, 2000) }
}

/** The statistics sample in body, or undefined when it is not one. */
export function parseStatisticsSample (body: Uint8Array): StatisticsSample | undefined {
  const o = object(body)
  if (o === undefined) return undefined
  return { ...o, school: text(o.school), build: text(o.build), sampled_at: time(o.sampled_at) }
}

/** The JSON body of a report or a sample (what a laptop's agent enqueues). */
export function encodeReport (report: InstallReport | StatisticsSample): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(report))
}
