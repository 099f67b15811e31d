// `xo-mesh mothership passwd`: sets the password of the mothership's pages
// (an scrypt hash in DATA/mothership-password, mode 0600; src/agent/session.ts).
// On a terminal it asks twice without echo; otherwise it reads the first line
// of stdin (`echo … | xo-mesh mothership passwd`, for provisioning scripts).
// A running agent reads the file at each login: no restart needed.
import type { Command } from 'commander'
import { mkdir } from 'node:fs/promises'
import { resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { defaultDataDir } from '../content/repo.ts'
import { MIN_PASSWORD, PASSWORD_FILE, setPassword } from '../agent/session.ts'

async function firstLine (): Promise<string> {
  const rl = createInterface({ input: process.stdin, terminal: false })
  for await (const line of rl) {
    rl.close()
    return line
  }
  return ''
}

/** Asks on the terminal without echoing what is typed. */
async function ask (question: string): Promise<string> {
  process.stderr.write(question)
  const stdin = process.stdin
  stdin.setRawMode(true)
  stdin.resume()
  stdin.setEncoding('utf8')
  let text = ''
  try {
    return await new Promise<string>((resolve, reject) => {
      const onData = (d: string): void => {
        for (const ch of d) {
          if (ch === '\r' || ch === '\n') { stdin.off('data', onData); resolve(text); return }
          if (ch === '\u0003') { stdin.off('data', onData); reject(new Error('interrupted')); return }
          if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1)
          else text += ch
        }
      }
      stdin.on('data', onData)
    })
  } finally {
    stdin.setRawMode(false)
    stdin.pause()
    process.stderr.write('\n')
  }
}

/** Registers `mothership passwd` (under a `mothership` command another module may have made). */
export function addPasswdCommand (program: Command): void {
  const mothership = program.commands.find(c => c.name() === 'mothership') ??
    program.command('mothership').description('the mothership\'s own commands')
  mothership.command('passwd')
    .description(`set the password of the mothership's pages (at least ${MIN_PASSWORD} characters; read from stdin when it is not a terminal)`)
    .action(async () => {
      const g = program.opts<{ data?: string }>()
      const dataDir = resolve(g.data ?? defaultDataDir())
      let password: string
      if (process.stdin.isTTY) {
        password = await ask('new password: ')
        if (await ask('again: ') !== password) {
          process.stderr.write('xo-mesh: the two passwords differ; nothing changed\n')
          process.exitCode = 1
          return
        }
      } else {
        password = await firstLine()
      }
      if (password.length < MIN_PASSWORD) {
        process.stderr.write(`xo-mesh: a password needs at least ${MIN_PASSWORD} characters; nothing changed\n`)
        process.exitCode = 1
        return
      }
      await mkdir(dataDir, { recursive: true })
      await setPassword(dataDir, password)
      process.stdout.write(`password set (${resolve(dataDir, PASSWORD_FILE)}); log in at the mothership's /login\n`)
    })
}
