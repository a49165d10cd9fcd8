/**
 * A base model with named adapters (PEFT's PeftModel, as plain data plus pure functions):
 * add / set-active / disable / delete adapters, the forward through the active one, which tensors train,
 * and merge-and-unload. The base weights are never modified; functions return new records.
 */
import { np, tree, type Arr, type FloatDType } from "../engine/index.js";
import { ConfigError, NonFiniteError, ShapeError } from "../errors.js";
import type { Rng } from "../data/rng.js";
import {
  type AdapterMethod, type AdapterPlan, type AdapterParams, type LayerPlan, type ModuleInfo, type ApplyOptions,
  planAdapter, initAdapter, applyLayer, applyBase, mergeLayer, adapterBlocks,
} from "../methods/adapter.js";
import type { ModelDef, Weights, LayerFn, WeightSpec } from "./model.js";

export interface Adapter {
  method: AdapterMethod;
  plan: AdapterPlan;
  params: AdapterParams;
  /** Base tensors this adapter trains in full (bias = "all" / "<method>_only", modules_to_save). */
  extras: string[];
}

export interface AdaptedModel<I, O> {
  def: ModelDef<I, O>;
  /** The frozen base weights. */
  weights: Weights;
  adapters: Record<string, Adapter>;
  /** null: adapters disabled (the base model alone). */
  active: string | null;
}

/** Standard normal from a uniform source (Box–Muller). */
export function gaussian(r: Rng): number {
  return Math.sqrt(-2 * Math.log(1 - r.nextFloat())) * Math.cos(2 * Math.PI * r.nextFloat());
}

/** Fresh base weights as PyTorch would initialise them, from a seeded generator. */
export function initWeights(specs: readonly WeightSpec[], r: Rng, dtype: FloatDType = "float32"): Weights {
  const out: Weights = {};
  for (const s of specs) {
    const size = s.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    if (s.init === "ones") data.fill(1);
    else if (s.init !== "zeros") {
      const init = s.init;
      for (let k = 0; k < size; k++) data[k] = "uniform" in init ? (2 * r.nextFloat() - 1) * init.uniform : init.normal * gaussian(r);
    }
    out[s.name] = np.array(data).reshape(s.shape).astype(dtype === "float64" ? np.float64 : np.float32);
  }
  return out;
}

export function adaptedModel<I, O>(def: ModelDef<I, O>, weights: Weights): AdaptedModel<I, O> {
  for (const s of def.weights) {
    const w = weights[s.name];
    if (!w) throw new ShapeError(`model: weight "${s.name}" is missing`);
    if (w.shape.length !== s.shape.length || w.shape.some((v, i) => v !== s.shape[i])) {
      throw new ShapeError(`model: weight "${s.name}" is [${w.shape}], the ${def.type} config needs [${s.shape}]`);
    }
  }
  return { def, weights, adapters: {}, active: null };
}

/** The base tensors an adapter trains in full, per PEFT's `bias` and `modules_to_save`. */
function extraTrainables(def: ModelDef<unknown, unknown>, method: AdapterMethod, plan: AdapterPlan): string[] {
  const cfg = method.config;
  const adapted = new Set(plan.layers.map((l) => l.module.path));
  const names = def.weights.map((w) => w.name);
  const keys = new Set<string>();
  if (cfg.bias === "all") for (const n of names) if (n.endsWith(".bias")) keys.add(n);
  if (cfg.bias.endsWith("_only")) for (const n of names) if (n.endsWith(".bias") && adapted.has(n.slice(0, -5))) keys.add(n);
  for (const m of cfg.modulesToSave ?? []) {
    for (const n of names) {
      const module = n.slice(0, n.lastIndexOf("."));
      if (module === m || module.endsWith(`.${m}`)) keys.add(n);
    }
  }
  return [...keys].sort();
}

export interface AddAdapterOptions {
  rng: Rng;
  dtype?: FloatDType;
}

