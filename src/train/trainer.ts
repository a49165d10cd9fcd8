/**
 * The training loop: one readable path (nanoGPT's shape) over pure pieces — batch → loss and gradients →
 * accumulate → clip → AdamW → (COFT write-back) → log — yielding events instead of printing.
 *
 * Deterministic: all randomness comes from two seeded generators (data, dropout) whose states are part of a
 * snapshot, together with the step, trainable tensors and optimizer moments. Resuming from a snapshot replays
 * the same batches and updates as the uninterrupted run.
 */
import { np, nn, tree, valueAndGrad, jit, blockUntilReady, type Arr } from "../engine/index.js";
import { ConfigError } from "../errors.js";
import { type Rng, type RngState, rng, rngFromState } from "../data/rng.js";
import { type AdaptedModel, type Trainable, forwardWith, trainableOf } from "../models/adapted.js";
import type { Weights } from "../models/model.js";
import { projectLayerParams, planUsesDropout } from "../methods/adapter.js";
import { adamw, clipScale, adamwStateToHostAsync, adamwStateFromHost, type AdamW, type AdamWState, type AdamWHostState } from "./optim.js";
import { lrAt } from "./schedule.js";
import { type HostTree, type Tree, treeToHostAsync, treeFromHost } from "./host-tree.js";
import type { EvalEvent, TrainEvent } from "./metrics.js";

/**
 * The training loop's settings (AdamW with linear warmup and cosine decay); every field has a default in
 * trainDefaults. Steps count optimizer steps, not micro-batches.
 */
export interface TrainConfig {
  steps: number;
  /** Micro-batches per optimizer step (gradients are averaged). */
  gradAccum: number;
  lr: number;
  warmupSteps: number;
  /** Floor of the cosine decay (default lr/10). */
  minLr?: number;
  weightDecay: number;
  /** Clip the global gradient norm to this (0: no clipping). */
  maxGradNorm: number;
  evalEvery: number;
  /** Yield a checkpoint (an in-memory snapshot) every N steps (0: only at the end). */
  checkpointEvery: number;
  seed: number;
}

/** The settings a run gets for each TrainConfig field it leaves out (100 steps, lr 1e-3, clipping at norm 1, no weight decay …). */
export const trainDefaults: TrainConfig = {
  steps: 100,
  gradAccum: 1,
  lr: 1e-3,
  warmupSteps: 0,
  weightDecay: 0, // HF TrainingArguments' default; decay would pull BOFT's s toward 0
  maxGradNorm: 1,
  evalEvery: 0,
  checkpointEvery: 0,
  seed: 0,
};

/** One training batch. */
export interface Batch<I, T> {
  input: I;
  target: T;
  items: number;
}

/** What is trained and how its loss is measured. */
export interface Task<I, O, T> {
  /**
   * Draws the next batch from `r` (or from its own source). `items` counts tokens or samples, for throughput. null:
   * the data ran out, and training ends after the last full step.
   */
  batch(r: Rng): Batch<I, T> | null | Promise<Batch<I, T> | null>;
  /** Scalar loss of a forward output. Consumes output and target. */
  loss(output: O, target: T): Arr;
  /** Evaluations to report (split name → loss and metrics), run on the model with its current trainables. */
  evaluate?(m: AdaptedModel<I, O>, trainable: Trainable): Promise<EvalEvent[]>;
}

/** Everything needed to continue a run exactly where it stopped (plain data, for a checkpoint file). */
export interface TrainSnapshot {
  step: number;
  trainable: HostTree;
  optimizer: AdamWHostState;
  dataRng: RngState;
  dropoutRng: RngState;
}

export type { TrainEvent };

export interface TrainOptions<I = unknown, T = unknown> {
  /** Train everything (full finetuning) instead of the active adapter. */
  full?: boolean;
  resume?: TrainSnapshot;
  /**
   * Compile forward+backward with jax-js's jit (default: on unless the adapter uses dropout, whose host-drawn
   * masks would be frozen into the compiled step).
   */
  jit?: boolean;
  /**
   * Replaces the built-in loss-and-gradient computation (eager), e.g. a model's layer-by-layer backward for deep
   * models whose single compiled step would not fit jax-js's heap. Consumes t, input and target.
   */
  gradients?: (t: Trainable, input: I, target: T, random: () => number) => [Arr, Trainable] | Promise<[Arr, Trainable]>;
  /** Stops training after the step in progress: a checkpoint of that step is yielded (no evaluation), then `done` with `stopped`. */
  signal?: AbortSignal;
  /**
   * Take loss and gradients from the model's own layer-by-layer strategy (ModelDef.layerwise; deep models whose
   * single compiled step would not fit jax-js's heap), full finetuning included.
   */
  layerwise?: boolean;
}

