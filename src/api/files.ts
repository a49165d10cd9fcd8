/**
 * Adapters and models to and from bytes (browser-clean): PEFT's save_pretrained / from_pretrained over a map of file
 * name → contents, and the Llama family from its Hugging Face files. `boft/node` adds the folder versions.
 */
import { ConfigError, FormatError } from "../errors.js";
import { encode } from "../formats/dtype.js";
import { encodeFile } from "../formats/safetensors.js";
import { type AdapterConfigExtra, parseAdapterConfig, toAdapterConfigJson } from "../formats/peft-config.js";
import { groupAdapterKeys, ADAPTER_CONFIG, ADAPTER_WEIGHTS } from "../formats/peft-adapter.js";
import { bytesStore, filesStore } from "../formats/tensor-store.js";
import { withDefaultTargets } from "../methods/method.js";
import { adapterTensors, addLoadedAdapter, type AdapterSource } from "../models/peft-load.js";
import { type HfFiles, loadHfFiles } from "../models/hf-load.js";
import type { ModelDef } from "../models/model.js";
import { type Model, makeModel, modelState } from "./model.js";
import { toHostAsync } from "../engine/index.js";
import { type PeftModel, type PeftState, peftState, emptyPeftModel } from "./peft.js";

export { ADAPTER_CONFIG, ADAPTER_WEIGHTS };

/** A saved adapter as PEFT writes it: the config's text and the weights' bytes. */
export interface AdapterFiles {
  "adapter_config.json": string;
  "adapter_model.safetensors": Uint8Array;
}

/**
 * A file's contents: bytes, a Blob (a browser File), a URL object (fetched), or a string holding the text itself.
 */
export type FileSource = Uint8Array | ArrayBuffer | Blob | URL | string;

/** Files by name (e.g. { "config.json": …, "model.safetensors": … }), as a plain object or a Map. */
export type FileMap = Readonly<Record<string, FileSource>> | ReadonlyMap<string, FileSource>;

async function bytesOf(name: string, s: FileSource): Promise<Uint8Array> {
  if (typeof s === "string") return new TextEncoder().encode(s);
  if (s instanceof Uint8Array) return s;
  if (s instanceof ArrayBuffer) return new Uint8Array(s);
  if (s instanceof URL) {
    const r = await fetch(s);
    if (!r.ok) throw new FormatError(`${name}: fetching ${s.href} gave HTTP ${r.status}`);
    return new Uint8Array(await r.arrayBuffer());
  }
  if (typeof Blob !== "undefined" && s instanceof Blob) return new Uint8Array(await s.arrayBuffer());
  throw new FormatError(`${name}: give bytes, a Blob, a URL or the text (got ${Object.prototype.toString.call(s)})`);
}

/** @internal Reads every file of a map into bytes. */
export async function readFiles(files: FileMap): Promise<Map<string, Uint8Array>> {
  const entries = files instanceof Map ? [...files.entries()] : Object.entries(files as Record<string, FileSource>);
  return new Map(await Promise.all(entries.map(async ([k, v]) => [k, await bytesOf(k, v)] as [string, Uint8Array])));
}

/** What save_pretrained records about the base model: its name or path, and CAUSAL_LM for a language model. */
function configExtra(s: PeftState): AdapterConfigExtra {
  return { baseModelNameOrPath: s.base.nameOrPath, taskType: s.base.config ? "CAUSAL_LM" : null };
}

/**
 * The adapter as PEFT's save_pretrained writes it: adapter_config.json (target_modules resolved to the model type's
 * defaults when null) and adapter_model.safetensors (float32, metadata {"format": "pt"}). Loads in PEFT as is.
 *
 * @example
 * const files = await savePretrained(peft);   // { "adapter_config.json": string, "adapter_model.safetensors": Uint8Array }
 */
export async function savePretrained(p: PeftModel, o: { adapterName?: string } = {}): Promise<AdapterFiles> {
  const s = peftState(p);
  const name = o.adapterName ?? s.selected;
  if (!name || !s.record.adapters[name]) throw new ConfigError(`savePretrained: no adapter named ${JSON.stringify(name)} (have: ${Object.keys(s.record.adapters).join(", ") || "none"})`);
  const weights = s.merged ? s.unmerged! : s.record.weights; // trained extras as trained, not merged
  const tensors = await adapterTensors({ ...s.record, weights }, name);
  const method = withDefaultTargets(s.record.adapters[name].method, s.base.type);
  return {
    [ADAPTER_CONFIG]: toAdapterConfigJson(method, configExtra(s)),
    [ADAPTER_WEIGHTS]: encodeFile(Object.entries(tensors).map(([name, t]) => ({ name, dtype: "F32" as const, shape: t.shape, data: encode("F32", t.data) })), { format: "pt" }),
  };
}

/** @internal A saved adapter's files as an AdapterSource. */
export function adapterSource(configText: string, weights: Uint8Array, where: string): AdapterSource & { warnings: string[] } {
  const config = parseAdapterConfig(configText, `${where}/${ADAPTER_CONFIG}`);
  const store = bytesStore(weights, `${where}/${ADAPTER_WEIGHTS}`);
  const groups = groupAdapterKeys(config.kind, store.names(), store.path);
  return {
    config,
    groups,
    reader: { path: store.path, entry: (k) => store.info(k), read: (k) => store.read(k) },
    warnings: config.warnings,
  };
}

