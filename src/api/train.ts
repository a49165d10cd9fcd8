/**
 * Finetuning as an async iterator of events: the library's one training loop (src/train/trainer.ts) over in-memory
 * arrays, a sampler drawing from the run's seeded generator, or any (async) iterable of batches, with the task's loss
 * or yours, and the evaluation sets or yours. It never prints; stop it with an AbortSignal; resume it from a
 * checkpoint event's snapshot. `boft train` (src/node/run.ts) is this loop with run.json's data and files.
 */
import { np, tree, HEAP_BUDGET_BYTES, type Arr, type HostDType, type HostTensor } from "../engine/index.js";
import { ConfigError, ShapeError } from "../errors.js";
import type { Rng } from "../data/rng.js";
import { randomBatch, checkBatchOpts } from "../data/text.js";
import { type Trainable, forwardWith } from "../models/adapted.js";
import { type TrainConfig, type TrainSnapshot, type Task, type Batch as EngineBatch, trainDefaults, trainIter, crossEntropy } from "../train/trainer.js";
import type { TrainEvent, EvalEvent } from "../train/metrics.js";
import { modelState, type ModelState } from "./model.js";
import { type PeftModel, type PeftState, peftState, activeRecord, replaceTrained, viewWithTrained, trainableParameterCount } from "./peft.js";
import { toArr } from "./tensor.js";

export type { TrainEvent, TrainSnapshot, TrainConfig };
export type { StepEvent, EvalEvent, CheckpointEvent, DoneEvent } from "../train/metrics.js";

/** One batch: model input (rows first) and its targets (int32 labels / next-token ids, or float regression targets). */
export interface Batch {
  input: HostTensor<HostDType>;
  target: HostTensor<HostDType>;
}

/** A whole data set in memory: row i of `inputs` goes with row i of `targets`. */
export interface Dataset {
  inputs: HostTensor<HostDType>;
  targets: HostTensor<HostDType>;
}

/**
 * The seeded random source finetune hands a BatchSampler: its state is part of every checkpoint's snapshot, so a run
 * resumed from one draws the same batches as the uninterrupted run.
 */
export interface DataRandom {
  /** Uniform integer in [0, n). */
  nextInt(n: number): number;
  /** Uniform float in [0, 1). */
  nextFloat(): number;
}

/**
 * Draws one training batch (per micro-batch) from `random`, finetune's seeded data generator. Unlike an iterable, a
 * sampler resumes by itself: a snapshot holds the generator's state, not the position in your data.
 *
 * @example const sample: BatchSampler = (r) => { const i = r.nextInt(n); return { input: rowOf(x, i), target: rowOf(y, i) }; };
 */
export type BatchSampler = (random: DataRandom) => Batch | Promise<Batch>;

/**
 * What finetune trains on: a Dataset (random batches of `batchSize` rows), a BatchSampler (batches drawn from the run's
 * seeded generator), or batches in order from an iterable (training ends when it does).
 */
export type TrainData = Dataset | BatchSampler | Iterable<Batch> | AsyncIterable<Batch>;

/** One evaluation result: a split's mean loss and any metrics (perplexity, accuracy, counts). */
export interface EvalResult {
  split: string;
  loss: number;
  metrics?: Record<string, number>;
}

/**
 * Your own evaluation, run on finetune's schedule instead of evaluation sets. `model` shows the values trained so far
 * (the same adapters, config and base); it borrows the training state, so use it only until the returned promise
 * settles (forward, evaluate, generate), and do not change it.
 */
export type Evaluator = (model: PeftModel) => Promise<readonly EvalResult[]> | readonly EvalResult[];

/** A loss on engine arrays: output (logits) and target → scalar. Consumes both (jax-js ownership). */
export type LossFn = (output: Arr, target: Arr) => Arr;

/** "crossEntropy": mean over positions of −log softmax(logits)[label] (int32 targets); "mse": mean squared error. */
export type LossName = "crossEntropy" | "mse";

