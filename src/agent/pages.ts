// The dashboard's files (src/agent/dashboard/: plain HTML, CSS and JS, no
// build step) as the API serves them at `/`. Nothing is read until the first
// request: an agent nobody looks at keeps no page in memory.
import { readFile } from 'node:fs/promises'
import type { PageSource } from './api.ts'

const DIR = new URL('./dashboard/', import.meta.url)

/** URL path → file in DIR and its type. Only these are served: no path from a request reaches the file system. */
const FILES: Record<string, { file: string, type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/dashboard.css': { file: 'dashboard.css', type: 'text/css; charset=utf-8' },
  '/dashboard.js': { file: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
  '/dom.js': { file: 'dom.js', type: 'text/javascript; charset=utf-8' }
}

/** The mothership's pages (only where the agent keeps a mothership store): the overview and the login. */
const MOTHERSHIP_FILES: Record<string, { file: string, type: string }> = {
  '/overview': { file: 'overview.html', type: 'text/html; charset=utf-8' },
  '/overview.js': { file: 'overview.js', type: 'text/javascript; charset=utf-8' },
  '/overview.css': { file: 'overview.css', type: 'text/css; charset=utf-8' },
  '/login': { file: 'login.html', type: 'text/html; charset=utf-8' },
  '/login.js': { file: 'login.js', type: 'text/javascript; charset=utf-8' }
}

/** A PageSource over the mothership's overview and login pages. */
export function overviewPages (dir: URL = DIR): PageSource {
  return dashboardPages(dir, MOTHERSHIP_FILES)
}

/** A PageSource over the dashboard's files, each read once, on its first request. */
export function dashboardPages (dir: URL = DIR, files: Record<string, { file: string, type: string }> = FILES): PageSource {
  const cache = new Map<string, Promise<Buffer>>()
  return async pathname => {
    const entry = Object.hasOwn(files, pathname) ? files[pathname] : undefined
    if (entry === undefined) return undefined
    let body = cache.get(entry.file)
    if (body === undefined) {
      body = readFile(new URL(entry.file, dir))
      cache.set(entry.file, body)
      // a failed read is tried again next time
      body.catch(() => { cache.delete(entry.file) })
    }
    return { type: entry.type, body: await body }
  }
}
