/**
 * adapter_config.json ↔ method configs. Writing reproduces PEFT's `save_pretrained` byte for byte
 * (`json.dumps(asdict(config), indent=2, sort_keys=True)`, every dataclass field present, inference_mode true);
 * reading follows `PeftConfig.from_pretrained`: peft_type required, unknown keys dropped with one warning, missing
 * keys take PEFT's defaults, the OFT compatibility guards, then the config-time checks.
 * snake_case lives only in the field tables below; one table per method.
 */
import { ConfigError, FormatError } from "../errors.js";
import { type BoftConfig, boftConfig } from "../methods/boft/config.js";
import { type OftConfig, oftConfig } from "../methods/oft/config.js";
import { type LoraConfig, loraConfig } from "../methods/lora/config.js";
import { pyRepr } from "../methods/config-checks.js";
import { type AdapterMethod, METHODS, METHOD_KINDS, isMethodKind } from "../methods/registry.js";
import { type PyJson, PyFloat, pyJsonDumps } from "./py-json.js";
import { jsonObject, preview } from "./json-object.js";

/** Written as peft_version; ≥ 0.18.0 so PEFT does not warn about the OFT Neumann series change. */
export const PEFT_VERSION = "0.20.0";

export type { AdapterMethod };

export type AdapterConfigExtra = {
  baseModelNameOrPath?: string | null;
  /** One of PEFT's TaskType values, e.g. "CAUSAL_LM". */
  taskType?: string | null;
  revision?: string | null;
  /** PeftModel.save_pretrained fills this when taskType is null: { base_model_class, parent_library }. */
  autoMapping?: Record<string, string> | null;
  /** Defaults to PEFT_VERSION; null also means the default. */
  peftVersion?: string | null;
};

export type ParsedAdapterConfig = AdapterMethod & {
  baseModelNameOrPath: string | null;
  taskType: string | null;
  revision: string | null;
  peftVersion: string | null;
  autoMapping: Record<string, string> | null;
  warnings: string[];
};

const TASK_TYPES = ["SEQ_CLS", "SEQ_2_SEQ_LM", "CAUSAL_LM", "TOKEN_CLS", "QUESTION_ANS", "FEATURE_EXTRACTION"];

// How a field is typed on the wire. "num" is an int when integral, else a float (lora_alpha may become one).
type Kind = "int" | "float" | "num" | "bool" | "str" | "names" | "strList" | "layers" | "init";
type Field<C> = readonly [wire: string, key: keyof C & string, kind: Kind];

const TARGET_FIELDS = [
  ["target_modules", "targetModules", "names"],
  ["exclude_modules", "excludeModules", "names"],
  ["modules_to_save", "modulesToSave", "strList"],
  ["layers_to_transform", "layersToTransform", "layers"],
  ["layers_pattern", "layersPattern", "names"],
  ["fan_in_fan_out", "fanInFanOut", "bool"],
  ["bias", "bias", "str"],
] as const;

const BOFT_FIELDS: readonly Field<BoftConfig>[] = [
  ...TARGET_FIELDS,
  ["boft_block_size", "blockSize", "int"],
  ["boft_block_num", "blockNum", "int"],
  ["boft_n_butterfly_factor", "nButterflyFactor", "int"],
  ["boft_dropout", "dropout", "float"],
  ["init_weights", "initWeights", "bool"],
];

const OFT_FIELDS: readonly Field<OftConfig>[] = [
  ...TARGET_FIELDS,
  ["r", "r", "int"],
  ["oft_block_size", "blockSize", "int"],
  ["module_dropout", "moduleDropout", "float"],
  ["coft", "coft", "bool"],
  ["eps", "eps", "float"],
  ["block_share", "blockShare", "bool"],
  ["use_cayley_neumann", "useCayleyNeumann", "bool"],
  ["num_cayley_neumann_terms", "numCayleyNeumannTerms", "int"],
  ["init_weights", "initWeights", "bool"],
];

