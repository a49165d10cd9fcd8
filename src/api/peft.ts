/**
 * PEFT's PeftModel as a handle plus functions: getPeftModel, addAdapter, setAdapter, disableAdapters /
 * enableAdapters, deleteAdapter, forward, mergeAdapter / unmergeAdapter and mergeAndUnload.
 *
 * Functions change the handle they are given, as PEFT changes its model in place; the base Model is never changed
 * (its weights are shared, not copied, and never disposed here).
 */
import { tree, type Arr, type HostDType, type HostTensor } from "../engine/index.js";
import { ConfigError } from "../errors.js";
import { rng } from "../data/rng.js";
import { parseAdapterConfig } from "../formats/peft-config.js";
import { boftConfig, type BoftConfig } from "../methods/boft/config.js";
import { oftConfig, type OftConfig } from "../methods/oft/config.js";
import { loraConfig, type LoraConfig } from "../methods/lora/config.js";
import type { AdapterMethod } from "../methods/method.js";
import { type AdaptedModel, type Trainable, adaptedModel, addAdapter as addAdapterRecord, forwardWith, trainableOf, mergeAndUnload as mergedWeights } from "../models/adapted.js";
import type { Weights } from "../models/model.js";
import { type Model, modelState, makeModel } from "./model.js";
import { toTensor } from "./tensor.js";

export type { AdapterMethod, BoftConfig, OftConfig, LoraConfig };

/** A typed adapter config: PEFT's fields in camelCase with `peftType`; absent fields take PEFT's defaults. */
export type TypedAdapterConfig = ({ peftType: "BOFT" } & Partial<BoftConfig>) | ({ peftType: "OFT" } & Partial<OftConfig>) | ({ peftType: "LORA" } & Partial<LoraConfig>);

/**
 * An adapter config in any of its forms: adapter_config.json text or its parsed body (`{"peft_type": "BOFT",
 * "boft_block_size": 4, …}`), a typed config (`{ peftType: "BOFT", blockSize: 4, … }`), or a resolved method.
 */
export type AdapterConfigInput = string | TypedAdapterConfig | AdapterMethod | Readonly<Record<string, unknown>>;

/** Any accepted adapter config → the resolved method (PEFT's defaults filled in and checked). Throws ConfigError. */
export function adapterConfig(c: AdapterConfigInput): AdapterMethod {
  if (typeof c === "string") {
    const p = parseAdapterConfig(c, "adapter config");
    return { kind: p.kind, config: p.config } as AdapterMethod;
  }
  if (c && typeof c === "object") {
    if ("peft_type" in c) return adapterConfig(JSON.stringify(c));
    if ("peftType" in c) {
      const { peftType, ...rest } = c as TypedAdapterConfig;
      if (peftType === "BOFT") return { kind: "BOFT", config: boftConfig(rest as Partial<BoftConfig>) };
      if (peftType === "OFT") return { kind: "OFT", config: oftConfig(rest as Partial<OftConfig>) };
      if (peftType === "LORA") return { kind: "LORA", config: loraConfig(rest as Partial<LoraConfig>) };
      throw new ConfigError(`peftType ${JSON.stringify(peftType)} is not supported (supported: BOFT, OFT, LORA)`);
    }
    if ("kind" in c && "config" in c) return c as AdapterMethod;
  }
  throw new ConfigError("adapter config: give adapter_config.json (text or object with peft_type), { peftType, … }, or { kind, config }");
}

/** A base model with named adapters (PEFT's PeftModel). Read-only views; change it with the functions below. */
export interface PeftModel {
  readonly baseModel: Model;
  /** Each adapter's resolved config, by name. */
  readonly peftConfig: Readonly<Record<string, AdapterMethod>>;
  /** The adapter forward and training use (PEFT's active_adapter); null when there is none. */
  readonly activeAdapter: string | null;
  /** false after disableAdapters: forward runs the base model alone. */
  readonly adaptersEnabled: boolean;
  /** The adapter merged into the weights by mergeAdapter, or null. */
  readonly mergedAdapter: string | null;
}

/** @internal */
export interface PeftState {
  base: Model;
  /** Adapters and the weights forward reads (base weights, with trained extras in place). `active` is unused here. */
  record: AdaptedModel<unknown, unknown>;
  selected: string | null;
  enabled: boolean;
  /** While merged: the weights before merging (restored by unmergeAdapter). */
  unmerged: Weights | null;
  merged: string | null;
}

const peftStates = new WeakMap<PeftModel, PeftState>();

/** Whether `x` is a PeftModel (made by getPeftModel or fromPretrained). */
export function isPeftModel(x: unknown): x is PeftModel {
  return typeof x === "object" && x !== null && peftStates.has(x as PeftModel);
}