function initialTrainable<I, O>(m: AdaptedModel<I, O>, full: boolean): Trainable {
  if (!full) return trainableOf(m);
  return { adapter: {}, extras: Object.fromEntries(Object.entries(m.weights).map(([k, v]) => [k, v.ref])) };
}

/** COFT keeps OFT parameters on its ball; PEFT projects them in place on every forward. Consumes t. */
function project<I, O>(m: AdaptedModel<I, O>, t: Trainable): Trainable {
  if (!m.active) return t;
  const plan = m.adapters[m.active].plan;
  const adapter = Object.fromEntries(plan.layers.map((l) => [l.module.path, projectLayerParams(l, t.adapter[l.module.path])]));
  return { adapter, extras: t.extras };
}

async function snapshotOf(step: number, t: Trainable, opt: AdamWState, data: Rng, dropout: Rng): Promise<TrainSnapshot> {
  return {
    step,
    trainable: await treeToHostAsync(tree.ref(t) as unknown as Tree),
    optimizer: await adamwStateToHostAsync(tree.ref(opt) as AdamWState),
    dataRng: data.state(),
    dropoutRng: dropout.state(),
  };
}

/**
 * Trains `m`'s active adapter (or all weights with `full`). Yields step/eval/snapshot events and returns the
 * trained tensors; the caller owns them (e.g. `withTrained(m, result)`).
 */
export async function* trainIter<I, O, T>(m: AdaptedModel<I, O>, task: Task<I, O, T>, c: TrainConfig, o: TrainOptions<I, T> = {}): AsyncGenerator<TrainEvent, Trainable> {
  if (!(Number.isInteger(c.steps) && c.steps >= 1)) throw new ConfigError(`train: steps must be a positive integer (steps=${c.steps})`);
  if (!(Number.isInteger(c.gradAccum) && c.gradAccum >= 1)) throw new ConfigError(`train: gradAccum must be a positive integer (gradAccum=${c.gradAccum})`);
  if (!o.full && !m.active) throw new ConfigError("train: the model has no active adapter (add one, or train with full: true)");
  const schedule = { lr: c.lr, totalSteps: c.steps, warmupSteps: c.warmupSteps, minLr: c.minLr };
  const optimizer = adamw({ lr: c.lr, weightDecay: c.weightDecay });

  let trainable: Trainable;
  let opt: AdamWState;
  let first = 0;
  let data: Rng;
  let dropout: Rng;
  if (o.resume) {
    const fresh = initialTrainable(m, o.full ?? false);
    tree.dispose(fresh); // only its structure was needed to validate against
    trainable = treeFromHost(o.resume.trainable) as unknown as Trainable;
    opt = adamwStateFromHost(o.resume.optimizer);
    first = o.resume.step;
    data = rngFromState(o.resume.dataRng);
    dropout = rngFromState(o.resume.dropoutRng);
  } else {
    trainable = initialTrainable(m, o.full ?? false);
    opt = optimizer.init(tree.ref(trainable) as unknown as Tree);
    data = rng(c.seed);
    dropout = rng(c.seed + 1);
  }

  const usesDropout = planUsesDropout(m.active ? m.adapters[m.active].plan : null);
  const random = () => dropout.nextFloat();
  const custom = o.gradients ?? (o.layerwise ? layerwiseGradients(m, task) : undefined);
  const gradients = custom
    ? Object.assign((t: Trainable, input: I, target: T) => custom(t, input, target, random), { dispose: () => {} })
    : gradientFn(m, task, o.jit ?? !usesDropout, random);
  const started = performance.now();
  let lastLoss: number | undefined;
  try {
    let completed = first;
    let stopped = false;
    for (let step = first; step < c.steps; step++) {
      const lr = lrAt(step, schedule);
      let grads: Trainable | null = null;
      let lossSum: Arr | null = null;
      let items = 0;
      let exhausted = false;
      for (let micro = 0; micro < c.gradAccum; micro++) {
        const b = await task.batch(data);
        if (b === null) {
          exhausted = true;
          break;
        }
        items += b.items;
        const [loss, g] = await gradients(tree.ref(trainable), b.input, b.target);
        lossSum = lossSum ? lossSum.add(loss) : loss;
        grads = grads ? (tree.map((a: Arr, x: Arr) => a.add(x), grads as never, g as never) as unknown as Trainable) : g;
      }
      if (exhausted) {
        // A partial step is not taken: the data ran out. The last full step gets what the last step always gets.
        tree.dispose([grads, lossSum].filter((x) => x !== null) as never);
        if (completed > first && task.evaluate && c.evalEvery > 0 && completed % c.evalEvery !== 0) {
          for (const e of await task.evaluate(m, tree.ref(trainable))) yield { ...e, step: completed };
        }
        if (completed > first && !(c.checkpointEvery > 0 && completed % c.checkpointEvery === 0)) {
          yield { kind: "checkpoint", step: completed, snapshot: await snapshotOf(completed, trainable, opt, data, dropout) };
        }
        break;
      }
      if (c.gradAccum > 1) grads = tree.map((a: Arr) => a.mul(1 / c.gradAccum), grads as never) as unknown as Trainable;
      let gradNorm: Arr | null = null;
      let scale: Arr | null = null; // the clipping factor, applied a group at a time with the update
      if (c.maxGradNorm > 0) [scale, gradNorm] = clipScale(grads as unknown as Tree, c.maxGradNorm);
      [trainable, opt] = await updateInGroups(optimizer, grads!, opt, trainable, lr, scale);
      scale?.dispose();
      trainable = project(m, trainable);
      // Materialise the new state: left lazy, the update would fuse into the next step's kernels and round
      // differently from a run resumed from stored values (so resume would not be bit-exact).
      await blockUntilReady([trainable, opt] as never);
      // The one read of the step.
      // Async reads: with worker threads, a synchronous read of work still in flight would throw.
      lastLoss = ((await lossSum!.mul(1 / c.gradAccum).data()) as Float32Array)[0];
      const norm = gradNorm ? ((await gradNorm.data()) as Float32Array)[0] : undefined;
      completed = step + 1;
      yield { kind: "step", step: step + 1, totalSteps: c.steps, loss: lastLoss, lr, gradNorm: norm, items, elapsedMs: performance.now() - started };
      const done = step + 1 === c.steps;
      // A stop skips the evaluation an uninterrupted run would not make here, so a resumed run logs the same events.
      stopped = !done && (o.signal?.aborted ?? false);
      if (task.evaluate && c.evalEvery > 0 && ((step + 1) % c.evalEvery === 0 || done)) {
        for (const e of await task.evaluate(m, tree.ref(trainable))) yield { ...e, step: step + 1 };
      }
      if ((c.checkpointEvery > 0 && (step + 1) % c.checkpointEvery === 0) || done || stopped) {
        yield { kind: "checkpoint", step: step + 1, snapshot: await snapshotOf(step + 1, trainable, opt, data, dropout) };
      }
      if (stopped) break;
    }
    yield { kind: "done", step: completed, elapsedMs: performance.now() - started, finalLoss: lastLoss, ...(stopped ? { stopped: true } : {}) };
    tree.dispose(opt as unknown as Tree);
    return trainable;
  } catch (e) {
    tree.dispose([trainable, opt] as never);
    throw e;
  } finally {
    gradients.dispose();
  }
}

