// Real agents for the deployment tests: a deployment directory, a publisher
// (the first agent's data directory, which holds the builds), agents on
// loopback with fixed ports and static peers (no mDNS), and the reads the
// tests make of a laptop: the deploy view, the OS root's current link, the
// outbox.
import assert from 'node:assert/strict'
import { mkdir, readFile, readlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { lastLine } from '../support/cli.ts'
import { AgentProcess, apiGet, xo } from '../agent/support.ts'
import { byteStream, freePort } from '../net/support.ts'

/** Runs xo-mesh and fails the test unless it exits 0; returns stdout. */
export async function ok (args: string[]): Promise<string> {
  const r = await xo(args, { timeoutMs: 120_000 })
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
  return r.stdout
}

/** A small OS tree: `files` files of `fileBytes` each, one that differs per version; `broken` adds the marker the test hook fails on. */
export async function osTree (dir: string, version: string, options: { files?: number, fileBytes?: number, broken?: boolean } = {}): Promise<void> {
  await mkdir(join(dir, 'lib'), { recursive: true })
  await mkdir(join(dir, 'etc'), { recursive: true })
  for (let i = 0; i < (options.files ?? 4); i++) await writeFile(join(dir, 'lib', `lib${i}.so`), byteStream(`${version}/${i}`)(options.fileBytes ?? 20_000))
  await writeFile(join(dir, 'etc', 'os-release'), `VERSION="${version}"\n`)
  if (options.broken === true) await writeFile(join(dir, 'BROKEN'), 'the post-install hook refuses this build\n')
}

/** A post-install hook that leaves a trace and fails on builds holding BROKEN (the injected failure). */
export const TEST_HOOK = 'touch "$XO_MESH_ROOT/../hook-ran-$XO_MESH_BUILD"; test ! -e "$XO_MESH_VERSION_DIR/BROKEN"'

export interface DeployView {
  advisories: Array<{ name: string, build: string, phase: string, reason: string, wave: number | null }>
  reports: Array<{ build: string, ok: boolean, error?: string, installed_at: number, wave?: number }>
}

export class Classroom {
  readonly agents: AgentProcess[] = []
  readonly urls: string[] = []
  readonly ports: number[] = []
  rootKey = ''
  readonly root: string

  constructor (root: string) {
    this.root = root
  }

  dir (n: string): string { return join(this.root, n) }
  data (i: number): string { return this.dir(`laptop-${i}`) }

  /** Makes the deployment (keys) in DIR/dep. */
  async keygen (): Promise<void> {
    await ok(['deploy', 'keygen', '--out', this.dir('dep')])
    this.rootKey = (await readFile(join(this.dir('dep'), 'root.pub'), 'utf8')).trim()
  }

  /** Adds a tree as a build on laptop 0 (the publisher's laptop); returns its CID. */
  async add (tree: string, name: string): Promise<string> {
    return lastLine(await ok(['--data', this.data(0), 'add', tree, '--name', name, '--kind', 'os']))
  }

  /** Writes each laptop's config: provisioned, the test hook, quick passes; extra YAML for laptop 0. */
  async configure (n: number, extra0 = ''): Promise<void> {
    for (let i = 0; i < n; i++) {
      await mkdir(this.data(i), { recursive: true })
      this.ports[i] ??= await freePort()
      await writeFile(join(this.data(i), 'config.yaml'), [
        'advisory:', `  root_key: "${this.rootKey}"`, '  school: escuela-7', '  model: XO-4',
        'deploy:', `  post_install: '${TEST_HOOK}'`, '  interval_s: 2', '  activities_dir: Activities',
        i === 0 ? extra0 : ''
      ].join('\n') + '\n')
    }
  }

  /** Starts laptop i (peers: the one before it, a line A←B←C…, or those given). */
  start (i: number, peers: number[] = i === 0 ? [] : [i - 1]): AgentProcess {
    const a = new AgentProcess(this.data(i), ['--no-mdns', '--api', '127.0.0.1:0', '--listen', `/ip4/127.0.0.1/tcp/${this.ports[i]}`, ...peers.flatMap(p => ['--peer', `/ip4/127.0.0.1/tcp/${this.ports[p]}`])])
    this.agents[i] = a
    return a
  }

  async started (i: number): Promise<void> {
    this.urls[i] = await this.agents[i]!.started(60_000)
  }

  async deploy (i: number): Promise<DeployView> {
    return (await apiGet(this.urls[i]!, '/deploy')).body as DeployView
  }

  async get (i: number, path: string): Promise<Record<string, unknown>> {
    return (await apiGet(this.urls[i]!, path)).body as Record<string, unknown>
  }

  /** The build laptop i's OS root points at, or undefined. */
  async current (i: number): Promise<string | undefined> {
    try { return (await readlink(join(this.data(i), 'os', 'current'))).split('/').pop() } catch { return undefined }
  }

  /** Writes DIR/dep's current snapshot to a stick and accepts it on laptop i (through its agent). */
  async stick (i: number, name: string): Promise<void> {
    await ok(['deploy', 'bundle', '--out', this.dir('dep'), '-o', this.dir(name)])
    const out = await ok(['--data', this.data(i), 'deploy', 'accept', this.dir(name)])
    assert.match(out, /accepted advisory snapshot|verified and kept by the agent/)
  }

  async stop (): Promise<void> {
    await Promise.all(this.agents.map(async a => { await a?.kill() }))
  }
}
