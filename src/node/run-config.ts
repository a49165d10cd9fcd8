/**
 * run.json: one training run, the single input of `boft train` (and `boft eval`).
 *
 * {
 *   "model":  { "hf": "<model folder>" }                                   Llama/Mistral/Qwen2 in HF layout
 *           | { "arch": "llama", "config": { …config.json fields… } }      random init (pretraining)
 *           | { "arch": "mlp" | "cnn", "config": {…}, "weights": "<file.safetensors>" (optional) },
 *   "data":   { "kind": "brown", "train": ["news"], "eval": { "old": ["news"], "new": ["romance"] }, "seqLen": 64, "batchSize": 16 }
 *           | { "kind": "mnist", "transform": "rotate:45" | "invert" | "none", "evalTransforms": {…}, "batchSize": 64 }
 *           | { "kind": "text", "path": "<file.txt | file.jsonl>", "eval": "<file>" (optional), "field": "text", "seqLen": 128, "batchSize": 4 },
 *   "method": { "peft_type": "BOFT", "boft_block_size": 8, … }  (an adapter_config.json body)  |  { "peft_type": "FULL" },
 *   "train":  { "steps": 200, "lr": 1e-3, "warmupSteps": 20, "evalEvery": 50, "checkpointEvery": 50, "seed": 0, … },
 *   "output": "<run folder>"
 * }
 * Relative paths are relative to the run.json file. Unknown keys are errors (a typo must not silently change a run),
 * in `method` too: there a key PEFT does not know is the user's typo, not a newer PEFT's field (as it would be in an
 * adapter_config.json read from disk, which keeps PEFT's warning). Every setting that can be checked without the
 * model and data is checked here, so a bad run.json fails before anything is written.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { ConfigError, FormatError } from "../errors.js";
import { parseAdapterConfig, toAdapterConfigJson } from "../formats/peft-config.js";
import type { AdapterMethod } from "../methods/method.js";
import { trainDefaults, type TrainConfig } from "../train/trainer.js";

/**
 * run.json's `model`: a Hugging Face folder (`hf`), or a built-in architecture with its config (and optionally
 * its weights file).
 */
export type ModelSpec =
  | { hf: string }
  | { arch: "llama"; config: Record<string, unknown> }
  | { arch: "mlp"; config: { sizes: number[] }; weights?: string }
  | { arch: "cnn"; config: { channels: [number, number]; classes: number; size: number }; weights?: string };

/** run.json's `data`: the Brown corpus, MNIST (with image transforms), or a text/JSONL file, with batching. */
export type DataSpec =
  | { kind: "brown"; train: string[]; eval: Record<string, string[]>; seqLen: number; batchSize: number; evalWindows?: number; valFraction?: number }
  | { kind: "mnist"; transform: string; evalTransforms: Record<string, string>; batchSize: number; trainLimit?: number; evalLimit?: number }
  | {
      kind: "text";
      path: string;
      /** A separate evaluation file (same format as `path`); without it the last valFraction of `path` is held out. */
      eval?: string;
      field?: string;
      seqLen: number;
      batchSize: number;
      valFraction?: number;
      evalWindows?: number;
    };

/**
 * A parsed, checked run.json (readRunConfig / parseRunConfig): model, data, method (PEFT's adapter config) and
 * training settings, and the output folder runTraining writes.
 */
export interface RunConfig {
  /** Where the config came from (relative paths in it are relative to this file's folder). */
  file: string;
  /** The run.json text as given: what the run folder gets as its run.json. */
  text: string;
  model: ModelSpec;
  data: DataSpec;
  /** null: full finetuning. */
  method: AdapterMethod | null;
  methodWarnings: string[];
  train: TrainConfig;
  output: string;
}

function obj(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new ConfigError(`${where} must be a JSON object`);
  return v as Record<string, unknown>;
}

