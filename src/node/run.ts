/**
 * One training run from a run.json, the way `boft train` does it: file → model → adapter (getPeftModel) → the
 * library's `finetune` loop → files. This module only adapts run.json to it: the model and data it names, its
 * token windows as a BatchSampler, its evaluation as an Evaluator, and the run folder's files.
 *
 * The run folder gets: run.json (the config as given), metrics.jsonl (every event), loss.svg (curves),
 * checkpoint-<step>/ (adapter in PEFT format + optimizer + generator states), and adapter/ (the final adapter,
 * PEFT format; model/ with model.safetensors for full finetuning). `resume` continues from the newest checkpoint.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { np, tree, type Arr } from "../engine/index.js";
import { ConfigError } from "../errors.js";
import { rng } from "../data/rng.js";
import { encode as encodeChars, splitTokens } from "../data/text.js";
import { rotateImages, invertImages, type LabelledImages } from "../data/vision.js";
import { parseHfConfig } from "../formats/hf-config.js";
import { layerParamShapes } from "../methods/adapter.js";
import { withDefaultTargets } from "../methods/method.js";
import { METHODS } from "../methods/registry.js";
import { llama, type LlamaInput, type KvCache } from "../models/llama.js";
import { mlp } from "../models/mlp.js";
import { cnn } from "../models/cnn.js";
import { type AdaptedModel, type Trainable, initWeights, trainableOf } from "../models/adapted.js";
import type { ModelDef, Weights } from "../models/model.js";
import type { TrainEvent } from "../train/trainer.js";
import { evaluateLm, evaluateClassifier, type LmTaskOptions, type ClassifyTaskOptions } from "../train/tasks.js";
import { makeModel } from "../api/model.js";
import { type PeftModel, getPeftModel, emptyPeftModel, peftState, activeRecord } from "../api/peft.js";
import { finetune, causalLmSampler, microBatchPlan, type TrainData, type Dataset, type Evaluator } from "../api/train.js";
import { toJsonLine, parseJsonLines, lossCurves, type EvalEvent } from "../train/metrics.js";
import { linePlot } from "../plot/svg.js";
import { treeToHostAsync } from "../train/host-tree.js";
import { loadBrown } from "./data/brown.js";
import { loadMnist } from "./data/mnist.js";
import { loadHfModel } from "./hf-model.js";
import { loadAdapter } from "./model-adapter.js";
import { openCheckpoint } from "./safetensors-file.js";
import { saveCheckpoint, loadCheckpoint, writeTrained, type TrainableLayout } from "./checkpoint.js";
import { atomicWriteFile } from "./atomic.js";
import { checkTrainSettings, type RunConfig, type ModelSpec } from "./run-config.js";
import { checkRunOutput, startRunOutput, checkTokenData, runRecord, RunInterrupted, type RunFolderOptions } from "./run-guard.js";

type LmOut = { logits: Arr; cache?: KvCache };

/**
 * A model and data ready to train, of either kind. `peft` is the model as the library trains it (its adapter, or
 * none for full finetuning); `model` is its record at preparation, for evaluation and inspection.
 */
export type Prepared =
  | {
      kind: "lm";
      peft: PeftModel;
      model: AdaptedModel<LlamaInput, LmOut>;
      taskOptions: LmTaskOptions;
      baseName: string | null;
      /** Micro-batches per data.batchSize batch (taskOptions.batchSize is the micro-batch), chosen to fit the heap. */
      accumulate?: number;
      /** What was chosen for the user (printed by `boft train`). */
      notes?: string[];
    }
  | { kind: "classify"; peft: PeftModel; model: AdaptedModel<Arr, Arr>; taskOptions: ClassifyTaskOptions; baseName: string | null };

function loadWeightsFile(file: string, def: ModelDef<unknown, unknown>): Weights {
  const ckpt = openCheckpoint(file);
  try {
    const out: Weights = {};
    for (const s of def.weights) {
      if (!ckpt.has(s.name)) throw new ConfigError(`${file}: no tensor "${s.name}" for this model`);
      const t = ckpt.read(s.name);
      out[s.name] = np.array(Float32Array.from(t.data)).reshape(t.shape);
    }
    return out;
  } finally {
    ckpt.close();
  }
}

