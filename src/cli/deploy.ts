// `xo-mesh deploy …`: the deployment team's commands (keys, roots,
// advisories, stick bundles) and a laptop's side of a stick (`accept`,
// `show`). docs/deployment.md is the walk-through.
//
// XO_MESH_NOW (ISO 8601 or ms) replaces the wall clock in these commands, for
// tests and rehearsals; a laptop still never goes back before a clock it has
// already seen.
import { Option, type Command } from 'commander'
import { resolve } from 'node:path'
import { mkdir } from 'node:fs/promises'
import { Repo, defaultDataDir } from '../content/repo.ts'
import { parseCid, type CID } from '../content/cid.ts'
import { buildCids } from '../content/build.ts'
import { InvalidInputError } from '../content/errors.ts'
import {
  ADVISORY_KINDS, PRIORITIES, DAY_MS, TrustError, acceptSnapshot, advise, advisoriesFor, keygen, loadState, openDeployment,
  parsePublicKeyHex, publicKeyHex, readTrustBundle, rotate, saveState, withdraw, writeTrustBundle,
  type Advisory, type AdvisoryKind, type Device, type Priority, type RoleName, type Snapshot, type Targets, type TrustBundle, type TrustState, type Wave, ROLE_NAMES
} from '../trust/index.ts'
import { callAgent } from '../agent/client.ts'
import { AgentRunningError, NoAgentError } from '../agent/errors.ts'
import { DataDirLock } from '../agent/lock.ts'
import { ADVISORIES_OFF, type OfferOutcome } from '../net/advisory/index.ts'
import { humanBytes } from './progress.ts'

interface Globals { data?: string, json?: boolean }

function out (text: string): void {
  process.stdout.write(text + '\n')
}

/** The wall clock, or XO_MESH_NOW. */
export function wallClock (): number {
  const env = process.env.XO_MESH_NOW
  if (env === undefined || env === '') return Date.now()
  const n = /^\d+$/.test(env) ? Number(env) : new Date(env).getTime()
  if (!Number.isFinite(n)) throw new InvalidInputError(`XO_MESH_NOW is not a time: ${JSON.stringify(env)}`)
  return n
}

/** "30d", "12h", "90m" → ms; or an ISO date → ms from now. */
export function parseExpiry (text: string, now: number): number {
  const m = /^(\d+)\s*([dhm])$/.exec(text.trim())
  if (m !== null) return Number(m[1]) * (m[2] === 'd' ? DAY_MS : m[2] === 'h' ? 3_600_000 : 60_000)
  const t = new Date(text).getTime()
  if (Number.isNaN(t) || t <= now) throw new InvalidInputError(`--expires wants a duration (30d, 12h, 90m) or a future ISO 8601 date, not ${JSON.stringify(text)}`)
  return t - now
}

/** --target school=a,b  model=XO-4  serial=SHC1,SHC2  group=g  build=<cid> (repeatable, merged). */
export function parseTargets (specs: string[]): Targets {
  const t: Targets = {}
  const keys: Record<string, 'schools' | 'groups' | 'models' | 'serials' | 'builds'> = { school: 'schools', group: 'groups', model: 'models', serial: 'serials', build: 'builds' }
  for (const spec of specs) {
    const m = /^([a-z]+)=(.+)$/.exec(spec)
    const key = m === null ? undefined : keys[m[1]!]
    if (m === null || key === undefined) throw new InvalidInputError(`--target wants school=…, group=…, model=…, serial=… or build=<cid> (comma-separated values), not ${JSON.stringify(spec)}`)
    const values = m[2]!.split(',').map(s => s.trim()).filter(s => s !== '')
    if (key === 'builds') t.builds = [...(t.builds ?? []), ...values.map(parseCid)]
    else t[key] = [...(t[key] ?? []), ...values]
  }
  return t
}

