// What a run leaves behind (interfaces.md, "Simulator"): summary.json, a CSV
// row per laptop, a CSV of the sampled series and three SVG plots, plus the
// table the CLI prints.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { lineChart, type Series } from './plots.ts'
import type { RunResult, Summary } from './run.ts'

function csvCell (v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v)
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

/** The per-node CSV: one row per laptop, a completion column per build. */
export function nodesCsv (r: RunResult): string {
  const builds = r.summary.builds.map(b => `completion_s:${b.name}`)
  const head = ['node', 'group', 'x', 'y', 'power', 'battery_end', 'up_s', 'bytes_up', 'bytes_down', 'duplicate_bytes', ...builds]
  const rows = r.nodes.map(n => [n.node, n.group, n.x, n.y, n.power, n.battery_end, n.up_s, n.bytes_up, n.bytes_down, n.duplicate_bytes, ...n.completion_s].map(csvCell).join(','))
  return [head.map(csvCell).join(','), ...rows].join('\n') + '\n'
}

/** The sampled series: time, laptops up, transfers on the air, bytes on air, laptops complete per build. */
export function seriesCsv (r: RunResult): string {
  const head = ['t_s', 'up', 'flows', 'bytes_on_air', ...r.summary.builds.map(b => `complete:${b.name}`)]
  const rows = r.metrics.samples.map(s => [s.t / 1000, s.up, s.flows, s.bytesOnAir, ...s.complete].join(','))
  return [head.map(csvCell).join(','), ...rows].join('\n') + '\n'
}

export function plots (r: RunResult): Record<string, string> {
  const laptops = r.nodes.length
  const completion = lineChart({
    title: `${r.summary.scenario}: laptops holding each build`,
    xLabel: 'simulated time (min)',
    yLabel: 'laptops complete (%)',
    yMin: 0,
    yMax: 100,
    series: r.summary.builds.map((b, i) => ({ name: b.name, points: r.metrics.samples.map(s => [s.t / 60_000, (100 * s.complete[i]!) / laptops] as [number, number]) }))
  })
  const air = lineChart({
    title: `${r.summary.scenario}: bytes on the air`,
    xLabel: 'simulated time (min)',
    yLabel: 'cumulative GB (transport layer)',
    series: [{ name: 'bytes on air', points: r.metrics.samples.map(s => [s.t / 60_000, s.bytesOnAir / 1e9] as [number, number]) }]
  })
  // the elected server of the largest components, as a step line of its node number
  const byComponent = new Map<number, { members: number, points: Array<[number, number]> }>()
  for (const c of r.metrics.elected) {
    let e = byComponent.get(c.component)
    if (e === undefined) byComponent.set(c.component, e = { members: 0, points: [] })
    e.members = Math.max(e.members, c.members)
    e.points.push([c.t_s / 60, c.server === null ? -1 : Number(c.server.slice(5))])
  }
  const end = r.summary.duration_s / 60
  const series: Series[] = [...byComponent.entries()].sort((a, b) => b[1].members - a[1].members || a[0] - b[0]).slice(0, 10).map(([id, e]) => ({ name: `component ${id} (${e.members})`, points: [...e.points, [end, e.points[e.points.length - 1]![1]]] }))
  const elected = lineChart({
    title: `${r.summary.scenario}: elected school server per component`,
    xLabel: 'simulated time (min)',
    yLabel: 'server (node number; -1: none)',
    step: true,
    series,
    ...(r.summary.election === null ? { note: 'no election model in this run' } : {})
  })
  return { 'completion.svg': completion, 'bytes-on-air.svg': air, 'elected.svg': elected }
}

/** Writes summary.json, nodes.csv, series.csv and the plots into dir (created). Returns the file names. */
export function writeRun (dir: string, r: RunResult): string[] {
  mkdirSync(dir, { recursive: true })
  const files: Record<string, string> = {
    'summary.json': JSON.stringify(r.summary, null, 2) + '\n',
    'nodes.csv': nodesCsv(r),
    'series.csv': seriesCsv(r),
    ...plots(r)
  }
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
  return Object.keys(files)
}

function human (bytes: number): string {
  const u = ['B', 'KB', 'MB', 'GB', 'TB']
  let i = 0
  while (bytes >= 1000 && i < u.length - 1) { bytes /= 1000; i++ }
  return `${bytes.toFixed(i === 0 ? 0 : 1)} ${u[i]}`
}

/** The summary as a plain-text table for a terminal. */
export function summaryTable (s: Summary): string {
  const lines: string[] = []
  lines.push(`scenario ${s.scenario}, seed ${s.seed}: ${s.nodes} laptops${s.parts > 1 ? ` in ${s.parts} parts` : ''}, ${s.duration_s} s simulated, ${s.radio.standard} ${s.radio.rate_mbps} Mb/s (effective ${s.radio.effective_mbps} Mb/s), range ${s.radio.range_m} m, loss ${s.radio.loss}`)
  const head = ['build', 'size', 'complete', 'completion_s', 'bound_s', 'ratio', 'p50_s', 'p90_s']
  const rows = s.builds.map(b => [b.name, human(b.bytes), `${b.complete_nodes}/${s.nodes}`, b.completion_s ?? '-', b.airtime_bound_s, b.ratio ?? '-', b.p50_s ?? '-', b.p90_s ?? '-'].map(String))
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map(r => r[i]!.length)))
  const fmtRow = (r: string[]): string => r.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join('  ')
  lines.push(fmtRow(head))
  for (const r of rows) lines.push(fmtRow(r))
  lines.push(`bytes on air ${human(s.bytes_on_air)} (control ${human(s.control_bytes)}, duplicates ${human(s.duplicate_bytes)}), uplink ${human(s.uplink_bytes)}`)
  lines.push(s.election === null ? 'election: none in this run' : `election ${s.election}: ${s.elected.length} changes, split brain ${s.split_brain_s} s, no server ${s.no_server_s} s`)
  const a = s.advisory
  if (a !== undefined) {
    lines.push(`advisory for ${a.build} at ${a.at_s} s: reached ${a.reached}/${a.laptops} (first ${a.first_s ?? '-'} s, last ${a.last_s ?? '-'} s), installed ${a.installed}/${a.laptops} (first ${a.install_first_s ?? '-'} s, last ${a.install_last_s ?? '-'} s); ` +
      `once converged, per laptop per hour: ${a.adverts_per_laptop_hour ?? '-'} Trickle adverts, ${a.messages_per_laptop_hour ?? '-'} messages (${a.connect_states_per_laptop_hour ?? '-'} on connecting)`)
  }
  lines.push(`events ${s.events}, trace_sha256 ${s.trace_sha256}`)
  return lines.join('\n')
}
