import assert from 'node:assert/strict'
import { DEFAULT_TUNING } from '../../src/core/exchange/index.ts'
import { RequestWindow } from '../../src/core/exchange/window.ts'
import { TokenBucket } from '../../src/core/exchange/token-bucket.ts'

/**
 * A window fed by a link of `rate` bytes per ms and `rtt` ms: every ms the
 * window is refilled, and whatever the link could carry arrives rtt later.
 */
function simulate (rate: number, rtt: number, ms: number): { w: RequestWindow, cwnds: number[], delivered: number } {
  const w = new RequestWindow(DEFAULT_TUNING)
  const arrivals: Array<{ at: number, bytes: number, sent: number }> = []
  const cwnds: number[] = []
  let linkFree = 0
  let delivered = 0
  for (let t = 0; t < ms; t++) {
    const due = arrivals.filter(a => a.at <= t)
    for (const a of due) {
      delivered += a.bytes
      w.delivered(a.bytes, 1, t - a.sent, t)
      arrivals.splice(arrivals.indexOf(a), 1)
    }
    while (w.space() >= 65536) {
      w.sent(65536, 1, t)
      linkFree = Math.max(linkFree, t + rtt / 2) + 65536 / rate
      arrivals.push({ at: Math.ceil(linkFree + rtt / 2), bytes: 65536, sent: t })
    }
    cwnds.push(w.cwnd)
  }
  return { w, cwnds, delivered }
}

/**
 * A server that answers in frames, as the agent's does: when it is free it
 * packs everything asked so far (up to `frame` bytes) into one frame, which
 * takes bytes / rate ms to send plus `rtt` ms on the way; the frame's blocks
 * arrive together. Requests are 64 KiB leaves, sent whenever the window has room.
 */
function framed (rate: number, rtt: number, frame: number, ms: number): { w: RequestWindow, delivered: number } {
  const w = new RequestWindow(DEFAULT_TUNING)
  const asked: number[] = [] // send times of requested leaves not yet served
  let inFrame: { at: number, sent: number[] } | undefined
  let delivered = 0
  for (let t = 0; t < ms; t++) {
    if (inFrame !== undefined && inFrame.at <= t) {
      const bytes = inFrame.sent.length * 65536
      delivered += bytes
      w.delivered(bytes, inFrame.sent.length, t - Math.min(...inFrame.sent), t)
      inFrame = undefined
    }
    while (w.space() >= 65536 || (w.blocks === 0 && w.space() > 0)) {
      w.sent(65536, 1, t)
      asked.push(t + rtt / 2)
    }
    const ready = asked.filter(a => a <= t)
    if (inFrame === undefined && ready.length > 0) {
      const n = Math.min(ready.length, frame / 65536)
      const sent = asked.splice(0, n).map(a => a - rtt / 2)
      inFrame = { at: t + Math.ceil(n * 65536 / rate + rtt / 2), sent }
    }
  }
  return { w, delivered }
}

describe('request window', () => {
  it('starts small, grows while the rate grows, and settles near twice the bandwidth-delay product', () => {
    const { w, cwnds } = simulate(10_000, 20, 3000) // 10 MB/s, 20 ms
    assert.equal(cwnds[0], DEFAULT_TUNING.initialWindow)
    const bdp = 10_000 * 20
    assert.ok(w.cwnd >= 1.5 * bdp && w.cwnd <= 4 * bdp, `settled at ${w.cwnd}, bdp ${bdp}`)
    assert.ok(Math.abs(w.rate - 10_000) / 10_000 < 0.2, `rate ${w.rate}`)
  })

  it('does not creep up when the minimum delay expires under its own queue, and keeps the link busy', () => {
    const { cwnds, delivered } = simulate(10_000, 20, 65_000) // six expiries of the minimum delay
    const bdp = 10_000 * 20
    const worst = Math.max(...cwnds.slice(5000))
    assert.ok(worst <= 4 * bdp, `grew to ${worst}, bdp ${bdp}`)
    assert.ok(delivered >= 0.9 * 10_000 * 65_000, `carried ${delivered}`)
  })

  it('grows past one frame when the peer answers in frames (no stop-and-wait)', () => {
    // loopback-like: 100 MB/s, 1 ms, 1 MiB frames. A window that never leaves
    // the first frame's size sends, waits for the whole frame, sends again.
    const { w, delivered } = framed(100_000, 1, 1 << 20, 5000)
    assert.ok(w.cwnd > 1.5 * (1 << 20), `cwnd ${w.cwnd}`)
    assert.ok(delivered >= 0.8 * 100_000 * 5000, `carried ${delivered} of ${100_000 * 5000}`)
  })

  it('stays small on a slow link', () => {
    const { w } = simulate(200, 80, 20_000) // 0.2 MB/s
    assert.ok(w.cwnd <= 2 * DEFAULT_TUNING.initialWindow, `${w.cwnd}`)
  })

  it('starts again from the smallest window after a stall, and allows at least the minimum stall time', () => {
    const w = new RequestWindow(DEFAULT_TUNING)
    w.sent(100_000, 2, 0)
    w.delivered(50_000, 1, 30_000, 30_000)
    assert.ok(w.stallTimeout() >= DEFAULT_TUNING.stallTimeout)
    assert.ok(w.stallTimeout() >= 4 * w.srtt - 1)
    w.stalled()
    assert.equal(w.cwnd, DEFAULT_TUNING.minWindow)
  })
})

describe('token bucket', () => {
  it('refills at its rate up to its burst, and may be overdrawn once', () => {
    const b = new TokenBucket(2, 100, 0)
    assert.equal(b.available(0), 100)
    b.take(150, 0)
    assert.equal(b.available(0), -50)
    assert.equal(b.positiveAt(0), 26)
    assert.ok(b.available(26) > 0)
    assert.equal(b.available(10_000), 100)
    assert.equal(b.tryTake(101, 10_000), false)
    assert.equal(b.tryTake(100, 10_000), true)
  })
})