async function sourceOf(files: FileMap | AdapterFiles, where: string): Promise<AdapterSource> {
  const map = await readFiles(files as FileMap);
  const config = map.get(ADAPTER_CONFIG);
  const weights = map.get(ADAPTER_WEIGHTS);
  if (!config) throw new FormatError(`${where}: no ${ADAPTER_CONFIG} (a PEFT adapter holds ${ADAPTER_CONFIG} and ${ADAPTER_WEIGHTS})`);
  if (!weights) throw new FormatError(`${where}: no ${ADAPTER_WEIGHTS}`);
  return adapterSource(new TextDecoder().decode(config), weights, where);
}

/** @internal Adds an opened adapter to a PeftModel's state under `name`, active. */
export function addSource(s: PeftState, a: AdapterSource, name: string): string[] {
  if (s.merged) throw new ConfigError(`loadAdapter: adapter "${s.merged}" is merged; call unmergeAdapter first`);
  const loaded = addLoadedAdapter(s.record, a, { name, dtype: s.base.dtype });
  s.record = loaded.model;
  s.selected = name;
  return loaded.warnings;
}

/**
 * Adds a saved adapter (ours or PEFT's) to `p` under `adapterName` (default "default") and makes it active (PEFT's
 * load_adapter). Strict: every targeted module must be in the file with the planned shapes, and nothing else.
 * Returns warnings (ignored keys, fields a newer PEFT wrote).
 */
export async function loadAdapter(p: PeftModel, files: FileMap | AdapterFiles, o: { adapterName?: string } = {}): Promise<string[]> {
  return addSource(peftState(p), await sourceOf(files, "adapter"), o.adapterName ?? "default");
}

/**
 * `model` with a saved adapter on it (PEFT's PeftModel.from_pretrained).
 *
 * @example
 * const again = await fromPretrained(freshModel, await savePretrained(peft));
 */
export async function fromPretrained(model: Model, files: FileMap | AdapterFiles, o: FromPretrainedOptions = {}): Promise<PeftModel> {
  return peftFromSource(model, await sourceOf(files, "adapter"), o);
}

/** Options of fromPretrained. */
export interface FromPretrainedOptions {
  /** Default "default". */
  adapterName?: string;
  /** Called with each non-fatal finding (ignored keys, fields a newer PEFT wrote). */
  onWarning?: (message: string) => void;
}

/** @internal */
export function peftFromSource(model: Model, a: AdapterSource, o: FromPretrainedOptions): PeftModel {
  const p = emptyPeftModel(model);
  for (const w of addSource(peftState(p), a, o.adapterName ?? "default")) o.onWarning?.(w);
  return p;
}

/** Options of loadCausalLm. */
export interface LoadCausalLmOptions {
  /** Compute dtype (default float32, whatever the files hold). */
  dtype?: "float32" | "float64";
  /** Read tokenizer.json (default true; then it must be there). */
  tokenizer?: boolean;
  /** What adapters record as base_model_name_or_path (default: none). */
  nameOrPath?: string | null;
}

/** @internal The Model for loaded HF files. */
export function causalLmModel(files: HfFiles, o: LoadCausalLmOptions, nameOrPath: string | null): Model {
  const hf = loadHfFiles(files, { dtype: o.dtype, tokenizer: o.tokenizer });
  return makeModel(hf.def as ModelDef<unknown, unknown>, hf.weights, { config: hf.config, tokenizer: hf.tokenizer, eosTokenIds: hf.eosTokenIds, nameOrPath, notes: hf.notes });
}

/**
 * A Llama / Mistral / Qwen2 model from its Hugging Face files: config.json, model.safetensors (or the index and its
 * shards), tokenizer.json (+ tokenizer_config.json, chat_template.jinja, generation_config.json). Every tensor is
 * checked against the config before any is read. Input token ids [B, T] int32; output logits [B, T, vocab].
 *
 * @example
 * const lm = await loadCausalLm({ "config.json": new URL(base + "config.json"), "model.safetensors": blob, … });
 */
export async function loadCausalLm(files: FileMap, o: LoadCausalLmOptions = {}): Promise<Model> {
  const map = await readFiles(files);
  const where = o.nameOrPath ?? "model";
  const hf: HfFiles = {
    where,
    text: (name) => {
      const b = map.get(name);
      return b ? new TextDecoder().decode(b) : null;
    },
    weights: () => filesStore(map, where),
  };
  return causalLmModel(hf, o, o.nameOrPath ?? null);
}


/**
 * The model's weights as a model.safetensors file (state-dict names, in the model's dtype; metadata {"format": "pt"}),
 * for example a merged model from mergeAndUnload, to sit next to the base model's config.json and tokenizer files.
 *
 * @example const bytes = await saveWeights(mergeAndUnload(peft)); // model.safetensors
 */
export async function saveWeights(model: Model): Promise<Uint8Array> {
  const st = modelState(model);
  const dtype = model.dtype === "float64" ? ("F64" as const) : ("F32" as const);
  const tensors = [];
  for (const s of st.def.weights) {
    const t = await toHostAsync(st.weights[s.name].ref);
    tensors.push({ name: s.name, dtype, shape: t.shape, data: encode(dtype, t.data) });
  }
  return encodeFile(tensors, { format: "pt" });
}
