/**
 * Public models: a handle over a model definition (src/models) and its frozen weights. Built-in families (MLP, CNN,
 * the Llama family from HF files) and your own, defined as a pure function of named weights.
 *
 * A Model is opaque: its engine arrays stay inside (the public API trades only HostTensors), and everything a caller
 * may read about it is plain data (type, modules, weight shapes, config, tokenizer).
 */
import { np, type Arr, type FloatDType, type HostDType, type HostTensor } from "../engine/index.js";
import { ConfigError, ShapeError } from "../errors.js";
import { rng } from "../data/rng.js";
import type { ModuleInfo } from "../methods/adapter.js";
import type { Conv2dGeometry } from "../methods/base-layers.js";
import { defaultConvGeometry } from "../methods/base-layers.js";
import { initWeights } from "../models/adapted.js";
import { mlp as mlpDef, type MlpConfig } from "../models/mlp.js";
import { cnn as cnnDef, type CnnConfig } from "../models/cnn.js";
import { llama, type LlamaConfig } from "../models/llama.js";
import type { ModelDef, Weights, WeightSpec, LayerFn } from "../models/model.js";
import type { TextTokenizer } from "../formats/hf-tokenizer.js";
import { parseHfConfig } from "../formats/hf-config.js";
import { toArr } from "./tensor.js";

export type { MlpConfig, CnnConfig, LlamaConfig, ModuleInfo, Conv2dGeometry, TextTokenizer, WeightSpec, LayerFn };

/**
 * A base model: its adaptable modules and weight layout as plain data, and (Llama family) its config and tokenizer.
 * Build one with `mlp`, `cnn`, `defineModel`, `llamaFromConfig` or `loadCausalLm`.
 */
export interface Model {
  /** transformers' model_type ("llama", "mistral", "qwen2") or the name of a model defined here ("mlp", "cnn", yours). */
  readonly type: string;
  /** The Linear/Conv2d modules an adapter's target_modules can match, by path ("lin0", "model.layers.0.self_attn.q_proj"). */
  readonly modules: readonly ModuleInfo[];
  /** Every weight's shape by state-dict name. */
  readonly weightShapes: Readonly<Record<string, readonly number[]>>;
  /** The dtype the model computes in. */
  readonly dtype: FloatDType;
  /** Llama family: the parsed config.json; null for other models. */
  readonly config: LlamaConfig | null;
  /** Llama family loaded with its tokenizer.json; null otherwise. */
  readonly tokenizer: TextTokenizer | null;
  /** Ids that end generation (generation_config.json, then config.json); empty for other models. */
  readonly eosTokenIds: readonly number[];
  /** What adapters record as base_model_name_or_path (a folder, or null for a model built in memory). */
  readonly nameOrPath: string | null;
  /** Non-fatal findings while loading (skipped buffers, tokenizer/vocabulary mismatch). */
  readonly notes: readonly string[];
}

/** @internal The engine side of a Model. */
export interface ModelState {
  def: ModelDef<unknown, unknown>;
  weights: Weights;
  /** Host input → the model's input (Llama: { ids }). Consumes nothing; the result is fresh. */
  input(x: HostTensor<HostDType>): unknown;
  /** The model's output → the logits array. Consumes the output. */
  logits(out: unknown): Arr;
}

const states = new WeakMap<Model, ModelState>();

/** @internal */
export function modelState(m: Model): ModelState {
  const s = states.get(m);
  if (!s) throw new ConfigError("not a boft Model (build one with mlp, cnn, defineModel, llamaFromConfig or loadCausalLm)");
  return s;
}

