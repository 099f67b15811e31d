// Scenarios are data (Shadow, ns-3): a YAML file parsed here into typed
// values, with errors that name the key and its line. The format is
// docs/simulator.md's; interfaces.md has the outline.
import { LineCounter, Scalar, YAMLMap, YAMLSeq, isMap, isScalar, isSeq, parseDocument, type Node as YamlNode } from 'yaml'
import { RATES, type Standard } from './phy.ts'

/** A bad scenario: message names the file, line and key. */
export class ScenarioError extends Error {
  override name = 'ScenarioError'
}

export interface Uplink {
  upMbps: number
  downMbps: number
  /** [start, end) in ms since the run's start; an empty list means always. */
  windows: Array<[number, number]>
}

export interface NodeSpec {
  count: number
  /** count nodes in every group (true) or in all (false). */
  perGroup: boolean
  role: 'xo' | 'server'
  power: 'battery' | 'ac'
  placement: 'random' | 'center'
  /** Battery level at the start, 0–1 (battery power only; undefined: drawn in [0.5, 1]). */
  battery: number | undefined
  /** Hours a full battery lasts while awake. */
  batteryHours: number
  /** Alternating awake and asleep spells, mean minutes each (exponential); undefined: never sleeps. */
  sleep: { awakeMin: number, asleepMin: number } | undefined
  mobile: boolean
  uplink: Uplink | undefined
}

export interface ContentSpec {
  name: string
  bytes: number
  /** When it appears, ms. */
  at: number
  /** Node names (node-K), 'uplink' (the mothership, reached through uplinks) or 'each-group' (the first node of every group). */
  on: string[]
}

export interface Scenario {
  name: string
  seed: number
  /** Simulated time, ms. */
  duration: number
  /** Clock time of the start, ms since midnight (uplink windows are clock times). */
  start: number
  radio: { standard: Standard, rateMbps: number, rangeM: number, loss: number, latencyMs: number }
  area: { widthM: number, heightM: number }
  groups: { count: number, widthM: number, heightM: number, columns: number, spacingM: number } | undefined
  nodes: NodeSpec[]
  content: ContentSpec[]
  churn: { joinLeavePerHour: number, awayMin: number }
  mobility: { speedMps: [number, number], pauseS: number, stepS: number }
  exchange: { maxPeers: number, uploadSlots: number | undefined, announceDelayMs: number | undefined }
  /** Run the election core on every laptop. */
  election: boolean
  /** Metrics sampling interval, ms. */
  sampleMs: number
  /** A signed advisory for one build, offered to `on` at `at` and spread by the advisory core (sim/advisory/); undefined: none. */
  advisory?: AdvisorySpec | undefined
  /**
   * 'groups': the groups share no air (checked), so each is simulated on its
   * own, with its own mothership, churn and random streams, and the parts can
   * run in several processes (sim/parts.ts); 'whole' (default): one engine.
   */
  parts?: 'whole' | 'groups'
}

export interface AdvisorySpec {
  /** When the advisory is offered on its first laptops, ms. */
  at: number
  /** Index in content of the build it names: laptops other than its sources hold (fetch) it only once the advisory reached them. */
  build: number
  /** Laptops it is offered on (node-K names). */
  on: string[]
  /** Time to apply the build once complete, ms ("installed" = complete + this). */
  applyMs: number
  /** Trickle's Imin (ms), doublings to Imax and k; undefined: the core's defaults. */
  iminMs: number | undefined
  doublings: number | undefined
  k: number | undefined
}

/** The number of nodes a scenario expands to. */
export function nodeCount (s: Scenario): number {
  let n = 0
  for (const spec of s.nodes) n += spec.perGroup ? spec.count * (s.groups?.count ?? 1) : spec.count
  return n
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 }
const SIZES: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 }

class Reader {
  readonly file: string
  readonly lines: LineCounter
  constructor (file: string, lines: LineCounter) {
    this.file = file
    this.lines = lines
  }