/** finetune's options: the TrainConfig fields (PEFT/HF names in camelCase) and the data's. */
export interface FinetuneOptions extends Partial<TrainConfig> {
  /** Rows per batch drawn from a Dataset (default 32, or all rows when fewer). */
  batchSize?: number;
  /** Default: crossEntropy for int32 targets, mse for float ones. */
  loss?: LossName | LossFn;
  /**
   * Named evaluation sets, or your own Evaluator, run every `evalEvery` steps (default: after the last step only) and
   * at the end. Each result is yielded as an `eval` event.
   */
  eval?: Readonly<Record<string, Dataset>> | Evaluator;
  /** Stops after the step in progress: a checkpoint of it is yielded, then `done` with `stopped: true`. */
  signal?: AbortSignal;
  /** Continue from a checkpoint event's snapshot (same model, adapter, data and options). */
  resume?: TrainSnapshot;
  /** Compile forward + backward (default: on, unless the adapter uses dropout). */
  jit?: boolean;
  /**
   * Train with the model's layer-by-layer gradient (the Llama family: one decoder layer at a time; same numbers, far
   * less memory). Default: when the model prefers it (a Llama of 12 layers or more).
   */
  layerwise?: boolean;
  /**
   * Full finetuning: train every weight of the model instead of an adapter (adapters disabled or none added). The
   * trained weights then take the base weights' place in this PeftModel (forward, mergeAndUnload); the base Model
   * itself is not changed.
   */
  full?: boolean;
}

function rowsOf(t: HostTensor<HostDType>, what: string): number {
  if (t.shape.length === 0) throw new ShapeError(`${what}: a tensor of rows needs at least one dimension`);
  return t.shape[0];
}

/** Rows `idx` of a host tensor (copies). */
function takeRows(t: HostTensor<HostDType>, idx: ArrayLike<number>): HostTensor<HostDType> {
  const row = t.shape.slice(1).reduce((a, b) => a * b, 1);
  const data = new (t.data.constructor as new (n: number) => typeof t.data)(idx.length * row);
  for (let i = 0; i < idx.length; i++) data.set(t.data.subarray(idx[i] * row, (idx[i] + 1) * row), i * row);
  return { dtype: t.dtype, shape: [idx.length, ...t.shape.slice(1)], data } as HostTensor<HostDType>;
}

function checkDataset(d: Dataset, what: string): number {
  const n = rowsOf(d.inputs, `${what}.inputs`);
  if (rowsOf(d.targets, `${what}.targets`) !== n) throw new ShapeError(`${what}: ${n} input rows but ${d.targets.shape[0]} target rows`);
  if (n === 0) throw new ShapeError(`${what}: no rows`);
  return n;
}

function isDataset(d: TrainData): d is Dataset {
  return typeof d === "object" && d !== null && "inputs" in d && "targets" in d;
}

/** Dataset rows drawn at random, `size` per batch. */
function rowSampler(d: Dataset, size: number): BatchSampler {
  const n = checkDataset(d, "data");
  return (r) => {
    const idx = Array.from({ length: size }, () => r.nextInt(n));
    return { input: takeRows(d.inputs, idx), target: takeRows(d.targets, idx) };
  };
}

/** @internal The loss on logits, and how a target is brought to the engine. */
export function lossOf(loss: LossName | LossFn | undefined, sample: HostTensor<HostDType>, dtype: "float32" | "float64"): { fn: LossFn; target: (t: HostTensor<HostDType>) => Arr; name: LossName | null } {
  const name = typeof loss === "function" ? null : (loss ?? (sample.dtype === "int32" ? "crossEntropy" : "mse"));
  const target = (t: HostTensor<HostDType>) => (name === "crossEntropy" ? toArr(t, "int32", "target") : t.dtype === "int32" ? toArr(t, "int32", "target") : toArr(t, dtype, "target"));
  if (typeof loss === "function") return { fn: loss, target, name };
  if (name === "crossEntropy") return { fn: crossEntropy, target, name };
  if (name === "mse") return { fn: (o, t) => np.square(o.sub(t)).mean(), target, name };
  throw new ConfigError(`loss must be "crossEntropy", "mse" or a function (loss=${JSON.stringify(loss)})`);
}