const LORA_FIELDS: readonly Field<LoraConfig>[] = [
  ...TARGET_FIELDS,
  ["r", "r", "int"],
  ["lora_alpha", "loraAlpha", "num"],
  ["lora_dropout", "loraDropout", "float"],
  ["init_lora_weights", "initLoraWeights", "init"],
  ["use_rslora", "useRslora", "bool"],
];

/**
 * LoraConfig fields (PEFT v0.20.0) that boft does not model, with the defaults PEFT writes. Loading a file where
 * one differs from its default fails, since each changes the adapter's math or structure.
 */
const LORA_UNMODELLED: Readonly<Record<string, PyJson>> = {
  alora_invocation_tokens: null,
  alpha_pattern: {},
  arrow_config: null,
  ensure_weight_tying: false,
  layer_replication: null,
  lora_bias: false,
  megatron_config: null,
  monteclora_config: null,
  rank_pattern: {},
  target_parameters: null,
  trainable_token_indices: null,
  use_bdlora: null,
  use_dora: false,
  use_qalora: false,
  velora_config: null,
};

/** Fields that only steer initialisation (or an option above that is off): trained weights are unaffected by them. */
const LORA_INERT: Readonly<Record<string, PyJson>> = {
  corda_config: null,
  eva_config: null,
  loftq_config: {},
  lora_ga_config: null,
  megatron_core: "megatron.core",
  qalora_group_size: 16,
};

/** Added to LoraConfig after v0.20.0 (KaSA); not written, but a non-null value must not be dropped silently. */
const LORA_NEWER_UNMODELLED: Readonly<Record<string, PyJson>> = { kasa_config: null };

const BASE_KEYS = ["auto_mapping", "base_model_name_or_path", "inference_mode", "peft_type", "peft_version", "revision", "task_type"];

/** adapter_config.json text exactly as PEFT's save_pretrained writes it (no trailing newline). */
export function toAdapterConfigJson(method: AdapterMethod, extra: AdapterConfigExtra = {}): string {
  const { baseModelNameOrPath = null, taskType = null, revision = null, autoMapping = null } = extra;
  const peftVersion = extra.peftVersion ?? PEFT_VERSION;
  checkTaskType(taskType);
  const out: Record<string, PyJson> = {
    auto_mapping: autoMapping,
    base_model_name_or_path: baseModelNameOrPath,
    inference_mode: true,
    peft_type: method.kind,
    peft_version: peftVersion,
    revision,
    task_type: taskType,
  };
  if (method.kind === "BOFT") writeFields(out, BOFT_FIELDS, boftConfig(method.config));
  else if (method.kind === "OFT") writeFields(out, OFT_FIELDS, oftConfig(method.config));
  else {
    writeFields(out, LORA_FIELDS, loraConfig(method.config));
    Object.assign(out, structuredClone(LORA_UNMODELLED), structuredClone(LORA_INERT));
  }
  return pyJsonDumps(out);
}