/** Adds adapter `name` (and makes it active), as PEFT's add_adapter / get_peft_model. */
export function addAdapter<I, O>(m: AdaptedModel<I, O>, name: string, method: AdapterMethod, o: AddAdapterOptions): AdaptedModel<I, O> {
  if (m.adapters[name]) throw new ConfigError(`adapter "${name}" already exists`);
  if (method.config.bias !== "none" && Object.values(m.adapters).some((a) => a.method.config.bias !== "none")) {
    throw new ConfigError(`${method.kind}Model supports only 1 adapter with bias. When using multiple adapters, set bias to 'none' for all adapters.`);
  }
  const plan = planAdapter(method, m.def.modules, { modelType: m.def.type });
  const params = initAdapter(plan, { dtype: o.dtype, normal: () => gaussian(o.rng), uniform: () => o.rng.nextFloat() });
  const adapter: Adapter = { method, plan, params, extras: extraTrainables(m.def as ModelDef<unknown, unknown>, method, plan) };
  return { ...m, adapters: { ...m.adapters, [name]: adapter }, active: name };
}

export function setActiveAdapter<I, O>(m: AdaptedModel<I, O>, name: string): AdaptedModel<I, O> {
  if (!m.adapters[name]) throw new ConfigError(`no adapter named "${name}" (have: ${Object.keys(m.adapters).join(", ") || "none"})`);
  return { ...m, active: name };
}

export function disableAdapters<I, O>(m: AdaptedModel<I, O>): AdaptedModel<I, O> {
  return { ...m, active: null };
}

/**
 * The model without adapter `name`. `m` is left as it was (it still holds the adapter); free the adapter's arrays
 * with releaseReplaced(m, result) once `m` is no longer used.
 */
export function deleteAdapter<I, O>(m: AdaptedModel<I, O>, name: string): AdaptedModel<I, O> {
  if (!m.adapters[name]) throw new ConfigError(`no adapter named "${name}"`);
  const { [name]: _gone, ...rest } = m.adapters;
  return { ...m, adapters: rest, active: m.active === name ? null : m.active };
}

/** The weight a layer reads, following aliases (tied embeddings). Borrowed. */
function weightOf(def: ModelDef<unknown, unknown>, w: Weights, name: string): Arr | undefined {
  return w[name] ?? (def.aliases?.[name] ? w[def.aliases[name]] : undefined);
}

/**
 * The LayerFn for weights `w` and (optionally) one adapter's layers and parameters.
 * Borrows `w` and `params` (reads them with .ref), so one call of the model can use them many times.
 */
export function layerFn(
  def: ModelDef<unknown, unknown>,
  w: Weights,
  adapter: { plan: AdapterPlan; params: AdapterParams; blocks?: Map<string, Arr> } | null,
  o: ApplyOptions = {},
): LayerFn {
  const modules = new Map<string, ModuleInfo>(def.modules.map((m) => [m.path, m]));
  const plans = new Map<string, LayerPlan>(adapter ? adapter.plan.layers.map((l) => [l.module.path, l]) : []);
  return (path, x) => {
    const module = modules.get(path);
    const weight = weightOf(def, w, `${path}.weight`);
    if (!module || !weight) throw new ShapeError(`model: no layer "${path}"`);
    const base = { weight: weight.ref, bias: weightOf(def, w, `${path}.bias`)?.ref ?? null };
    const plan = plans.get(path);
    if (plan && adapter) return applyLayer(plan, tree.ref(adapter.params[path]), base, x, o, adapter.blocks?.get(path)?.ref);
    return applyBase(module, base, x);
  };
}

/** What an adapter trains: its own parameters plus the base tensors it trains in full (copies of refs). */
export interface Trainable {
  adapter: AdapterParams;
  extras: Record<string, Arr>;
}

export function trainableOf<I, O>(m: AdaptedModel<I, O>, name = m.active): Trainable {
  if (!name) throw new ConfigError("no active adapter to train");
  const a = m.adapters[name];
  return { adapter: tree.ref(a.params), extras: Object.fromEntries(a.extras.map((k) => [k, m.weights[k].ref])) };
}