/** Mean loss (and accuracy, for cross-entropy) of the model with `trainable` on each set. Consumes trainable. */
async function evaluateSets(
  s: PeftState,
  st: ModelState,
  trainable: Trainable | null,
  sets: Readonly<Record<string, Dataset>>,
  batchSize: number,
  loss: LossName | LossFn | undefined,
): Promise<EvalEvent[]> {
  const events: EvalEvent[] = [];
  const rec = activeRecord(s);
  for (const [split, d] of Object.entries(sets)) {
    const n = checkDataset(d, `eval.${split}`);
    const l = lossOf(loss, d.targets, s.base.dtype);
    let sum = 0;
    let correct = 0;
    let positions = 0;
    for (let start = 0; start < n; start += batchSize) {
      const idx = Array.from({ length: Math.min(batchSize, n - start) }, (_, i) => start + i);
      const target = takeRows(d.targets, idx);
      const out = st.logits(forwardWith(rec, trainable && rec.active ? tree.ref(trainable) : null, st.input(takeRows(d.inputs, idx))));
      if (l.name === "crossEntropy") {
        const pred = (await np.argmax(out.ref, -1).data()) as Int32Array;
        for (let i = 0; i < pred.length; i++) if (pred[i] === target.data[i]) correct++;
        positions += pred.length;
      }
      sum += ((await l.fn(out, l.target(target)).data()) as Float32Array)[0] * idx.length;
    }
    events.push({ kind: "eval", step: 0, split, loss: sum / n, metrics: l.name === "crossEntropy" ? { accuracy: correct / positions } : {} });
  }
  if (trainable) tree.dispose(trainable);
  return events;
}

/**
 * Trains the active adapter of `p` and yields what happens: `step` (loss, lr, gradNorm), `eval` (per set in
 * `o.eval`), `checkpoint` (with an in-memory `snapshot` to resume from; every `checkpointEvery` steps and at the end)
 * and `done`. When training completes (or is stopped by `o.signal`), the adapter holds the trained values; leaving
 * the loop early with `break` discards the run and keeps the adapter as it was.
 *
 * @example
 * for await (const e of finetune(peft, { inputs: x, targets: y }, { steps: 50, lr: 1e-2, batchSize: 16 })) {
 *   if (e.kind === "step") console.log(e.step, e.loss);
 * }
 */