  fail (node: YamlNode | null | undefined, path: string, message: string): never {
    const pos = node?.range !== undefined && node.range !== null ? this.lines.linePos(node.range[0]) : undefined
    throw new ScenarioError(`${this.file}${pos !== undefined ? `:${pos.line}` : ''}: ${path}: ${message}`)
  }

  /** The keys of a mapping, refusing unknown ones. */
  map (node: unknown, path: string, known: readonly string[]): Map<string, { key: YamlNode, value: YamlNode | null }> {
    if (!isMap(node)) this.fail(node as YamlNode, path, 'expected a mapping')
    const out = new Map<string, { key: YamlNode, value: YamlNode | null }>()
    for (const pair of (node as YAMLMap).items) {
      const keyNode = pair.key as YamlNode
      const key = isScalar(keyNode) ? String(keyNode.value) : String(keyNode)
      const at = path === '' ? key : `${path}.${key}`
      if (!known.includes(key)) this.fail(keyNode, at, `unknown key (known here: ${known.join(', ')})`)
      if (out.has(key)) this.fail(keyNode, at, 'key given twice')
      out.set(key, { key: keyNode, value: pair.value as YamlNode | null })
    }
    return out
  }

  scalar (node: YamlNode | null, path: string): unknown {
    if (node === null || !isScalar(node)) this.fail(node, path, 'expected a single value')
    return (node as Scalar).value
  }

  number (node: YamlNode | null, path: string, opts: { min?: number, max?: number, integer?: boolean, above?: number } = {}): number {
    const v = this.scalar(node, path)
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(node, path, `expected a number, got ${JSON.stringify(v)}`)
    return this.check(node, path, v as number, opts)
  }

  check (node: YamlNode | null, path: string, v: number, opts: { min?: number, max?: number, integer?: boolean, above?: number }): number {
    if (opts.integer === true && !Number.isSafeInteger(v)) this.fail(node, path, `expected an integer, got ${v}`)
    if (opts.min !== undefined && v < opts.min) this.fail(node, path, `must be at least ${opts.min}, got ${v}`)
    if (opts.above !== undefined && !(v > opts.above)) this.fail(node, path, `must be more than ${opts.above}, got ${v}`)
    if (opts.max !== undefined && v > opts.max) this.fail(node, path, `must be at most ${opts.max}, got ${v}`)
    return v
  }

  string (node: YamlNode | null, path: string, choices?: readonly string[]): string {
    const v = this.scalar(node, path)
    if (typeof v !== 'string' || v === '') this.fail(node, path, `expected a string, got ${JSON.stringify(v)}`)
    if (choices !== undefined && !choices.includes(v as string)) this.fail(node, path, `expected one of ${choices.join(', ')}, got ${JSON.stringify(v)}`)
    return v as string
  }

  bool (node: YamlNode | null, path: string): boolean {
    const v = this.scalar(node, path)
    if (typeof v !== 'boolean') this.fail(node, path, `expected true or false, got ${JSON.stringify(v)}`)
    return v as boolean
  }

  /** "2h", "90m", "1h30m", "45s", "250ms" or a number of seconds; returns ms. */
  duration (node: YamlNode | null, path: string, opts: { above?: number } = { }): number {
    const v = this.scalar(node, path)
    let ms: number
    if (typeof v === 'number') ms = v * 1000
    else if (typeof v === 'string' && /^(\s*-?\d+(\.\d+)?\s*(ms|s|min|m|h|d)\s*)+$/.test(v)) {
      ms = 0
      for (const m of v.matchAll(/(-?\d+(?:\.\d+)?)\s*(ms|s|min|m|h|d)/g)) ms += Number(m[1]) * UNITS[m[2]!]!
    } else this.fail(node, path, `expected a duration such as 90s, 30m or 2h, got ${JSON.stringify(v)}`)
    if (ms < 0) this.fail(node, path, `must not be negative, got ${JSON.stringify(v)}`)
    return this.check(node, path, ms, opts)
  }

