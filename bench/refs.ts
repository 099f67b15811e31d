/**
 * Reference measurements of an update: the bytes a laptop holding the OLD
 * tree must receive to end up with the NEW tree, by the tools our bundles are
 * compared with.
 *
 * - rsync -z (rsync's own protocol, the usual way to update a tree over a
 *   network). A real `rsync --daemon` serves NEW on 127.0.0.1 and a fresh
 *   copy of OLD is updated from it with
 *   `rsync -rlptz -c --no-whole-file --delete --stats rsync://…/mod/ dest/`.
 *   "Total bytes received" is what crossed the socket to the client: the
 *   download cost of the update. "Total bytes sent" (the client's block
 *   checksums going up) is recorded too. -c because npm trees give every
 *   file the same mtime, and rsync's quick check (size + mtime) would skip
 *   changed files of equal size; --delete so files removed in NEW go
 *   (nothing crosses the wire for it beyond the file list). Modern rsync
 *   negotiates the -z compressor (zstd on both ends here); the negotiated
 *   one is recorded; a second run forces zlib (--zc=zlib), which is what
 *   -z means to rsync < 3.2. The result is checked: dest must equal NEW.
 * - casync (content-defined chunking, the usual way to ship OS images by
 *   chunks). `casync make` with the default chunk sizes (16/64/256 KiB) and
 *   zstd chunks, for NEW and for OLD into separate stores. A holder of OLD
 *   (which has, or can make, OLD's chunks) downloads the new index plus the
 *   compressed chunks of NEW whose ids are not among OLD's. The result is
 *   checked: those chunks alone, with OLD as seed, must extract to NEW.
 * - zstd --patch-from (for information: a strong generic binary delta, the
 *   ceiling of what delta encoding alone gives; not a hard floor, since a
 *   scheme that knows files can do better on moved or repackaged data):
 *   `tar` of NEW compressed with
 *   `zstd -19 --long=27 --patch-from=<tar of OLD>`. Both tars are made with
 *   --sort=name. The patch is checked by decompressing it. It takes minutes
 *   on the big pairs and never changes, so it is cached (measureZstd).
 * - NEW's total file bytes (what a full copy weighs, uncompressed), and the
 *   size of NEW's whole casync store (a full download by casync).
 *
 * Every step is timed (wall clock, seconds).
 */
import { spawn } from 'node:child_process'
import { link, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createServer, connect } from 'node:net'
import { join, relative } from 'node:path'
import { CACHE_DIR, compareTrees, ensureDir, exists, log, run, sha256, timed, treeStats } from './util.js'

export interface RsyncResult {
  /** Bytes the client received: the download cost of the update. */
  received: number
  /** Bytes the client sent (file list acks and block checksums). */
  sent: number
  /** rsync's "Literal data": file bytes that had to be sent (before compression). */
  literal: number
  /** rsync's "Matched data": file bytes rebuilt from the old copy. */
  matched: number
  filesTransferred: number
  /** The compressor -z negotiated (e.g. "zstd (level 3)"). */
  compress: string
  command: string
  seconds: number
  /** dest equalled NEW after the run. */
  verified: boolean
}

export interface CasyncResult {
  /** Bytes to download: new index + new store's chunks not in old's store. */
  bytes: number
  indexBytes: number
  chunksBytes: number
  newChunks: number
  totalChunks: number
  /** Compressed size of all of NEW's chunks (a full download). */
  storeBytes: number
  secondsMakeNew: number
  secondsMakeOld: number
  secondsExtract: number
  /** The missing chunks with OLD as seed extracted to a tree equal to NEW. */
  verified: boolean
}

export interface ZstdResult {
  bytes: number
  command: string
  /** zstd's version line. */
  version: string
  secondsTar: number
  /** Compression time (of the run that measured it, when cached). */
  seconds: number
  verified: boolean
  /** Taken from .bench/cache/refs/ (same trees, zstd version and command). */
  cached: boolean
}

