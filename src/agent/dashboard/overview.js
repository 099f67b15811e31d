// The mothership's overview: reads only the JSON API (GET /api/v1/overview,
// /overview/rollout, /overview/statistics: docs/api.md), every 10 s, and
// draws its own SVG (no chart library). Everything shown is set as text:
// school and build names come from laptops and are never parsed as HTML.
// Without a session the API answers 401 and the page goes to /login.
'use strict'

;(function () {
  const API = '/api/v1'
  const POLL_MS = 10000
  /** A school unheard for this long is marked (underlined, bold). */
  const STALE_MS = 7 * 86400000
  const MAX_BUILD_COLUMNS = 5
  const state = { overview: null, rollout: null, stats: null, updated: null }

  const $ = id => document.getElementById(id)

  const { el, svg } = window.xoDom

  function when (ms) {
    if (typeof ms !== 'number') return '\u2014'
    return new Date(ms).toISOString().slice(0, 16).replace('T', ' ')
  }

  function ago (ms, now) {
    if (typeof ms !== 'number') return 'never'
    const s = Math.max(0, Math.round((now - ms) / 1000))
    if (s < 120) return s + ' s ago'
    if (s < 7200) return Math.round(s / 60) + ' min ago'
    if (s < 172800) return Math.round(s / 3600) + ' h ago'
    return Math.round(s / 86400) + ' days ago'
  }

  function shortCid (cid) {
    return typeof cid === 'string' && cid.length > 16 ? cid.slice(0, 8) + '\u2026' + cid.slice(-6) : String(cid)
  }

  // ---- patterns: series told apart in black and white ---------------------------

  const PATTERNS = [
    ['solid', () => [svg('rect', { width: 8, height: 8, fill: '#000' })]],
    ['hatch', () => [svg('rect', { width: 8, height: 8, fill: '#fff' }), svg('path', { d: 'M-2,2 l4,-4 M0,8 l8,-8 M6,10 l4,-4', stroke: '#000', 'stroke-width': 2 })]],
    ['dots', () => [svg('rect', { width: 8, height: 8, fill: '#fff' }), svg('circle', { cx: 4, cy: 4, r: 2, fill: '#000' })]],
    ['cross', () => [svg('rect', { width: 8, height: 8, fill: '#fff' }), svg('path', { d: 'M0,4 h8 M4,0 v8', stroke: '#000', 'stroke-width': 1.5 })]],
    ['rows', () => [svg('rect', { width: 8, height: 8, fill: '#fff' }), svg('path', { d: 'M0,2 h8 M0,6 h8', stroke: '#000', 'stroke-width': 1.5 })]],
    ['grey', () => [svg('rect', { width: 8, height: 8, fill: '#888' })]],
    ['blank', () => [svg('rect', { width: 8, height: 8, fill: '#fff' })]]
  ]

  function defs (prefix) {
    return svg('defs', {}, ...PATTERNS.map(([name, make]) => svg('pattern', { id: prefix + '-' + name, width: 8, height: 8, patternUnits: 'userSpaceOnUse' }, ...make())))
  }

  function fill (prefix, i, last) {
    return 'url(#' + prefix + '-' + (last ? 'blank' : PATTERNS[i % (PATTERNS.length - 1)][0]) + ')'
  }

  // ---- schools ---------------------------------------------------------------------

  function renderTotals () {
    const o = state.overview
    const laptops = o.schools.reduce((n, s) => n + s.laptops, 0)
    const last = o.schools.reduce((m, s) => Math.max(m, s.last_received || 0), 0)
    $('total-schools').textContent = String(o.schools.length)
    $('total-laptops').textContent = String(laptops)
    $('total-items').textContent = String(o.items.items)
    $('total-items').title = o.items.byKind.statistics + ' statistics samples, ' + o.items.byKind['install-report'] + ' install reports, ' + o.items.byKind['backup-chunk'] + ' backup chunks'
    $('total-last').textContent = last > 0 ? ago(last, o.generated) : 'never'
    $('total-conflicts').textContent = String(o.items.conflicts)
  }

  function backlogText (b) {
    const parts = []
    if (b.missing > 0) parts.push(b.missing + ' missing')
    if (b.reported !== null && b.reported !== undefined) parts.push(b.reported + ' in outboxes')
    return parts.length === 0 ? '0' : parts.join(', ')
  }

  function renderSchools () {
    const o = state.overview
    const rows = o.schools.map(s => el('tr', { 'data-school': s.school, class: s.last_contact !== null && o.generated - s.last_contact > STALE_MS ? 'stale' : null },
      el('th', { scope: 'row', text: s.school }),
      el('td', { class: 'num', text: String(s.laptops) + (s.unreported > 0 ? ' (' + s.unreported + ' no install reported)' : '') }),
      el('td', { title: when(s.last_contact) + ' (laptop clocks)', text: ago(s.last_contact, o.generated) + ', ' + when(s.last_contact) }),
      el('td', { title: 'mothership clock', text: ago(s.last_received, o.generated) }),
      el('td', { class: 'num', text: backlogText(s.backlog) }),
      el('td', { class: 'num', text: String(s.failed_installs) })
    ))
    document.querySelector('#schools tbody').replaceChildren(...rows)
    $('schools-count').textContent = '(' + o.schools.length + ')'
    $('schools-empty').hidden = o.schools.length > 0
    $('schools').hidden = o.schools.length === 0
  }

  /** Builds by laptops running them across every school; the first few get a column, the rest "other". */
  function buildColumns () {
    const total = new Map()
    for (const s of state.overview.schools) {
      for (const b of s.builds) {
        const t = total.get(b.build) || { build: b.build, name: b.name, laptops: 0 }
        t.laptops += b.laptops
        total.set(b.build, t)
      }
    }
    const all = [...total.values()].sort((a, b) => b.laptops - a.laptops || String(a.name).localeCompare(String(b.name)))
    const shown = all.slice(0, MAX_BUILD_COLUMNS)
    return { shown, other: all.length > shown.length }
  }

  function installedRows () {
    const { shown, other } = buildColumns()
    const rows = state.overview.schools.map(s => {
      const counts = shown.map(c => (s.builds.find(b => b.build === c.build) || { laptops: 0 }).laptops)
      const rest = s.builds.filter(b => !shown.some(c => c.build === b.build)).reduce((n, b) => n + b.laptops, 0)
      return { school: s.school, counts: other ? [...counts, rest] : counts, none: s.unreported, laptops: s.laptops }
    })
    const labels = [...shown.map(c => c.name || shortCid(c.build)), ...(other ? ['other builds'] : [])]
    return { labels, builds: shown, rows }
  }

  function renderInstalled () {
    const { labels, builds, rows } = installedRows()
    const head = el('tr', {}, el('th', { scope: 'col', text: 'School' }),
      ...labels.map((l, i) => el('th', { scope: 'col', class: 'num', title: builds[i] ? builds[i].build : '', text: l })),
      el('th', { scope: 'col', class: 'num', text: 'none reported' }))
    document.querySelector('#installed thead').replaceChildren(head)
    document.querySelector('#installed tbody').replaceChildren(...rows.map(r => el('tr', { 'data-school': r.school },
      el('th', { scope: 'row', text: r.school }), ...r.counts.map(n => el('td', { class: 'num', text: String(n) })), el('td', { class: 'num', text: String(r.none) }))))
    $('installed-chart').replaceChildren(stackedBars(labels, rows))
  }

  /** One horizontal bar per school, a patterned segment per build, the unreported last (blank); a legend below. */
  function stackedBars (labels, rows) {
    const W = 560
    const labelW = 150
    const barH = 24
    const gap = 8
    const legendRows = Math.ceil((labels.length + 1) / 2)
    const H = rows.length * (barH + gap) + 12 + legendRows * 22 + 10
    const max = Math.max(1, ...rows.map(r => r.laptops))
    const scale = (W - labelW - 40) / max
    const g = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': 'laptops per build, per school' }, defs('inst'))
    rows.forEach((r, i) => {
      const y = 6 + i * (barH + gap)
      g.append(svg('text', { x: labelW - 8, y: y + barH * 0.72, 'text-anchor': 'end', 'font-size': 15 }, r.school.length > 18 ? r.school.slice(0, 17) + '\u2026' : r.school))
      let x = labelW
      const values = [...r.counts, r.none]
      values.forEach((n, k) => {
        if (n <= 0) return
        const w = n * scale
        g.append(svg('rect', { x, y, width: w, height: barH, fill: fill('inst', k, k === values.length - 1), stroke: '#000', 'stroke-width': 1.5 }, svg('title', {}, (k < labels.length ? labels[k] : 'none reported') + ': ' + n)))
        x += w
      })
      g.append(svg('text', { x: x + 6, y: y + barH * 0.72, 'font-size': 14 }, String(r.laptops)))
    })
    const top = 12 + rows.length * (barH + gap)
    ;[...labels, 'none reported'].forEach((l, k) => {
      const x = (k % 2) * (W / 2)
      const y = top + Math.floor(k / 2) * 22
      g.append(svg('rect', { x, y, width: 18, height: 16, fill: fill('inst', k, k === labels.length), stroke: '#000', 'stroke-width': 1.5 }))
      g.append(svg('text', { x: x + 24, y: y + 13, 'font-size': 14 }, l.length > 34 ? l.slice(0, 33) + '\u2026' : l))
    })
    return g
  }

  // ---- rollout ---------------------------------------------------------------------

  function renderRollout () {
    const r = state.rollout
    if (r === null) return
    $('rollout-snapshot').textContent = r.snapshot ? '(snapshot v' + r.snapshot.version + ', issued ' + when(r.snapshot.issued) + ', expires ' + when(r.snapshot.expires) + ')' : ''
    const items = r.advisories.map(a => {
      const frac = a.laptops > 0 ? a.installed / a.laptops : 0
      const pct = Math.floor(frac * 100)
      const barFill = el('div', { class: 'bar-fill' })
      barFill.style.width = (frac * 100).toFixed(1) + '%'
      const allowed = el('div', { class: 'bar-allowed', title: 'the waves allow ' + a.allowed_percent + ' % by now' })
      allowed.style.left = a.allowed_percent + '%'
      const bar = el('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': pct, 'aria-label': 'laptops running ' + a.name }, barFill, allowed)
      const target = a.schools.length > 0 ? a.schools.join(', ') : 'every school'
      const waves = a.waves.length === 0
        ? 'no waves: every targeted laptop at once'
        : 'waves ' + a.waves.map((w, i) => (i === a.wave ? '[' : '') + w.percent + '%@' + Math.round(w.after_s / 3600) + 'h' + (i === a.wave ? ']' : '')).join(', ') + ': ' + a.allowed_percent + ' % allowed now (dashed line)'
      return el('li', { 'data-advisory': a.name, 'data-build': a.build },
        el('div', { class: 'build-head' }, el('span', { class: 'build-name', text: a.name }), el('span', { class: 'build-state', text: a.kind + ' \u00b7 ' + a.priority })),
        el('div', { class: 'bar-row' }, bar, el('span', { class: 'bar-pct', text: pct + '\u00a0%' })),
        el('p', { class: 'build-facts', text: a.installed + ' of ' + a.laptops + ' laptops run it' + (a.failed > 0 ? ', ' + a.failed + ' failed to install it' : '') + ' \u00b7 targets ' + target + (a.narrowed_by.length > 0 ? ' (narrowed by ' + a.narrowed_by.join(', ') + ': counted over the whole schools)' : '') }),
        el('p', { class: 'wave-note', text: waves }),
        el('p', { class: 'wave-note', text: a.by_school.map(s => s.school + ' ' + s.installed + '/' + s.laptops + (s.failed > 0 ? ' (' + s.failed + ' failed)' : '')).join(' \u00b7 ') }),
        el('p', { class: 'build-cid mono', text: a.build })
      )
    })
    $('rollout').replaceChildren(...items)
    $('rollout-empty').hidden = r.advisories.length > 0
    if (r.snapshot !== null && r.advisories.length === 0) $('rollout-empty').textContent = 'The snapshot held names no advisory.'
  }

  // ---- plots over time ---------------------------------------------------------------

  const DASHES = [null, '8 4', '2 3', '10 3 2 3']

  /** A line plot of series over the buckets: axes, a few ticks, a dash per series, a legend. */
  function linePlot (title, stats, series) {
    const W = 560
    const H = 210
    const L = 46
    const R = 10
    const T = 10
    const B = 44
    const n = stats.buckets.length
    const values = series.flatMap(s => s.values.filter(v => v !== null))
    const max = Math.max(1, ...values)
    const top = niceCeil(max)
    const x = i => L + (n <= 1 ? 0 : i * (W - L - R) / (n - 1))
    const y = v => T + (H - T - B) * (1 - v / top)
    const g = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': title })
    for (const v of [0, top / 2, top]) {
      g.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#000', 'stroke-width': v === 0 ? 2 : 0.5 }))
      g.append(svg('text', { x: L - 6, y: y(v) + 5, 'text-anchor': 'end', 'font-size': 13 }, fmt(v)))
    }
    const day = stats.bucket_s >= 86400
    for (const i of [0, Math.floor((n - 1) / 2), n - 1]) {
      const label = new Date(stats.buckets[i].start).toISOString()
      g.append(svg('text', { x: x(i), y: H - B + 18, 'text-anchor': i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle', 'font-size': 13 }, day ? label.slice(5, 10) : label.slice(5, 16).replace('T', ' ')))
    }
    series.forEach((s, k) => {
      let d = ''
      s.values.forEach((v, i) => { if (v !== null) d += (d === '' || s.values[i - 1] === null ? 'M' : 'L') + x(i).toFixed(1) + ',' + y(v).toFixed(1) })
      if (d !== '') g.append(svg('path', { d, fill: 'none', stroke: '#000', 'stroke-width': k === 0 ? 3 : 2, 'stroke-dasharray': DASHES[k % DASHES.length] }))
      // points, so a single bucket still shows
      s.values.forEach((v, i) => { if (v !== null && v > 0) g.append(svg(k % 2 === 0 ? 'circle' : 'rect', k % 2 === 0 ? { cx: x(i), cy: y(v), r: 3, fill: '#000' } : { x: x(i) - 3, y: y(v) - 3, width: 6, height: 6, fill: '#fff', stroke: '#000', 'stroke-width': 1.5 })) })
      const lx = L + k * ((W - L) / series.length)
      g.append(svg('line', { x1: lx, x2: lx + 26, y1: H - 10, y2: H - 10, stroke: '#000', 'stroke-width': k === 0 ? 3 : 2, 'stroke-dasharray': DASHES[k % DASHES.length] }))
      g.append(svg('text', { x: lx + 32, y: H - 5, 'font-size': 13 }, s.label))
    })
    const box = el('div', { class: 'plot', 'data-plot': title })
    box.append(el('h3', { text: title }), g)
    return box
  }

  function niceCeil (v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)))
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p
    return 10 * p
  }

  function fmt (v) {
    return Math.abs(v) >= 1000 ? (v / 1000).toFixed(v >= 10000 ? 0 : 1) + 'k' : String(Math.round(v * 100) / 100)
  }

  function renderPlots () {
    const s = state.stats
    if (s === null) return
    const col = k => s.buckets.map(b => b[k])
    const plots = [
      linePlot('Items received', s, [{ label: 'statistics', values: col('statistics') }, { label: 'install reports', values: col('install_reports') }, { label: 'backup chunks', values: col('backup_chunks') }]),
      linePlot('Laptops heard from', s, [{ label: 'laptops', values: col('laptops') }]),
      linePlot('Installs reported', s, [{ label: 'applied', values: col('installs_ok') }, { label: 'failed', values: col('installs_failed') }])
    ]
    if (s.field !== null) plots.push(linePlot('Mean ' + s.field + ' in samples', s, [{ label: s.field, values: col('field_mean') }]))
    $('plots').replaceChildren(...plots)
    const pick = $('stats-field')
    const chosen = pick.value
    const names = ['', ...s.fields]
    if (pick.options.length !== names.length || names.some((f, i) => pick.options[i].value !== f)) {
      pick.replaceChildren(...names.map(f => el('option', { value: f, text: f === '' ? 'none' : f })))
      pick.value = names.includes(chosen) ? chosen : ''
    }
  }

  // ---- reading the API -------------------------------------------------------------------

  async function getJson (path) {
    const r = await fetch(API + path, { headers: { Accept: 'application/json' }, cache: 'no-store' })
    if (r.status === 401) {
      location.replace('/login?next=' + encodeURIComponent(location.pathname))
      throw new Error('log in')
    }
    if (!r.ok) throw new Error(path + ': HTTP ' + r.status)
    return await r.json()
  }

  function setFeed (mode, text) {
    $('feed').dataset.mode = mode
    $('feed').textContent = text
  }

  function statsPath () {
    const q = new URLSearchParams({ bucket: $('stats-bucket').value })
    if ($('stats-field').value !== '') q.set('field', $('stats-field').value)
    return '/overview/statistics?' + q.toString()
  }

  async function refresh () {
    try {
      const [overview, rollout, stats] = await Promise.all([getJson('/overview'), getJson('/overview/rollout'), getJson(statsPath())])
      Object.assign(state, { overview, rollout, stats, updated: Date.now() })
      renderTotals()
      renderSchools()
      renderInstalled()
      renderRollout()
      renderPlots()
      $('footer-updated').textContent = 'updated ' + new Date().toTimeString().slice(0, 8)
      setFeed('polling', 'updating every ' + POLL_MS / 1000 + ' s')
    } catch {
      setFeed('down', 'the mothership is not answering')
    }
  }

  $('stats-bucket').addEventListener('change', () => { void refresh() })
  $('stats-field').addEventListener('change', () => { void refresh() })
  $('logout').addEventListener('click', async () => {
    await fetch(API + '/logout', { method: 'POST' }).catch(() => {})
    location.replace('/login')
  })
  void refresh()
  setInterval(refresh, POLL_MS)
})()