/**
 * Forward with the active adapter (or the base alone when disabled), given the trainable part separately so
 * it can be differentiated. Consumes `trainable` and `input`; borrows the model's weights. `blocks`: the
 * adapter's rotations already computed from the same parameters (adapterBlocks; borrowed), for callers that
 * run many forwards with fixed parameters.
 */
export function forwardWith<I, O>(m: AdaptedModel<I, O>, trainable: Trainable | null, input: I, o: ApplyOptions = {}, blocks?: Map<string, Arr>): O {
  const def = m.def as ModelDef<unknown, unknown>;
  const w: Weights = trainable ? { ...m.weights, ...trainable.extras } : m.weights;
  const plan = m.active ? m.adapters[m.active].plan : null;
  const adapter = trainable && plan ? { plan, params: trainable.adapter, blocks: blocks ?? adapterBlocks(plan, trainable.adapter, { paired: true }) } : null;
  const out = m.def.apply(w, layerFn(def, w, adapter, o), input);
  if (adapter && !blocks) for (const q of adapter.blocks.values()) q.dispose();
  if (trainable) tree.dispose(trainable);
  return out;
}

/** Forward through the active adapter with its stored parameters. Consumes input. */
export function forward<I, O>(m: AdaptedModel<I, O>, input: I, o: ApplyOptions = {}): O {
  return forwardWith(m, m.active ? trainableOf(m) : null, input, o);
}

/**
 * The model with an adapter's parameters and trained extras replaced (after a training run). Takes ownership of
 * `t`. `m` is left as it was and stays usable; free the arrays it no longer shares with the result with
 * releaseReplaced(m, result) once `m` is no longer used.
 */
export function withTrained<I, O>(m: AdaptedModel<I, O>, t: Trainable, name = m.active): AdaptedModel<I, O> {
  if (!name) throw new ConfigError("no active adapter");
  const a = m.adapters[name];
  return { ...m, weights: { ...m.weights, ...t.extras }, adapters: { ...m.adapters, [name]: { ...a, params: t.adapter } } };
}

function arraysOf(m: AdaptedModel<unknown, unknown>): Set<Arr> {
  return new Set([...Object.values(m.weights), ...Object.values(m.adapters).flatMap((a) => tree.leaves(a.params as never) as Arr[])]);
}

/**
 * Frees the arrays `old` holds that `next` does not: what withTrained replaced or deleteAdapter removed. Records
 * share arrays, so this is the one place they are freed; `old` must not be used afterwards.
 */
export function releaseReplaced<I, O>(old: AdaptedModel<I, O>, next: AdaptedModel<I, O>): void {
  const kept = arraysOf(next as AdaptedModel<unknown, unknown>);
  for (const a of arraysOf(old as AdaptedModel<unknown, unknown>)) if (!kept.has(a)) a.dispose();
}

/**
 * New base weights with the active adapter merged in (PEFT's merge_and_unload): the adapted weights rotated
 * (or LoRA-added), everything else shared. Borrows the model.
 */
export function mergeAndUnload<I, O>(m: AdaptedModel<I, O>, o: { safe?: boolean } = {}): Weights {
  const out: Weights = {};
  for (const [k, v] of Object.entries(m.weights)) out[k] = v.ref;
  if (!m.active) return out;
  const a = m.adapters[m.active];
  for (const layer of a.plan.layers) {
    const key = `${layer.module.path}.weight`;
    const stored = m.weights[key] ? key : m.def.aliases?.[key];
    if (!stored) throw new ShapeError(`model: no weight for ${key}`);
    const merged = mergeLayer(layer, tree.ref(a.params[layer.module.path]), m.weights[stored].ref);
    // PEFT's safe_merge: refuse to write NaN or Inf into the base weights.
    if (o.safe && !(np.isfinite(merged.ref).all().js() as boolean)) {
      merged.dispose();
      tree.dispose(out);
      throw new NonFiniteError(`merge: the merged weight of ${layer.module.path} would contain NaN or Inf; the adapter is broken`);
    }
    out[key]?.dispose();
    out[key] = merged;
  }
  return out;
}
