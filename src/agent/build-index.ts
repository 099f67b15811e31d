// Watches DATA/builds (the index `xo-mesh add` and `import` write into, by
// atomic rename) and publishes `build:added`, so a build added on the command
// line while the agent runs is offered to peers at once.
import { watch, type FSWatcher } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseCid } from '../content/cid.ts'
import type { Repo } from '../content/repo.ts'
import type { EventBus } from '../net/events.ts'
import type { Logger } from '../net/logger.ts'

export class BuildIndexWatcher {
  private readonly repo: Repo
  private readonly events: EventBus
  private readonly log: Logger
  private readonly seen = new Set<string>()
  private watcher?: FSWatcher

  constructor (components: { repo: Repo, events: EventBus, logger: Logger }) {
    this.repo = components.repo
    this.events = components.events
    this.log = components.logger.child('builds')
  }

  async start (): Promise<void> {
    for (const b of await this.repo.builds()) this.seen.add(b.cid)
    const dir = join(this.repo.dir, 'builds')
    try {
      this.watcher = watch(dir, (_type, name) => { if (name !== null) void this.check(dir, name) })
      this.watcher.on('error', err => { this.log.warn('stopped watching the build index', { error: err }) })
    } catch (err) {
      this.log.warn('cannot watch the build index: builds added while the agent runs are seen at the next status', { error: err })
    }
  }

  stop (): void {
    this.watcher?.close()
  }

  private async check (dir: string, name: string): Promise<void> {
    if (name.endsWith('.tmp') || this.seen.has(name)) return
    try {
      parseCid(name)
      const summary = JSON.parse(await readFile(join(dir, name), 'utf8')) as { name?: unknown }
      if (this.seen.has(name)) return
      this.seen.add(name)
      const buildName = typeof summary.name === 'string' ? summary.name : ''
      this.log.info('build added', { cid: name, name: buildName })
      this.events.emit('build:added', { cid: name, name: buildName })
    } catch {
      // not a build summary (yet): a later event or the next status sees it
    }
  }
}