function buildModel(spec: ModelSpec, seed: number, withTokenizer: boolean) {
  if ("hf" in spec) {
    const m = loadHfModel(spec.hf, { tokenizer: withTokenizer });
    return { kind: "lm" as const, def: m.def as ModelDef<LlamaInput, LmOut>, weights: m.weights, tokenizer: m.tokenizer, baseName: spec.hf, vocab: m.config.vocabSize, config: m.config };
  }
  if (spec.arch === "llama") {
    const c = parseHfConfig(spec.config, "run.json model.config").config;
    const def = llama(c) as ModelDef<LlamaInput, LmOut>;
    return { kind: "lm" as const, def, weights: initWeights(def.weights, rng(seed + 100)), tokenizer: null, baseName: null, vocab: c.vocabSize, config: c };
  }
  const def = (spec.arch === "mlp" ? mlp(spec.config) : cnn(spec.config)) as ModelDef<Arr, Arr>;
  const weights = spec.weights ? loadWeightsFile(spec.weights, def as ModelDef<unknown, unknown>) : initWeights(def.weights, rng(seed + 100));
  return { kind: "classify" as const, def, weights, tokenizer: null, baseName: spec.weights ?? null, vocab: 0 };
}

function transformImages(set: LabelledImages, t: string): LabelledImages {
  if (t === "none") return set;
  if (t === "invert") return { ...set, images: invertImages(set.images) };
  const m = /^rotate:(-?\d+(\.\d+)?)$/.exec(t);
  if (m) return { ...set, images: rotateImages(set.images, Number(m[1])) };
  throw new ConfigError(`data transform "${t}" is not one of "none", "invert", "rotate:<degrees>"`);
}

function readTextData(path: string, field: string | undefined): string[] {
  const text = fs.readFileSync(path, "utf8");
  if (!path.endsWith(".jsonl")) return [text];
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((line, i) => {
      let o: unknown;
      try {
        o = JSON.parse(line);
      } catch {
        throw new ConfigError(`${path}:${i + 1}: not a JSON line`);
      }
      const v = (o as Record<string, unknown>)[field ?? "text"];
      if (typeof v !== "string") throw new ConfigError(`${path}:${i + 1}: no string field "${field ?? "text"}"`);
      return v;
    });
}

/**
 * Builds a run's model (with its adapter, unless full finetuning), task and data from a parsed run.json, without
 * training or writing anything. Throws ConfigError / FormatError for data or models that do not fit.
 */
