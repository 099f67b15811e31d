// The agent's page: reads only the JSON API (docs/api.md), live through
// GET /api/v1/events (server-sent events), else by polling the same routes
// the CLI reads. Everything shown is set as text (textContent, attributes):
// build names and addresses come from peers and are never parsed as HTML.
'use strict'

;(function () {
  const API = '/api/v1'
  const POLL_MS = 2000
  /** After the stream fails for good, try it again this often (polling meanwhile). */
  const RETRY_STREAM_MS = 30000
  const SHOWN_EVENTS = 50

  const state = { status: null, peers: null, builds: null, recent: [], updated: null }

  // ---- small helpers ----------------------------------------------------------

  const $ = id => document.getElementById(id)

  const { el } = window.xoDom

  function shortId (id) {
    if (typeof id !== 'string') return '?'
    return id.length > 18 ? id.slice(0, 8) + '\u2026' + id.slice(-6) : id
  }

  function bytes (n) {
    if (typeof n !== 'number' || !isFinite(n)) return '?'
    const units = ['B', 'kB', 'MB', 'GB', 'TB']
    let i = 0
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++ }
    return (i === 0 ? String(Math.round(n)) : n.toFixed(n < 10 ? 1 : 0)) + '\u00a0' + units[i]
  }

  function duration (s) {
    if (typeof s !== 'number') return '?'
    if (s < 120) return s + ' s'
    if (s < 7200) return Math.round(s / 60) + ' min'
    const h = Math.floor(s / 3600)
    return h + ' h ' + String(Math.round((s % 3600) / 60)).padStart(2, '0') + ' min'
  }

  function clock (iso) {
    const d = new Date(iso)
    return isNaN(d) ? '' : d.toTimeString().slice(0, 8)
  }

  /** The address worth showing: a peer's connection address without its /p2p/ part. */
  function address (p) {
    const a = (p.connections && p.connections[0] && p.connections[0].remoteAddr) || (p.addrs && p.addrs[0]) || ''
    return String(a).replace(/\/p2p\/[^/]+$/, '')
  }

  /** Scalar facts of an object (lists by their length), as "key value" text, bounded. */
  function facts (obj, max) {
    const out = []
    for (const [k, v] of Object.entries(obj || {})) {
      if (v === null || (typeof v === 'object' && !Array.isArray(v))) continue
      out.push(k.replace(/_/g, ' ') + ' ' + (Array.isArray(v) ? v.length : String(v).slice(0, 40)))
      if (out.length >= (max || 6)) break
    }
    return out.join(', ')
  }

  // ---- rendering ----------------------------------------------------------------

  function renderSelf () {
    const s = state.status
    if (!s) return
    $('self-id').textContent = shortId(s.peerId)
    $('self-id').title = s.peerId
    const role = $('self-role')
    role.textContent = s.role === 'server' ? 'SCHOOL SERVER' : 'peer'
    role.className = s.role === 'server' ? 'role-server' : ''
    role.dataset.role = s.role
    const server = $('self-server')
    server.textContent = s.server === null || s.server === undefined ? 'none elected' : s.server === s.peerId ? 'this laptop' : shortId(s.server)
    server.title = s.server || ''
    $('self-term').textContent = String(s.term)
    $('self-uptime').textContent = duration(s.uptime_s)
    $('footer-version').textContent = 'xo-mesh ' + (s.version || '')
    document.title = 'xo-mesh \u00b7 ' + (s.role === 'server' ? 'school server' : 'peer') + ' \u00b7 ' + shortId(s.peerId)
  }

  /** status.builds (index and in progress) merged with GET /builds (rate, sources) by CID. */
  function buildList () {
    const byCid = new Map()
    for (const b of (state.status && state.status.builds) || []) byCid.set(b.cid, { ...b, sources: [], rate: 0, phase: b.complete ? 'complete' : 'fetching', error: null })
    for (const b of (state.builds && state.builds.builds) || []) byCid.set(b.cid, { ...byCid.get(b.cid), ...b, name: b.name !== null ? b.name : (byCid.get(b.cid) || {}).name })
    return [...byCid.values()].sort((a, b) => Number(a.complete) - Number(b.complete) || String(a.name).localeCompare(String(b.name)))
  }

  function renderBuilds () {
    const list = buildList()
    const server = state.status && state.status.server
    const items = list.map(b => {
      const st = b.error ? 'failed' : b.complete ? 'complete' : 'fetching'
      const fraction = b.complete ? 1 : b.bytes > 0 ? Math.min(1, b.have_bytes / b.bytes) : 0
      // floor: 100 % only when complete
      const pct = b.complete ? 100 : Math.min(99, Math.floor(fraction * 100))
      const fill = el('div', { class: 'bar-fill' })
      fill.style.width = (fraction * 100).toFixed(1) + '%'
      const bar = el('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': pct, 'aria-label': 'progress of ' + (b.name || b.cid) }, fill)
      const stateText = st === 'failed' ? 'failed' : st === 'complete' ? 'complete' : (b.phase && b.phase !== 'ready' ? b.phase : 'fetching')
      const parts = [bytes(b.have_bytes) + ' of ' + bytes(b.bytes)]
      if (!b.complete && b.holders === 0) parts.push('waiting for a peer that has it')
      else if (!b.complete) parts.push(bytes(b.rate || 0) + '/s', b.holders + (b.holders === 1 ? ' peer has it' : ' peers have it'))
      const took = b.complete && b.started && b.completed ? (Date.parse(b.completed) - Date.parse(b.started)) / 1000 : NaN
      if ((b.sources || []).length > 0 && took > 0) parts.push('fetched in ' + duration(Math.max(1, Math.round(took))) + ', at ' + clock(b.completed))
      const sources = (b.sources || []).filter(x => x.bytes > 0)
      const from = sources.length === 0
        ? null
        : el('p', { class: 'build-sources', text: 'from ' + sources.map(x => shortId(x.peerId) + (x.peerId === server ? ' (server)' : '') + ' ' + bytes(x.bytes)).join(', ') })
      return el('li', { class: 'build', 'data-cid': b.cid, 'data-state': st, 'data-percent': pct },
        el('div', { class: 'build-head' }, el('span', { class: 'build-name', text: b.name || '(unnamed)' }), el('span', { class: 'build-state', text: stateText })),
        el('div', { class: 'bar-row' }, bar, el('span', { class: 'bar-pct', text: pct + '\u00a0%' })),
        el('p', { class: 'build-facts', text: parts.join(' \u00b7 ') }),
        from,
        b.error ? el('p', { class: 'build-error', text: 'error: ' + b.error }) : null,
        el('p', { class: 'build-cid mono', text: b.cid })
      )
    })
    $('builds').replaceChildren(...items)
    $('builds-count').textContent = '(' + list.length + ')'
    $('builds-empty').hidden = list.length > 0
  }

  function renderPeers () {
    const peers = (state.peers && state.peers.peers) || (state.status && state.status.peers) || []
    const server = state.status && state.status.server
    const rows = peers.map(p => {
      const known = ['peerId', 'addrs', 'connections', 'connected_since', 'rtt_ms', 'bytes_sent', 'bytes_received', 'via', 'capability']
      const extra = []
      if (p.capability !== null && p.capability !== undefined) extra.push('capability ' + (typeof p.capability === 'object' ? facts(p.capability) : String(p.capability)))
      for (const [k, v] of Object.entries(p)) {
        if (known.includes(k) || v === null || typeof v !== 'object' || Array.isArray(v)) continue
        if (k === 'blocks') extra.push('blocks \u2193' + bytes(v.bytes_received) + ' \u2191' + bytes(v.bytes_sent) + (v.corrupt_blocks > 0 ? ', ' + v.corrupt_blocks + ' corrupt' : ''))
        else {
          const f = facts(v)
          if (f !== '') extra.push(k + ': ' + f)
        }
      }
      const since = p.connected_since ? 'since ' + clock(p.connected_since) : ''
      return el('tr', { 'data-peer': p.peerId, class: p.peerId === server ? 'is-server' : null },
        el('td', { class: 'mono', title: p.peerId, text: shortId(p.peerId) }),
        el('td', { class: 'mono', text: address(p) }),
        el('td', { text: (p.via || '?') + (since ? ' ' + since : '') }),
        el('td', { class: 'num', text: typeof p.rtt_ms === 'number' ? Math.round(p.rtt_ms) + ' ms' : '\u2014' }),
        el('td', { class: 'num', text: bytes(p.bytes_sent) }),
        el('td', { class: 'num', text: bytes(p.bytes_received) }),
        el('td', { text: extra.join('; ') || '\u2014' })
      )
    })
    document.querySelector('#peers tbody').replaceChildren(...rows)
    $('peers-count').textContent = '(' + peers.length + ')'
    $('peers-empty').hidden = peers.length > 0
    $('peers').hidden = peers.length === 0
  }

  function buildName (cid) {
    const b = buildList().find(x => x.cid === cid)
    return b && b.name ? b.name : 'build ' + String(cid).slice(0, 12) + '\u2026'
  }

  /** One line for a bus event; unknown events show their name and scalar details. */
  function describe (e) {
    const d = e.detail || {}
    switch (e.name) {
      case 'peer:connect': return 'connected to ' + shortId(d.peerId) + ' (' + d.direction + ')'
      case 'peer:disconnect': return 'disconnected from ' + shortId(d.peerId)
      case 'peer:discovery': return 'found ' + shortId(d.peerId) + ' by ' + d.via
      case 'self:addresses': return 'listening on ' + (d.addrs || []).join(', ')
      case 'build:added': return 'build complete here: ' + (d.name || d.cid)
      case 'build:fetch': return 'fetching ' + buildName(d.cid)
      case 'build:failed': return 'gave up on ' + buildName(d.cid) + ': ' + d.reason
      default: return e.name + (typeof d === 'object' ? ' ' + facts(d) : '')
    }
  }

  function renderEvents () {
    const shown = state.recent.slice(-SHOWN_EVENTS).reverse()
    $('events').replaceChildren(...shown.map(e => el('li', { 'data-name': e.name }, el('span', { class: 'event-time', text: clock(e.time) }), describe(e))))
    $('events-empty').hidden = shown.length > 0
  }

  /** What each component adds to the status (the block exchange, discovery, and those to come), as facts. */
  function renderParts () {
    const parts = (state.status && state.status.components) || {}
    const items = []
    for (const [name, part] of Object.entries(parts)) {
      if (part === null || typeof part !== 'object') continue
      items.push(el('div', {}, el('dt', { text: name }), el('dd', { text: facts(part, 12) || '\u2014' })))
    }
    $('parts').replaceChildren(...items)
  }

  /** The advisory snapshot held and the advisories for this laptop, with their rollout wave when the status gives one. */
  function renderAdvisories () {
    const a = state.status && state.status.components && state.status.components.advisory
    const line = $('advisory-snapshot')
    if (!a || a.enabled === false) {
      line.textContent = 'Advisories are off: no deployment root key is provisioned (advisory.root_key).'
      $('advisories').replaceChildren()
      return
    }
    const snap = a.snapshot
    line.textContent = snap
      ? 'Snapshot v' + snap.version + ' (' + snap.advisories + ' in all), issued ' + String(snap.issued).slice(0, 10) + ', expires ' + String(snap.expires).slice(0, 10) + (a.refused && a.refused.length > 0 ? '; ' + a.refused.length + ' refused lately' : '')
      : 'No advisory snapshot held yet (root v' + a.root_version + ').'
    const mine = a.for_this_laptop || []
    const items = mine.map(x => {
      const wave = x.wave !== undefined && x.wave !== null
        ? ' · wave ' + (typeof x.wave === 'object' ? facts(x.wave) : String(x.wave))
        : x.rollout ? ' · rollout ' + facts(x.rollout) : ''
      const held = buildList().find(b => b.cid === x.build)
      const have = held ? (held.complete ? ' · held' : ' · fetching') : ' · not held yet'
      return el('li', { 'data-build': x.build }, el('b', { text: x.name }), ' ' + x.kind + ', ' + x.priority + ', ' + bytes(x.size) + have + wave)
    })
    if (items.length === 0 && snap) items.push(el('li', { class: 'empty', text: 'None of them is for this laptop.' }))
    $('advisories').replaceChildren(...items)
  }

  /** The relay: outbox, next hop, when it last answered. */
  function renderOutbox () {
    const r = state.status && state.status.components && state.status.components.relay
    if (!r) return
    const server = state.status.server
    $('outbox-size').textContent = r.sink ? 'none: this is the mothership (items end in its store)' : r.outbox ? r.outbox.items + ' items, ' + bytes(r.outbox.bytes) + (r.outbox.origins > 1 ? ', from ' + r.outbox.origins + ' laptops' : '') : '?'
    $('outbox-hop').textContent = r.sink ? '—' : r.upstream === null ? 'none' + (state.status.role === 'server' ? ' (no upstream configured)' : ' (no server elected)') : shortId(r.upstream) + (r.upstream === server ? ' (school server)' : '') + (r.upstream_connected ? ', connected' : ', not connected')
    $('outbox-hop').title = r.upstream || ''
    $('outbox-contact').textContent = r.last_upstream_contact ? clock(r.last_upstream_contact) + ' (' + duration(Math.max(0, Math.round((Date.now() - Date.parse(r.last_upstream_contact)) / 1000))) + ' ago)' : 'never since the agent started'
    $('outbox-relayed').textContent = (r.core ? (r.core.itemsSent || 0) + ' sent, ' : '') + (r.itemsAccepted || 0) + ' taken from peers, ' + (r.duplicatesDropped || 0) + ' duplicates dropped'
  }

  function render () {
    renderSelf()
    renderAdvisories()
    renderOutbox()
    renderParts()
    renderBuilds()
    renderPeers()
    renderEvents()
    $('footer-updated').textContent = state.updated ? 'updated ' + clock(state.updated) : ''
  }

  let scheduled = false
  function update () {
    state.updated = new Date().toISOString()
    if (scheduled) return
    scheduled = true
    requestAnimationFrame(() => { scheduled = false; render() })
  }

  function addRecent (events) {
    const last = state.recent.length > 0 ? state.recent[state.recent.length - 1].seq : 0
    for (const e of events) if (e.seq > last) state.recent.push(e)
    if (state.recent.length > 200) state.recent.splice(0, state.recent.length - 200)
  }

  function setFeed (mode, text) {
    const f = $('feed')
    f.dataset.mode = mode
    f.textContent = text
  }

  // ---- polling (the fallback) -----------------------------------------------------

  let pollTimer = null
  async function getJson (path) {
    const r = await fetch(API + path, { headers: { Accept: 'application/json' }, cache: 'no-store' })
    // the mothership wants a session
    if (r.status === 401) location.replace('/login?next=/')
    if (r.status === 404) return null
    if (!r.ok) throw new Error(path + ': HTTP ' + r.status)
    return await r.json()
  }

  async function pollOnce () {
    try {
      const [status, peers, builds, recent] = await Promise.all(['/status', '/peers', '/builds', '/events/recent'].map(getJson))
      state.status = status
      state.peers = peers
      state.builds = builds
      if (recent) addRecent(recent.events)
      setFeed('polling', 'updating every ' + POLL_MS / 1000 + ' s')
      update()
    } catch {
      setFeed('down', 'the agent is not answering')
    }
  }

  function startPolling () {
    if (pollTimer !== null) return
    void pollOnce()
    pollTimer = setInterval(pollOnce, POLL_MS)
    setTimeout(() => { stopPolling(); connect() }, RETRY_STREAM_MS)
  }

  function stopPolling () {
    if (pollTimer !== null) clearInterval(pollTimer)
    pollTimer = null
  }

  // ---- the live stream ------------------------------------------------------------

  function connect () {
    if (typeof EventSource !== 'function') return startPolling()
    const es = new EventSource(API + '/events')
    const on = (name, fn) => es.addEventListener(name, m => {
      let data
      try { data = JSON.parse(m.data) } catch { return }
      fn(data)
      update()
    })
    on('status', d => { state.status = d })
    on('peers', d => { state.peers = d })
    on('builds', d => { state.builds = d })
    on('recent', d => { addRecent(d.events || []) })
    on('mesh', e => { addRecent([e]) })
    es.onopen = () => { setFeed('live', 'live') }
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        // refused (too many clients, an old agent without the stream): poll instead
        es.close()
        startPolling()
      } else {
        setFeed('down', 'reconnecting\u2026')
      }
    }
  }

  // a mothership answers /session: offer its overview
  fetch(API + '/session', { cache: 'no-store' }).then(r => { if (r.ok) $('nav').hidden = false }).catch(() => {})
  connect()
})()
