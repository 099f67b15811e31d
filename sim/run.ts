// One run of a scenario, start to end: the world, the engine, the metrics,
// and the summary of interfaces.md. The only outside effect is the optional
// progress callback (the CLI draws a line with it); what the run computes
// depends on the scenario and the seed alone.
import { World } from './world.ts'
import { Metrics } from './metrics.ts'
import { TraceHash } from './trace.ts'
import { CoreElection } from './election-model.ts'
import type { Engine, EngineHooks } from './engine.ts'
import type { ElectionModel } from './election.ts'
import { nodeCount, type Scenario } from './scenario.ts'
import { SimAdvisory, type AdvisorySummary } from './advisory/model.ts'
import { Protocols } from './advisory/protocols.ts'

export interface RunOptions {
  /** Overrides the scenario's seed. */
  seed?: number
  /** Called every so many events with the simulated time (ms) and the events so far. */
  progress?: (now: number, events: number) => void
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

export interface RunResult {
  summary: Summary
  nodes: NodeRow[]
  metrics: Metrics
  engine: Engine
}

/**
 * Runs a scenario to its end. The airtime bound of a build: in each
 * collision domain at the start, every laptop lacking the build must receive
 * it once over the one channel (a laptop behind an uplink gets the first
 * copy off the air), at the channel's effective throughput; the bound is the
 * largest over domains.
 */
export function runScenario (scenario: Scenario, opts: RunOptions = {}): RunResult {
  const s: Scenario = opts.seed !== undefined ? { ...scenario, seed: opts.seed } : scenario
  const metrics = new Metrics()
  const trace = new TraceHash()
  const hooks: EngineHooks = {
    trace,
    ...(opts.progress !== undefined ? { progress: opts.progress } : {}),
    sample: (e, now) => metrics.sample(e, now)
  }
  const world = new World(s, hooks)
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
  const builds: BuildSummary[] = engine.builds.map((b, i) => {
    const at = s.content[i]!.at
    const times = laptops.map(n => n.held[i]?.complete === true ? (Number.isNaN(n.completeAt[i]!) ? at : n.completeAt[i]!) - at : Infinity).sort((x, y) => x - y)
    const q = (f: number): number | null => {
      const t = times[Math.max(0, Math.ceil(f * times.length) - 1)]!
      return Number.isFinite(t) ? round(t / 1000) : null
    }
    const completion = q(1)
    return {
      name: b.name,
      bytes: b.bytes,
      leaves: b.sizes.length,
      completion_s: completion,
      airtime_bound_s: round(bounds[i]! / 1000),
      ratio: completion === null || bounds[i] === 0 ? null : round(completion / (bounds[i]! / 1000), 4),
      complete_nodes: times.filter(Number.isFinite).length,
      p50_s: q(0.5),
      p90_s: q(0.9)
    }
  })
  let duplicate = 0
  for (const n of laptops) duplicate += n.core.stats.duplicateBytes
  const summary: Summary = {
    scenario: s.name,
    seed: s.seed,
    duration_s: s.duration / 1000,
    nodes: nodeCount(s),
    radio: { standard: s.radio.standard, rate_mbps: s.radio.rateMbps, effective_mbps: round(engine.radio.phy.bytesPerMs * 8 / 1000, 3), range_m: s.radio.rangeM, loss: s.radio.loss },
    builds,
    completion_s: Object.fromEntries(builds.map(b => [b.name, b.completion_s])),
    airtime_bound_s: Object.fromEntries(builds.map(b => [b.name, b.airtime_bound_s])),
    bytes_on_air: engine.radio.bytesOnAir,
    control_bytes: engine.controlBytes,
    uplink_bytes: engine.uplinkBytes,
    duplicate_bytes: duplicate,
    election: election?.name ?? null,
    elected: election === undefined ? [] : metrics.elected,
    split_brain_s: election === undefined ? null : metrics.splitBrain / 1000,
    split_brain_raw_s: election === undefined ? null : metrics.splitBrainRaw / 1000,
    no_server_s: election === undefined ? null : metrics.noServer / 1000,
    events: engine.events,
    timer_spins: engine.timerSpins,
    first_timer_spin: engine.firstTimerSpin === undefined ? null : { node: engine.nodes[engine.firstTimerSpin.node]!.name, t_s: engine.firstTimerSpin.t / 1000 },
    trace_sha256: trace.digest(),
    ...(advisory !== undefined ? { advisory: advisory.summary() } : {})
  }
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
  return { summary, nodes, metrics, engine }
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