/** @internal Wraps a definition and its weights (taking ownership of the weights) as a public Model. */
export function makeModel(
  def: ModelDef<unknown, unknown>,
  weights: Weights,
  o: { config?: LlamaConfig | null; tokenizer?: TextTokenizer | null; eosTokenIds?: number[]; nameOrPath?: string | null; notes?: string[] } = {},
): Model {
  for (const s of def.weights) {
    const w = weights[s.name];
    if (!w) throw new ShapeError(`model: weight "${s.name}" is missing`);
    if (w.shape.length !== s.shape.length || w.shape.some((v, i) => v !== s.shape[i])) {
      throw new ShapeError(`model: weight "${s.name}" is [${w.shape}], the ${def.type} model needs [${s.shape}]`);
    }
  }
  const first = Object.values(weights)[0];
  const isLm = o.config != null;
  const model: Model = Object.freeze({
    type: def.type,
    modules: Object.freeze(def.modules.map((m) => Object.freeze({ ...m }))),
    weightShapes: Object.freeze(Object.fromEntries(def.weights.map((w) => [w.name, Object.freeze(w.shape.slice())]))),
    dtype: first && first.dtype === np.float64 ? "float64" : "float32",
    config: o.config ?? null,
    tokenizer: o.tokenizer ?? null,
    eosTokenIds: Object.freeze(o.eosTokenIds ?? []),
    nameOrPath: o.nameOrPath ?? null,
    notes: Object.freeze(o.notes ?? []),
  } as Model);
  states.set(model, {
    def,
    weights,
    input: isLm ? (x) => ({ ids: toArr(x, "int32", "input ids") }) : (x) => toArr(x, null, "input"),
    logits: isLm ? (out) => (out as { logits: Arr }).logits : (out) => out as Arr,
  });
  return model;
}

/** How a fresh model is made: from a seed (PyTorch's default init for each layer type) or from given weights. */
export interface ModelInit {
  /** Seed of the initialisation (default 0). The same seed gives the same weights. */
  seed?: number;
  /** Compute dtype (default float32). */
  dtype?: FloatDType;
  /** Use these weights (by state-dict name, each of the model's shape) instead of a random init. */
  weights?: Readonly<Record<string, HostTensor>>;
}

function weightsFor(specs: readonly WeightSpec[], o: ModelInit): Weights {
  const dtype = o.dtype ?? "float32";
  if (!o.weights) return initWeights(specs, rng(o.seed ?? 0), dtype);
  const out: Weights = {};
  const known = new Set(specs.map((s) => s.name));
  const foreign = Object.keys(o.weights).filter((k) => !known.has(k));
  if (foreign.length) throw new ShapeError(`model: weights ${foreign.map((k) => `"${k}"`).join(", ")} do not belong to this model`);
  for (const s of specs) {
    const t = o.weights[s.name];
    if (!t) throw new ShapeError(`model: weight "${s.name}" is missing`);
    out[s.name] = toArr({ ...t, dtype }, dtype, s.name);
  }
  return out;
}

/**
 * A multilayer perceptron with ReLU between layers; Linear modules `lin0`, `lin1`, … (PEFT's test models).
 * Input [B, sizes[0]] float, output logits [B, sizes.at(-1)].
 *
 * @example const model = mlp({ sizes: [784, 256, 10] }, { seed: 0 });
 */
export function mlp(config: MlpConfig, o: ModelInit = {}): Model {
  const def = mlpDef(config) as ModelDef<unknown, unknown>;
  return makeModel(def, weightsFor(def.weights, o));
}

/**
 * A small CNN for square one-channel images: Conv2d `conv0`, `conv1` (3×3, padding 1, ReLU, 2×2 max-pool) and a
 * Linear `fc`. Input [B, size·size] or [B, 1, size, size] float, output logits [B, classes].
 */
export function cnn(config: CnnConfig, o: ModelInit = {}): Model {
  const def = cnnDef(config) as ModelDef<unknown, unknown>;
  return makeModel(def, weightsFor(def.weights, o));
}

/**
 * A Llama-family model (llama, mistral, qwen2) with fresh weights from a config.json body (for pretraining or tests).
 * Input token ids [B, T] int32, output logits [B, T, vocab_size].
 */
export function llamaFromConfig(configJson: string | Record<string, unknown>, o: ModelInit = {}): Model {
  const c = parseHfConfig(configJson, "config.json").config;
  const def = llama(c) as ModelDef<unknown, unknown>;
  return makeModel(def, weightsFor(def.weights, o), { config: c });
}