export async function* finetune(p: PeftModel, data: TrainData, o: FinetuneOptions = {}): AsyncGenerator<TrainEvent, void> {
  const s = peftState(p);
  const st = modelState(s.base);
  if (s.merged) throw new ConfigError(`finetune: adapter "${s.merged}" is merged; call unmergeAdapter first`);
  const { batchSize: bs, loss, eval: evalWith, signal, resume, jit, layerwise, full, ...rest } = o;
  let name: string | null = null;
  if (full) {
    if (s.enabled && s.selected) throw new ConfigError(`finetune: full finetuning trains the model's own weights, but adapter "${s.selected}" is active; call disableAdapters first`);
  } else {
    if (!s.enabled) throw new ConfigError("finetune: adapters are disabled; call enableAdapters first");
    name = s.selected;
    if (!name) throw new ConfigError("finetune: the model has no active adapter (addAdapter or setAdapter first)");
  }
  const steps = rest.steps ?? trainDefaults.steps;
  const config: TrainConfig = { ...trainDefaults, ...rest, evalEvery: evalWith ? (rest.evalEvery ?? steps) : 0 };
  if (bs !== undefined && !(Number.isInteger(bs) && bs >= 1)) throw new ConfigError(`finetune: batchSize must be a positive integer (batchSize=${bs})`);

  let l: ReturnType<typeof lossOf> | null = null;
  const itemsOf = (b: Batch) => (s.base.config ? b.target.data.length : rowsOf(b.input, "input"));
  const toEngine = (b: Batch): EngineBatch<unknown, Arr> => {
    l ??= lossOf(loss, b.target, s.base.dtype);
    return { input: st.input(b.input), target: l.target(b.target), items: itemsOf(b) };
  };
  let batch: (r: Rng) => Promise<EngineBatch<unknown, Arr> | null> | EngineBatch<unknown, Arr>;
  const sample = typeof data === "function" ? data : isDataset(data) ? rowSampler(data, bs ?? Math.min(32, checkDataset(data, "data"))) : null;
  if (sample) {
    batch = async (r) => toEngine(await sample(r));
  } else {
    const it: Iterator<Batch> | AsyncIterator<Batch> =
      Symbol.asyncIterator in data ? (data as AsyncIterable<Batch>)[Symbol.asyncIterator]() : (data as Iterable<Batch>)[Symbol.iterator]();
    batch = async () => {
      const r = await it.next();
      return r.done ? null : toEngine(r.value);
    };
  }
  const evalBatch = bs ?? 32;
  // Evaluations see the values trained so far through a view of the model (full finetuning: its weights).
  const evaluateWith = async (t: Trainable): Promise<EvalEvent[]> => {
    const view = viewWithTrained(s, name, t);
    try {
      if (typeof evalWith !== "function") return await evaluateSets(peftState(view), st, name ? tree.ref(t) : null, evalWith!, evalBatch, loss);
      const results = await evalWith(view);
      return results.map((e) => ({ kind: "eval", step: 0, split: e.split, loss: e.loss, metrics: e.metrics ?? {} }));
    } finally {
      tree.dispose(t);
    }
  };
  const task: Task<unknown, unknown, Arr> = {
    batch,
    loss: (out, target) => l!.fn(st.logits(out), target), // set by the first batch, which comes before any loss
    evaluate: evalWith ? (_m, t) => evaluateWith(t) : undefined,
  };
  const it = trainIter(activeRecord(s), task, config, { full, resume, jit, signal, layerwise: layerwise ?? st.def.layerwise?.preferred ?? false });
  for (;;) {
    const r = await it.next();
    if (r.done) {
      replaceTrained(s, name, r.value);
      return;
    }
    yield r.value;
  }
}

/**
 * The model's mean loss on a data set (and accuracy, with cross-entropy), through the active adapter. Rows are taken
 * in order, `batchSize` (default 32) at a time.
 */
export async function evaluate(p: PeftModel, data: Dataset, o: { loss?: LossName | LossFn; batchSize?: number } = {}): Promise<{ loss: number; accuracy?: number }> {
  const s = peftState(p);
  const rec = activeRecord(s);
  const t = rec.active ? { adapter: tree.ref(rec.adapters[rec.active].params), extras: Object.fromEntries(rec.adapters[rec.active].extras.map((k) => [k, rec.weights[k].ref])) } : null;
  const [e] = await evaluateSets(s, modelState(s.base), t, { data }, o.batchSize ?? 32, o.loss);
  return { loss: e.loss, ...(e.metrics?.accuracy !== undefined ? { accuracy: e.metrics.accuracy } : {}) };
}

/**
 * Next-token training data from a token stream: non-overlapping windows of `seqLen` ids as inputs, the same windows
 * shifted by one as targets (int32 [N, seqLen] each).
 *
 * @example const data = causalLmDataset(lm.tokenizer!.encode(text), { seqLen: 64 });
 */
export function causalLmDataset(ids: ArrayLike<number>, o: { seqLen: number }): Dataset {
  const T = o.seqLen;
  if (!(Number.isInteger(T) && T >= 1)) throw new ConfigError(`causalLmDataset: seqLen must be a positive integer (seqLen=${T})`);
  const N = Math.floor((ids.length - 1) / T);
  if (N < 1) throw new ConfigError(`causalLmDataset: ${ids.length} tokens are too few for one window of ${T} + 1`);
  const inputs = new Int32Array(N * T);
  const targets = new Int32Array(N * T);
  for (let w = 0; w < N; w++) {
    for (let j = 0; j < T; j++) {
      inputs[w * T + j] = ids[w * T + j];
      targets[w * T + j] = ids[w * T + j + 1];
    }
  }
  return { inputs: { dtype: "int32", shape: [N, T], data: inputs }, targets: { dtype: "int32", shape: [N, T], data: targets } };
}

