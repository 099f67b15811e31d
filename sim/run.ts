// One run of a scenario, start to end: the world, the engine, the metrics,
// and the summary of interfaces.md. The only outside effect is the optional
// progress callback (the CLI draws a line with it); what the run computes
// depends on the scenario and the seed alone.
import { createHash } from 'node:crypto'
import { World } from './world.ts'
import { Metrics, type ElectedChange, type Sample } from './metrics.ts'
import { TraceHash } from './trace.ts'
import { phyFor } from './phy.ts'
import { CoreElection } from './election-model.ts'
import type { Engine, EngineHooks } from './engine.ts'
import type { ElectionModel } from './election.ts'
import { nodeCount, type Scenario } from './scenario.ts'
import { SimAdvisory, type AdvisorySummary } from './advisory/model.ts'
import { Protocols } from './advisory/protocols.ts'

export interface RunOptions {
  /** Overrides the scenario's seed. */
  seed?: number
  /** Called every so many events with the simulated time (ms) and the events so far; in a run in parts, with the parts done of all (the time is the running part's). */
  progress?: (now: number, events: number, parts?: { done: number, total: number }) => void
  /** An election model (the slot of election.ts); default: the election core on every laptop, unless the scenario says election: false. */
  election?: (engine: Engine) => ElectionModel
}

export interface BuildSummary {
  name: string
  bytes: number
  leaves: number
  /** s from the build's appearance until every laptop holds it, or null within the run. */
  completion_s: number | null
  /** s: the unicast airtime bound (see airtimeBound). */
  airtime_bound_s: number
  /** completion_s / airtime_bound_s. */
  ratio: number | null
  /** Laptops holding it complete at the end, of all. */
  complete_nodes: number
  /** s until half and nine tenths of the laptops held it. */
  p50_s: number | null
  p90_s: number | null
}

export interface Summary {
  scenario: string
  seed: number
  duration_s: number
  nodes: number
  /** Engines the run was simulated in: 1, or one per group with parts: groups. */
  parts: number
  radio: { standard: string, rate_mbps: number, effective_mbps: number, range_m: number, loss: number }
  builds: BuildSummary[]
  completion_s: Record<string, number | null>
  airtime_bound_s: Record<string, number>
  /** Transport-layer bytes sent over the radio: data frames and control messages. */
  bytes_on_air: number
  control_bytes: number
  uplink_bytes: number
  /** Leaf bytes received that were already held (what duplicate transfers cost). */
  duplicate_bytes: number
  election: string | null
  elected: Array<{ t_s: number, component: number, members: number, server: string | null }>
  /** s with two servers in one component after its links had been still for the election's convergence time (2 × heartbeat + failure timeout). */
  split_brain_s: number | null
  /** The same at any time, transients after joins, leaves and merges included. */
  split_brain_raw_s: number | null
  /** s with a settled component of two or more laptops and no server. */
  no_server_s: number | null
  events: number
  /** Times an exchange core asked for a timer at once right after one (it would spin; the engine gives it 1 ms): 0 in a healthy run. */
  timer_spins: number
  first_timer_spin: { node: string, t_s: number } | null
  trace_sha256: string
  /** With an advisory in the scenario: how it spread and what it cost (sim/advisory/). */
  advisory?: AdvisorySummary
}

export interface NodeRow {
  node: string
  group: number
  x: number
  y: number
  power: string
  battery_end: number | null
  up_s: number
  bytes_up: number
  bytes_down: number
  duplicate_bytes: number
  completion_s: Array<number | null>
}

/** What the engines counted, for benches and researchers: events per kind, exchange messages delivered by type, stalls, leaf bytes received. */
export interface RunStats {
  counts: number[]
  delivered: Record<string, number>
  stalls: number
  bytesDown: number
  /** Peak RSS (MiB) and CPU seconds of each process that simulated parts (sim/parts.ts); empty when all ran in this one. */
  childMaxRssMiB: number[]
  childCpuS: number[]
}

/** The sampled series and the elected servers (output.ts draws them). */
export interface RunMetrics {
  samples: Sample[]
  elected: ElectedChange[]
}

