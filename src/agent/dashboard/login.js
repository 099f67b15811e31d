// The mothership's login form: posts the password as JSON to /api/v1/login
// (the session cookie comes back HttpOnly; this script never sees it), then
// goes to the page asked for (a path on this origin only) or the overview.
'use strict'

;(function () {
  const form = document.getElementById('login')
  const error = document.getElementById('login-error')
  const next = new URLSearchParams(location.search).get('next')
  // only a path of this origin: never "//elsewhere" or "http://…"
  const target = next !== null && /^\/(?![/\\])/.test(next) ? next : '/overview'

  function say (text) {
    error.textContent = text
    error.hidden = text === ''
  }

  fetch('/api/v1/session', { cache: 'no-store' }).then(r => r.json()).then(s => {
    if (s.authenticated) location.replace(target)
    else if (!s.password_set) document.getElementById('login-unset').hidden = false
  }).catch(() => {})

  form.addEventListener('submit', async ev => {
    ev.preventDefault()
    say('')
    const password = document.getElementById('password').value
    let r
    try {
      r = await fetch('/api/v1/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ password }), cache: 'no-store' })
    } catch {
      return say('The mothership is not answering.')
    }
    if (r.status === 204) return location.replace(target)
    let message = 'HTTP ' + r.status
    try { message = (await r.json()).error || message } catch {}
    say(r.status === 401 ? 'Wrong password.' : message)
  })
})()
