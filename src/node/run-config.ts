/**
 * run.json: one training run, the single input of `boft train` (and `boft eval`).
 *
 * {
 *   "model":  { "hf": "<model folder>" }                                   Llama/Mistral/Qwen2 in HF layout
 *           | { "arch": "llama", "config": { …config.json fields… } }      random init (pretraining)
 *           | { "arch": "mlp" | "cnn", "config": {…}, "weights": "<file.safetensors>" (optional) },
 *   "data":   { "kind": "brown", "train": ["news"], "eval": { "old": ["news"], "new": ["romance"] }, "seqLen": 64, "batchSize": 16 }
 *           | { "kind": "mnist", "transform": "rotate:45" | "invert" | "none", "evalTransforms": {…}, "batchSize": 64 }
 *           | { "kind": "text", "path": "<file.txt | file.jsonl>", "field": "text", "seqLen": 128, "batchSize": 4 },
 *   "method": { "peft_type": "BOFT", "boft_block_size": 8, … }  (an adapter_config.json body)  |  { "peft_type": "FULL" },
 *   "train":  { "steps": 200, "lr": 1e-3, "warmupSteps": 20, "evalEvery": 50, "checkpointEvery": 50, "seed": 0, … },
 *   "output": "<run folder>"
 * }
 * Relative paths are relative to the run.json file. Unknown keys are errors (a typo must not silently change a run).
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { ConfigError, FormatError } from "../errors.js";
import { parseAdapterConfig } from "../formats/peft-config.js";
import type { AdapterMethod } from "../methods/method.js";
import { trainDefaults, type TrainConfig } from "../train/trainer.js";

export type ModelSpec =
  | { hf: string }
  | { arch: "llama"; config: Record<string, unknown> }
  | { arch: "mlp"; config: { sizes: number[] }; weights?: string }
  | { arch: "cnn"; config: { channels: [number, number]; classes: number; size: number }; weights?: string };

export type DataSpec =
  | { kind: "brown"; train: string[]; eval: Record<string, string[]>; seqLen: number; batchSize: number; evalWindows?: number; valFraction?: number }
  | { kind: "mnist"; transform: string; evalTransforms: Record<string, string>; batchSize: number; trainLimit?: number; evalLimit?: number }
  | { kind: "text"; path: string; field?: string; seqLen: number; batchSize: number; valFraction?: number; evalWindows?: number };

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

function onlyKeys(o: Record<string, unknown>, allowed: string[], where: string): void {
  const extra = Object.keys(o).filter((k) => !allowed.includes(k));
  if (extra.length) throw new ConfigError(`${where}: unknown key${extra.length > 1 ? "s" : ""} ${extra.map((k) => `"${k}"`).join(", ")} (allowed: ${allowed.join(", ")})`);
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

function parseData(v: unknown, base: string, where: string): DataSpec {
  const d = obj(v, where);
  const common = { seqLen: d.seqLen, batchSize: positiveInt(d.batchSize, `${where}.batchSize`) };
  switch (d.kind) {
    case "brown":
      onlyKeys(d, ["kind", "train", "eval", "seqLen", "batchSize", "evalWindows", "valFraction"], where);
      return {
        kind: "brown",
        train: d.train as string[],
        eval: (d.eval ?? {}) as Record<string, string[]>,
        seqLen: positiveInt(common.seqLen, `${where}.seqLen`),
        batchSize: common.batchSize,
        evalWindows: d.evalWindows as number | undefined,
        valFraction: d.valFraction as number | undefined,
      };
    case "mnist":
      onlyKeys(d, ["kind", "transform", "evalTransforms", "batchSize", "trainLimit", "evalLimit"], where);
      return {
        kind: "mnist",
        transform: (d.transform as string | undefined) ?? "none",
        evalTransforms: (d.evalTransforms ?? {}) as Record<string, string>,
        batchSize: common.batchSize,
        trainLimit: d.trainLimit as number | undefined,
        evalLimit: d.evalLimit as number | undefined,
      };
    case "text":
      onlyKeys(d, ["kind", "path", "field", "seqLen", "batchSize", "valFraction", "evalWindows"], where);
      return {
        kind: "text",
        path: resolvePath(base, d.path, `${where}.path`),
        field: d.field as string | undefined,
        seqLen: positiveInt(common.seqLen, `${where}.seqLen`),
        batchSize: common.batchSize,
        valFraction: d.valFraction as number | undefined,
        evalWindows: d.evalWindows as number | undefined,
      };
    default:
      throw new ConfigError(`${where}.kind must be "brown", "mnist" or "text" (kind=${JSON.stringify(d.kind)})`);
  }
}

const TRAIN_KEYS = ["steps", "gradAccum", "lr", "warmupSteps", "minLr", "weightDecay", "maxGradNorm", "evalEvery", "checkpointEvery", "seed"];

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
  const t = obj(r.train ?? {}, `${file}: train`);
  onlyKeys(t, TRAIN_KEYS, `${file}: train`);
  for (const [k, v] of Object.entries(t)) {
    if (typeof v !== "number" || !Number.isFinite(v)) throw new ConfigError(`${file}: train.${k} must be a number (${k}=${JSON.stringify(v)})`);
  }
  const train: TrainConfig = { ...trainDefaults, ...(t as Partial<TrainConfig>) };
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