/**
 * Next-token training batches drawn at random from a token stream (nanoGPT's get_batch): `batchSize` windows of
 * `seqLen` ids at uniformly random offsets as inputs, the same windows shifted by one as targets (int32
 * [batchSize, seqLen] each). A BatchSampler, so a run resumed from a snapshot draws the same windows.
 *
 * @example for await (const e of finetune(peft, causalLmSampler(lm.tokenizer!.encode(text), { seqLen: 64, batchSize: 8 }), { steps: 100 })) …
 */
export function causalLmSampler(ids: ArrayLike<number>, o: { seqLen: number; batchSize: number }): BatchSampler {
  checkBatchOpts("causalLmSampler", ids.length, o);
  return (r) => {
    const b = randomBatch(ids, r, o);
    return { input: { dtype: "int32", shape: [b.batchSize, b.seqLen], data: b.inputs }, target: { dtype: "int32", shape: [b.batchSize, b.seqLen], data: b.targets } };
  };
}

/** How finetune's batches should be split so that each step fits the engine's heap (microBatchPlan). */
export interface MicroBatchPlan {
  /** Micro-batches per optimizer step: finetune's `gradAccum` (1: the batch fits whole). */
  gradAccum: number;
  /** Sequences per micro-batch (batchSize / gradAccum): the batch size to draw. */
  microBatchSize: number;
  /** Estimated heap bytes of one step over the whole batch. */
  batchBytes: number;
  /** Estimated heap bytes of one step over a single sequence (more than heapBytes: even that will not fit). */
  sequenceBytes: number;
  /** The heap budget the estimates are held against (jax-js's 4 GiB wasm heap, less a margin). */
  heapBytes: number;
}

/**
 * The smallest split of a batch of `batchSize` sequences of `seqLen` tokens whose training step fits the engine's
 * heap: the same sequences, their gradients accumulated (up to rounding, the same step). For a model trained layer
 * by layer whose strategy estimates its memory (the Llama family); null for others, whose step is not estimated.
 * When even one sequence does not fit (`sequenceBytes > heapBytes`), training will probably run out of memory.
 * `full`: estimate for full finetuning (every weight trained). `layerwise`: as finetune's (default: the model's
 * preference); a step that is not layer by layer is not estimated.
 *
 * @example
 * const plan = microBatchPlan(peft, { batchSize: 16, seqLen: 256 });
 * const opts = plan ? { batchSize: plan.microBatchSize, gradAccum: plan.gradAccum } : { batchSize: 16 };
 */
export function microBatchPlan(p: PeftModel, o: { batchSize: number; seqLen: number; full?: boolean; layerwise?: boolean }): MicroBatchPlan | null {
  const s = peftState(p);
  const strategy = modelState(s.base).def.layerwise;
  if (!(o.layerwise ?? strategy?.preferred) || !strategy?.microBatches || !strategy.stepBytes) return null;
  const rec = activeRecord(s);
  const weightCount = Object.values(rec.weights).reduce((n, w) => n + w.size, 0);
  const trained = rec.active && !o.full ? trainableParameterCount(p) : weightCount;
  const gradAccum = strategy.microBatches(o.batchSize, o.seqLen, weightCount, trained);
  return {
    gradAccum,
    microBatchSize: o.batchSize / gradAccum,
    batchBytes: strategy.stepBytes(o.batchSize * o.seqLen, o.seqLen, weightCount, trained),
    sequenceBytes: strategy.stepBytes(o.seqLen, o.seqLen, weightCount, trained),
    heapBytes: HEAP_BUDGET_BYTES,
  };
}