export async function prepareRun(cfg: RunConfig): Promise<Prepared> {
  const seed = cfg.train.seed;
  const d = cfg.data;
  const built = buildModel(cfg.model, seed, d.kind === "text");
  const base = makeModel(built.def as ModelDef<unknown, unknown>, built.weights, { config: built.kind === "lm" ? built.config : null, tokenizer: built.tokenizer, nameOrPath: built.baseName });
  // The adapter as the library's getPeftModel makes it; none for full finetuning.
  const peft = cfg.method ? getPeftModel(base, cfg.method, { seed: seed + 2 }) : emptyPeftModel(base);
  const record = activeRecord(peftState(peft));
  if (built.kind === "lm") {
    const model = record as AdaptedModel<LlamaInput, LmOut>;
    let taskOptions: LmTaskOptions;
    if (d.kind === "brown") {
      const genres = [...new Set([...d.train, ...Object.values(d.eval).flat()])];
      const corpus = await loadBrown({ genres });
      const split = (g: string) => splitTokens(encodeChars(corpus.text[g]), 1 - (d.valFraction ?? 0.1));
      const parts = Object.fromEntries(genres.map((g) => [g, split(g)]));
      const concat = (xs: Int32Array[]) => Int32Array.from(xs.flatMap((x) => [...x]));
      taskOptions = {
        train: concat(d.train.map((g) => parts[g][0])),
        evals: Object.fromEntries(Object.entries(d.eval).map(([name, gs]) => [name, concat(gs.map((g) => parts[g][1]))])),
        batchSize: d.batchSize,
        seqLen: d.seqLen,
        evalWindows: d.evalWindows ?? 64,
      };
      if (built.vocab < 97) throw new ConfigError(`brown data uses the 97-symbol character vocabulary; the model's vocab_size is ${built.vocab}`);
    } else if (d.kind === "text") {
      if (!built.tokenizer) throw new ConfigError(`text data needs a tokenizer: use "model": {"hf": <folder with tokenizer.json>}`);
      const tok = built.tokenizer;
      const tokens = (path: string) => Int32Array.from(readTextData(path, d.field).flatMap((doc) => tok.encode(doc)));
      const ids = tokens(d.path);
      const [train, val] = d.eval !== undefined ? [ids, tokens(d.eval)] : splitTokens(ids, 1 - (d.valFraction ?? 0.1));
      taskOptions = { train, evals: { val }, batchSize: d.batchSize, seqLen: d.seqLen, evalWindows: d.evalWindows ?? 16 };
    } else throw new ConfigError(`a language model trains on "brown" or "text" data, not "${d.kind}"`);
    checkTokenData(`${cfg.file}: data`, { "the training data": taskOptions.train, ...Object.fromEntries(Object.entries(taskOptions.evals).map(([k, v]) => [`evaluation split "${k}"`, v])) }, taskOptions.seqLen);
    const notes: string[] = [];
    let accumulate = 1;
    if (built.def.layerwise?.preferred) taskOptions.layerwise = true;
    // A batch whose step would not fit jax-js's 4 GiB heap trains as micro-batches with accumulated gradients:
    // the same sequences (the data generator draws them one by one) and, up to rounding, the same step.
    const B = taskOptions.batchSize;
    const plan = taskOptions.layerwise ? microBatchPlan(peft, { batchSize: B, seqLen: taskOptions.seqLen, full: !cfg.method, layerwise: true }) : null;
    if (plan) {
      const gb = (x: number) => (x / 1e9).toFixed(1);
      if (plan.sequenceBytes > plan.heapBytes) {
        notes.push(
          `even one sequence of ${taskOptions.seqLen} tokens needs about ${gb(plan.sequenceBytes)} GB (weights, and for each trained value its gradient and AdamW's two moments), more than jax-js's 4 GiB heap holds: this run will probably run out of memory; an adapter trains far fewer values`,
        );
      }
      if (plan.gradAccum > 1) {
        accumulate = plan.gradAccum;
        taskOptions.batchSize = plan.microBatchSize;
        notes.push(
          `a batch of ${B}×${taskOptions.seqLen} tokens needs about ${gb(plan.batchBytes)} GB, more than jax-js's 4 GiB heap holds: each step trains ${accumulate} micro-batches of ${taskOptions.batchSize} and accumulates their gradients (the same step; set data.batchSize and train.gradAccum to choose yourself)`,
        );
      }
    }
    return { kind: "lm", peft, model, taskOptions, baseName: built.baseName, accumulate, notes };
  }
  if (d.kind !== "mnist") throw new ConfigError(`an ${cfg.model && "arch" in cfg.model ? cfg.model.arch : ""} model trains on "mnist" data`);
  const model = record as AdaptedModel<Arr, Arr>;
  const trainSet = transformImages(await loadMnist("train", { limit: d.trainLimit }), d.transform);
  const testSet = await loadMnist("test", { limit: d.evalLimit ?? 2000 });
  const evals = Object.fromEntries(Object.entries(d.evalTransforms).map(([name, t]) => [name, transformImages(testSet, t)]));
  const taskOptions = { train: trainSet, evals, batchSize: d.batchSize };
  return { kind: "classify", peft, model, taskOptions, baseName: built.baseName };
}

/** Llama's depth from which it trains and evaluates layer by layer (its ModelDef.layerwise is then preferred). */
export { LAYERWISE_FROM_LAYERS } from "../models/llama-grad.js";

/** Module → parameter suffixes and extra keys of the run's adapter, to read checkpoints back. */
function layoutOf(p: Prepared): TrainableLayout | null {
  const m = p.model as AdaptedModel<unknown, unknown>;
  if (!m.active) return null;
  const a = m.adapters[m.active];
  return { layout: Object.fromEntries(a.plan.layers.map((l) => [l.module.path, layerParamShapes(l).map(([s]) => s)])), extras: a.extras };
}

/**
 * What runTraining returns: the trained model, every event, the final evaluation and where the adapter was written.
 */
export interface RunResult {
  prepared: Prepared;
  /** The model with the trained tensors in place. */
  model: AdaptedModel<unknown, unknown>;
  events: TrainEvent[];
  finalEval: EvalEvent[];
  adapterDir: string;
  trainableParams: number;
  /** Degrees of freedom (the paper's count): BOFT ½(b−1)·n·m + s per layer; OFT, LoRA and full finetuning = stored. */
  effectiveParams: number;
  seconds: number;
}

function effectiveParams(m: AdaptedModel<unknown, unknown>, stored: number): number {
  if (!m.active) return stored;
  const a = m.adapters[m.active];
  const layers = a.plan.layers.reduce((sum, l) => sum + METHODS[l.method].count(l.shape as never).effective, 0);
  return layers + a.extras.reduce((sum, k) => sum + m.weights[k].size, 0);
}

/** The trained tensors of a record (new references): its active adapter's, or with `full` all of its weights. */
function trainedOf(m: AdaptedModel<unknown, unknown>, full: boolean): Trainable {
  return full ? { adapter: {}, extras: Object.fromEntries(Object.entries(m.weights).map(([k, v]) => [k, v.ref])) } : trainableOf(m);
}