export interface RefsOptions {
  /** Recompute what is cached (the zstd patch). */
  fresh?: boolean
}

export interface RefsResult {
  newBytes: number
  newFiles: number
  oldBytes: number
  oldFiles: number
  rsync: RsyncResult
  /** rsync -z with zlib forced, as rsync < 3.2 (and -z on old systems) does. */
  rsyncZlib: RsyncResult
  casync: CasyncResult
  zstd: ZstdResult
}

/** A TCP port free on 127.0.0.1 right now. */
function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      srv.close(() => {
        if (addr && typeof addr === 'object') resolve(addr.port)
        else reject(new Error('no port'))
      })
    })
  })
}

/** Resolves once something accepts connections on 127.0.0.1:port. */
async function waitForPort (port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1')
      s.once('connect', () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`rsync daemon did not listen on port ${port}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** "Total bytes received: 250,533" → 250533 (rsync prints thousands separators). */
function statNumber (text: string, label: string): number {
  const m = new RegExp(`^${label}:\\s*([\\d,.]+)`, 'm').exec(text)
  if (!m?.[1]) throw new Error(`rsync --stats: no "${label}" in output:\n${text}`)
  return Number(m[1].replace(/[,.]/g, ''))
}

/**
 * rsync -z from a daemon serving NEW into a fresh copy of OLD. `compressor`
 * forces one (`--zc=`, e.g. 'zlib', the only one of rsync < 3.2); by default
 * rsync negotiates its best.
 */
export async function measureRsync (oldDir: string, newDir: string, work: string, compressor?: string): Promise<RsyncResult> {
  const dest = join(work, 'rsync-dest')
  await rm(dest, { recursive: true, force: true })
  await run('cp', ['-a', oldDir, dest])
  const port = await freePort()
  const conf = join(work, 'rsyncd.conf')
  const uid = process.getuid?.()
  const gid = process.getgid?.()
  await writeFile(conf, [
    `pid file = ${join(work, 'rsyncd.pid')}`,
    `log file = ${join(work, 'rsyncd.log')}`,
    'use chroot = no',
    // with chroot off, rsync would otherwise rewrite symlinks it serves
    'munge symlinks = no',
    // as root the daemon would drop to "nobody"; serve as ourselves instead
    ...(uid === 0 ? [`uid = ${uid}`, `gid = ${gid}`] : []),
    '[mod]',
    `path = ${newDir}`,
    'read only = yes',
    ''
  ].join('\n'))
  const daemon = spawn('rsync', ['--daemon', '--no-detach', `--config=${conf}`, '--address=127.0.0.1', `--port=${port}`], {
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let daemonErr = ''
  daemon.stderr.on('data', (b: Buffer) => { daemonErr += b.toString() })
  const exited = new Promise<void>(resolve => daemon.once('exit', () => resolve()))
  try {
    await Promise.race([
      waitForPort(port, 10_000),
      exited.then(() => { throw new Error(`rsync daemon exited: ${daemonErr}`) })
    ])
    const args = ['-rlptz', ...(compressor ? [`--zc=${compressor}`] : []), '-c', '--no-whole-file', '--delete', '--stats', '--debug=NSTR',
      `rsync://127.0.0.1:${port}/mod/`, `${dest}/`]
    const res = await run('rsync', args, { timeoutSeconds: 1800 })
    const out = res.stdout + res.stderr
    const compress = /Client negotiated compress: (.*)/.exec(out)?.[1]?.trim() ?? 'unknown'
    const diffs = await compareTrees(dest, newDir)
    if (diffs.length > 0) log(`  rsync: dest differs from NEW:\n    ${diffs.join('\n    ')}`)
    return {
      received: statNumber(out, 'Total bytes received'),
      sent: statNumber(out, 'Total bytes sent'),
      literal: statNumber(out, 'Literal data'),
      matched: statNumber(out, 'Matched data'),
      filesTransferred: statNumber(out, 'Number of regular files transferred'),
      compress,
      command: `rsync ${args.slice(0, -2).join(' ')} rsync://127.0.0.1:PORT/mod/ dest/`,
      seconds: res.seconds,
      verified: diffs.length === 0
    }
  } finally {
    if (daemon.exitCode === null && daemon.signalCode === null) {
      daemon.kill('SIGTERM')
      await exited
    }
    await rm(dest, { recursive: true, force: true })
  }
}

