/**
 * adapter_model.safetensors keys, both ways (PEFT's get_peft_model_state_dict / set_peft_model_state_dict with the
 * adapter name removed). Plain data only: tensors are HostTensors, layers are identified by module path.
 *
 *   BOFT  base_model.model.<module>.boft_R  [m, D, b, b]     base_model.model.<module>.boft_s  [out,1] | [1,out]
 *   OFT   base_model.model.<module>.oft_R.weight  [r or 1, b(b−1)/2]
 *   LoRA  base_model.model.<module>.lora_A.weight [r, in]    base_model.model.<module>.lora_B.weight [out, r]
 *   extra trainables (bias="all"/"*_only", modules_to_save): base_model.model.<module>.base_layer.bias for adapted
 *   layers, base_model.model.<key> otherwise.
 */
import { FormatError } from "../errors.js";
import type { HostTensor } from "../engine/index.js";
import { type HostTree, isHostTensor } from "../train/host-tree.js";

/** The config file of a PEFT adapter (save_pretrained's name). */
export const ADAPTER_CONFIG = "adapter_config.json";
/** The weights file of a PEFT adapter (save_pretrained's name, safetensors serialization). */
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";

export const PEFT_PREFIX = "base_model.model.";

import { type MethodKind, METHODS, methodRecord } from "../methods/registry.js";
export type { MethodKind };

const ALL_METHODS = Object.values(METHODS);
/** Keys that name another method's (or a PEFT-only layer's) tensors: a file of one method must not hold them. */
const FOREIGN_SUFFIXES = ALL_METHODS.flatMap((r) => [...r.suffixes, ...r.unsupportedSuffixes]);
/** Keys PEFT itself skips on load, whatever the method. */
const IGNORED_SUFFIXES = ALL_METHODS.flatMap((r) => r.ignoredSuffixes);

/** The PEFT key of one adapter parameter. */
export function adapterKey(modulePath: string, suffix: string): string {
  return `${PEFT_PREFIX}${modulePath}.${suffix}`;
}

/** The PEFT key of a trained base tensor (a bias or a modules_to_save parameter), given the adapted modules. */
export function extraKey(baseKey: string, adaptedModules: ReadonlySet<string>): string {
  const dot = baseKey.lastIndexOf(".");
  const module = baseKey.slice(0, dot);
  return adaptedModules.has(module) ? `${PEFT_PREFIX}${module}.base_layer${baseKey.slice(dot)}` : PEFT_PREFIX + baseKey;
}

/** Inverse of extraKey: the base model's own tensor name. */
export function baseKeyOfExtra(peftKey: string): string {
  if (!peftKey.startsWith(PEFT_PREFIX)) throw new FormatError(`adapter key "${peftKey}" does not start with "${PEFT_PREFIX}"`);
  return peftKey.slice(PEFT_PREFIX.length).replace(/\.base_layer\.(weight|bias)$/, ".$1");
}

export interface AdapterKeyGroups {
  /** module path → (suffix → key) */
  layers: Map<string, Map<string, string>>;
  /** keys of trained base tensors (biases, modules_to_save) */
  extras: string[];
  /** keys PEFT itself ignores on load (BOFT's boft_P buffers from PEFT ≤ 0.12) */
  ignored: string[];
}

/**
 * Sorts a file's keys into adapter layers, extra trainables and ignored keys, with PEFT's guards: OFT files from
 * PEFT ≤ 0.15.2 (`.oft_r.`) are refused as PEFT refuses them; keys of another method are an error.
 */