/** Reads adapter_config.json text. `source` names the file in messages. Throws FormatError / ConfigError. */
export function parseAdapterConfig(text: string, source: string): ParsedAdapterConfig {
  const obj = { ...jsonObject(text, `Failed to parse ${source}`) };
  const warnings: string[] = [];
  if ("runtime_config" in obj) {
    warnings.push(
      "The configuration file contains a `runtime_config` key. This is ignored. Runtime configurations are only valid at runtime.",
    );
    delete obj.runtime_config;
  }
  if (!("peft_type" in obj)) throw new FormatError(`${source}: missing required key "peft_type".`);
  const kind = obj.peft_type;
  if (!isMethodKind(kind)) {
    throw new FormatError(`${source}: peft_type ${preview(kind)} is not supported (supported: ${METHOD_KINDS.join(", ")}).`);
  }
  const str = (k: string): string | null => {
    const v = obj[k] ?? null;
    if (v !== null && typeof v !== "string") throw new FormatError(`${source}: "${k}" must be a string or null.`);
    return v;
  };
  const base = {
    baseModelNameOrPath: str("base_model_name_or_path"),
    taskType: str("task_type"),
    revision: str("revision"),
    peftVersion: str("peft_version"),
    autoMapping: autoMappingOf(obj.auto_mapping ?? null, source),
  };
  checkTaskType(base.taskType);

  const known = new Set<string>(BASE_KEYS);
  let method: AdapterMethod;
  if (kind === "BOFT") {
    method = { kind, config: boftConfig(readFields(obj, BOFT_FIELDS, known, source)) };
  } else if (kind === "OFT") {
    checkOftCompat(obj, base.peftVersion, source, warnings);
    method = { kind, config: oftConfig(readFields(obj, OFT_FIELDS, known, source)) };
  } else {
    checkLoraUnmodelled(obj, known, source, warnings);
    method = { kind, config: loraConfig(readFields(obj, LORA_FIELDS, known, source)) };
  }
  const unknown = Object.keys(obj).filter((k) => !known.has(k)).sort();
  if (unknown.length > 0) {
    warnings.push(
      `${source}: ignoring keys unknown to ${METHODS[kind].className}: ${pyRepr(unknown)}. The file was probably ` +
        "written by a newer PEFT; these settings are dropped.",
    );
  }
  return { ...method, ...base, warnings };
}

/** PEFT's OFTConfig.check_kwargs guards, run before the config is built. */
function checkOftCompat(obj: Record<string, unknown>, peftVersion: string | null, source: string, warnings: string[]) {
  if (!("oft_block_size" in obj)) {
    throw new ConfigError(
      "OFT has been updated since PEFT 0.14.0. Your trained adapter weights are incompatible " +
        "with the latest version of OFT. Please retrain your adapter weights with newer PEFT versions. " +
        "Alternatively, downgrade PEFT to version 0.13.0 to use the old adapter weights.",
    );
  }
  // PEFT tests the key as written (kwargs.get(..., False)): a file without it gets the default true but no warning.
  if (obj.use_cayley_neumann === true && versionBefore018(peftVersion ?? "0.0.0", source)) {
    warnings.push(
      "The cayley-neumann parameterization has been slightly changed to be more numerically stable in " +
        "PEFT 0.18.0. Please retrain your adapter weights with newer PEFT versions. Alternatively, " +
        "downgrade PEFT to version 0.17.0 to use the old parameterization.",
    );
  }
}

function checkLoraUnmodelled(obj: Record<string, unknown>, known: Set<string>, source: string, warnings: string[]) {
  for (const [table, fatal] of [[LORA_UNMODELLED, true], [LORA_NEWER_UNMODELLED, true], [LORA_INERT, false]] as const) {
    for (const [k, def] of Object.entries(table)) {
      known.add(k);
      if (!(k in obj) || sameJson(obj[k], def)) continue;
      if (fatal) {
        throw new ConfigError(
          `${source}: LoRA option ${k}=${preview(obj[k])} is not supported by boft. Only plain LoRA ` +
            "(r, lora_alpha, use_rslora, target selection) can be loaded.",
        );
      }
      warnings.push(`${source}: ignoring ${k}: it has no effect on a trained plain-LoRA adapter.`);
    }
  }
}

/** `packaging.version.Version(v.partition("@")[0]) < Version("0.18.0")`, for the version forms PEFT writes. */
function versionBefore018(version: string, source: string): boolean {
  const v = version.split("@")[0].trim().toLowerCase();
  const m = /^v?(\d+(?:\.\d+)*)(?:[-_.]?(a|b|c|rc|alpha|beta|pre|preview)[-_.]?\d*)?(?:[-_.]?(post|rev|r)[-_.]?\d*)?(?:[-_.]?(dev)[-_.]?\d*)?(?:\+[a-z0-9.]+)?$/.exec(v);
  if (!m) throw new FormatError(`${source}: peft_version ${JSON.stringify(version)} is not a valid version.`);
  const rel = m[1].split(".").map(Number);
  const target = [0, 18, 0];
  for (let i = 0; i < Math.max(rel.length, 3); i++) {
    const a = rel[i] ?? 0;
    const b = target[i] ?? 0;
    if (a !== b) return a < b;
  }
  // Same release: pre-releases and bare dev releases sort before it; post releases after.
  return m[3] === undefined && (m[2] !== undefined || m[4] !== undefined);
}

