/**
 * boft/node: everything in `boft`, plus the Node.js side — model and adapter folders, checkpoints, runs from
 * run.json, data sets, worker threads. Plain data in and out. See docs/api.md.
 */
export * from "../index.js";
// Folder versions of boft's file functions (these names shadow the byte-only ones re-exported above).
export { savePretrained, fromPretrained, loadAdapter, loadCausalLm } from "./api.js";
export { mergeCheckpoint, type MergeOptions, type MergeReport } from "./merge-checkpoint.js";
export { inspectAdapter, type InspectReport, type InspectedLayer } from "./inspect-adapter.js";
export { openAdapter, saveAdapter, type OpenAdapter } from "./adapter-files.js";
export { openCheckpoint, SafetensorsReader, writeSafetensors, saveSafetensors, type Checkpoint } from "./safetensors-file.js";
export { readRunConfig, parseRunConfig, type RunConfig, type ModelSpec, type DataSpec } from "./run-config.js";
export { runTraining, prepareRun, evaluatePrepared, evaluateRun, type RunResult, type Prepared } from "./run.js";
export { loadMnist, type MnistSplit, type MnistOpts } from "./data/mnist.js";
export { loadBrown, type BrownOpts, type BrownCorpus } from "./data/brown.js";
// Node's init: "webgpu" comes from the optional `webgpu` package (this name shadows boft's init).
export { init, provideNodeWebGpu } from "./device.js";
export { atomicWriteFile } from "./atomic.js";
export { RunInterrupted, adapterPlanWarnings, type RunFolderOptions } from "./run-guard.js";
export type { RunTrainingOptions, RunEvent, ResumeEvent } from "./run.js";