/** --rollout 10%@0h,50%@24h,100%@48h → waves (percent of laptops, hours after issue). */
export function parseRollout (text: string): Wave[] {
  const waves: Wave[] = []
  for (const part of text.split(',')) {
    const m = /^\s*(\d+)%(?:@(\d+)([hms]))?\s*$/.exec(part)
    if (m === null) throw new InvalidInputError(`--rollout wants waves like 10%@0h,100%@24h (h, m or s), not ${JSON.stringify(part)}`)
    const percent = Number(m[1])
    if (percent < 1 || percent > 100) throw new InvalidInputError(`a wave's percent is 1 to 100, not ${percent}`)
    waves.push({ percent, after_s: Number(m[2] ?? 0) * (m[3] === 'm' ? 60 : m[3] === 's' ? 1 : 3600) })
  }
  return waves
}

function describe (s: Snapshot): string[] {
  const lines = [`advisory snapshot v${s.doc.version}, issued ${new Date(s.doc.issued).toISOString()}, expires ${new Date(s.doc.expires).toISOString()}, ${s.doc.advisories.length} advisory(ies)`]
  for (const a of s.doc.advisories) {
    const t = Object.entries(a.targets).map(([k, v]) => `${k}=${(v as unknown[]).map(String).join(',')}`).join(' ')
    lines.push(`  ${a.name}  ${a.kind}  ${a.priority}  ${humanBytes(a.size)}  ${a.build.toString()}${t !== '' ? `  targets ${t}` : ''}${a.rollout !== undefined ? `  rollout ${a.rollout.waves.map(w => `${w.percent}%@${w.after_s / 3600}h`).join(',')}${a.rollout.max_failed_percent !== undefined ? ` halt at ${a.rollout.max_failed_percent}% failed` : ''}` : ''}`)
  }
  return lines
}

function snapshotJson (s: Snapshot): unknown {
  return { cid: s.cid.toString(), version: s.doc.version, issued: new Date(s.doc.issued).toISOString(), expires: new Date(s.doc.expires).toISOString(), advisories: s.doc.advisories.map(a => ({ ...a, build: a.build.toString(), targets: { ...a.targets, ...(a.targets.builds !== undefined ? { builds: a.targets.builds.map(String) } : {}) } })) }
}

/**
 * Who writes the trust state: the running agent (the stick's snapshot is
 * offered through its API, and what it decided comes back), or this process
 * holding the data directory's agent lock. Waits (up to ~20 s) for an agent
 * that holds the lock but does not answer yet (it is starting).
 */
async function trustStateOwner (dataDir: string, bundle: TrustBundle): Promise<{ agent?: OfferOutcome, lock?: DataDirLock, advisoriesOff?: true }> {
  await mkdir(dataDir, { recursive: true })
  const body = { snapshot: Buffer.from(bundle.snapshot).toString('base64'), roots: bundle.roots.map(r => Buffer.from(r).toString('base64')) }
  for (let attempt = 0; ; attempt++) {
    try {
      const agent = await callAgent(dataDir, '/advisory/offer', { body, timeoutMs: 30_000 }) as OfferOutcome
      // an agent with advisories off never touches the trust state: this process writes it alone
      if (!agent.accepted && agent.code === ADVISORIES_OFF) return { advisoriesOff: true }
      return { agent }
    } catch (err) {
      if (!(err instanceof NoAgentError)) throw err
    }
    try {
      return { lock: await DataDirLock.acquire(dataDir) }
    } catch (err) {
      if (!(err instanceof AgentRunningError) || attempt >= 40) throw err
      await new Promise(resolve => setTimeout(resolve, 500))
    }
  }
}