/** Chunk id → compressed size, for every chunk file of a casync store. */
async function listStore (store: string): Promise<Map<string, number>> {
  const chunks = new Map<string, number>()
  for (const sub of await readdir(store)) {
    if (!/^[0-9a-f]{4}$/.test(sub)) continue
    for (const f of await readdir(join(store, sub))) {
      if (!f.endsWith('.cacnk')) continue
      const st = await stat(join(store, sub, f))
      chunks.set(f.slice(0, -'.cacnk'.length), st.size)
    }
  }
  return chunks
}

/** casync with default chunking: new index + chunks of NEW missing from OLD's store. */
export async function measureCasync (oldDir: string, newDir: string, work: string): Promise<CasyncResult> {
  const newStore = join(work, 'new.castr')
  const oldStore = join(work, 'old.castr')
  const deltaStore = join(work, 'delta.castr')
  const newIdx = join(work, 'new.caidx')
  const oldIdx = join(work, 'old.caidx')
  const out = join(work, 'casync-out')
  for (const p of [newStore, oldStore, deltaStore, newIdx, oldIdx, out]) await rm(p, { recursive: true, force: true })
  const mkNew = await run('casync', ['make', `--store=${newStore}`, newIdx, newDir], { timeoutSeconds: 1800 })
  const mkOld = await run('casync', ['make', `--store=${oldStore}`, oldIdx, oldDir], { timeoutSeconds: 1800 })
  const [newChunks, oldChunks] = await Promise.all([listStore(newStore), listStore(oldStore)])
  let chunksBytes = 0
  let storeBytes = 0
  let count = 0
  // The download: the chunks OLD's holder lacks, gathered (hard links) into a
  // store of their own, so that extracting from it proves they are enough.
  await ensureDir(deltaStore)
  for (const [id, size] of newChunks) {
    storeBytes += size
    if (oldChunks.has(id)) continue
    chunksBytes += size
    count++
    const sub = join(deltaStore, id.slice(0, 4))
    await ensureDir(sub)
    await link(join(newStore, id.slice(0, 4), `${id}.cacnk`), join(sub, `${id}.cacnk`))
  }
  const indexBytes = (await stat(newIdx)).size
  const ex = await run('casync', ['extract', `--seed=${oldDir}`, `--store=${deltaStore}`, newIdx, out], { check: false, timeoutSeconds: 1800 })
  let verified = false
  if (ex.code !== 0) {
    log(`  casync extract failed: ${ex.stderr.trim().split('\n').slice(-5).join('\n    ')}`)
  } else {
    const diffs = await compareTrees(out, newDir)
    if (diffs.length > 0) log(`  casync: extracted tree differs from NEW:\n    ${diffs.join('\n    ')}`)
    verified = diffs.length === 0
  }
  for (const p of [newStore, oldStore, deltaStore, out]) await rm(p, { recursive: true, force: true })
  return {
    bytes: indexBytes + chunksBytes,
    indexBytes,
    chunksBytes,
    newChunks: count,
    totalChunks: newChunks.size,
    storeBytes,
    secondsMakeNew: mkNew.seconds,
    secondsMakeOld: mkOld.seconds,
    secondsExtract: ex.seconds,
    verified
  }
}

/**
 * `tar` of NEW compressed by zstd against the `tar` of OLD. This is the
 * slow reference (minutes for the image and the major jump) and fully
 * deterministic, so a verified result is cached under .bench/cache/refs/,
 * keyed by the two trees (their cache paths, which never change content),
 * zstd's version and the command; `fresh` recomputes it.
 */
