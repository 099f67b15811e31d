// Giving back what malloc keeps after a transfer. A fetch or a serve passes
// hundreds of megabytes through 64 KiB buffers (socket reads, Noise's
// messages, blocks); glibc serves them from its heap and, once they are
// freed, returns memory to the system only from the top of that heap. An
// agent that has worked then idles at ~90–110 MiB instead of ~70, for as
// long as it idles (docs/agent.md, "After the work"): on an XO with 512 MB,
// memory the child's activities do not get. malloc_trim(0) gives the free
// pages back (~20 MiB at once, measured), but Node never calls it, so a
// small native module does (src/agent/malloc-trim.c, built beside the
// agent's bundle). Without it (no C compiler, another libc) nothing trims.
//
// What V8 holds matters as much: the writer thread's ring (8 MiB of shared
// memory) and the buffers of the last frames are freed only when V8
// collects their objects, and an agent that went quiet allocates too little
// to start a collection of its old generation for minutes (measured: the
// fetcher's anonymous memory stayed 9 MiB above its idle size, its RSS at
// 88-90 MiB 60-90 s after a 256 MiB fetch). So each trim follows a full
// collection (~10 ms on an idle agent's heap of ~12 MiB).
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { Logger } from '../net/logger.ts'

/** The native module's file, beside the running module (the bundle's directory, as the dashboard's files). */
export const MALLOC_TRIM_MODULE = new URL('./malloc-trim.node', import.meta.url)

/** malloc_trim(0) from the native module beside the running module, or undefined where it cannot be loaded. */
export function loadMallocTrim (url: URL = MALLOC_TRIM_MODULE): (() => number) | undefined {
  try {
    const m = createRequire(import.meta.url)(fileURLToPath(url)) as { mallocTrim?: unknown }
    return typeof m.mallocTrim === 'function' ? m.mallocTrim as () => number : undefined
  } catch {
    return undefined
  }
}

/**
 * A full collection of V8's heap: global.gc where node runs with
 * --expose-gc, else the same function taken from a new context once the
 * flag is set (a context made after the flag has it). Undefined where
 * neither works.
 */
export function loadCollect (): (() => void) | undefined {
  const exposed = (globalThis as { gc?: unknown }).gc
  if (typeof exposed === 'function') return () => { (exposed as () => void)() }
  try {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as unknown
    return typeof gc === 'function' ? () => { (gc as () => void)() } : undefined
  } catch {
    return undefined
  }
}

/**
 * The quiet ticks (of 5 s) after the last work at which to trim: V8 frees a
 * buffer's memory only when it collects the buffer's object, which an idle
 * agent's heap does within seconds (its memory reducer) or later; a trim
 * at ~10 s takes most, the later ones what later collections freed.
 */
const TRIM_AT_QUIET_TICKS = [2, 4, 8, 12]
/**
 * Bytes of traffic in a tick that make it a tick of work: the election's
 * heartbeats and the exchange's announcements keep the count moving by a
 * few kB while the agent idles, and a transfer moves megabytes.
 */
const WORK_BYTES = 1 << 20

export interface MemoryTrimmerInit {
  /** Bytes sent and received so far: a tick in which it grew by less than WORK_BYTES is quiet. */
  activity: () => number
  /** malloc_trim(0) (loadMallocTrim), where the native module loads. */
  trim?: (() => number) | undefined
  /** A full collection of V8's heap, run before each trim (it frees what the trim then gives back). */
  collect?: (() => void) | undefined
  /** Between ticks, ms (default 5 s). */
  everyMs?: number
  logger?: Logger
}

/** Collects V8's heap and trims malloc's a few times once the agent goes quiet after some work; never while it works, never twice for one quiet spell. */
export class MemoryTrimmer {
  private readonly init: MemoryTrimmerInit
  private last: number
  /** Quiet ticks since the last activity; -1: nothing to trim (no work since the last trims). */
  private quiet = -1
  private timer: NodeJS.Timeout | undefined
  /** Trims done (for tests and the log). */
  trims = 0

  constructor (init: MemoryTrimmerInit) {
    this.init = init
    this.last = init.activity()
  }

  start (): void {
    this.timer ??= setInterval(() => { this.tick() }, this.init.everyMs ?? 5000)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** One look at the activity; trims when this tick is one of TRIM_AT_QUIET_TICKS after the last work. */
  tick (): void {
    const now = this.init.activity()
    const grew = now - this.last
    this.last = now
    if (grew >= WORK_BYTES) {
      this.quiet = 0
      return
    }
    if (this.quiet < 0) return
    this.quiet++
    if (TRIM_AT_QUIET_TICKS.includes(this.quiet)) {
      const t0 = performance.now()
      this.init.collect?.()
      const released = this.init.trim?.() ?? 0
      this.trims++
      this.init.logger?.debug('collected V8\'s heap and trimmed malloc\'s after the work', { released: released === 1, ms: Math.round(performance.now() - t0) })
    }
    if (this.quiet >= TRIM_AT_QUIET_TICKS[TRIM_AT_QUIET_TICKS.length - 1]!) this.quiet = -1
  }
}
