/**
 * PEFT adapter files ↔ an AdaptedModel's adapters (browser-clean; src/node/model-adapter.ts gives it folders):
 * `addLoadedAdapter` puts a saved adapter (ours or PEFT's) on a model as PEFT's PeftModel.from_pretrained does;
 * `adapterTensors` gives one's tensors as PeftModel.save_pretrained writes them.
 *
 * Keys are PEFT's (formats/peft-adapter.ts): `base_model.model.<module>.boft_R` etc., with trained biases /
 * modules_to_save under `…<module>.base_layer.bias` or `base_model.model.<key>`. Loading is strict where PEFT
 * only warns: every planned layer must be in the file with the planned shapes, and nothing else may be.
 */
import { fromHost, toHostAsync, tree, isFloat64, type Arr, type FloatDType, type HostTensor } from "../engine/index.js";
import { FormatError, ShapeError } from "../errors.js";
import { rng } from "../data/rng.js";
import type { ParsedAdapterConfig } from "../formats/peft-config.js";
import { type AdapterKeyGroups, adapterKey, baseKeyOfExtra, extraKey } from "../formats/peft-adapter.js";
import { type AdapterMethod, type AdapterParams, type LayerParams, layerParamShapes, nestLayerParams } from "../methods/adapter.js";
import { type AdaptedModel, addAdapter } from "./adapted.js";