/** PEFT writes {base_model_class, parent_library} here; both are class/module names. */
function autoMappingOf(v: unknown, source: string): Record<string, string> | null {
  if (v === null) return null;
  if (typeof v !== "object" || Array.isArray(v) || !Object.values(v).every((x) => typeof x === "string")) {
    throw new FormatError(`${source}: "auto_mapping" must be null or an object of strings (got ${preview(v)}).`);
  }
  return { ...(v as Record<string, string>) };
}

function checkTaskType(taskType: string | null): void {
  if (taskType !== null && !TASK_TYPES.includes(taskType)) {
    throw new ConfigError(
      `Invalid task type: '${taskType}'. Must be one of the following task types: ${TASK_TYPES.join(", ")}.`,
    );
  }
}

function writeFields<C>(out: Record<string, PyJson>, table: readonly Field<C>[], cfg: C): void {
  for (const [wire, key, kind] of table) {
    const v = cfg[key] as unknown;
    if (kind === "float") out[wire] = new PyFloat(v as number);
    else if (kind === "num") out[wire] = Number.isSafeInteger(v) ? (v as number) : new PyFloat(v as number);
    else out[wire] = structuredClone(v) as PyJson;
  }
}

function readFields<C>(obj: Record<string, unknown>, table: readonly Field<C>[], known: Set<string>, source: string) {
  const partial: Partial<C> = {};
  for (const [wire, key, kind] of table) {
    known.add(wire);
    if (!(wire in obj)) continue;
    const v = obj[wire];
    if (!fitsKind(v, kind)) {
      throw new FormatError(`${source}: "${wire}" has the wrong type for ${kindText[kind]} (got ${preview(v)}).`);
    }
    (partial as Record<string, unknown>)[key] = structuredClone(v);
  }
  return partial;
}

const kindText: Record<Kind, string> = {
  int: "an integer",
  float: "a number",
  num: "a number",
  bool: "a boolean",
  str: "a string",
  names: "a string, a list of strings or null",
  strList: "a list of strings or null",
  layers: "an integer, a list of integers or null",
  init: "a boolean or a string",
};

function fitsKind(v: unknown, kind: Kind): boolean {
  const strs = (x: unknown) => Array.isArray(x) && x.every((s) => typeof s === "string");
  switch (kind) {
    case "int":
      // Beyond 2^53 a JSON integer is no longer the number written (and cannot be written back as an int).
      return Number.isSafeInteger(v);
    case "float":
    case "num":
      return typeof v === "number";
    case "bool":
      return typeof v === "boolean";
    case "str":
      return typeof v === "string";
    case "names":
      return v === null || typeof v === "string" || strs(v);
    case "strList":
      return v === null || strs(v);
    case "layers":
      return v === null || Number.isSafeInteger(v) || (Array.isArray(v) && v.every((x) => Number.isSafeInteger(x)));
    case "init":
      return typeof v === "boolean" || typeof v === "string";
  }
}

/**
 * `a` equals the default `b` as JSON. Walks `b`'s structure (defaults are at most one level deep), never all of `a`,
 * which may be nested arbitrarily deep.
 */
function sameJson(a: unknown, b: PyJson): boolean {
  if (b === null || typeof b !== "object" || b instanceof PyFloat) return a === (b instanceof PyFloat ? b.value : b);
  if (Array.isArray(b)) return Array.isArray(a) && a.length === b.length && b.every((x, i) => sameJson(a[i], x));
  if (a === null || typeof a !== "object" || Array.isArray(a)) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && sameJson((a as Record<string, unknown>)[k], b[k]));
}