  /** "500MB", "1.5 GiB", "64KiB" or a number of bytes. */
  size (node: YamlNode | null, path: string): number {
    const v = this.scalar(node, path)
    let bytes: number
    if (typeof v === 'number') bytes = v
    else {
      const m = typeof v === 'string' ? /^\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v) : null
      const unit = SIZES[(m?.[2] ?? 'b').toLowerCase() || 'b']
      if (m === null || unit === undefined) this.fail(node, path, `expected a size such as 500MB or 64KiB, got ${JSON.stringify(v)}`)
      bytes = Number(m[1]) * unit
    }
    if (!(bytes > 0)) this.fail(node, path, `must be a positive size, got ${JSON.stringify(v)}`)
    return Math.round(bytes)
  }

  /** "HH:MM" → ms since midnight. */
  clock (node: YamlNode | null, text: string, path: string): number {
    const m = /^(\d{1,2}):(\d{2})$/.exec(text.trim())
    if (m === null || Number(m[1]) > 24 || Number(m[2]) > 59) this.fail(node, path, `expected a time of day HH:MM, got ${JSON.stringify(text)}`)
    return (Number(m[1]) * 60 + Number(m[2])) * 60_000
  }

  seq (node: YamlNode | null, path: string): YamlNode[] {
    if (node === null || !isSeq(node)) this.fail(node, path, 'expected a list')
    return (node as YAMLSeq).items as YamlNode[]
  }
}

