// What an 802.11b/g channel carries at the transport layer: the effective
// throughput of one TCP flow after the MAC's overheads (DIFS, mean backoff,
// preamble, MAC header, SIFS, the link-layer ACK) and the TCP ACKs that share
// the air, for a given PHY rate. Checked against the ns-3 and Bianchi figures
// of the design notes (performance.md): 802.11g 54 Mb/s → 23.9 Mb/s (ns-3:
// 24.3), 802.11b 11 Mb/s → 4.9 Mb/s (ns-3: 5.21). docs/simulator.md derives it.

export type Standard = '802.11b' | '802.11g'

/** PHY rates each standard allows, Mb/s. */
export const RATES: Record<Standard, readonly number[]> = {
  '802.11b': [1, 2, 5.5, 11],
  '802.11g': [6, 9, 12, 18, 24, 36, 48, 54]
}

/** IP MTU, TCP payload per segment (20 IP + 20 TCP + 12 timestamp bytes less), and a TCP ACK's IP size. */
const MTU = 1500
const MSS = 1448
const TCP_ACK = 52
/** LLC/SNAP header, then the MAC header and FCS around an MSDU. */
const LLC = 8
const MAC = 28
const ACK_FRAME = 14

interface Timing { slot: number, sifs: number, cwMin: number }
const TIMING: Record<Standard, Timing> = {
  // short slot, no protection (an all-g network)
  '802.11g': { slot: 9, sifs: 10, cwMin: 15 },
  '802.11b': { slot: 20, sifs: 10, cwMin: 31 }
}

/** Microseconds to send `bytes` of MPDU at `rate` Mb/s. */
function txTime (std: Standard, bytes: number, rate: number): number {
  if (std === '802.11g') {
    // ERP-OFDM: 20 µs preamble and SIGNAL, 16 service + 6 tail bits, 4 µs symbols, 6 µs signal extension
    return 20 + 4 * Math.ceil((16 + 8 * bytes + 6) / (4 * rate)) + 6
  }
  // DSSS/CCK, long preamble and PLCP header
  return 192 + (8 * bytes) / rate
}

/** The rate control frames (ACKs) go at: the highest basic rate not above the data rate. */
function ackRate (std: Standard, rate: number): number {
  const basic = std === '802.11g' ? [6, 12, 24] : [1, 2]
  let r = basic[0]!
  for (const b of basic) if (b <= rate) r = b
  return r
}

/** Microseconds of air one MSDU of `bytes` costs: DIFS, mean backoff, the frame, SIFS, its ACK. */
function cycle (std: Standard, bytes: number, rate: number): number {
  const t = TIMING[std]
  const difs = t.sifs + 2 * t.slot
  const backoff = (t.cwMin / 2) * t.slot
  return difs + backoff + txTime(std, bytes + LLC + MAC, rate) + t.sifs + txTime(std, ACK_FRAME, ackRate(std, rate))
}

/** The channel as the transport layer sees it. */
export interface Phy {
  standard: Standard
  rateMbps: number
  /** One TCP flow's goodput without loss, bits per second. */
  goodputBps: number
  /** Frame loss probability per attempt (retries inflate airtime by 1 / (1 - loss)). */
  loss: number
  /** Transport-layer bytes the channel carries per ms, loss included: what a shared channel divides among its flows. */
  bytesPerMs: number
  /** Broadcast frames: basic rate, no ACK, no retry; bytes per ms of one sender. */
  broadcastBytesPerMs: number
}

/** The effective channel for a standard, PHY rate and frame loss. Throws RangeError on a rate the standard lacks. */
export function phyFor (standard: Standard, rateMbps: number, loss: number): Phy {
  if (!RATES[standard].includes(rateMbps)) throw new RangeError(`${standard} has no ${rateMbps} Mb/s rate (it has ${RATES[standard].join(', ')})`)
  if (!(loss >= 0 && loss < 1)) throw new RangeError(`loss must be in [0, 1), got ${loss}`)
  // a TCP segment each cycle, and a delayed TCP ACK (its own frame and MAC ACK) every second segment
  const perSegment = cycle(standard, MTU, rateMbps) + cycle(standard, TCP_ACK, rateMbps) / 2
  const goodputBps = (MSS * 8) / (perSegment * 1e-6)
  const t = TIMING[standard]
  const basic = ackRate(standard, rateMbps)
  const bcastCycle = t.sifs + 2 * t.slot + (t.cwMin / 2) * t.slot + txTime(standard, MTU + LLC + MAC, basic)
  return {
    standard,
    rateMbps,
    goodputBps,
    loss,
    bytesPerMs: (goodputBps / 8 / 1000) * (1 - loss),
    broadcastBytesPerMs: (MSS / bcastCycle) * 1000
  }
}