/** Levenshtein distance, to suggest the key a typo meant. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length];
}

function onlyKeys(o: Record<string, unknown>, allowed: string[], where: string): void {
  const extra = Object.keys(o).filter((k) => !allowed.includes(k));
  if (!extra.length) return;
  const near = (k: string) => allowed.map((a) => [a, editDistance(k, a)] as const).filter(([, d]) => d <= Math.max(2, k.length / 4)).sort((x, y) => x[1] - y[1])[0]?.[0];
  const named = extra.map((k) => `"${k}"${near(k) ? ` (did you mean "${near(k)}"?)` : ""}`);
  throw new ConfigError(`${where}: unknown key${extra.length > 1 ? "s" : ""} ${named.join(", ")}; allowed: ${allowed.join(", ")}`);
}

function resolvePath(base: string, p: unknown, where: string): string {
  if (typeof p !== "string" || p === "") throw new ConfigError(`${where} must be a path string`);
  return nodePath.resolve(base, p);
}

function parseModel(v: unknown, base: string, where: string): ModelSpec {
  const m = obj(v, where);
  if ("hf" in m) {
    onlyKeys(m, ["hf"], where);
    return { hf: resolvePath(base, m.hf, `${where}.hf`) };
  }
  onlyKeys(m, ["arch", "config", "weights"], where);
  const config = obj(m.config, `${where}.config`);
  const weights = m.weights === undefined ? undefined : resolvePath(base, m.weights, `${where}.weights`);
  switch (m.arch) {
    case "llama":
      return { arch: "llama", config };
    case "mlp":
      return { arch: "mlp", config: config as { sizes: number[] }, weights };
    case "cnn":
      return { arch: "cnn", config: config as { channels: [number, number]; classes: number; size: number }, weights };
    default:
      throw new ConfigError(`${where}.arch must be "llama", "mlp" or "cnn" (arch=${JSON.stringify(m.arch)}), or give "hf": <folder>`);
  }
}

function positiveInt(v: unknown, where: string): number {
  if (!Number.isInteger(v) || (v as number) < 1) throw new ConfigError(`${where} must be a positive integer (${where}=${JSON.stringify(v)})`);
  return v as number;
}

function optional<T>(v: unknown, check: (v: unknown, where: string) => T, where: string): T | undefined {
  return v === undefined ? undefined : check(v, where);
}

function fraction(v: unknown, where: string): number {
  if (typeof v !== "number" || !(v > 0 && v < 1)) throw new ConfigError(`${where} must be a number in (0, 1) (${where}=${JSON.stringify(v)})`);
  return v;
}

function strings(v: unknown, where: string): string[] {
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === "string")) throw new ConfigError(`${where} must be a non-empty list of strings (${where}=${JSON.stringify(v)})`);
  return v as string[];
}

function record<T>(v: unknown, each: (x: unknown, where: string) => T, where: string): Record<string, T> {
  const o = obj(v, where);
  return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, each(x, `${where}.${k}`)]));
}

function str(v: unknown, where: string): string {
  if (typeof v !== "string") throw new ConfigError(`${where} must be a string (${where}=${JSON.stringify(v)})`);
  return v;
}

function parseData(v: unknown, base: string, where: string): DataSpec {
  const d = obj(v, where);
  const common = { seqLen: d.seqLen, batchSize: positiveInt(d.batchSize, `${where}.batchSize`) };
  switch (d.kind) {
    case "brown":
      onlyKeys(d, ["kind", "train", "eval", "seqLen", "batchSize", "evalWindows", "valFraction"], where);
      return {
        kind: "brown",
        train: strings(d.train, `${where}.train`),
        eval: record(d.eval ?? {}, strings, `${where}.eval`),
        seqLen: positiveInt(common.seqLen, `${where}.seqLen`),
        batchSize: common.batchSize,
        evalWindows: optional(d.evalWindows, positiveInt, `${where}.evalWindows`),
        valFraction: optional(d.valFraction, fraction, `${where}.valFraction`),
      };
    case "mnist":
      onlyKeys(d, ["kind", "transform", "evalTransforms", "batchSize", "trainLimit", "evalLimit"], where);
      return {
        kind: "mnist",
        transform: optional(d.transform, str, `${where}.transform`) ?? "none",
        evalTransforms: record(d.evalTransforms ?? {}, str, `${where}.evalTransforms`),
        batchSize: common.batchSize,
        trainLimit: optional(d.trainLimit, positiveInt, `${where}.trainLimit`),
        evalLimit: optional(d.evalLimit, positiveInt, `${where}.evalLimit`),
      };
    case "text":
      onlyKeys(d, ["kind", "path", "eval", "field", "seqLen", "batchSize", "valFraction", "evalWindows"], where);
      if (d.eval !== undefined && d.valFraction !== undefined) throw new ConfigError(`${where}: give either "eval" (a separate evaluation file) or "valFraction" (hold out the end of "path"), not both`);
      return {
        kind: "text",
        path: resolvePath(base, d.path, `${where}.path`),
        eval: d.eval === undefined ? undefined : resolvePath(base, d.eval, `${where}.eval`),
        field: optional(d.field, str, `${where}.field`),
        seqLen: positiveInt(common.seqLen, `${where}.seqLen`),
        batchSize: common.batchSize,
        valFraction: optional(d.valFraction, fraction, `${where}.valFraction`),
        evalWindows: optional(d.evalWindows, positiveInt, `${where}.evalWindows`),
      };
    default:
      throw new ConfigError(`${where}.kind must be "brown", "mnist" or "text" (kind=${JSON.stringify(d.kind)})`);
  }
}

const TRAIN_KEYS = ["steps", "gradAccum", "lr", "warmupSteps", "minLr", "weightDecay", "maxGradNorm", "evalEvery", "checkpointEvery", "seed"];

/**
 * Throws ConfigError naming the first train setting the trainer could not follow: steps and gradAccum ≥ 1,
 * lr > 0, warmupSteps in [0, steps], minLr in [0, lr], weightDecay and maxGradNorm ≥ 0, evalEvery,
 * checkpointEvery ≥ 0 and seed integers. `where` prefixes the message (the run.json file).
 */
