/**
 * `npm run bench -- delta`: what an update costs in bytes.
 *
 * For each version pair of real trees (trees.ts: a many-file patch, a patch
 * of big bundled files, a patch of one native binary, an image of many
 * packages where three move, a major jump), the bytes a laptop holding OLD
 * must receive to hold NEW:
 *   - by rsync -z, casync and zstd --patch-from (refs.ts: the references);
 *   - by our CAR update bundle (ours-delta.ts: `xo-mesh export --have`).
 * Ratios ours/rsync and ours/casync below 1 mean our bundle is smaller.
 * Every reference and our bundle are checked to really rebuild NEW; a figure
 * that did not is marked with "!".
 *
 * Options: --pairs=id,id (a subset; ids in trees.ts), --no-ours (references
 * only), --fresh (recompute the cached zstd patch sizes).
 *
 * Every run re-measures rsync, casync and ours; rsync's figure moves by a
 * few hundred bytes between runs.
 */
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { measureOurs, type OursResult } from './ours-delta.js'
import { measureRefs, type RefsResult } from './refs.js'
import { preparePair, selectPairs } from './trees.js'
import { formatBytes, formatTable, log, timed, WORK_DIR, type BenchContext, type BenchOutput } from './util.js'

export const description = 'update bytes: our CAR bundle vs rsync -z, casync, zstd --patch-from on real version pairs'

interface PairResult {
  id: string
  kind: string
  label: string
  refs: RefsResult
  ours: OursResult | null
  seconds: { refs: number, ours: number }
}

function ratio (a: number | undefined, b: number): string {
  return a === undefined ? 'n/a' : (a / b).toFixed(2)
}

/** A byte count, marked "!" when the tool's result did not rebuild NEW. */
function checked (bytes: number, verified: boolean): string {
  return formatBytes(bytes) + (verified ? '' : ' !')
}

export async function run (ctx: BenchContext): Promise<BenchOutput> {
  const ids = (ctx.options.get('pairs') ?? '').split(',').filter(s => s.length > 0)
  const withOurs = !ctx.options.has('no-ours')
  const fresh = ctx.options.has('fresh')
  const defs = selectPairs(ids)
  const results: PairResult[] = []
  for (const def of defs) {
    log(`[delta] ${def.id}: ${def.label}`)
    const pair = await preparePair(def)
    const work = join(WORK_DIR, 'delta', def.id)
    await rm(work, { recursive: true, force: true })
    const refs = await timed(() => measureRefs(pair.oldDir, pair.newDir, work, { fresh }))
    const ours = await timed(async () => withOurs ? await measureOurs(pair.oldDir, pair.newDir, join(work, 'ours')) : undefined)
    if (ours.value) log(`  ours: ${ours.value.bytes} B, rebuilt ${ours.value.rebuilt} (${ours.value.seconds.toFixed(1)} s)`)
    await rm(work, { recursive: true, force: true })
    results.push({
      id: def.id,
      kind: def.kind,
      label: def.label,
      refs: refs.value,
      ours: ours.value ?? null,
      seconds: { refs: refs.seconds, ours: ours.seconds }
    })
  }

  const pairsTable = formatTable(
    ['pair', 'kind', 'versions', 'old files', 'new files'],
    results.map(r => [r.id, r.kind, r.label, String(r.refs.oldFiles), String(r.refs.newFiles)]),
    'lllrr'
  )
  const bytesTable = formatTable(
    ['pair', 'new size', 'rsync -z', 'casync', 'zstd patch', 'ours', 'ours/rsync', 'ours/casync', 'rebuilt'],
    results.map(r => {
      const o = r.ours ?? undefined
      return [
        r.id,
        formatBytes(r.refs.newBytes),
        checked(r.refs.rsync.received, r.refs.rsync.verified),
        checked(r.refs.casync.bytes, r.refs.casync.verified),
        checked(r.refs.zstd.bytes, r.refs.zstd.verified),
        o ? formatBytes(o.bytes) : 'n/a',
        ratio(o?.bytes, r.refs.rsync.received),
        ratio(o?.bytes, r.refs.casync.bytes),
        o ? (o.rebuilt ? 'yes' : 'NO') : 'n/a'
      ]
    })
  )
  const detailTable = formatTable(
    ['pair', 'rsync sent', 'rsync zlib', 'casync chunks', 'casync full', 't rsync', 't casync', 't zstd', 't ours'],
    results.map(r => [
      r.id,
      formatBytes(r.refs.rsync.sent),
      checked(r.refs.rsyncZlib.received, r.refs.rsyncZlib.verified),
      `${r.refs.casync.newChunks}/${r.refs.casync.totalChunks}`,
      formatBytes(r.refs.casync.storeBytes),
      `${r.refs.rsync.seconds.toFixed(1)} s`,
      `${(r.refs.casync.secondsMakeNew + r.refs.casync.secondsMakeOld + r.refs.casync.secondsExtract).toFixed(1)} s`,
      `${r.refs.zstd.seconds.toFixed(1)} s${r.refs.zstd.cached ? ' (cached)' : ''}`,
      r.ours ? `${r.ours.seconds.toFixed(1)} s` : 'n/a'
    ])
  )
  const notes = [
    'rsync -z: bytes received by the client (download), -z as negotiated (zstd); "rsync sent": the client\'s',
    'checksums going up; "rsync zlib": received with -z forced to zlib (--zc=zlib, as rsync < 3.2).',
    'casync: new .caidx + compressed chunks not in OLD\'s store; "casync full": NEW\'s whole store.',
    'zstd patch: tar NEW | zstd -19 --long=27 --patch-from=tar OLD (best generic binary delta, for information).',
    '"!" marks a figure whose tool did not rebuild NEW exactly. "t casync": make new + make old + extract.'
  ].join('\n')
  return {
    tables: [pairsTable, bytesTable, detailTable, notes],
    results: { pairs: results }
  }
}