/** @internal */
export function peftState(p: PeftModel): PeftState {
  const s = peftStates.get(p);
  if (!s) throw new ConfigError("not a PeftModel (make one with getPeftModel or fromPretrained)");
  return s;
}

/** @internal The record forward and training run: the selected adapter active, unless disabled or merged. */
export function activeRecord(s: PeftState): AdaptedModel<unknown, unknown> {
  return { ...s.record, active: s.enabled && !s.merged ? s.selected : null };
}

function handle(s: PeftState): PeftModel {
  const p = {
    get baseModel() {
      return s.base;
    },
    get peftConfig() {
      return Object.freeze(Object.fromEntries(Object.entries(s.record.adapters).map(([k, a]) => [k, a.method])));
    },
    get activeAdapter() {
      return s.selected;
    },
    get adaptersEnabled() {
      return s.enabled;
    },
    get mergedAdapter() {
      return s.merged;
    },
  } as PeftModel;
  peftStates.set(p, s);
  return p;
}

/** Options of getPeftModel and addAdapter. */
export interface AdapterOptions {
  /** Default "default", as in PEFT. */
  adapterName?: string;
  /** Seed of the adapter's initialisation (default 0; BOFT/OFT start at the identity unless init_weights is false). */
  seed?: number;
}

/**
 * Wraps `model` with a new adapter (PEFT's get_peft_model), which becomes active.
 *
 * @example
 * const peft = getPeftModel(model, { peftType: "BOFT", blockSize: 4, nButterflyFactor: 2, targetModules: ["fc1", "fc2"] });
 */
export function getPeftModel(model: Model, config: AdapterConfigInput, o: AdapterOptions = {}): PeftModel {
  const p = emptyPeftModel(model);
  addAdapter(p, o.adapterName ?? "default", config, { seed: o.seed });
  return p;
}

/** @internal A PeftModel with no adapter yet. */
export function emptyPeftModel(model: Model): PeftModel {
  const st = modelState(model);
  return handle({ base: model, record: adaptedModel(st.def, st.weights), selected: null, enabled: true, unmerged: null, merged: null });
}

function notMerged(s: PeftState, what: string): void {
  if (s.merged) throw new ConfigError(`${what}: adapter "${s.merged}" is merged; call unmergeAdapter first`);
}

/** Adds adapter `name` and makes it active (PEFT's add_adapter + set_adapter). */
export function addAdapter(p: PeftModel, name: string, config: AdapterConfigInput, o: { seed?: number } = {}): void {
  const s = peftState(p);
  notMerged(s, "addAdapter");
  s.record = addAdapterRecord(s.record, name, adapterConfig(config), { rng: rng(o.seed ?? 0), dtype: s.base.dtype });
  s.selected = name;
}

/** Makes adapter `name` the active one. */
export function setAdapter(p: PeftModel, name: string): void {
  const s = peftState(p);
  notMerged(s, "setAdapter");
  if (!s.record.adapters[name]) throw new ConfigError(`no adapter named "${name}" (have: ${Object.keys(s.record.adapters).join(", ") || "none"})`);
  s.selected = name;
}

/** Forward (and training) use the base model alone until enableAdapters. */
export function disableAdapters(p: PeftModel): void {
  peftState(p).enabled = false;
}

/** Undoes disableAdapters. */
export function enableAdapters(p: PeftModel): void {
  peftState(p).enabled = true;
}

/** Removes adapter `name` and frees its parameters; when it was active, no adapter is active afterwards. */
export function deleteAdapter(p: PeftModel, name: string): void {
  const s = peftState(p);
  notMerged(s, "deleteAdapter");
  const a = s.record.adapters[name];
  if (!a) throw new ConfigError(`no adapter named "${name}" (have: ${Object.keys(s.record.adapters).join(", ") || "none"})`);
  const { [name]: _gone, ...rest } = s.record.adapters;
  const weights = { ...s.record.weights };
  const baseWeights = modelState(s.base).weights;
  for (const k of a.extras) {
    // Its trained biases / modules_to_save go back to the base model's.
    if (weights[k] !== baseWeights[k]) weights[k].dispose();
    weights[k] = baseWeights[k];
  }
  tree.dispose(a.params);
  s.record = { ...s.record, adapters: rest, weights };
  if (s.selected === name) s.selected = null;
}

/**
 * @internal Puts trained tensors in place of adapter `name`'s (taking ownership); frees what only the adapter held.
 * `name` null: full finetuning, whose trained tensors are weights.
 */
