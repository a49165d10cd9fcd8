/**
 * Messages between the page (web/main.ts) and the training worker (web/worker.ts). The page holds no engine: every
 * array lives in the worker, and only plain data and bytes cross.
 */

/** A file by name, as bytes (the page reads picked files before sending them). */
export type Files = Record<string, Uint8Array>;

/** What to train: PEFT's adapter_config.json body (snake_case, with peft_type) plus the loop's settings. */
export interface TrainRequest {
  adapterConfig: Record<string, unknown>;
  text: string;
  steps: number;
  lr: number;
  batchSize: number;
  seqLen: number;
  seed: number;
  prompt: string;
  maxNewTokens: number;
}

export type ToWorker =
  | { type: "init"; device: "auto" | "wasm" | "webgpu"; stop?: SharedArrayBuffer }
  | { type: "loadModel"; files: Files | "bundled"; name: string }
  | { type: "train"; request: TrainRequest }
  | { type: "stop" }
  | { type: "generate"; prompt: string; maxNewTokens: number; seed: number }
  | { type: "loadAdapter"; files: Files }
  | { type: "saveAdapter" }
  | { type: "saveMerged" };

/** One optimizer step, as the page shows it. */
export interface StepInfo {
  step: number;
  steps: number;
  loss: number;
  tokensPerSec: number;
  /** Seconds since training started, and the estimate to the end. */
  elapsed: number;
  eta: number;
}

export type FromWorker =
  | { type: "ready"; device: "wasm" | "webgpu"; threads: boolean; note: string }
  | { type: "model"; summary: string; hasTokenizer: boolean }
  | { type: "generation"; which: "before" | "after" | "again"; text: string }
  | { type: "started"; trainable: number }
  | { type: "step"; info: StepInfo }
  /** secondsPerStep: the mean of every step after the first (which includes compiling). */
  | { type: "trained"; stopped: boolean; losses: number[]; secondsPerStep: number }
  | { type: "adapterLoaded"; summary: string }
  | { type: "files"; kind: "adapter" | "merged"; files: Files }
  | { type: "error"; message: string; during: string };