export interface RunResult {
  summary: Summary
  nodes: NodeRow[]
  metrics: RunMetrics
  stats: RunStats
  /** The engine, when the run was one (parts: whole). */
  engine?: Engine
}

/**
 * What one engine leaves behind, as plain data: a part simulated in another
 * process (sim/parts.ts) sends it back whole, and combine() makes the run's
 * result of one or many.
 */
export interface PartResult {
  /** The group it simulated, or null: the whole scenario. */
  part: number | null
  events: number
  bytesOnAir: number
  controlBytes: number
  uplinkBytes: number
  duplicateBytes: number
  timerSpins: number
  firstTimerSpin: { node: string, t_s: number } | null
  /** Per build: its leaves (the same build in every part), and the airtime bound over this engine's domains, ms. */
  leaves: number[]
  bounds: number[]
  /** Per build, per laptop: ms from the build's appearance until it held it, Infinity: not within the run. */
  times: number[][]
  nodes: NodeRow[]
  /** Each row's node number in the whole scenario (rows are merged in this order). */
  indices: number[]
  samples: Sample[]
  elected: ElectedChange[]
  trace: string
  election: string | null
  advisory?: AdvisorySummary
  stats: Omit<RunStats, 'childMaxRssMiB' | 'childCpuS'>
}

/**
 * Runs a scenario to its end, in this process. With `parts: groups` the
 * groups are simulated one after another, each in an engine of its own
 * (sim/parts.ts runs them in several processes). The airtime bound of a
 * build: in each collision domain at the start, every laptop lacking the
 * build must receive it once over the one channel (a laptop behind an uplink
 * gets the first copy off the air), at the channel's effective throughput;
 * the bound is the largest over domains.
 */
export function runScenario (scenario: Scenario, opts: RunOptions = {}): RunResult {
  const s: Scenario = opts.seed !== undefined ? { ...scenario, seed: opts.seed } : scenario
  if (s.parts === 'groups') {
    const total = s.groups!.count
    const parts: PartResult[] = []
    let before = 0
    for (let g = 0; g < total; g++) {
      const progress = opts.progress
      const r = simulate(s, { ...opts, ...(progress !== undefined ? { progress: (now: number, events: number) => progress(now, before + events, { done: g, total }) } : {}) }, g)
      parts.push(r.part)
      before += r.part.events
      opts.progress?.(s.duration, before, { done: g + 1, total })
    }
    return combine(s, parts)
  }
  const { part, engine } = simulate(s, opts)
  return { ...combine(s, [part]), engine }
}

