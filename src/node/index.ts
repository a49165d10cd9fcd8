/** boft/node: the Node.js side — files, checkpoints, model folders, runs and data. Plain data in and out. */
export * from "../index.js";
export { mergeCheckpoint, type MergeOptions, type MergeReport } from "./merge-checkpoint.js";
export { inspectAdapter, type InspectReport } from "./inspect-adapter.js";
export { openAdapter, saveAdapter } from "./adapter-files.js";
export { openCheckpoint, SafetensorsReader, writeSafetensors, saveSafetensors } from "./safetensors-file.js";
export { readRunConfig, parseRunConfig, type RunConfig } from "./run-config.js";
export { runTraining, prepareRun, evaluatePrepared } from "./run.js";
export { loadMnist } from "./data/mnist.js";
export { loadBrown } from "./data/brown.js";
export { selectDevice, provideNodeWebGpu } from "./device.js";
