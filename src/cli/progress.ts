// A progress bar on stderr when it is a terminal; silent otherwise, so
// scripts and pipes get clean output.

function human (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++ }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`
}
export { human as humanBytes }

export class Progress {
  private readonly label: string
  private readonly tty: boolean
  private readonly started = Date.now()
  private last = 0
  private shown = false

  constructor (label: string, stream: NodeJS.WriteStream = process.stderr) {
    this.label = label
    this.tty = stream.isTTY === true && process.env.XO_MESH_NO_PROGRESS === undefined
  }

  /** True when a bar is drawn (stderr is a terminal). */
  get visible (): boolean {
    return this.tty
  }

  /** Redraws at most ten times a second. */
  update (done: number, total: number | undefined, force = false): void {
    if (!this.tty) return
    const now = Date.now()
    if (!force && now - this.last < 100) return
    this.last = now
    const secs = Math.max((now - this.started) / 1000, 0.001)
    const rate = `${human(done / secs)}/s`
    let line: string
    if (total !== undefined && total > 0) {
      const frac = Math.min(done / total, 1)
      const width = 30
      const fill = Math.round(frac * width)
      line = `${this.label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ${human(done)}/${human(total)} ${rate}`
    } else {
      line = `${this.label} ${human(done)} ${rate}`
    }
    process.stderr.write(`\r${line}\x1b[K`)
    this.shown = true
  }

  done (): void {
    if (this.shown) process.stderr.write('\n')
    this.shown = false
  }
}