/** Simulates one engine: the whole scenario, or one group of it (part). */
export function simulate (s: Scenario, opts: RunOptions = {}, part?: number): { part: PartResult, engine: Engine } {
  const metrics = new Metrics()
  const trace = new TraceHash()
  const hooks: EngineHooks = {
    trace,
    ...(opts.progress !== undefined ? { progress: opts.progress } : {}),
    sample: (e, now) => metrics.sample(e, now)
  }
  const world = new World(s, hooks, part)
  const engine = world.engine
  if (opts.election !== undefined) hooks.election = opts.election(engine)
  else if (s.election) hooks.election = new CoreElection(engine, i => world.info[i]?.spec.role === 'server')
  const election: ElectionModel | undefined = hooks.election
  // the advisory core shares the election's slot (sim/advisory/protocols.ts)
  const advisory = s.advisory !== undefined ? new SimAdvisory(engine, s.advisory) : undefined
  if (advisory !== undefined) hooks.election = new Protocols(election, advisory)
  world.setup()
  const bounds = s.content.map((_c, b) => airtimeBound(engine, b))
  engine.run(s.duration)
  metrics.sample(engine, s.duration)
  for (const n of engine.nodes) if (n.on) n.upTime += s.duration - n.upSince

  const laptops = engine.nodes.filter(n => !n.virtual)
  const times = engine.builds.map((_b, i) => {
    const at = s.content[i]!.at
    return laptops.map(n => n.held[i]?.complete === true ? (Number.isNaN(n.completeAt[i]!) ? at : n.completeAt[i]!) - at : Infinity)
  })
  let duplicate = 0
  for (const n of laptops) duplicate += n.core.stats.duplicateBytes
  const nodes: NodeRow[] = laptops.map(n => ({
    node: n.name,
    group: n.group,
    x: round(engine.radio.x[n.id]!, 2),
    y: round(engine.radio.y[n.id]!, 2),
    power: Number.isNaN(n.battery) ? 'ac' : 'battery',
    battery_end: Number.isNaN(n.battery) ? null : round(n.battery, 3),
    up_s: round(n.upTime / 1000),
    bytes_up: n.bytesUp,
    bytes_down: n.bytesDown,
    duplicate_bytes: n.core.stats.duplicateBytes,
    completion_s: engine.builds.map((_b, i) => Number.isNaN(n.completeAt[i]!) ? (n.held[i]?.complete === true ? 0 : null) : round((n.completeAt[i]! - s.content[i]!.at) / 1000))
  }))
  let stalls = 0
  let bytesDown = 0
  for (const n of engine.nodes) {
    stalls += n.core.stats.stalls
    bytesDown += n.bytesDown
  }
  const result: PartResult = {
    part: part ?? null,
    events: engine.events,
    bytesOnAir: engine.radio.bytesOnAir,
    controlBytes: engine.controlBytes,
    uplinkBytes: engine.uplinkBytes,
    duplicateBytes: duplicate,
    timerSpins: engine.timerSpins,
    firstTimerSpin: engine.firstTimerSpin === undefined ? null : { node: engine.nodes[engine.firstTimerSpin.node]!.name, t_s: engine.firstTimerSpin.t / 1000 },
    leaves: engine.builds.map(b => b.sizes.length),
    bounds,
    times,
    nodes,
    indices: laptops.map(n => n.index),
    samples: metrics.samples,
    elected: metrics.elected,
    trace: trace.digest(),
    election: election?.name ?? null,
    ...(advisory !== undefined ? { advisory: advisory.summary() } : {}),
    stats: { counts: Array.from(engine.counts), delivered: Object.fromEntries(engine.delivered), stalls, bytesDown }
  }
  return { part: result, engine }
}

/**
 * The run's result from its parts (one, or one per group in group order).
 * Parts share no air, so their counts add up, a build's completion is over
 * every laptop's time, its bound is the largest of theirs, and the election's
 * seconds count the samples at which any part had the condition. The trace
 * hash of a run in parts is a hash of the parts' hashes in order.
 */