/** The model's layer-by-layer loss and gradients as the trainer's gradient function. */
function layerwiseGradients<I, O, T>(m: AdaptedModel<I, O>, task: Task<I, O, T>): NonNullable<TrainOptions<I, T>["gradients"]> {
  const strategy = m.def.layerwise;
  if (!strategy) throw new ConfigError(`train: the ${m.def.type} model has no layer-by-layer strategy (layerwise: true)`);
  return (t, input, target, random) => strategy.valueAndGrad(m, t, input, (out) => task.loss(out, target), { training: true, random });
}

/** Leaves per optimizer group hold at most this many values (64 MB of float32). */
const GROUP_VALUES = 16 * 2 ** 20;

/**
 * optimizer.update, a group of leaves at a time, each group computed before the next is built, after scaling the
 * gradients by `scale` (clipScale's factor; borrowed). The update is the same per leaf; what changes is the peak: in
 * one piece, the clipped gradients, new values, moments and the old ones are all live at once (full finetuning at
 * SmolLM2-135M's size: past jax-js's 4 GiB heap). Consumes the other arguments.
 */
export async function updateInGroups(
  optimizer: AdamW,
  grads: Trainable,
  opt: AdamWState,
  params: Trainable,
  lr: number,
  scale: Arr | null = null,
  groupValues = GROUP_VALUES,
): Promise<[Trainable, AdamWState]> {
  const [ps, def] = tree.flatten(params as never) as [Arr[], Parameters<typeof tree.unflatten>[0]];
  // The clipping factor goes into the update's own kernel (AdamW's gradScale), not a kernel per leaf before it.
  const gradScale = scale ?? undefined;
  if (ps.reduce((n, p) => n + p.size, 0) <= groupValues) {
    return optimizer.update(grads as never, opt as never, tree.unflatten(def, ps) as never, lr, gradScale) as unknown as [Trainable, AdamWState];
  }
  const [gs, ms, vs] = [grads, opt.mu, opt.nu].map((t) => tree.leaves(t as never) as Arr[]);
  const out: { p: Arr[]; m: Arr[]; v: Arr[] } = { p: [], m: [], v: [] };
  let count = opt.count;
  for (let i = 0; i < ps.length; ) {
    let j = i + 1;
    for (let n = ps[i].size; j < ps.length && n + ps[j].size <= groupValues; j++) n += ps[j].size;
    const [p, s] = optimizer.update(gs.slice(i, j), { count: opt.count, mu: ms.slice(i, j), nu: vs.slice(i, j) }, ps.slice(i, j), lr, gradScale);
    await blockUntilReady([p, s.mu, s.nu] as never);
    out.p.push(...(p as Arr[]));
    out.m.push(...(s.mu as Arr[]));
    out.v.push(...(s.nu as Arr[]));
    count = s.count;
    i = j;
  }
  const build = (xs: Arr[]) => tree.unflatten(def, xs) as never;
  return [build(out.p), { count, mu: build(out.m), nu: build(out.v) }];
}

