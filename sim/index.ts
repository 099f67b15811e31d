/**
 * The mesh simulator (issue 6, docs/simulator.md): thousands of XOs in one
 * process running the agent's own exchange cores over a flow-level 802.11
 * model, driven by a discrete-event engine with a total event order and a
 * seeded random source.
 *
 *   const scenario = parseScenario(yamlText, 'classroom-30.yaml')
 *   const result = runScenario(scenario, { seed: 7 })
 *   writeRun('out/', result)          // summary.json, nodes.csv, series.csv, *.svg
 *   console.log(summaryTable(result.summary))
 */
export { parseScenario, nodeCount, ScenarioError } from './scenario.ts'
export type { Scenario, NodeSpec, ContentSpec, Uplink } from './scenario.ts'
export { runScenario } from './run.ts'
export { runScenarioJobs } from './parts.ts'
export type { JobsOptions } from './parts.ts'
export type { RunOptions, RunResult, RunStats, Summary, BuildSummary, NodeRow } from './run.ts'
export { writeRun, summaryTable, nodesCsv, seriesCsv, plots } from './output.ts'
export { phyFor, RATES } from './phy.ts'
export type { Phy, Standard } from './phy.ts'
export { Random } from './random.ts'
export { EventQueue } from './queue.ts'
export type { ElectionModel } from './election.ts'
