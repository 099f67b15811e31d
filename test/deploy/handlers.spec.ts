// The handlers on real files: a Sugar .xo bundle (a zip made here) is
// installed as <Name>.activity only over an older activity_version, and an
// unsafe or corrupt bundle installs nothing; config files are written where
// they differ and left alone where they match; the zip reader checks every
// CRC and refuses names that climb out of the folder.
import assert from 'node:assert/strict'
import { deflateRawSync, crc32 } from 'node:zlib'
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from '../support/cli.ts'
import { Repo } from '../../src/content/repo.ts'
import { addDirectory } from '../../src/content/add.ts'
import { readZip, safeEntryName } from '../../src/content/zip.ts'
import { activityHandler } from '../../src/agent/reconcile/activity.ts'
import { configHandler } from '../../src/agent/reconcile/config.ts'
import { osHandler } from '../../src/agent/reconcile/os.ts'
import { VERSIONS, applyBuild, currentVersion } from '../../src/content/apply.ts'
import { compareVersions, parseActivityVersion } from '../../src/agent/reconcile/activity-bundle.ts'
import type { HandlerContext } from '../../src/agent/reconcile/handler.ts'
import { silentLogger } from '../../src/net/logger.ts'
import type { Advisory } from '../../src/trust/index.ts'
import type { CID } from '../../src/content/cid.ts'

/** A zip of the given entries (deflated), made by hand: Unix mode bits in the external attributes. */
function zip (entries: Array<{ name: string, data?: string, mode?: number }>): Buffer {
  const locals: Buffer[] = []
  const centrals: Buffer[] = []
  let offset = 0
  for (const e of entries) {
    const data = Buffer.from(e.data ?? '')
    const packed = e.name.endsWith('/') ? Buffer.alloc(0) : deflateRawSync(data)
    const name = Buffer.from(e.name)
    const method = e.name.endsWith('/') ? 0 : 8
    const local = Buffer.alloc(30)
    local.writeUInt32LE(0x04034b50, 0); local.writeUInt16LE(20, 4); local.writeUInt16LE(method, 8)
    local.writeUInt32LE(crc32(data), 14); local.writeUInt32LE(packed.length, 18); local.writeUInt32LE(data.length, 22); local.writeUInt16LE(name.length, 26)
    const central = Buffer.alloc(46)
    central.writeUInt32LE(0x02014b50, 0); central.writeUInt16LE(0x0314, 4); central.writeUInt16LE(20, 6); central.writeUInt16LE(method, 10)
    central.writeUInt32LE(crc32(data), 16); central.writeUInt32LE(packed.length, 20); central.writeUInt32LE(data.length, 24); central.writeUInt16LE(name.length, 28)
    central.writeUInt32LE(((e.mode ?? (e.name.endsWith('/') ? 0o40755 : 0o100644)) << 16) >>> 0, 38); central.writeUInt32LE(offset, 42)
    locals.push(local, name, packed)
    centrals.push(central, name)
    offset += 30 + name.length + packed.length
  }
  const cd = Buffer.concat(centrals)
  const end = Buffer.alloc(22)
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(entries.length, 8); end.writeUInt16LE(entries.length, 10)
  end.writeUInt32LE(cd.length, 12); end.writeUInt32LE(offset, 16)
  return Buffer.concat([...locals, cd, end])
}

function paint (version: string): Buffer {
  return zip([
    { name: 'Paint.activity/' },
    { name: 'Paint.activity/activity/activity.info', data: `[Activity]\nname = Paint\nbundle_id = org.laptop.Paint\nexec = sugar-activity3 paint.PaintActivity\nactivity_version = ${version}\n` },
    { name: 'Paint.activity/bin/paint', data: '#!/bin/sh\necho paint\n', mode: 0o100755 },
    { name: 'Paint.activity/paint.py', data: `VERSION = "${version}"\n` }
  ])
}

