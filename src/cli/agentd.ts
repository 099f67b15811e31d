// The agent alone: the same arguments as `xo-mesh [--data DIR] agent
// [flags]`, with the smallest import graph (no content commands). It is the
// entry a build step should bundle into plain JavaScript: measured idle at
// 63–74 MiB that way (scripts/build-agentd.ts), against 94–106 MB through
// tsx (docs/agent.md, "Memory").
// It also runs as it is under Node's own type stripping, so everything it
// imports must stay erasable TypeScript (no enums, no parameter properties),
// though that costs more memory than tsx today.
//
//   node src/cli/agentd.ts --data /var/lib/xo-mesh agent
import { Command } from 'commander'
import { addAgentCommand } from './agent.ts'

const program = new Command()
program
  .name('xo-mesh')
  .option('--data <dir>', 'data directory (default $XO_MESH_HOME or ~/.xo-mesh)')
  .showHelpAfterError()
addAgentCommand(program)
await program.parseAsync(process.argv)