type GradientFn<I, T> = ((t: Trainable, input: I, target: T) => [Arr, Trainable] | Promise<[Arr, Trainable]>) & { dispose(): void };

/**
 * Loss and gradients w.r.t. the trainable tensors. Consumes all three arguments.
 *
 * Compiled, the frozen weights are arguments of the jitted step (not constants baked into it) and are not
 * differentiated. That used to cost 1.3–2.3× per step in jax-js's jit (field notes §5.1: elementwise backward work
 * fused into a frozen matmul's operand leaves the fast matmul kernels), so frozen gradients were computed and
 * dropped; `linear` now ends with a cotangent barrier instead (src/engine), which is cheaper: demo LM BOFT step
 * 865 → 715 ms, LoRA 679 → 540, CNN BOFT 941 → 703 (one thread, same losses).
 */
function gradientFn<I, O, T>(m: AdaptedModel<I, O>, task: Task<I, O, T>, compiled: boolean, random: () => number): GradientFn<I, T> {
  const options = { training: true, random };
  if (!compiled) {
    const lossOf = (t: Trainable, input: I, target: T): Arr => task.loss(forwardWith(m, t, input, options), target);
    const f = (t: Trainable, input: I, target: T) => (valueAndGrad(lossOf) as (t: Trainable, i: I, y: T) => [Arr, Trainable])(t, input, target);
    return Object.assign(f, { dispose: () => {} });
  }
  const lossWithBase = (t: Trainable, frozen: Weights, input: I, target: T): Arr => {
    const out = forwardWith({ ...m, weights: frozen }, t, input, options);
    tree.dispose(frozen);
    return task.loss(out, target);
  };
  const step = jit((t: Trainable, frozen: Weights, input: I, target: T) => (valueAndGrad(lossWithBase) as (...a: unknown[]) => never)(t, frozen, input, target));
  const f = async (t: Trainable, input: I, target: T): Promise<[Arr, Trainable]> => {
    const frozen: Weights = {};
    for (const [k, v] of Object.entries(m.weights)) if (!(k in t.extras)) frozen[k] = v.ref;
    const out = (step as unknown as (...a: unknown[]) => [Arr, Trainable])(t, frozen, input, target);
    // Settled here, through one output. Every output of a jitted call carries the call's whole kernel list until it
    // is submitted: each op on an unsettled gradient copies that list, and settling the outputs together prepares it
    // once per output (outputs × kernels promises). Demo LM, BOFT (57 outputs, ~1050 kernels), one thread: 1.3 s of
    // CPU per step → 0.55 s; full finetuning 0.73 → 0.45 s.
    await out[0].blockUntilReady();
    return out;
  };
  return Object.assign(f, { dispose: () => step.dispose() });
}

/** Drains trainIter, calling `onEvent` for each event; returns the trained tensors. */
export async function train<I, O, T>(m: AdaptedModel<I, O>, task: Task<I, O, T>, c: TrainConfig, o: TrainOptions<I, T> & { onEvent?: (e: TrainEvent) => void } = {}): Promise<Trainable> {
  const it = trainIter(m, task, c, o);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
    o.onEvent?.(r.value);
  }
}

/** Mean cross-entropy of logits [..., C] against integer labels [...] (one-hot, jit-friendly). Consumes both. */
export function crossEntropy(logits: Arr, labels: Arr): Arr {
  const C = logits.shape[logits.shape.length - 1];
  const N = logits.size / C;
  const logProbs = nn.logSoftmax(logits.reshape([N, C]), -1);
  // labels == arange(C), not nn.oneHot: jax-js builds that as eye(C)[labels], whose flat index label·C overflows
  // int32 at real vocabulary sizes (49152² > 2³¹).
  const onehot = np.equal(labels.reshape([N, 1]), np.arange(C).reshape([1, C])).astype(logProbs.dtype);
  return logProbs.mul(onehot).sum().mul(-1 / N);
}