/** Labelled images as the library's Dataset: rows of pixels and their int32 labels. */
function imageRows(set: LabelledImages): Dataset {
  return { inputs: { dtype: "float32", shape: [set.n, set.images.length / set.n], data: set.images }, targets: { dtype: "int32", shape: [set.n], data: set.labels } };
}

/** Evaluates a prepared model as it is (base, or with its trained adapter). */
export function evaluatePrepared(p: Prepared, trainable: Trainable | null): Promise<EvalEvent[]> {
  return p.kind === "lm" ? evaluateLm(p.model, trainable, p.taskOptions) : evaluateClassifier(p.model, trainable, p.taskOptions);
}

/** A run resumed: it continues after `step`, from the checkpoint folder `path` (runTraining's onEvent only). */
export interface ResumeEvent {
  kind: "resume";
  step: number;
  path: string;
}

/** What runTraining reports as it goes: the training loop's events (a checkpoint's carries its folder), and a resume. */
export type RunEvent = TrainEvent | ResumeEvent;

/** Options of runTraining besides the run.json. */
export interface RunTrainingOptions extends RunFolderOptions {
  /** Every event as it happens, plus `{kind: "checkpoint", step, path}` and, on resume, `{kind: "resume", step, path}`. */
  onEvent?: (e: RunEvent) => void;
  /** A model and data already prepared from this run.json (prepareRun). */
  prepared?: Prepared;
  /** Aborting ends the run after the step in progress, with a checkpoint, by throwing RunInterrupted. */
  signal?: AbortSignal;
  /** Evaluate the model before the first step and log it as step 0 (default true; not on resume). */
  evaluateBase?: boolean;
  /** What was chosen for the user, e.g. micro-batches. */
  onNote?: (note: string) => void;
}

/** The loss of the last step event in a metrics.jsonl, or undefined. */
function lastLoggedLoss(metricsPath: string): number | undefined {
  let loss: number | undefined;
  for (const line of fs.readFileSync(metricsPath, "utf8").split("\n")) {
    if (!line) continue;
    const e = JSON.parse(line) as { kind?: string; loss?: number };
    if (e.kind === "step") loss = e.loss;
  }
  return loss;
}

/**
 * Runs a run.json end to end, as `boft train` does: builds the model and data, trains with the library's `finetune`
 * (progress events), writes checkpoints, metrics.jsonl, loss.svg and the adapter (PEFT's files) under `cfg.output`,
 * and evaluates. Nothing is written until the settings, model, data and the folder's state are checked
 * (run-guard.ts): a new run refuses a non-empty folder unless `overwrite`, `resume` continues only a checkpoint of
 * the same settings.
 *
 * @example const r = await runTraining(readRunConfig("examples/text-boft.json")); // r.adapterDir
 */