export function addDeployCommands (program: Command): void {
  const globals = (): Globals => program.opts<Globals>()
  const json = (v: unknown): void => out(JSON.stringify(v, null, 2))
  const deploy = program.command('deploy').description('the deployment channel: keys, signed advisories, stick bundles (docs/deployment.md)')

  deploy.command('keygen')
    .description('make a deployment directory: an offline root key, advisory and lease signers, root v1')
    .requiredOption('--out <dir>', 'the deployment directory (keep it offline)')
    .option('--deployment <name>', 'a name for people', 'xo-mesh deployment')
    .option('--root-keys <n>', 'root keys to make (default 1)', '1')
    .option('--root-threshold <n>', 'root keys that must sign a new root version (default 1)', '1')
    .option('--expires <duration>', 'root v1 expiry: 365d, or an ISO date', '365d')
    .action(async (opts: { out: string, deployment: string, rootKeys: string, rootThreshold: string, expires: string }) => {
      const now = wallClock()
      const d = await keygen(resolve(opts.out), { now, deployment: opts.deployment, rootKeys: Number(opts.rootKeys), rootThreshold: Number(opts.rootThreshold), expiresMs: parseExpiry(opts.expires, now) })
      const root = d.roots[0]!.doc
      const rootKeys = root.roles.root.keyids.map(id => publicKeyHex(root.keys[id]!))
      if (globals().json === true) return json({ dir: opts.out, version: 1, root_keys: rootKeys, roles: root.roles })
      out(`made root v1 in ${opts.out} (private keys in keys/, mode 0600; keep them offline)`)
      out('provision laptops with the root key (config.yaml, advisory.root_key):')
      for (const k of rootKeys) out(k)
    })

  deploy.command('rotate')
    .description('replace a role\'s keys: root v N+1 signed by the root keys of N and of N+1')
    .requiredOption('--out <dir>', 'the deployment directory')
    .addOption(new Option('--role <role>', 'the role whose keys change').choices([...ROLE_NAMES]).makeOptionMandatory())
    .option('--expires <duration>', 'the new root\'s expiry', '365d')
    .action(async (opts: { out: string, role: RoleName, expires: string }) => {
      const now = wallClock()
      const d = await openDeployment(resolve(opts.out))
      const r = await rotate(d, opts.role, { now, expiresMs: parseExpiry(opts.expires, now) })
      if (globals().json === true) return json({ root: r.root.doc.version, snapshot: r.snapshot?.doc.version ?? null })
      out(`root v${r.root.doc.version}: new ${opts.role} key ${r.root.doc.roles[opts.role].keyids[0]}`)
      if (r.snapshot !== undefined) out(`advisories signed again with the new key as snapshot v${r.snapshot.doc.version}`)
    })

  deploy.command('advise')
    .description('issue the next advisory snapshot with this build advised (same name: replaced)')
    .argument('<cid>', 'the build (complete in --data\'s store: its signed size is computed there)')
    .requiredOption('--out <dir>', 'the deployment directory')
    .requiredOption('--name <name>', 'the advisory\'s name (e.g. the build name)')
    .addOption(new Option('--kind <kind>', 'what the build is').choices([...ADVISORY_KINDS]).makeOptionMandatory())
    .addOption(new Option('--priority <p>', 'fetch order').choices([...PRIORITIES]).default('normal'))
    .option('--target <key=values...>', 'school=…, group=…, model=…, serial=…, build=<cid> (comma-separated; repeat to combine)')
    .option('--rollout <waves>', 'staged rollout, e.g. 10%@0h,100%@24h: the share of laptops (in all) that may start so long after the snapshot is issued')
    .option('--max-failed <percent>', 'a staged rollout halts where at least this percent of the install results seen failed (default 10)')
    .option('--expires <duration>', 'the snapshot\'s expiry: 30d, 12h, or an ISO date', '30d')
    .action(async (cidText: string, opts: { out: string, name: string, kind: AdvisoryKind, priority: Priority, target?: string[], rollout?: string, maxFailed?: string, expires: string }) => {
      const now = wallClock()
      const build: CID = parseCid(cidText)
      const repo = await Repo.open(resolve(globals().data ?? defaultDataDir()))
      const { present, missing } = await buildCids(repo.store, build)
      if (missing.length > 0) throw new InvalidInputError(`build ${build} is not complete in this data directory (${missing.length} block(s) missing): its signed size cannot be computed`)
      let size = 0
      for (const c of present) size += await repo.store.size(c) ?? 0
      const advisory: Advisory = { build, name: opts.name, kind: opts.kind, size, priority: opts.priority, targets: parseTargets(opts.target ?? []) }
      if (opts.rollout !== undefined) advisory.rollout = { waves: parseRollout(opts.rollout) }
      if (opts.maxFailed !== undefined) {
        const f = Number(opts.maxFailed.replace(/%$/, ''))
        if (!Number.isInteger(f) || f < 1 || f > 100) throw new InvalidInputError(`--max-failed is a percent from 1 to 100, not ${JSON.stringify(opts.maxFailed)}`)
        advisory.rollout = { waves: advisory.rollout?.waves ?? [{ percent: 100, after_s: 0 }], max_failed_percent: f }
      }
      const d = await openDeployment(resolve(opts.out))
      const s = await advise(d, advisory, { now, expiresMs: parseExpiry(opts.expires, now) })
      if (globals().json === true) return json(snapshotJson(s))
      for (const l of describe(s)) out(l)
    })

  deploy.command('withdraw')
    .description('issue the next advisory snapshot without the named advisory')
    .argument('<name>', 'the advisory')
    .requiredOption('--out <dir>', 'the deployment directory')
    .option('--expires <duration>', 'the snapshot\'s expiry', '30d')
    .action(async (name: string, opts: { out: string, expires: string }) => {
      const now = wallClock()
      const s = await withdraw(await openDeployment(resolve(opts.out)), name, { now, expiresMs: parseExpiry(opts.expires, now) })
      if (globals().json === true) return json(snapshotJson(s))
      for (const l of describe(s)) out(l)
    })

  deploy.command('bundle')
    .description('write the current snapshot and every root version as a CAR file for a USB stick')
    .requiredOption('--out <dir>', 'the deployment directory')
    .requiredOption('-o, --output <file>', 'the .car file to write')
    .action(async (opts: { out: string, output: string }) => {
      const d = await openDeployment(resolve(opts.out))
      if (d.snapshot === undefined) throw new TrustError('ERR_NO_ADVISORY', 'no snapshot issued yet (xo-mesh deploy advise …)')
      const bytes = await writeTrustBundle(resolve(opts.output), { snapshot: d.snapshot.bytes, roots: d.roots.map(r => r.bytes) })
      if (globals().json === true) return json({ file: opts.output, snapshot: d.snapshot.doc.version, roots: d.roots.length, bytes })
      out(`wrote ${opts.output}: snapshot v${d.snapshot.doc.version}, root versions 1-${d.roots.length}, ${humanBytes(bytes)}`)
    })

  deploy.command('accept')
    .description('on a laptop: verify a stick\'s snapshot bundle against the trusted root and keep it if every rule holds')
    .argument('<file>', 'the .car file (xo-mesh deploy bundle)')
    .option('--root-key <hex>', 'the provisioned root public key (first use only; later the stored state is the trust)')
    .option('--school <s>').option('--group <g>').option('--model <m>').option('--serial <s>')
    .option('--current <cid...>', 'builds this laptop runs')
    .action(async (file: string, opts: { rootKey?: string, school?: string, group?: string, model?: string, serial?: string, current?: string[] }) => {
      const dataDir = resolve(globals().data ?? defaultDataDir())
      // the key given, else the one the agent's config provisions
      let keyText = opts.rootKey
      if (keyText === undefined) {
        const { loadConfig } = await import('../agent/config.ts')
        keyText = (await loadConfig(dataDir).catch(() => undefined))?.advisory.root_key ?? undefined
      }
      const provisioned = keyText !== undefined ? parsePublicKeyHex(keyText) : undefined
      const bundle = await readTrustBundle(resolve(file))
      if ('ok' in bundle) {
        process.stderr.write(`xo-mesh: refused ${file}: ${bundle.code}: ${bundle.reason}\n`)
        process.exitCode = 3
        return
      }
      // One writer of DATA/trust/state.cbor: the agent when one runs here (it verifies and persists the stick's
      // snapshot like one from a peer), else this command, holding the agent's lock so that none starts meanwhile.
      const owner = await trustStateOwner(dataDir, bundle)
      let result: { ok: true, state: TrustState, snapshot: Snapshot, changed: boolean } | { ok: false, code: string, reason: string }
      const notes: string[] = []
      if (owner.agent !== undefined) {
        const o = owner.agent
        const state = await loadState(dataDir)
        if (o.accepted && state?.snapshot !== undefined) result = { ok: true, state, snapshot: state.snapshot, changed: o.changed }
        else result = { ok: false, code: o.accepted ? 'malformed' : o.code, reason: o.accepted ? 'the agent kept no snapshot' : o.reason }
        notes.push('verified and kept by the agent running on this data directory')
      } else {
        try {
          const state = await loadState(dataDir, provisioned)
          if (state === undefined) throw new TrustError('ERR_NOT_PROVISIONED', `${dataDir} trusts no root yet: give --root-key or set advisory.root_key in config.yaml (the deployment's root.pub)`)
          const r = acceptSnapshot(state, bundle.snapshot, bundle.roots, wallClock())
          // persisted before anything is used: walked roots and the clock even on refusal
          await saveState(dataDir, r.state)
          for (const x of r.roots.adopted) notes.push(`root v${x.doc.version} trusted`)
          for (const x of r.roots.rejections) notes.push(`root refused: ${x.code}: ${x.reason}`)
          if (r.roots.dropped !== undefined) notes.push(r.roots.dropped)
          result = r
          if (owner.advisoriesOff === true) notes.push('the agent running here has advisories off (no advisory.root_key): it uses this trust state once restarted with the root key')
        } finally {
          await owner.lock?.release()
        }
      }
      if (!result.ok) {
        if (globals().json === true) json({ accepted: false, code: result.code, reason: result.reason, notes })
        for (const n of notes) process.stderr.write(`xo-mesh: ${n}\n`)
        process.stderr.write(`xo-mesh: refused ${file}: ${result.code}: ${result.reason}\n`)
        process.exitCode = 3
        return
      }
      const device: Device = {
        ...(opts.school !== undefined ? { school: opts.school } : {}),
        ...(opts.group !== undefined ? { group: opts.group } : {}),
        ...(opts.model !== undefined ? { model: opts.model } : {}),
        ...(opts.serial !== undefined ? { serial: opts.serial } : {}),
        current: (opts.current ?? []).map(parseCid)
      }
      const t = advisoriesFor(result.snapshot.doc, device)
      if (globals().json === true) return json({ accepted: true, changed: result.changed, root: result.state.root.doc.version, snapshot: snapshotJson(result.snapshot), mine: t.mine.map(a => a.name), others: t.others.map(o => ({ name: o.advisory.name, reason: o.reason })), notes })
      for (const n of notes) out(n)
      out(result.changed ? `accepted advisory snapshot v${result.snapshot.doc.version} (root v${result.state.root.doc.version})` : `advisory snapshot v${result.snapshot.doc.version} is already trusted`)
      for (const a of t.mine) out(`  for this laptop: ${a.name} (${a.kind}, ${a.build})`)
      for (const o of t.others) out(`  not for this laptop: ${o.advisory.name}: ${o.reason}`)
    })

  deploy.command('show')
    .description('the advisories: of a deployment directory (--out), else the ones this data directory trusts')
    .option('--out <dir>', 'a deployment directory')
    .action(async (opts: { out?: string }) => {
      if (opts.out !== undefined) {
        const d = await openDeployment(resolve(opts.out))
        const root = d.roots[d.roots.length - 1]!.doc
        if (globals().json === true) return json({ root: root.version, root_expires: new Date(root.expires).toISOString(), roles: root.roles, snapshot: d.snapshot === undefined ? null : snapshotJson(d.snapshot) })
        out(`root v${root.version}, expires ${new Date(root.expires).toISOString()}`)
        for (const r of ROLE_NAMES) out(`  ${r}: ${root.roles[r].threshold} of ${root.roles[r].keyids.map(k => k.slice(0, 16)).join(', ')}`)
        if (d.snapshot !== undefined) for (const l of describe(d.snapshot)) out(l)
        return
      }
      const dataDir = resolve(globals().data ?? defaultDataDir())
      const state = await loadState(dataDir)
      if (state === undefined) throw new TrustError('ERR_NOT_PROVISIONED', `${dataDir} trusts no root yet`)
      if (globals().json === true) return json({ root: state.root.doc.version, floor: state.floor, clock: new Date(state.clock).toISOString(), snapshot: state.snapshot === undefined ? null : snapshotJson(state.snapshot) })
      out(`trusted root v${state.root.doc.version}; highest snapshot version ${state.floor}; clock floor ${new Date(state.clock).toISOString()}`)
      if (state.snapshot !== undefined) for (const l of describe(state.snapshot)) out(l)
    })
}
