// A Sugar activity bundle (`.xo`): a zip of `<Name>.activity/…` whose
// `<Name>.activity/activity/activity.info` is an INI file with an
// [Activity] section (name, bundle_id, activity_version, exec, …). Sugar
// installs it by unpacking into the user's Activities folder and replaces an
// installed copy only with a newer activity_version (sugar-toolkit's
// bundle/activitybundle.py); versions are dotted numbers ("7", "12.1"),
// compared part by part, with an optional "-suffix" ignored.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { InvalidInputError } from '../../content/errors.ts'
import { readZip, type ZipEntry } from '../../content/zip.ts'

export interface ActivityInfo {
  name: string | undefined
  bundleId: string | undefined
  version: number[]
  versionText: string
}

export interface ActivityBundle {
  /** The bundle's top directory: "Paint.activity". */
  dir: string
  info: ActivityInfo
  entries: ZipEntry[]
}

/** Parses a version ("7", "12.1", "3.0-beta"); undefined when it is none. */
export function parseActivityVersion (text: string): number[] | undefined {
  const m = /^\s*(\d+(?:\.\d+)*)(?:-[A-Za-z0-9.]+)?\s*$/.exec(text)
  return m === null ? undefined : m[1]!.split('.').map(Number)
}

/** <0, 0, >0 as a is older than, equal to, newer than b. */
export function compareVersions (a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}

/** Reads activity.info's [Activity] section. Throws InvalidInputError without a usable activity_version. */
export function parseActivityInfo (text: string, where: string): ActivityInfo {
  const fields: Record<string, string> = {}
  let section = ''
  for (const line of text.split(/\r?\n/)) {
    const s = /^\s*\[([^\]]+)\]\s*$/.exec(line)
    if (s !== null) { section = s[1]!.trim(); continue }
    const kv = /^\s*([A-Za-z0-9_.-]+)\s*[=:]\s*(.*?)\s*$/.exec(line)
    if (kv !== null && section === 'Activity') fields[kv[1]!] = kv[2]!
  }
  const versionText = fields.activity_version ?? ''
  const version = parseActivityVersion(versionText)
  if (version === undefined) throw new InvalidInputError(`${where}: no usable activity_version in [Activity] (${JSON.stringify(versionText)})`)
  return { name: fields.name, bundleId: fields.bundle_id, version, versionText }
}

/** Opens a `.xo` held in memory: one top directory `<Name>.activity`, with activity/activity.info. Throws InvalidInputError. */
export function openActivityBundle (xo: Uint8Array): ActivityBundle {
  const entries = readZip(xo)
  const tops = new Set(entries.map(e => e.name.split('/')[0]!))
  if (tops.size !== 1) throw new InvalidInputError(`an activity bundle holds one top directory, this one ${tops.size}`)
  const dir = [...tops][0]!
  if (!/^[^/]+\.activity$/.test(dir)) throw new InvalidInputError(`the bundle's top directory ${JSON.stringify(dir)} is not <Name>.activity`)
  const infoEntry = entries.find(e => e.name === `${dir}/activity/activity.info`)
  if (infoEntry === undefined) throw new InvalidInputError(`${dir}: no activity/activity.info`)
  const info = parseActivityInfo(infoEntry.read().toString('utf8'), `${dir}/activity/activity.info`)
  return { dir, info, entries }
}

/** The version of an installed activity directory, or undefined when none is installed (or it has no readable activity.info). */
export function installedActivityVersion (activityDir: string): number[] | undefined {
  try {
    return parseActivityInfo(readFileSync(join(activityDir, 'activity', 'activity.info'), 'utf8'), activityDir).version
  } catch {
    return undefined
  }
}