export function combine (s: Scenario, parts: PartResult[]): RunResult {
  const one = parts.length === 1 ? parts[0]! : undefined
  const sum = (f: (p: PartResult) => number): number => parts.reduce((t, p) => t + f(p), 0)
  const builds: BuildSummary[] = s.content.map((c, i) => {
    const times = parts.flatMap(p => p.times[i]!).sort((x, y) => x - y)
    const bound = Math.max(0, ...parts.map(p => p.bounds[i]!))
    const q = (f: number): number | null => {
      const t = times[Math.max(0, Math.ceil(f * times.length) - 1)]!
      return Number.isFinite(t) ? round(t / 1000) : null
    }
    const completion = q(1)
    return {
      name: c.name,
      bytes: c.bytes,
      leaves: parts[0]!.leaves[i]!,
      completion_s: completion,
      airtime_bound_s: round(bound / 1000),
      ratio: completion === null || bound === 0 ? null : round(completion / (bound / 1000), 4),
      complete_nodes: times.filter(Number.isFinite).length,
      p50_s: q(0.5),
      p90_s: q(0.9)
    }
  })
  const samples = one?.samples ?? mergeSamples(parts)
  let splitBrain = 0
  let splitBrainRaw = 0
  let noServer = 0
  let last = 0
  for (const x of samples) {
    const dt = x.t - last
    last = x.t
    if (x.split) splitBrain += dt
    if (x.splitRaw) splitBrainRaw += dt
    if (x.none) noServer += dt
  }
  const elected = one?.elected ?? parts.flatMap(p => p.elected).sort((a, b) => a.t_s - b.t_s || a.component - b.component)
  const election = parts[0]!.election
  const spins = parts.flatMap(p => p.firstTimerSpin === null ? [] : [p.firstTimerSpin]).sort((a, b) => a.t_s - b.t_s)
  const phy = phyFor(s.radio.standard, s.radio.rateMbps, s.radio.loss)
  const summary: Summary = {
    scenario: s.name,
    seed: s.seed,
    duration_s: s.duration / 1000,
    nodes: nodeCount(s),
    parts: parts.length,
    radio: { standard: s.radio.standard, rate_mbps: s.radio.rateMbps, effective_mbps: round(phy.bytesPerMs * 8 / 1000, 3), range_m: s.radio.rangeM, loss: s.radio.loss },
    builds,
    completion_s: Object.fromEntries(builds.map(b => [b.name, b.completion_s])),
    airtime_bound_s: Object.fromEntries(builds.map(b => [b.name, b.airtime_bound_s])),
    bytes_on_air: sum(p => p.bytesOnAir),
    control_bytes: sum(p => p.controlBytes),
    uplink_bytes: sum(p => p.uplinkBytes),
    duplicate_bytes: sum(p => p.duplicateBytes),
    election,
    elected: election === null ? [] : elected,
    split_brain_s: election === null ? null : splitBrain / 1000,
    split_brain_raw_s: election === null ? null : splitBrainRaw / 1000,
    no_server_s: election === null ? null : noServer / 1000,
    events: sum(p => p.events),
    timer_spins: sum(p => p.timerSpins),
    first_timer_spin: spins[0] ?? null,
    trace_sha256: one?.trace ?? createHash('sha256').update('xo-mesh parts\n' + parts.map(p => p.trace).join('\n')).digest('hex'),
    ...(one?.advisory !== undefined ? { advisory: one.advisory } : {})
  }
  const rows = parts.flatMap(p => p.nodes.map((row, k) => ({ row, index: p.indices[k]! })))
  if (one === undefined) rows.sort((a, b) => a.index - b.index)
  const counts = new Array<number>(parts[0]!.stats.counts.length).fill(0)
  const delivered: Record<string, number> = {}
  for (const p of parts) {
    p.stats.counts.forEach((c, k) => { counts[k] = counts[k]! + c })
    for (const [k, v] of Object.entries(p.stats.delivered)) delivered[k] = (delivered[k] ?? 0) + v
  }
  return {
    summary,
    nodes: rows.map(r => r.row),
    metrics: { samples, elected },
    stats: { counts, delivered, stalls: sum(p => p.stats.stalls), bytesDown: sum(p => p.stats.bytesDown), childMaxRssMiB: [], childCpuS: [] }
  }
}

/** The parts' series added up, sample by sample (every part samples at the same times). */
function mergeSamples (parts: PartResult[]): Sample[] {
  const first = parts[0]!.samples
  for (const p of parts) if (p.samples.length !== first.length) throw new Error(`part ${p.part} has ${p.samples.length} samples, part ${parts[0]!.part} ${first.length}: parts must sample at the same times`)
  return first.map((x, k) => {
    const out: Sample = { ...x, complete: [...x.complete] }
    for (const p of parts.slice(1)) {
      const y = p.samples[k]!
      for (let b = 0; b < out.complete.length; b++) out.complete[b]! += y.complete[b]!
      out.bytesOnAir += y.bytesOnAir
      out.up += y.up
      out.flows += y.flows
      out.components += y.components
      out.servers += y.servers
      out.split ||= y.split
      out.splitRaw ||= y.splitRaw
      out.none ||= y.none
    }
    return out
  })
}

function airtimeBound (e: Engine, b: number): number {
  const lacking = new Map<number, number>()
  const holding = new Map<number, number>()
  for (const n of e.nodes) {
    if (n.virtual) continue
    const d = e.radio.domain(n.id)
    if (d < 0) continue
    if (n.held[b]?.complete === true) holding.set(d, (holding.get(d) ?? 0) + 1)
    else lacking.set(d, (lacking.get(d) ?? 0) + 1)
  }
  let worst = 0
  for (const [d, k] of lacking) {
    // without a holder in the domain, one laptop gets the first copy from elsewhere (an uplink)
    const airCopies = (holding.get(d) ?? 0) > 0 ? k : k - 1
    worst = Math.max(worst, airCopies)
  }
  return (worst * e.builds[b]!.bytes) / e.radio.phy.bytesPerMs
}

function round (x: number, digits = 3): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}
