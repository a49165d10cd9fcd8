/**
 * Which modules of a model get an adapter: PEFT's `check_target_module_exists` (tuners/tuners_utils.py) as a pure
 * function of (config, module path), the per-architecture default targets, and the config checks shared by every
 * method's target fields.
 *
 * Module paths are kept verbatim (`model.layers.0.self_attn.q_proj`): target_modules is defined over them.
 */
import { ConfigError } from "../errors.js";

/** The target-selection fields every method config carries (camelCase of PEFT's names). */
export type TargetFields = {
  /** List: exact path or `endsWith("." + name)`. String: Python regex, full match. null: architecture default. */
  targetModules: string[] | string | null;
  excludeModules: string[] | string | null;
  /** Layer indices to adapt; only honoured when targetModules is a list (as in PEFT). */
  layersToTransform: number[] | number | null;
  /** Name(s) of the ModuleList holding the layers, e.g. "layers" or "h". */
  layersPattern: string[] | string | null;
  /** Modules trained in full; PEFT never puts an adapter on them. */
  modulesToSave?: string[] | null;
};

/** PEFT's TRANSFORMERS_MODELS_TO_{LORA,BOFT,OFT}_TARGET_MODULES_MAPPING (BOFT and OFT copy LoRA's). */
export const DEFAULT_TARGET_MODULES: Readonly<Record<string, readonly string[]>> = {
  llama: ["q_proj", "v_proj"],
  mistral: ["q_proj", "v_proj"],
  qwen2: ["q_proj", "v_proj"],
};

/** Default targets for a transformers `model_type`; PEFT's `_prepare_adapter_config` error if unknown. */
export function defaultTargetModules(modelType: string): string[] {
  const t = Object.hasOwn(DEFAULT_TARGET_MODULES, modelType) ? DEFAULT_TARGET_MODULES[modelType] : undefined;
  if (t === undefined) throw new ConfigError("Please specify `target_modules` in `peft_config`");
  return [...t];
}

/**
 * Normalises target fields the way PEFT's `__post_init__` does (list → set, which we keep as a sorted unique list
 * so that files are reproducible; PEFT writes sets in hash order) and applies the shared check on layers_pattern.
 */
export function normalizeTargetFields<T extends TargetFields>(cfg: T): T {
  const out = { ...cfg };
  if (Array.isArray(out.targetModules)) out.targetModules = uniqueSorted(out.targetModules);
  if (Array.isArray(out.excludeModules)) out.excludeModules = uniqueSorted(out.excludeModules);
  // PEFT tests truthiness here, so "" and [] do not trigger it; layers_to_transform=0 passes since PEFT #3425.
  if (isTruthy(out.layersPattern) && out.layersToTransform === null) {
    throw new ConfigError("When `layers_pattern` is specified, `layers_to_transform` must also be specified. ");
  }
  for (const p of [out.targetModules, out.excludeModules]) if (typeof p === "string") pyRegex(p, false);
  return out;
}

/**
 * PEFT's `check_target_module_exists(config, key)` reduced to a boolean: true iff an adapter goes on `modulePath`.
 * Order as in PEFT: exclude_modules, then modules_to_save, then target_modules, then layer narrowing.
 */
export function matchesTarget(cfg: TargetFields, modulePath: string): boolean {
  const { targetModules, excludeModules, layersToTransform, layersPattern, modulesToSave = null } = cfg;
  if (isTruthy(excludeModules)) {
    if (typeof excludeModules === "string") {
      if (pyRegex(excludeModules, true).test(modulePath)) return false;
    } else if (excludeModules !== null && listMatches(excludeModules, modulePath)) {
      return false;
    }
  }
  // The names are regex fragments in PEFT (not escaped), so "lm.head" would also exclude "lmXhead".
  if (modulesToSave && modulesToSave.some((m) => pyRegex(`(^|.*\\.)${m}($|\\..*)`, false).test(modulePath))) {
    return false;
  }
  if (targetModules === null) {
    throw new ConfigError(
      "matchesTarget: targetModules is null. Resolve it first, e.g. with defaultTargetModules(modelType).",
    );
  }
  if (typeof targetModules === "string") return pyRegex(targetModules, true).test(modulePath);
  // An exact hit skips the layer narrowing below (PEFT's `elif key in config.target_modules`).
  if (targetModules.includes(modulePath)) return true;
  if (!targetModules.some((t) => modulePath.endsWith(`.${t}`))) return false;

  const usingLayerIndexes =
    layersToTransform !== null && (Array.isArray(layersToTransform) ? layersToTransform.length !== 0 : true);
  if (!usingLayerIndexes) return true;
  const index = layerIndexOf(modulePath, layersPattern);
  if (index === null) return false;
  return typeof layersToTransform === "number" ? index === layersToTransform : layersToTransform.includes(index);
}

/** The layer index PEFT reads from a path: the first numbered segment (after `<pattern>.` if a pattern is given). */
function layerIndexOf(path: string, layersPattern: string[] | string | null): number | null {
  // Empty pattern (null, "", []) means any ModuleList name; lazy `.*?` takes the first index, not an expert index.
  const patterns =
    layersPattern === null || layersPattern.length === 0
      ? ["[^.]*"]
      : typeof layersPattern === "string"
        ? [layersPattern]
        : layersPattern;
  for (const p of patterns) {
    const m = pyRegex(`.*?\\.${p}\\.(\\d+)\\.`, false).exec(path);
    if (m) return Number.parseInt(m[1], 10);
  }
  return null;
}

function listMatches(names: readonly string[], path: string): boolean {
  return names.includes(path) || names.some((n) => path.endsWith(`.${n}`));
}

// Matching runs once per module path of a model, with the same few patterns each time.
const regexCache = new Map<string, RegExp>();

/** Python `re.fullmatch` (full=true) or `re.match` (anchored at the start only) as a JS RegExp. */
function pyRegex(pattern: string, full: boolean): RegExp {
  const cacheKey = `${full ? "F" : "M"}${pattern}`;
  const hit = regexCache.get(cacheKey);
  if (hit) return hit;
  // The Python-only spellings that appear in real configs; the rest of the syntax is shared.
  const js = pattern
    .replace(/\(\?P</g, "(?<")
    .replace(/\(\?P=(\w+)\)/g, "\\k<$1>")
    .replace(/\\A/g, "^")
    .replace(/\\Z/g, "$");
  try {
    const re = new RegExp(full ? `^(?:${js})$` : `^(?:${js})`);
    if (regexCache.size < 1024) regexCache.set(cacheKey, re);
    return re;
  } catch (e) {
    throw new ConfigError(`target pattern is not a valid regular expression (pattern=${JSON.stringify(pattern)}): ${String(e)}`);
  }
}

function isTruthy(v: string | string[] | null): boolean {
  return v !== null && v.length !== 0;
}

function uniqueSorted(xs: readonly string[]): string[] {
  return [...new Set(xs)].sort();
}
