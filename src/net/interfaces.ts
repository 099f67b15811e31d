// The links mDNS works on: IPv4 interfaces that are up and can multicast, and
// whether the kernel has a route for multicast (field-notes.md: without one,
// software that sends multicast without naming an interface gets ENETUNREACH
// and says nothing).
import { networkInterfaces } from 'node:os'
import { readFileSync } from 'node:fs'

export interface Link {
  /** Interface name (wlan0, eth0, msh0). */
  name: string
  /** Its IPv4 address. */
  address: string
  netmask: string
}

const IFF_UP = 0x1
const IFF_LOOPBACK = 0x8
const IFF_MULTICAST = 0x1000

/** The interface's flags from sysfs, or undefined where there is no sysfs. */
function flags (name: string): number | undefined {
  try {
    return parseInt(readFileSync(`/sys/class/net/${name}/flags`, 'utf8').trim(), 16)
  } catch {
    return undefined
  }
}

/**
 * IPv4 links to announce on, one entry per address. With `loopback`, only the
 * loopback interface (an agent that listens on 127.0.0.1 only: a classroom
 * simulated on one machine). `only` restricts to those interface names.
 */
export function multicastLinks (options: { loopback?: boolean, only?: string[] } = {}): Link[] {
  const out: Link[] = []
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (options.only !== undefined && options.only.length > 0 && !options.only.includes(name)) continue
    const f = flags(name)
    if (f !== undefined && (f & IFF_UP) === 0) continue
    for (const a of addrs ?? []) {
      if (a.family !== 'IPv4') continue
      if (options.loopback === true) {
        if (a.internal) out.push({ name, address: a.address, netmask: a.netmask })
        continue
      }
      if (a.internal || (f !== undefined && ((f & IFF_MULTICAST) === 0 || (f & IFF_LOOPBACK) !== 0))) continue
      out.push({ name, address: a.address, netmask: a.netmask })
    }
  }
  // a fixed order by code unit: localeCompare would load ICU's collation into the agent (~3 MiB resident)
  return out.sort((x, y) => { const a = x.name + x.address, b = y.name + y.address; return a < b ? -1 : a > b ? 1 : 0 })
}

function ipv4ToInt (ip: string): number {
  return ip.split('.').reduce((n, p) => ((n << 8) | Number(p)) >>> 0, 0)
}

/** True when `ip` is on the link's subnet. */
export function onLink (link: Link, ip: string): boolean {
  const mask = ipv4ToInt(link.netmask)
  return ((ipv4ToInt(link.address) & mask) >>> 0) === ((ipv4ToInt(ip) & mask) >>> 0)
}

/**
 * The interfaces that have a route covering 224.0.0.251 in the main table
 * (/proc/net/route), or undefined where that file cannot be read.
 */
export function multicastRouteInterfaces (): string[] | undefined {
  let text: string
  try {
    text = readFileSync('/proc/net/route', 'utf8')
  } catch {
    return undefined
  }
  const group = ipv4ToInt('224.0.0.251')
  const out: string[] = []
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/)
    if (f.length < 8) continue
    // destination and mask are little-endian hex
    const le = (hex: string): number => Buffer.from(hex.padStart(8, '0'), 'hex').readUInt32LE(0)
    const dest = le(f[1]!)
    const mask = le(f[7]!)
    if (((group & mask) >>> 0) === dest && !out.includes(f[0]!)) out.push(f[0]!)
  }
  return out
}