export async function runTraining(cfg: RunConfig, o: RunTrainingOptions = {}): Promise<RunResult> {
  checkTrainSettings(cfg.train, cfg.file);
  const p = o.prepared ?? (await prepareRun(cfg));
  if (p.kind === "lm") for (const n of p.notes ?? []) o.onNote?.(n);
  const model = p.model as AdaptedModel<unknown, unknown>;
  const layout = layoutOf(p);
  const full = cfg.method === null;
  const fullKeys = Object.keys(model.weights);
  const extra = { baseModelNameOrPath: p.baseName, taskType: p.kind === "lm" ? "CAUSAL_LM" : null };
  const savedMethod = cfg.method && withDefaultTargets(cfg.method, model.def.type);
  const record = runRecord(cfg);
  const from = checkRunOutput(cfg, o);
  const resume = from ? loadCheckpoint(from, layout, fullKeys) : undefined;
  const metricsPath = startRunOutput(cfg, { ...o, resumed: resume && from ? { step: resume.step, dir: from } : undefined });
  const events: TrainEvent[] = [];
  // A run resumed from its last checkpoint takes no step: its final loss is the last one the log holds.
  let lastLoss = resume ? lastLoggedLoss(metricsPath) : undefined;
  const log = (e: TrainEvent) => {
    if (e.kind === "step") lastLoss = e.loss;
    if (e.kind === "done" && e.finalLoss === undefined && lastLoss !== undefined) e = { ...e, finalLoss: lastLoss };
    events.push(e);
    fs.appendFileSync(metricsPath, toJsonLine(e) + "\n");
    o.onEvent?.(e);
  };
  if (resume && from) o.onEvent?.({ kind: "resume", step: resume.step, path: from });
  else if (o.evaluateBase ?? true) for (const e of await evaluatePrepared(p, null)) log({ ...e, step: 0 });
  const accumulate = p.kind === "lm" ? (p.accumulate ?? 1) : 1;
  // The library's loop: random token windows or image rows drawn from the run's seeded generator (so a resume draws
  // the same batches), evaluated by the run's task on the trained values, stopped by the signal.
  const data: TrainData = p.kind === "lm" ? causalLmSampler(p.taskOptions.train, p.taskOptions) : imageRows(p.taskOptions.train);
  const evaluator: Evaluator = (view) => {
    const rec = activeRecord(peftState(view));
    return evaluatePrepared({ ...p, model: rec } as Prepared, trainedOf(rec, full));
  };
  const started = performance.now();
  let lastCheckpoint: { step: number; path: string } | null = null;
  let stopped = false;
  for await (let e of finetune(p.peft, data, {
    ...cfg.train,
    gradAccum: cfg.train.gradAccum * accumulate,
    batchSize: p.taskOptions.batchSize,
    eval: evaluator,
    signal: o.signal,
    resume,
    layerwise: p.kind === "lm" && p.taskOptions.layerwise === true,
    full,
  })) {
    if (e.kind === "checkpoint" && e.snapshot) {
      const path = saveCheckpoint(cfg.output, e.snapshot, savedMethod, extra, record);
      lastCheckpoint = { step: e.step, path };
      e = { kind: "checkpoint", step: e.step, path };
    }
    // A stopped run's log ends at its checkpoint, which is where a resumed run's log continues.
    if (e.kind === "done" && e.stopped) stopped = true;
    else log(e);
  }
  // The signal was aborted, and the step's checkpoint is written.
  if (stopped) throw new RunInterrupted(lastCheckpoint!.step, lastCheckpoint!.path);
  const seconds = (performance.now() - started) / 1000;
  const withWeights = activeRecord(peftState(p.peft));
  const trained = trainedOf(withWeights, full);
  const trainableParams = (tree.leaves(trained as never) as Arr[]).reduce((s, a) => s + a.size, 0);
  const adapterDir = nodePath.join(cfg.output, full ? "model" : "adapter");
  writeTrained(adapterDir, await treeToHostAsync(trained as never), savedMethod, extra);
  // The trainer already evaluated the final weights when its eval schedule reached the last step.
  const finalStep = events.reduce((s, e) => (e.kind === "done" ? e.step : s), cfg.train.steps);
  // From the log, not this process's events: a run resumed from its final checkpoint finds them there.
  const logged = parseJsonLines(fs.readFileSync(metricsPath, "utf8"));
  const last = logged.filter((e): e is EvalEvent => e.kind === "eval" && e.step === finalStep);
  let finalEval = last;
  if (!last.length) {
    // Logged like the trainer's evaluations, so metrics.jsonl and loss.svg end with the final model too.
    finalEval = (await evaluatePrepared({ ...p, model: withWeights } as Prepared, withWeights.active ? trainableOf(withWeights) : null)).map((e) => ({ ...e, step: finalStep }));
    for (const e of finalEval) log(e);
  }
  // The whole log, so a resumed run's plot starts at step 0 too.
  const curves = lossCurves(last.length ? logged : [...logged, ...finalEval]);
  atomicWriteFile(
    nodePath.join(cfg.output, "loss.svg"),
    linePlot(curves.map((c) => ({ name: c.name, points: c.points, mode: c.name === "train" ? "line" : "both" })), { title: `${nodePath.basename(cfg.output)}: loss`, xLabel: "step", yLabel: "loss", logY: true }),
  );
  return { prepared: p, model: withWeights, events, finalEval, adapterDir, trainableParams, effectiveParams: effectiveParams(withWeights, trainableParams), seconds };
}

/**
 * Evaluates a run's model on its evaluation splits (what `boft eval` prints): with the adapter saved in folder
 * `adapter`, or the base model alone when `adapter` is null. `onWarning` gets the adapter's load warnings.
 */
export async function evaluateRun(cfg: RunConfig, o: { adapter: string | null; onWarning?: (message: string) => void }): Promise<EvalEvent[]> {
  const p = await prepareRun({ ...cfg, method: null });
  const loaded = o.adapter === null ? null : loadAdapter(p.model as AdaptedModel<unknown, unknown>, o.adapter);
  for (const w of loaded?.warnings ?? []) o.onWarning?.(w);
  const model = loaded ? loaded.model : p.model;
  return evaluatePrepared({ ...p, model } as Prepared, model.active ? trainableOf(model as AdaptedModel<unknown, unknown>) : null);
}
