// SVG plots as strings: no browser, no dependency. One line chart with
// axes, ticks, a legend and optional step lines is all the simulator needs.

export interface Series {
  name: string
  points: Array<[number, number]>
}

export interface Chart {
  title: string
  xLabel: string
  yLabel: string
  series: Series[]
  /** Hold each value until the next point (a step plot). */
  step?: boolean
  /** Fixed y range; default from the data. */
  yMin?: number
  yMax?: number
  /** A note printed in the plot area (e.g. why it is empty). */
  note?: string
}

const W = 720
const H = 400
const M = { left: 70, right: 170, top: 36, bottom: 48 }
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf']

function esc (s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/** About n round tick values covering [lo, hi]. */
function ticks (lo: number, hi: number, n = 6): number[] {
  if (!(hi > lo)) return [lo]
  const raw = (hi - lo) / n
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map(f => f * mag).find(s => s >= raw) ?? raw
  const out: number[] = []
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.round(v / step) * step)
  return out
}

function fmt (v: number): string {
  if (Math.abs(v) >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`
  if (Math.abs(v) >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`
  return String(+v.toPrecision(4))
}

/** Renders a chart as a standalone SVG document. */
export function lineChart (c: Chart): string {
  const all = c.series.flatMap(s => s.points)
  const xs = all.map(p => p[0])
  const ys = all.map(p => p[1])
  const x0 = xs.length > 0 ? Math.min(...xs) : 0
  const x1 = xs.length > 0 ? Math.max(...xs, x0 + 1e-9) : 1
  const y0 = c.yMin ?? (ys.length > 0 ? Math.min(0, ...ys) : 0)
  let y1 = c.yMax ?? (ys.length > 0 ? Math.max(...ys) : 1)
  if (!(y1 > y0)) y1 = y0 + 1
  const pw = W - M.left - M.right
  const ph = H - M.top - M.bottom
  const sx = (x: number): number => M.left + ((x - x0) / (x1 - x0 || 1)) * pw
  const sy = (y: number): number => M.top + ph - ((y - y0) / (y1 - y0)) * ph
  const parts: string[] = []
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`)
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`)
  parts.push(`<text x="${W / 2 - M.right / 2}" y="20" text-anchor="middle" font-size="15">${esc(c.title)}</text>`)
  for (const t of ticks(x0, x1)) {
    parts.push(`<line x1="${sx(t).toFixed(1)}" y1="${M.top}" x2="${sx(t).toFixed(1)}" y2="${M.top + ph}" stroke="#eee"/>`)
    parts.push(`<text x="${sx(t).toFixed(1)}" y="${M.top + ph + 16}" text-anchor="middle">${fmt(t)}</text>`)
  }
  for (const t of ticks(y0, y1)) {
    parts.push(`<line x1="${M.left}" y1="${sy(t).toFixed(1)}" x2="${M.left + pw}" y2="${sy(t).toFixed(1)}" stroke="#eee"/>`)
    parts.push(`<text x="${M.left - 6}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end">${fmt(t)}</text>`)
  }
  parts.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`)
  parts.push(`<text x="${M.left + pw / 2}" y="${H - 10}" text-anchor="middle">${esc(c.xLabel)}</text>`)
  parts.push(`<text transform="translate(16 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`)
  c.series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length]!
    if (s.points.length > 0) {
      const pts: string[] = []
      let prev: [number, number] | undefined
      for (const p of s.points) {
        if (c.step === true && prev !== undefined) pts.push(`${sx(p[0]).toFixed(1)},${sy(prev[1]).toFixed(1)}`)
        pts.push(`${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`)
        prev = p
      }
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.6" points="${pts.join(' ')}"/>`)
    }
    if (k < 16) {
      const ly = M.top + 8 + k * 18
      parts.push(`<line x1="${M.left + pw + 12}" y1="${ly}" x2="${M.left + pw + 30}" y2="${ly}" stroke="${color}" stroke-width="3"/>`)
      parts.push(`<text x="${M.left + pw + 36}" y="${ly + 4}">${esc(s.name.length > 18 ? s.name.slice(0, 17) + '…' : s.name)}</text>`)
    }
  })
  if (c.note !== undefined) parts.push(`<text x="${M.left + pw / 2}" y="${M.top + ph / 2}" text-anchor="middle" fill="#888">${esc(c.note)}</text>`)
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}