export function checkTrainSettings(t: TrainConfig, where: string): void {
  const fail = (key: string, rule: string, extra = ""): never => {
    throw new ConfigError(`${where}: train.${key} must be ${rule} (${key}=${JSON.stringify((t as unknown as Record<string, unknown>)[key])}${extra})`);
  };
  const int = (v: number, min: number) => Number.isSafeInteger(v) && v >= min;
  if (!int(t.steps, 1)) fail("steps", "an integer ≥ 1");
  if (!int(t.gradAccum, 1)) fail("gradAccum", "an integer ≥ 1");
  if (!(Number.isFinite(t.lr) && t.lr > 0)) fail("lr", "a number > 0");
  if (!(int(t.warmupSteps, 0) && t.warmupSteps <= t.steps)) fail("warmupSteps", "an integer in [0, steps]", `, steps=${t.steps}`);
  if (t.minLr !== undefined && !(Number.isFinite(t.minLr) && t.minLr >= 0 && t.minLr <= t.lr)) fail("minLr", "in [0, lr]", `, lr=${t.lr}`);
  if (!(Number.isFinite(t.weightDecay) && t.weightDecay >= 0)) fail("weightDecay", "a number ≥ 0");
  if (!(Number.isFinite(t.maxGradNorm) && t.maxGradNorm >= 0)) fail("maxGradNorm", "a number ≥ 0 (0: no clipping)");
  if (!int(t.evalEvery, 0)) fail("evalEvery", "an integer ≥ 0 (0: only at the end)");
  if (!int(t.checkpointEvery, 0)) fail("checkpointEvery", "an integer ≥ 0 (0: only at the end)");
  if (!Number.isSafeInteger(t.seed)) fail("seed", "an integer");
}

/** run.json's method must hold only keys PEFT's config class has: they are the keys PEFT would write back. */
function checkMethodKeys(raw: Record<string, unknown>, method: AdapterMethod | null, where: string): void {
  const allowed = method ? Object.keys(JSON.parse(toAdapterConfigJson(method)) as object) : ["peft_type"];
  onlyKeys(raw, allowed, where);
}

/**
 * Parses and checks run.json text. `file` is where it is (or would be): relative paths in it resolve against its
 * folder, and messages name it. Works for a config built in memory: `parseRunConfig(JSON.stringify(run), "run.json")`.
 * Throws FormatError / ConfigError.
 */
export function parseRunConfig(text: string, file: string): RunConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new FormatError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const r = obj(raw, file);
  onlyKeys(r, ["model", "data", "method", "train", "output"], file);
  const base = nodePath.dirname(nodePath.resolve(file));
  const methodRaw = obj(r.method, `${file}: method`);
  let method: AdapterMethod | null = null;
  let methodWarnings: string[] = [];
  if (methodRaw.peft_type !== "FULL") {
    const parsed = parseAdapterConfig(JSON.stringify(methodRaw), `${file}: method`);
    method = { kind: parsed.kind, config: parsed.config } as AdapterMethod;
    methodWarnings = parsed.warnings;
  }
  checkMethodKeys(methodRaw, method, `${file}: method`);
  const t = obj(r.train ?? {}, `${file}: train`);
  onlyKeys(t, TRAIN_KEYS, `${file}: train`);
  for (const [k, v] of Object.entries(t)) {
    if (typeof v !== "number" || !Number.isFinite(v)) throw new ConfigError(`${file}: train.${k} must be a number (${k}=${JSON.stringify(v)})`);
  }
  const train: TrainConfig = { ...trainDefaults, ...(t as Partial<TrainConfig>) };
  checkTrainSettings(train, file);
  return {
    file,
    text,
    model: parseModel(r.model, base, `${file}: model`),
    data: parseData(r.data, base, `${file}: data`),
    method,
    methodWarnings,
    train,
    output: resolvePath(base, r.output, `${file}: output`),
  };
}

/** Reads and parses a run.json file (see parseRunConfig). */
export function readRunConfig(file: string): RunConfig {
  if (!fs.existsSync(file)) throw new FormatError(`${file}: no such run config`);
  return parseRunConfig(fs.readFileSync(file, "utf8"), file);
}