/** Parses and checks a scenario; `file` names it in errors. Throws ScenarioError. */
export function parseScenario (text: string, file = 'scenario'): Scenario {
  const lines = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
  const r: Reader = new Reader(file, lines)
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!
    const pos = lines.linePos(e.pos[0])
    throw new ScenarioError(`${file}:${pos.line}: not valid YAML: ${e.message.split('\n')[0]}`)
  }
  if (!isMap(doc.contents)) throw new ScenarioError(`${file}:1: a scenario is a YAML mapping (name:, radio:, nodes:, …), got ${doc.contents === null ? 'an empty document' : 'something else'}`)
  const top = r.map(doc.contents, '', ['name', 'seed', 'duration', 'start', 'radio', 'area', 'groups', 'nodes', 'content', 'churn', 'mobility', 'exchange', 'election', 'sample', 'advisory', 'parts'])
  const get = (k: string): YamlNode | null | undefined => top.get(k)?.value
  const need = (k: string): YamlNode | null => {
    const v = top.get(k)
    if (v === undefined) r.fail(doc.contents as YamlNode, k, 'missing (required)')
    return v.value
  }

  const name = r.string(need('name'), 'name')
  const seed = get('seed') !== undefined ? r.number(get('seed')!, 'seed', { integer: true, min: 0 }) : 1
  const duration = r.duration(need('duration'), 'duration', { above: 0 })
  const start = get('start') !== undefined ? r.clock(get('start')!, r.string(get('start')!, 'start'), 'start') : 8 * 3_600_000

  const rm = r.map(need('radio'), 'radio', ['standard', 'rate_mbps', 'range_m', 'loss', 'latency_ms'])
  const standard = r.string(rm.get('standard')?.value ?? null, 'radio.standard', ['802.11b', '802.11g']) as Standard
  const rateMbps = rm.has('rate_mbps') ? r.number(rm.get('rate_mbps')!.value, 'radio.rate_mbps', { above: 0 }) : Math.max(...RATES[standard])
  if (!RATES[standard].includes(rateMbps)) r.fail(rm.get('rate_mbps')!.value, 'radio.rate_mbps', `${standard} has no ${rateMbps} Mb/s rate (it has ${RATES[standard].join(', ')})`)
  const radio = {
    standard,
    rateMbps,
    rangeM: r.number(rm.get('range_m')?.value ?? null, 'radio.range_m', { above: 0 }),
    loss: rm.has('loss') ? r.number(rm.get('loss')!.value, 'radio.loss', { min: 0, max: 0.9 }) : 0,
    latencyMs: rm.has('latency_ms') ? r.number(rm.get('latency_ms')!.value, 'radio.latency_ms', { min: 0 }) : 2
  }

  const am = r.map(need('area'), 'area', ['width_m', 'height_m'])
  const area = { widthM: r.number(am.get('width_m')?.value ?? null, 'area.width_m', { above: 0 }), heightM: r.number(am.get('height_m')?.value ?? null, 'area.height_m', { above: 0 }) }

  let groups: Scenario['groups']
  if (get('groups') !== undefined) {
    const gm = r.map(get('groups'), 'groups', ['count', 'width_m', 'height_m', 'columns', 'spacing_m'])
    const count = r.number(gm.get('count')?.value ?? null, 'groups.count', { integer: true, min: 1 })
    const widthM = r.number(gm.get('width_m')?.value ?? null, 'groups.width_m', { above: 0 })
    const heightM = r.number(gm.get('height_m')?.value ?? null, 'groups.height_m', { above: 0 })
    groups = {
      count,
      widthM,
      heightM,
      columns: gm.has('columns') ? r.number(gm.get('columns')!.value, 'groups.columns', { integer: true, min: 1 }) : Math.ceil(Math.sqrt(count)),
      spacingM: gm.has('spacing_m') ? r.number(gm.get('spacing_m')!.value, 'groups.spacing_m', { min: 0 }) : Math.max(widthM, heightM)
    }
  }

  const nodes: NodeSpec[] = r.seq(need('nodes'), 'nodes').map((item, k) => {
    const p = `nodes[${k}]`
    const m = r.map(item, p, ['count', 'per', 'role', 'power', 'placement', 'battery', 'battery_hours', 'sleep', 'mobile', 'uplink'])
    const count = r.number(m.get('count')?.value ?? null, `${p}.count`, { integer: true, min: 1 })
    const per = m.has('per') ? r.string(m.get('per')!.value, `${p}.per`, ['group', 'all']) : 'all'
    if (per === 'group' && groups === undefined) r.fail(m.get('per')!.value, `${p}.per`, 'per: group needs a groups: section')
    let sleep: NodeSpec['sleep']
    if (m.has('sleep')) {
      const sm = r.map(m.get('sleep')!.value, `${p}.sleep`, ['awake_min', 'asleep_min'])
      sleep = { awakeMin: r.number(sm.get('awake_min')?.value ?? null, `${p}.sleep.awake_min`, { above: 0 }), asleepMin: r.number(sm.get('asleep_min')?.value ?? null, `${p}.sleep.asleep_min`, { above: 0 }) }
    }
    let uplink: Uplink | undefined
    if (m.has('uplink')) {
      const um = r.map(m.get('uplink')!.value, `${p}.uplink`, ['up_mbps', 'down_mbps', 'windows'])
      const windows: Array<[number, number]> = []
      if (um.has('windows')) {
        for (const [j, w] of r.seq(um.get('windows')!.value, `${p}.uplink.windows`).entries()) {
          const text = r.string(w, `${p}.uplink.windows[${j}]`)
          const parts = text.split('-')
          if (parts.length !== 2) r.fail(w, `${p}.uplink.windows[${j}]`, `expected HH:MM-HH:MM, got ${JSON.stringify(text)}`)
          let a = r.clock(w, parts[0]!, `${p}.uplink.windows[${j}]`) - start
          let b = r.clock(w, parts[1]!, `${p}.uplink.windows[${j}]`) - start
          if (b <= a) b += 86_400_000
          // a window that closed before the start opens again the next day; one already open stays open
          if (b <= 0) { a += 86_400_000; b += 86_400_000 }
          windows.push([a, b])
        }
      }
      uplink = {
        upMbps: r.number(um.get('up_mbps')?.value ?? null, `${p}.uplink.up_mbps`, { above: 0 }),
        downMbps: r.number(um.get('down_mbps')?.value ?? null, `${p}.uplink.down_mbps`, { above: 0 }),
        windows
      }
    }
    const power = m.has('power') ? r.string(m.get('power')!.value, `${p}.power`, ['battery', 'ac']) as NodeSpec['power'] : 'battery'
    return {
      count,
      perGroup: per === 'group',
      role: m.has('role') ? r.string(m.get('role')!.value, `${p}.role`, ['xo', 'server']) as NodeSpec['role'] : 'xo',
      power,
      placement: m.has('placement') ? r.string(m.get('placement')!.value, `${p}.placement`, ['random', 'center']) as NodeSpec['placement'] : 'random',
      battery: m.has('battery') ? r.number(m.get('battery')!.value, `${p}.battery`, { min: 0, max: 1 }) : undefined,
      batteryHours: m.has('battery_hours') ? r.number(m.get('battery_hours')!.value, `${p}.battery_hours`, { above: 0 }) : 6,
      sleep,
      mobile: m.has('mobile') ? r.bool(m.get('mobile')!.value, `${p}.mobile`) : false,
      uplink
    }
  })
  let total = 0
  for (const n of nodes) total += n.perGroup ? n.count * (groups?.count ?? 1) : n.count
  if (total === 0) r.fail(need('nodes'), 'nodes', 'a scenario needs at least one node')

  const content: ContentSpec[] = get('content') === undefined
    ? []
    : r.seq(get('content')!, 'content').map((item, k) => {
      const p = `content[${k}]`
      const m = r.map(item, p, ['name', 'size', 'at', 'on'])
      const onNode = m.get('on')?.value ?? null
      const on = onNode !== null && isSeq(onNode) ? r.seq(onNode, `${p}.on`).map((x, j) => r.string(x, `${p}.on[${j}]`)) : [r.string(onNode, `${p}.on`)]
      for (const o of on) {
        const nm = /^node-(\d+)$/.exec(o)
        if (o === 'uplink' || o === 'each-group') continue
        if (nm === null) r.fail(onNode, `${p}.on`, `expected node-K, uplink or each-group, got ${JSON.stringify(o)}`)
        if (Number(nm[1]) >= total) r.fail(onNode, `${p}.on`, `${o} does not exist (the scenario has node-0 … node-${total - 1})`)
      }
      if (on.includes('each-group') && groups === undefined) r.fail(onNode, `${p}.on`, 'each-group needs a groups: section')
      return {
        name: r.string(m.get('name')?.value ?? null, `${p}.name`),
        bytes: r.size(m.get('size')?.value ?? null, `${p}.size`),
        at: m.has('at') ? r.duration(m.get('at')!.value, `${p}.at`) : 0,
        on
      }
    })

  let churn = { joinLeavePerHour: 0, awayMin: 10 }
  if (get('churn') !== undefined) {
    const cm = r.map(get('churn'), 'churn', ['join_leave_per_hour', 'away_min'])
    churn = {
      joinLeavePerHour: r.number(cm.get('join_leave_per_hour')?.value ?? null, 'churn.join_leave_per_hour', { min: 0 }),
      awayMin: cm.has('away_min') ? r.number(cm.get('away_min')!.value, 'churn.away_min', { above: 0 }) : 10
    }
  }

  let mobility: Scenario['mobility'] = { speedMps: [0.5, 1.5], pauseS: 60, stepS: 5 }
  if (get('mobility') !== undefined) {
    const mm = r.map(get('mobility'), 'mobility', ['speed_mps', 'pause_s', 'step_s'])
    let speed: [number, number] = mobility.speedMps
    if (mm.has('speed_mps')) {
      const s = r.seq(mm.get('speed_mps')!.value, 'mobility.speed_mps')
      if (s.length !== 2) r.fail(mm.get('speed_mps')!.value, 'mobility.speed_mps', 'expected [min, max]')
      speed = [r.number(s[0]!, 'mobility.speed_mps[0]', { above: 0 }), r.number(s[1]!, 'mobility.speed_mps[1]', { above: 0 })]
      if (speed[1] < speed[0]) r.fail(s[1]!, 'mobility.speed_mps', 'max below min')
    }
    mobility = {
      speedMps: speed,
      pauseS: mm.has('pause_s') ? r.number(mm.get('pause_s')!.value, 'mobility.pause_s', { min: 0 }) : 60,
      stepS: mm.has('step_s') ? r.number(mm.get('step_s')!.value, 'mobility.step_s', { above: 0 }) : 5
    }
  }

  let exchange: Scenario['exchange'] = { maxPeers: 64, uploadSlots: undefined, announceDelayMs: undefined }
  if (get('exchange') !== undefined) {
    const em = r.map(get('exchange'), 'exchange', ['max_peers', 'upload_slots', 'announce_delay_ms'])
    exchange = {
      maxPeers: em.has('max_peers') ? r.number(em.get('max_peers')!.value, 'exchange.max_peers', { integer: true, min: 1 }) : 64,
      uploadSlots: em.has('upload_slots') ? r.number(em.get('upload_slots')!.value, 'exchange.upload_slots', { integer: true, min: 1 }) : undefined,
      announceDelayMs: em.has('announce_delay_ms') ? r.number(em.get('announce_delay_ms')!.value, 'exchange.announce_delay_ms', { min: 0 }) : undefined
    }
  }

  const sampleMs = get('sample') !== undefined ? r.duration(get('sample')!, 'sample', { above: 0 }) : Math.max(1000, duration / 240)

  const election = get('election') !== undefined ? r.bool(get('election')!, 'election') : true

  let advisory: AdvisorySpec | undefined
  if (get('advisory') !== undefined) {
    const am = r.map(get('advisory'), 'advisory', ['at', 'build', 'on', 'apply_s', 'imin_ms', 'doublings', 'k'])
    const buildNode = am.get('build')?.value ?? null
    const buildName = r.string(buildNode, 'advisory.build')
    const build = content.findIndex(c => c.name === buildName)
    if (build < 0) r.fail(buildNode, 'advisory.build', `no content named ${JSON.stringify(buildName)} (content: ${content.map(c => c.name).join(', ') || 'none'})`)
    const onNode = am.get('on')?.value ?? null
    const on = onNode === null ? ['node-0'] : isSeq(onNode) ? r.seq(onNode, 'advisory.on').map((x, j) => r.string(x, `advisory.on[${j}]`)) : [r.string(onNode, 'advisory.on')]
    for (const o of on) {
      const nm = /^node-(\d+)$/.exec(o)
      if (nm === null || Number(nm[1]) >= total) r.fail(onNode, 'advisory.on', `expected node-K with K below ${total}, got ${JSON.stringify(o)}`)
    }
    const opt = (k: string, o: { min?: number, max?: number, integer?: boolean, above?: number }): number | undefined => am.has(k) ? r.number(am.get(k)!.value, `advisory.${k}`, o) : undefined
    advisory = {
      at: am.has('at') ? r.duration(am.get('at')!.value, 'advisory.at') : 0,
      build,
      on,
      applyMs: (opt('apply_s', { min: 0 }) ?? 0) * 1000,
      iminMs: opt('imin_ms', { above: 0 }),
      doublings: opt('doublings', { integer: true, min: 0, max: 30 }),
      k: opt('k', { integer: true, min: 1 })
    }
  }

  let parts: Scenario['parts'] = 'whole'
  if (get('parts') !== undefined) {
    const node = get('parts')!
    parts = r.string(node, 'parts', ['whole', 'groups']) as Scenario['parts']
    if (parts === 'groups') {
      // each group runs in an engine of its own: nothing may reach across groups but the mothership's uplinks
      if (groups === undefined) r.fail(node, 'parts', 'parts: groups needs a groups: section')
      if (!(groups.spacingM > radio.rangeM)) r.fail(top.get('groups')!.value, 'groups.spacing_m', `parts: groups needs groups that share no air: spacing_m (${groups.spacingM}) must be more than radio.range_m (${radio.rangeM})`)
      const k = nodes.findIndex(n => !n.perGroup)
      if (k >= 0) r.fail(r.seq(need('nodes'), 'nodes')[k], `nodes[${k}].per`, 'parts: groups needs every node spec placed per: group (a node of per: all may land in any group)')
      if (advisory !== undefined) r.fail(top.get('advisory')!.key, 'advisory', 'parts: groups does not simulate an advisory yet (its spread is measured over one engine): use parts: whole')
    }
  }

  return { name, seed, duration, start, radio, area, groups, nodes, content, churn, mobility, exchange, election, sampleMs, advisory, parts }
}