export function groupAdapterKeys(kind: MethodKind, keys: Iterable<string>, source: string): AdapterKeyGroups {
  const groups: AdapterKeyGroups = { layers: new Map(), extras: [], ignored: [] };
  const all = [...keys];
  // PEFT ≤ 0.15.2 saved OFT as ParameterDicts: file keys end in ".oft_r" (".oft_r.<adapter>" once PEFT has inserted
  // the adapter name, which is what PEFT itself tests).
  if (kind === "OFT" && all.some((k) => /\.oft_r(\.|$)/.test(k))) {
    throw new FormatError(
      `${source}: Trying to load old OFT checkpoint, which is no longer supported. Please install PEFT <= v0.15.2 to load it or train a new OFT adapter.`,
    );
  }
  const suffixes = methodRecord(kind).suffixes;
  const endsWithSuffix = (key: string, list: readonly string[]) => list.find((s) => key.endsWith(`.${s}`));
  for (const key of all) {
    if (!key.startsWith(PEFT_PREFIX)) throw new FormatError(`${source}: key "${key}" does not start with "${PEFT_PREFIX}"`);
    if (endsWithSuffix(key, IGNORED_SUFFIXES)) {
      groups.ignored.push(key);
      continue;
    }
    const suffix = endsWithSuffix(key, suffixes);
    if (suffix) {
      const module = key.slice(PEFT_PREFIX.length, key.length - suffix.length - 1);
      if (!groups.layers.has(module)) groups.layers.set(module, new Map());
      groups.layers.get(module)!.set(suffix, key);
    } else if (endsWithSuffix(key, FOREIGN_SUFFIXES)) {
      throw new FormatError(`${source}: key "${key}" belongs to another method than ${kind} (adapter_config.json says ${kind})`);
    } else {
      groups.extras.push(key);
    }
  }
  for (const [module, found] of groups.layers) {
    for (const s of suffixes) {
      if (!found.has(s)) throw new FormatError(`${source}: module ${module} has no "${s}" tensor (${kind} needs ${suffixes.join(" and ")})`);
    }
  }
  return groups;
}

/** One module's trained parameters as a host tree: `{ boft_R, boft_s }`, `{ oft_R: { weight } }`, `{ lora_A: { weight }, … }`. */
type ParamTree = { [name: string]: HostTensor | ParamTree };

/** Nested parameter object → (dotted suffix, tensor): { oft_R: { weight } } gives "oft_R.weight". */
function flattenParams(o: ParamTree | HostTree, prefix = ""): [string, HostTensor][] {
  if (isHostTensor(o) || Array.isArray(o)) throw new FormatError(`trained parameters: expected named tensors under "${prefix || "<module>"}"`);
  return Object.entries(o).flatMap(([k, v]) => (isHostTensor(v) ? [[prefix + k, v] as [string, HostTensor]] : flattenParams(v, `${prefix}${k}.`)));
}

/**
 * The state dict PEFT would save, keys sorted: `adapter` maps each module path to its parameter tree, `extras`
 * maps base tensor names (trained biases, modules_to_save) to tensors.
 */
export function toPeftState(adapter: Readonly<Record<string, HostTree>>, extras: Readonly<Record<string, HostTensor>>): Record<string, HostTensor> {
  const adapted = new Set(Object.keys(adapter));
  const out: [string, HostTensor][] = [];
  for (const [module, params] of Object.entries(adapter)) for (const [suffix, v] of flattenParams(params)) out.push([adapterKey(module, suffix), v]);
  for (const [baseKey, v] of Object.entries(extras)) out.push([extraKey(baseKey, adapted), v]);
  return Object.fromEntries(out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
}

/**
 * The inverse of toPeftState for a known layout: `layout` gives each module's dotted suffixes, `extras` the base
 * keys; `read` fetches a tensor by PEFT key (throwing if absent).
 */
export function fromPeftState(
  layout: Readonly<Record<string, readonly string[]>>,
  extras: readonly string[],
  read: (key: string) => HostTensor,
): { adapter: Record<string, ParamTree>; extras: Record<string, HostTensor> } {
  const adapter: Record<string, ParamTree> = {};
  const adapted = new Set(Object.keys(layout));
  for (const [module, suffixes] of Object.entries(layout)) {
    const params: ParamTree = {};
    for (const suffix of suffixes) {
      const parts = suffix.split(".");
      let node = params;
      for (const p of parts.slice(0, -1)) {
        const next = (node[p] ??= {});
        if (isHostTensor(next)) throw new FormatError(`${module}: parameter "${parts.slice(0, -1).join(".")}" is both a tensor and a group`);
        node = next;
      }
      node[parts[parts.length - 1]] = read(adapterKey(module, suffix));
    }
    adapter[module] = params;
  }
  return { adapter, extras: Object.fromEntries(extras.map((k) => [k, read(extraKey(k, adapted))])) };
}