/** A Linear or Conv2d module of a model you define. */
export type ModuleSpec =
  | { path: string; kind: "linear"; inFeatures: number; outFeatures: number; /** default true */ bias?: boolean }
  | {
      path: string;
      kind: "conv2d";
      /** in_channels */
      inFeatures: number;
      /** out_channels */
      outFeatures: number;
      kernel: [number, number];
      /** stride, padding, dilation (groups must be 1 to be adapted); PyTorch's defaults when absent. */
      geometry?: Partial<Conv2dGeometry>;
      /** default true */
      bias?: boolean;
    };

/** Your own model: its modules, any other weights, and its forward as a pure function. */
export interface ModelSpec {
  /** Your model's name; what PEFT's default target_modules would be looked up by (none for your own: give them). */
  type: string;
  /** Its Linear/Conv2d modules. Each gets `<path>.weight` (and `<path>.bias`) with PyTorch's default init. */
  modules: readonly ModuleSpec[];
  /** Further weights (norms, embeddings) by name, with their init. */
  weights?: readonly WeightSpec[];
  /**
   * The forward pass. `layer(path, x)` applies the module at `path` (through the active adapter, if it targets that
   * module); `w` holds every weight by name. Use jax-js ops (the `jax` export). Ownership follows jax-js: `layer`
   * consumes `x`; read a weight as `w[name].ref`; consume `x` exactly once.
   *
   * @example (x, layer) => layer("fc2", jax.nn.relu(layer("fc1", x)))
   */
  forward(x: Arr, layer: LayerFn, w: Weights): Arr;
}

/**
 * A model defined by you, as a pure function of named weights. Input and output are whatever your forward takes and
 * returns (float tensors).
 *
 * @example
 * const model = defineModel({
 *   type: "two-layer",
 *   modules: [
 *     { path: "fc1", kind: "linear", inFeatures: 8, outFeatures: 16 },
 *     { path: "fc2", kind: "linear", inFeatures: 16, outFeatures: 3 },
 *   ],
 *   forward: (x, layer) => layer("fc2", jax.nn.relu(layer("fc1", x))),
 * }, { seed: 0 });
 */
export function defineModel(spec: ModelSpec, o: ModelInit = {}): Model {
  const modules: ModuleInfo[] = [];
  const weights: WeightSpec[] = [];
  for (const m of spec.modules) {
    if (!(Number.isInteger(m.inFeatures) && m.inFeatures > 0 && Number.isInteger(m.outFeatures) && m.outFeatures > 0)) {
      throw new ConfigError(`defineModel: module ${m.path}: inFeatures and outFeatures must be positive integers`);
    }
    const kernel = m.kind === "conv2d" ? m.kernel : undefined;
    const fanIn = m.inFeatures * (kernel ? kernel[0] * kernel[1] : 1);
    const bound = 1 / Math.sqrt(fanIn); // nn.Linear / nn.Conv2d default init
    if (m.kind === "conv2d") {
      const geometry = { ...defaultConvGeometry, ...m.geometry };
      modules.push({ path: m.path, kind: "conv2d", inFeatures: m.inFeatures, outFeatures: m.outFeatures, kernel: m.kernel, geometry });
      weights.push({ name: `${m.path}.weight`, shape: [m.outFeatures, m.inFeatures, ...m.kernel], init: { uniform: bound } });
    } else {
      modules.push({ path: m.path, kind: "linear", inFeatures: m.inFeatures, outFeatures: m.outFeatures });
      weights.push({ name: `${m.path}.weight`, shape: [m.outFeatures, m.inFeatures], init: { uniform: bound } });
    }
    if (m.bias ?? true) weights.push({ name: `${m.path}.bias`, shape: [m.outFeatures], init: { uniform: bound } });
  }
  weights.push(...(spec.weights ?? []));
  const def: ModelDef<unknown, unknown> = {
    type: spec.type,
    modules,
    weights,
    apply: (w, layer, x) => spec.forward(x as Arr, layer, w),
  };
  return makeModel(def, weightsFor(weights, o));
}