describe('deployment handlers', function () {
  this.timeout(60_000)
  let t: Awaited<ReturnType<typeof tempDir>>
  let repo: Repo
  let ctx: HandlerContext
  let n = 0

  before(async () => {
    t = await tempDir('xo-mesh-handlers-')
    repo = await Repo.open(join(t.dir, 'data'))
    ctx = { repo, dataDir: join(t.dir, 'data'), log: silentLogger, settings: { osRoot: join(t.dir, 'os'), postInstall: null, hookTimeoutMs: 10_000, activitiesDir: join(t.dir, 'Activities'), configRoot: join(t.dir, 'etc') } }
  })
  after(async () => { await t?.cleanup() })

  const build = async (files: Record<string, Buffer | string>, kind: 'activity' | 'content' | 'os'): Promise<CID> => {
    const dir = join(t.dir, `tree-${n++}`)
    for (const [p, data] of Object.entries(files)) {
      mkdirSync(join(dir, p, '..'), { recursive: true })
      writeFileSync(join(dir, p), data)
    }
    return (await addDirectory(repo.store, dir, { name: `b${n}`, kind })).cid
  }
  const advisory = (cid: CID, kind: Advisory['kind']): Advisory => ({ build: cid, name: 'x', kind, size: 1e9, priority: 'normal', targets: {} })

  it('installs a .xo bundle as <Name>.activity, replacing only an older activity_version', async () => {
    const h = activityHandler(ctx)
    const v7 = advisory(await build({ 'Paint-7.xo': paint('7') }, 'activity'), 'activity')
    assert.equal(await h.installed(v7), false)
    assert.match(await h.apply(v7), /Paint.activity 7 installed/)
    const home = join(ctx.settings.activitiesDir, 'Paint.activity')
    assert.match(readFileSync(join(home, 'paint.py'), 'utf8'), /"7"/)
    assert.equal(statSync(join(home, 'bin', 'paint')).mode & 0o777, 0o755, 'an executable stays executable')
    assert.equal(await h.installed(v7), true)
    const v12 = advisory(await build({ 'Paint-12.1.xo': paint('12.1') }, 'activity'), 'activity')
    assert.equal(await h.installed(v12), false)
    assert.match(await h.apply(v12), /12\.1 installed .* over 7/)
    assert.match(readFileSync(join(home, 'paint.py'), 'utf8'), /"12.1"/)
    const v9 = advisory(await build({ 'Paint-9.xo': paint('9') }, 'activity'), 'activity')
    assert.equal(await h.installed(v9), true, 'an older bundle counts as in place: a newer one is installed')
    assert.match(await h.apply(v9), /kept/)
    assert.match(readFileSync(join(home, 'paint.py'), 'utf8'), /"12.1"/)
  })

  it('installs nothing from a bundle with a corrupt entry or an unsafe name', async () => {
    const h = activityHandler(ctx)
    const good = paint('20')
    const corrupt = Buffer.from(good)
    const at = good.indexOf('paint.py') + 12 // inside the deflated data of the file after the name in its local header
    corrupt[at] = corrupt[at]! ^ 0xff
    for (const [what, bytes] of [['corrupt', corrupt], ['climbing', zip([{ name: 'Evil.activity/activity/activity.info', data: '[Activity]\nactivity_version = 1\n' }, { name: 'Evil.activity/../../x', data: 'x' }])]] as const) {
      const a = advisory(await build({ 'bad.xo': bytes }, 'activity'), 'activity')
      await assert.rejects(h.apply(a), /not a usable zip|does not inflate|CRC|unsafe|mismatch/, what)
    }
    assert.ok(!existsSync(join(ctx.settings.activitiesDir, 'Evil.activity')))
    assert.match(readFileSync(join(ctx.settings.activitiesDir, 'Paint.activity', 'paint.py'), 'utf8'), /"12.1"/, 'the installed copy is untouched')
  })

  it('writes config files where they differ, leaves matching ones, and is idempotent', async () => {
    const h = configHandler(ctx)
    const a = advisory(await build({ 'xo-mesh/school.conf': 'school = escuela-7\n', 'motd': 'hola\n' }, 'content'), 'config')
    mkdirSync(ctx.settings.configRoot, { recursive: true })
    writeFileSync(join(ctx.settings.configRoot, 'motd'), 'hola\n')
    writeFileSync(join(ctx.settings.configRoot, 'unrelated'), 'mine\n')
    assert.equal(await h.installed(a), false)
    assert.match(await h.apply(a), /1 of 2 config file/)
    assert.equal(readFileSync(join(ctx.settings.configRoot, 'xo-mesh', 'school.conf'), 'utf8'), 'school = escuela-7\n')
    assert.equal(readFileSync(join(ctx.settings.configRoot, 'unrelated'), 'utf8'), 'mine\n')
    assert.equal(await h.installed(a), true)
    assert.match(await h.apply(a), /0 of 2/)
  })

  it('an OS apply killed between its switch and its prune: in place, and tidy leaves the current version and the previous one', async () => {
    const h = osHandler(ctx)
    const root = ctx.settings.osRoot
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map(async v => advisory(await build({ 'etc/os-release': `VERSION=${v}\n`, 'lib/x.so': `x-${v}` }, 'os'), 'os')))
    await h.apply(a!)
    await h.apply(b!)
    // c written and switched to, as applyBuild does, by a run killed before it pruned: three versions
    const aside = join(t.dir, 'os-aside')
    await applyBuild(repo.store, c!.build, aside)
    renameSync(join(aside, VERSIONS, c!.build.toString()), join(root, VERSIONS, c!.build.toString()))
    symlinkSync(join(VERSIONS, c!.build.toString()), join(root, 'current.next'))
    renameSync(join(root, 'current.next'), join(root, 'current'))
    assert.equal(readdirSync(join(root, VERSIONS)).length, 3)
    assert.equal(await h.installed(c!), true, 'the switch was made: in place')
    await h.tidy!(c!)
    assert.deepEqual(readdirSync(join(root, VERSIONS)).sort(), [b!.build.toString(), c!.build.toString()].sort(), 'current and previous kept, the oldest removed')
    assert.equal((await currentVersion(root))?.toString(), c!.build.toString())
  })

  it('reads zips checking names and versions', () => {
    assert.equal(safeEntryName('A.activity/x'), true)
    for (const bad of ['/etc/passwd', 'a/../b', '..', 'a\\b', 'a//b']) assert.equal(safeEntryName(bad), false, bad)
    assert.deepEqual(readZip(paint('3')).map(e => e.name).slice(1), ['Paint.activity/activity/activity.info', 'Paint.activity/bin/paint', 'Paint.activity/paint.py'])
    assert.throws(() => readZip(Buffer.from('not a zip at all, not at all')), /end of central directory/)
    assert.ok(compareVersions(parseActivityVersion('12.1')!, parseActivityVersion('12')!) > 0)
    assert.ok(compareVersions(parseActivityVersion('7')!, parseActivityVersion('12')!) < 0)
    assert.equal(parseActivityVersion('seven'), undefined)
  })
})