export function replaceTrained(s: PeftState, name: string | null, t: Trainable): void {
  const baseWeights = modelState(s.base).weights;
  const weights = { ...s.record.weights };
  for (const [k, v] of Object.entries(t.extras)) {
    if (weights[k] !== baseWeights[k]) weights[k].dispose();
    weights[k] = v;
  }
  if (name === null) {
    s.record = { ...s.record, weights };
    return;
  }
  const a = s.record.adapters[name];
  tree.dispose(a.params);
  s.record = { ...s.record, weights, adapters: { ...s.record.adapters, [name]: { ...a, params: t.adapter } } };
}

/**
 * @internal A PeftModel showing `t` in place of adapter `name`'s values (name null: of the weights), borrowing
 * `t` and `s`'s arrays: valid while they are, and not to be changed.
 */
export function viewWithTrained(s: PeftState, name: string | null, t: Trainable): PeftModel {
  const weights = { ...s.record.weights, ...t.extras };
  const adapters = name === null ? s.record.adapters : { ...s.record.adapters, [name]: { ...s.record.adapters[name], params: t.adapter } };
  return handle({ ...s, record: { ...s.record, weights, adapters }, unmerged: null, merged: null });
}

/**
 * Runs the model on `input` through the active adapter (or the base alone when adapters are disabled or none is
 * active). Input: float features ([B, in] for an MLP, [B, 1, H, W] or [B, H·W] for the CNN, yours for your model),
 * or int32 token ids [B, T] for a causal LM. Returns the logits ([B, out]; [B, T, vocab] for an LM), read
 * asynchronously. A Model runs its base weights.
 */
export async function forward(m: PeftModel | Model, input: HostTensor<HostDType>): Promise<HostTensor> {
  const st = modelState(isPeftModel(m) ? peftState(m as PeftModel).base : (m as Model));
  const rec = isPeftModel(m) ? activeRecord(peftState(m as PeftModel)) : adaptedModel(st.def, st.weights);
  const t = rec.active ? trainableOf(rec) : null;
  const x = st.input(input);
  // A deep model runs one compiled decoder layer at a time, awaited (its layer-by-layer strategy, the path its
  // evaluation takes): the kernels run on the worker threads, and the heap holds one layer's intermediates.
  const strategy = rec.def.layerwise;
  if (strategy?.preferred) return toTensor(await strategy.loss(rec, t, x, (out) => st.logits(out)));
  return toTensor(st.logits(forwardWith(rec, t, x)));
}

/**
 * Merges the active adapter into the weights (PEFT's merge_adapter): forward then reads the merged weights, with the
 * same outputs up to rounding, and faster. `safe` refuses to merge an adapter that would put NaN or Inf in a weight.
 */
export function mergeAdapter(p: PeftModel, o: { safe?: boolean } = {}): void {
  const s = peftState(p);
  notMerged(s, "mergeAdapter");
  if (!s.selected) throw new ConfigError("mergeAdapter: no active adapter");
  const merged = mergedWeights({ ...s.record, active: s.selected }, o);
  s.unmerged = s.record.weights;
  s.record = { ...s.record, weights: merged };
  s.merged = s.selected;
}

/** Undoes mergeAdapter: the weights before merging come back exactly. */
export function unmergeAdapter(p: PeftModel): void {
  const s = peftState(p);
  if (!s.merged || !s.unmerged) throw new ConfigError("unmergeAdapter: no adapter is merged");
  tree.dispose(s.record.weights); // the merged tensors, and one reference to every shared one
  s.record = { ...s.record, weights: s.unmerged };
  s.unmerged = null;
  s.merged = null;
}

/**
 * A new base Model with the active adapter merged into its weights (PEFT's merge_and_unload): no adapter overhead,
 * the adapted outputs. `p` stays usable.
 */
export function mergeAndUnload(p: PeftModel, o: { safe?: boolean } = {}): Model {
  const s = peftState(p);
  const st = modelState(s.base);
  const weights =
    s.merged || !s.selected || !s.enabled
      ? (Object.fromEntries(Object.entries(s.record.weights).map(([k, v]) => [k, v.ref])) as Weights)
      : mergedWeights({ ...s.record, active: s.selected }, o);
  const b = s.base;
  return makeModel(st.def, weights, { config: b.config, tokenizer: b.tokenizer, eosTokenIds: [...b.eosTokenIds], nameOrPath: b.nameOrPath, notes: [...b.notes] });
}

/** Trainable values of an adapter: its parameters and the base tensors it trains in full (biases, modules_to_save). */
export function trainableParameterCount(p: PeftModel, name?: string): number {
  const s = peftState(p);
  const n = name ?? s.selected;
  if (!n || !s.record.adapters[n]) throw new ConfigError(`no adapter named ${JSON.stringify(n)}`);
  const a = s.record.adapters[n];
  const leaves = tree.leaves(a.params as never) as Arr[];
  return leaves.reduce((t, x) => t + x.size, 0) + a.extras.reduce((t, k) => t + s.record.weights[k].size, 0);
}
