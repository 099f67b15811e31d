#!/usr/bin/env node
// The xo-mesh command. The sources are TypeScript, run through tsx's loader;
// the package pins a current Node (the `node` dependency), which `npm run`,
// `npx xo-mesh` and the tests put first on PATH.
import { register } from 'tsx/esm/api'

register()
await import('../src/cli/main.ts')