/** A saved adapter, opened: its parsed config, its tensors' keys sorted by role, and a reader for them. */
export interface AdapterSource {
  config: ParsedAdapterConfig;
  groups: AdapterKeyGroups;
  reader: {
    /** For messages. */
    readonly path: string;
    entry(key: string): { name: string; shape: number[] };
    read(key: string): { shape: number[]; data: Float32Array | Float64Array };
  };
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

/** The array at `suffix` of a layer's params (inverse of nest). Borrowed. */
function leaf(p: LayerParams, suffix: string): Arr {
  const [head, tail] = suffix.split(".");
  const v = (p as Record<string, unknown>)[head];
  return (tail ? (v as Record<string, Arr>)[tail] : v) as Arr;
}

export interface LoadedAdapter<I, O> {
  /** The model with the adapter added under `name` and made active. Shares the base weights with the input model. */
  model: AdaptedModel<I, O>;
  config: ParsedAdapterConfig;
  warnings: string[];
}

/**
 * Adds the saved adapter `a` to `m` under `name` (default "default") and activates it. Tensors are computed in
 * the base weights' dtype. Trained base tensors (biases, modules_to_save) replace the model's in the returned
 * record only; `m` keeps its own. Throws FormatError / ShapeError / ConfigError / NoTargetsError.
 */
export function addLoadedAdapter<I, O>(m: AdaptedModel<I, O>, a: AdapterSource, o: { name?: string; dtype?: FloatDType } = {}): LoadedAdapter<I, O> {
  const name = o.name ?? "default";
  {
    const method = { kind: a.config.kind, config: a.config.config } as AdapterMethod;
    const anyWeight = Object.values(m.weights)[0];
    const dtype: FloatDType = o.dtype ?? (anyWeight && isFloat64(anyWeight) ? "float64" : "float32");
    // addAdapter plans the layers exactly as training would (targets, defaults by model type, shape checks). The
    // file's tensors replace the fresh ones, so a LoRA init only recorded in the config (PiSSA, …, which loraInit
    // refuses to fake) plans with the default init.
    const planned = method.kind === "LORA" ? { ...method, config: { ...method.config, initLoraWeights: true } } : method;
    const withFresh = addAdapter(m, name, planned, { rng: rng(0), dtype });
    const added = withFresh.adapters[name];
    const paths = new Set(added.plan.layers.map((l) => l.module.path));
    const inFile = [...a.groups.layers.keys()];
    const absent = [...paths].filter((p) => !a.groups.layers.has(p));
    const foreign = inFile.filter((p) => !paths.has(p));
    const fail = (msg: string): never => {
      tree.dispose(added.params);
      throw new FormatError(`${a.reader.path}: ${msg}`);
    };
    // Modules planned on this model but absent from the file, or the reverse: the file was made on another model.
    const otherModel = `The adapter was trained for another model${a.config.baseModelNameOrPath ? ` (${a.config.baseModelNameOrPath})` : ""}.`;
    if (absent.length) fail(`adapter_config.json targets ${absent.length} module(s) of this model the file has no tensors for, e.g. ${absent.slice(0, 3).join(", ")}. ${otherModel}`);
    if (foreign.length) fail(`the file holds tensors for ${foreign.length} module(s) adapter_config.json does not target on this model, e.g. ${foreign.slice(0, 3).join(", ")}. ${otherModel}`);
    const extraWanted = new Set(added.extras);
    const extraKeys = new Map<string, string>(); // base key → file key
    for (const key of a.groups.extras) {
      const base = baseKeyOfExtra(key);
      if (!extraWanted.has(base)) fail(`tensor "${key}" is not a trainable of this adapter (bias=${JSON.stringify(method.config.bias)}, modules_to_save=${JSON.stringify(method.config.modulesToSave)}).`);
      extraKeys.set(base, key);
    }
    const missingExtras = [...extraWanted].filter((k) => !extraKeys.has(k));
    if (missingExtras.length) fail(`the config trains ${missingExtras.join(", ")}, but the file does not hold ${missingExtras.length === 1 ? "it" : "them"}.`);

    const host = (key: string) => {
      const t = a.reader.read(key);
      return fromHost({ dtype, shape: t.shape, data: dtype === "float64" ? Float64Array.from(t.data) : Float32Array.from(t.data) });
    };
    // Shapes first, then data: nothing is allocated for a file that does not fit.
    for (const layer of added.plan.layers) {
      const keys = a.groups.layers.get(layer.module.path)!;
      for (const [suffix, shape] of layerParamShapes(layer)) {
        const e = a.reader.entry(keys.get(suffix)!);
        if (!sameShape(e.shape, shape)) {
          tree.dispose(added.params);
          throw new ShapeError(`${a.reader.path}: ${e.name} is [${e.shape}], but the config and ${layer.module.path} need [${shape}]. ${otherModel}`);
        }
      }
    }
    for (const [base, key] of extraKeys) {
      const want = m.weights[base].shape;
      const got = a.reader.entry(key).shape;
      if (!sameShape(want, got)) {
        tree.dispose(added.params);
        throw new ShapeError(`${a.reader.path}: ${key} is [${got}], the base ${base} is [${want}]. ${otherModel}`);
      }
    }
    const params: AdapterParams = {};
    for (const layer of added.plan.layers) {
      const keys = a.groups.layers.get(layer.module.path)!;
      params[layer.module.path] = nestLayerParams(Object.fromEntries(layerParamShapes(layer).map(([suffix]) => [suffix, host(keys.get(suffix)!)])));
    }
    const weights = { ...m.weights };
    for (const [base, key] of extraKeys) weights[base] = host(key);
    tree.dispose(added.params);
    const model: AdaptedModel<I, O> = { ...withFresh, weights, adapters: { ...withFresh.adapters, [name]: { ...added, method, plan: { ...added.plan, method }, params } } };
    // PEFT's OFT block-size / r auto-adjust, as training and merge report it.
    const planWarnings = added.plan.layers.flatMap((l) => (l.method === "OFT" ? l.warnings : []));
    const warnings = [...new Set([...a.config.warnings, ...planWarnings])];
    if (a.groups.ignored.length) warnings.push(`${a.reader.path}: ignored ${a.groups.ignored.length} boft_P buffer(s), as PEFT does.`);
    return { model, config: a.config, warnings };
  }
}

/**
 * An adapter's tensors by PEFT key, as host data (float32 or float64 as computed), read asynchronously.
 * Borrows the model. Key order: layers in plan order (each in PEFT's suffix order), then trained base tensors.
 */
export async function adapterTensors<I, O>(m: AdaptedModel<I, O>, name: string | null = m.active): Promise<Record<string, HostTensor>> {
  if (!name || !m.adapters[name]) throw new FormatError(`no adapter named ${JSON.stringify(name)} to save (have: ${Object.keys(m.adapters).join(", ") || "none"})`);
  const a = m.adapters[name];
  const out: Record<string, HostTensor> = {};
  for (const layer of a.plan.layers) {
    const p = a.params[layer.module.path];
    for (const [suffix] of layerParamShapes(layer)) out[adapterKey(layer.module.path, suffix)] = await toHostAsync(leaf(p, suffix).ref);
  }
  const adapted = new Set(a.plan.layers.map((l) => l.module.path));
  for (const k of a.extras) out[extraKey(k, adapted)] = await toHostAsync(m.weights[k].ref);
  return out;
}
