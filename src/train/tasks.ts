/**
 * Ready-made training tasks over host data: next-token prediction on a token stream (perplexity), and image
 * classification (accuracy). Each evaluates on named splits, so one run reports adaptation and forgetting.
 */
import { np, tree, jit, type Arr } from "../engine/index.js";
import { ConfigError } from "../errors.js";
import type { Weights } from "../models/model.js";
import type { Rng } from "../data/rng.js";
import { randomBatch, sequentialBatches, spreadBatches } from "../data/text.js";
import type { LabelledImages } from "../data/vision.js";
import { type AdaptedModel, type Trainable, forwardWith } from "../models/adapted.js";
import type { LlamaInput, KvCache } from "../models/llama.js";
import { crossEntropy, type Task } from "./trainer.js";
import type { EvalEvent } from "./metrics.js";

type LmOutput = { logits: Arr; cache?: KvCache };

export interface LmTaskOptions {
  train: Int32Array;
  /** Held-out token streams by split name, e.g. { "val-new": …, "val-old": … }. */
  evals: Record<string, Int32Array>;
  batchSize: number;
  seqLen: number;
  /** At most this many evaluation windows per split, spread evenly over all of it (cheap, and always the same tokens). */
  evalWindows?: number;
  /** Evaluate with the model's own layer-by-layer strategy (ModelDef.layerwise), for deep models. */
  layerwise?: boolean;
}

function ids(a: Int32Array, rows: number, cols: number): Arr {
  return np.array(a, { dtype: np.int32 }).reshape([rows, cols]);
}

/**
 * `f(output, target)` over the model's forward, compiled once (weights and trainables are arguments, not
 * constants baked into the compiled code). Borrows `m` and `trainable`; call `dispose` when done.
 */
function compiledEval<I, O, T, R>(m: AdaptedModel<I, O>, trainable: Trainable | null, f: (out: O, target: T) => R): ((input: I, target: T) => R) & { dispose(): void } {
  const run = jit((t: Trainable, w: Weights, input: I, target: T) => {
    const out = forwardWith({ ...m, weights: w }, trainable ? t : null, input);
    if (!trainable) tree.dispose(t);
    tree.dispose(w);
    return f(out, target) as never;
  });
  const call = (input: I, target: T): R => {
    const t = trainable ? tree.ref(trainable) : { adapter: {}, extras: {} };
    const w: Weights = Object.fromEntries(Object.entries(m.weights).map(([k, v]) => [k, v.ref]));
    return (run as unknown as (...a: unknown[]) => R)(t, w, input, target);
  };
  return Object.assign(call, { dispose: () => run.dispose() });
}

/** The same as compiledEval's `f`, by the model's layer-by-layer strategy. Borrows `m` and `trainable`. */
function layerwiseEval<I, O, T>(m: AdaptedModel<I, O>, trainable: Trainable | null, f: (out: O, target: T) => Arr) {
  const strategy = m.def.layerwise;
  if (!strategy) throw new ConfigError(`evaluate: the ${m.def.type} model has no layer-by-layer strategy (layerwise: true)`);
  const call = (input: I, target: T): Promise<Arr> => strategy.loss(m, trainable ? tree.ref(trainable) : null, input, (out) => f(out, target));
  return Object.assign(call, { dispose: () => {} });
}

/** Mean cross-entropy and perplexity of `m` (with `trainable`) on each split. Consumes trainable. */
export async function evaluateLm(m: AdaptedModel<LlamaInput, LmOutput>, trainable: Trainable | null, o: LmTaskOptions): Promise<EvalEvent[]> {
  const events: EvalEvent[] = [];
  const lmLoss = (out: LmOutput, target: Arr) => crossEntropy(out.logits, target);
  const lossOf = o.layerwise ? layerwiseEval(m, trainable, lmLoss) : compiledEval(m, trainable, lmLoss);
  for (const [split, tokens] of Object.entries(o.evals)) {
    let sum = 0;
    let count = 0;
    const batches = o.evalWindows === undefined ? sequentialBatches(tokens, o) : spreadBatches(tokens, { ...o, windows: o.evalWindows });
    for (const b of batches) {
      const n = b.batchSize * b.seqLen;
      sum += ((await (await lossOf({ ids: ids(b.inputs, b.batchSize, b.seqLen) }, ids(b.targets, b.batchSize, b.seqLen))).data()) as Float32Array)[0] * n;
      count += n;
    }
    const loss = sum / count;
    events.push({ kind: "eval", step: 0, split, loss, metrics: { perplexity: Math.exp(loss), tokens: count } });
  }
  lossOf.dispose();
  if (trainable) tree.dispose(trainable);
  return events;
}

export function lmTask(o: LmTaskOptions): Task<LlamaInput, LmOutput, Arr> {
  return {
    batch(r: Rng) {
      const b = randomBatch(o.train, r, o);
      return { input: { ids: ids(b.inputs, b.batchSize, b.seqLen) }, target: ids(b.targets, b.batchSize, b.seqLen), items: b.batchSize * b.seqLen };
    },
    loss: (out, target) => crossEntropy(out.logits, target),
    evaluate: (m, t) => evaluateLm(m, t, o),
  };
}

export interface ClassifyTaskOptions {
  train: LabelledImages;
  evals: Record<string, LabelledImages>;
  batchSize: number;
}

function pixels(set: LabelledImages, start: number, rows: number): Arr {
  const d = set.images.length / set.n;
  return np.array(set.images.subarray(start * d, (start + rows) * d)).reshape([rows, d]);
}

/** Loss and accuracy on each split. Consumes trainable. */
export async function evaluateClassifier(m: AdaptedModel<Arr, Arr>, trainable: Trainable | null, o: ClassifyTaskOptions): Promise<EvalEvent[]> {
  const events: EvalEvent[] = [];
  const scoreOf = compiledEval(m, trainable, (logits: Arr, labels: Arr) => [np.argmax(logits.ref, -1), crossEntropy(logits, labels)] as [Arr, Arr]);
  for (const [split, set] of Object.entries(o.evals)) {
    let lossSum = 0;
    let correct = 0;
    for (let start = 0; start < set.n; start += o.batchSize) {
      const rows = Math.min(o.batchSize, set.n - start);
      const labels = set.labels.subarray(start, start + rows);
      const [predA, lossA] = scoreOf(pixels(set, start, rows), np.array(labels, { dtype: np.int32 }));
      const pred = (await predA.data()) as Int32Array;
      for (let i = 0; i < rows; i++) if (pred[i] === labels[i]) correct++;
      lossSum += ((await lossA.data()) as Float32Array)[0] * rows;
    }
    events.push({ kind: "eval", step: 0, split, loss: lossSum / set.n, metrics: { accuracy: correct / set.n, samples: set.n } });
  }
  scoreOf.dispose();
  if (trainable) tree.dispose(trainable);
  return events;
}
