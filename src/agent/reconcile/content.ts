// Content builds stay in the block store, where peers fetch them and Sugar's
// content readers find them through the API: "installing" one is pinning it,
// one small file DATA/pins/<cid> naming the advisory, written atomically, so
// that a clean-up of the store keeps it while it is advised.
import { existsSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { writeAtomic } from '../../trust/index.ts'
import type { Advisory } from '../../trust/index.ts'
import type { HandlerContext, KindHandler } from './handler.ts'

export const PINS_DIR = 'pins'

export function contentHandler (ctx: HandlerContext): KindHandler & { unpinAllBut: (keep: Set<string>) => string[] } {
  const pins = join(ctx.dataDir, PINS_DIR)
  return {
    async installed (a: Advisory): Promise<boolean> {
      return existsSync(join(pins, a.build.toString())) && existsSync(join(ctx.repo.dir, 'builds', a.build.toString()))
    },
    async apply (a: Advisory): Promise<string> {
      await writeAtomic(join(pins, a.build.toString()), new TextEncoder().encode(JSON.stringify({ advisory: a.name, pinned: new Date().toISOString() }) + '\n'))
      return `pinned in the store (${a.size} bytes)`
    },
    /** Removes pins of builds no longer advised; returns the CIDs unpinned. */
    unpinAllBut (keep: Set<string>): string[] {
      let names: string[]
      try { names = readdirSync(pins) } catch { return [] }
      const gone = names.filter(n => !n.includes('.') && !keep.has(n))
      for (const n of gone) rmSync(join(pins, n), { force: true })
      return gone
    }
  }
}