export async function measureZstd (oldDir: string, newDir: string, work: string, fresh = false): Promise<ZstdResult> {
  const version = (await run('zstd', ['--version'])).stdout.trim()
  const args = ['-q', '-f', '-19', '--long=27', '--patch-from=OLD.tar', 'NEW.tar', '-o', 'PATCH']
  const key = sha256(JSON.stringify({ old: relative(CACHE_DIR, oldDir), new: relative(CACHE_DIR, newDir), version, args, tar: '--sort=name' }))
  const cacheFile = join(CACHE_DIR, 'refs', `zstd-${key.slice(0, 24)}.json`)
  if (!fresh && await exists(cacheFile)) {
    const hit = JSON.parse(await readFile(cacheFile, 'utf8')) as ZstdResult
    return { ...hit, cached: true }
  }
  const oldTar = join(work, 'old.tar')
  const newTar = join(work, 'new.tar')
  const patch = join(work, 'new.tar.zst')
  const check = join(work, 'check.tar')
  const tars = await timed(async () => {
    await run('tar', ['-cf', oldTar, '--sort=name', '-C', oldDir, '.'])
    await run('tar', ['-cf', newTar, '--sort=name', '-C', newDir, '.'])
  })
  const real = args.map(a => a.replace('OLD.tar', oldTar).replace('NEW.tar', newTar).replace('PATCH', patch))
  const res = await run('zstd', real, { timeoutSeconds: 1800 })
  const bytes = (await stat(patch)).size
  // zstd widens the window to cover OLD; let the decoder accept any window.
  const dec = await run('zstd', ['-q', '-f', '-d', '--long=31', `--patch-from=${oldTar}`, patch, '-o', check], { check: false, timeoutSeconds: 600 })
  const verified = dec.code === 0 && (await run('cmp', ['-s', check, newTar], { check: false })).code === 0
  if (!verified) log(`  zstd: patch did not decode to NEW's tar ${dec.stderr.trim()}`)
  for (const p of [oldTar, newTar, patch, check]) await rm(p, { force: true })
  const result: ZstdResult = {
    bytes,
    command: 'tar -c --sort=name NEW | zstd -19 --long=27 --patch-from=<tar -c --sort=name OLD>',
    version,
    secondsTar: tars.seconds,
    seconds: res.seconds,
    verified,
    cached: false
  }
  if (verified) {
    await ensureDir(join(CACHE_DIR, 'refs'))
    await writeFile(cacheFile, JSON.stringify(result, null, 2) + '\n')
  }
  return result
}

/** All references for one pair; `work` is a scratch folder (created, left empty). */
export async function measureRefs (oldDir: string, newDir: string, work: string, opts: RefsOptions = {}): Promise<RefsResult> {
  await ensureDir(work)
  const [o, n] = await Promise.all([treeStats(oldDir), treeStats(newDir)])
  log('  rsync -z …')
  const rsync = await measureRsync(oldDir, newDir, work)
  log(`  rsync -z: received ${rsync.received} B, sent ${rsync.sent} B, ${rsync.compress} (${rsync.seconds.toFixed(1)} s)`)
  const rsyncZlib = await measureRsync(oldDir, newDir, work, 'zlib')
  log(`  rsync -z --zc=zlib: received ${rsyncZlib.received} B, sent ${rsyncZlib.sent} B (${rsyncZlib.seconds.toFixed(1)} s)`)
  log('  casync …')
  const casync = await measureCasync(oldDir, newDir, work)
  log(`  casync: ${casync.bytes} B (${casync.newChunks}/${casync.totalChunks} chunks new)`)
  log('  zstd --patch-from …')
  const zstd = await measureZstd(oldDir, newDir, work, opts.fresh)
  log(`  zstd --patch-from: ${zstd.bytes} B (${zstd.seconds.toFixed(1)} s${zstd.cached ? ', cached' : ''})`)
  return { newBytes: n.bytes, newFiles: n.files, oldBytes: o.bytes, oldFiles: o.files, rsync, rsyncZlib, casync, zstd }
}
