/**
 * adapter_config.json ↔ method configs. Writing reproduces PEFT's `save_pretrained` byte for byte
 * (`json.dumps(asdict(config), indent=2, sort_keys=True)`, every dataclass field present, inference_mode true);
 * reading follows `PeftConfig.from_pretrained`: peft_type required, unknown keys dropped with one warning, missing
 * keys take PEFT's defaults, the OFT compatibility guards, then the config-time checks.
 * snake_case lives only in field tables: the target fields below, which every method has, and each method record's
 * own (methods/<m>/index.ts: configFields, unmodelledFields, fileGuards), so a new method brings its own.
 */
import { ConfigError, FormatError } from "../errors.js";
import { pyRepr } from "../methods/config-checks.js";
import { type AdapterMethod, type AnyMethodRecord, METHOD_KINDS, isMethodKind, methodRecord } from "../methods/registry.js";
import type { ConfigField, FileGuards, WireType, UnmodelledFields } from "../methods/record.js";
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

/** The fields every method's config has (MethodConfigBase), before the method's own. */
const TARGET_FIELDS: readonly ConfigField<AdapterMethod["config"]>[] = [
  ["target_modules", "targetModules", "names"],
  ["exclude_modules", "excludeModules", "names"],
  ["modules_to_save", "modulesToSave", "strList"],
  ["layers_to_transform", "layersToTransform", "layers"],
  ["layers_pattern", "layersPattern", "names"],
  ["fan_in_fan_out", "fanInFanOut", "bool"],
  ["bias", "bias", "str"],
];

/** Every adapter_config.json field a method's config is read from and written to. */
function fieldsOf(rec: AnyMethodRecord): readonly ConfigField<AdapterMethod["config"]>[] {
  return [...TARGET_FIELDS, ...rec.configFields];
}

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
  const rec = methodRecord(method.kind);
  writeFields(out, fieldsOf(rec), rec.config(method.config));
  for (const f of rec.unmodelledFields?.fields ?? []) if (f.written !== false) out[f.wire] = structuredClone(f.default);
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
  const rec = methodRecord(kind);
  if (rec.fileGuards) checkGuards(rec.fileGuards, obj, base.peftVersion, source, warnings);
  if (rec.unmodelledFields) checkUnmodelled(rec.unmodelledFields, obj, known, source, warnings);
  const method = { kind, config: rec.config(readFields(obj, fieldsOf(rec), known, source)) } as AdapterMethod;
  const unknown = Object.keys(obj).filter((k) => !known.has(k)).sort();
  if (unknown.length > 0) {
    warnings.push(
      `${source}: ignoring keys unknown to ${rec.className}: ${pyRepr(unknown)}. The file was probably ` +
        "written by a newer PEFT; these settings are dropped.",
    );
  }
  return { ...method, ...base, warnings };
}

/** A method's check_kwargs guards (record.fileGuards), run before the config is built. */
function checkGuards(g: FileGuards, obj: Record<string, unknown>, peftVersion: string | null, source: string, warnings: string[]) {
  for (const r of g.required ?? []) if (!(r.wire in obj)) throw new ConfigError(r.message);
  for (const c of g.changedIn ?? []) {
    if (sameJson(obj[c.wire], c.value) && versionBefore(peftVersion ?? "0.0.0", c.before, source)) warnings.push(c.warning);
  }
}

/** Fields PEFT has and boft does not model: another value than PEFT's default is refused or dropped with a warning. */
function checkUnmodelled(u: UnmodelledFields, obj: Record<string, unknown>, known: Set<string>, source: string, warnings: string[]) {
  for (const f of u.fields) {
    known.add(f.wire);
    if (!(f.wire in obj) || sameJson(obj[f.wire], f.default)) continue;
    if (f.otherwise === "refuse") {
      throw new ConfigError(`${source}: ${u.label} option ${f.wire}=${preview(obj[f.wire])} is not supported by boft. ${u.refuseHint}`);
    }
    warnings.push(`${source}: ignoring ${f.wire}: ${u.ignoreHint}`);
  }
}

/** `packaging.version.Version(v.partition("@")[0]) < Version(release)`, for the version forms PEFT writes. */
function versionBefore(version: string, release: string, source: string): boolean {
  const v = version.split("@")[0].trim().toLowerCase();
  const m = /^v?(\d+(?:\.\d+)*)(?:[-_.]?(a|b|c|rc|alpha|beta|pre|preview)[-_.]?\d*)?(?:[-_.]?(post|rev|r)[-_.]?\d*)?(?:[-_.]?(dev)[-_.]?\d*)?(?:\+[a-z0-9.]+)?$/.exec(v);
  if (!m) throw new FormatError(`${source}: peft_version ${JSON.stringify(version)} is not a valid version.`);
  const rel = m[1].split(".").map(Number);
  const target = release.split(".").map(Number);
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

function writeFields(out: Record<string, PyJson>, table: readonly ConfigField<AdapterMethod["config"]>[], cfg: Readonly<Record<string, unknown>>): void {
  for (const [wire, key, kind] of table) {
    const v = cfg[key];
    if (kind === "float") out[wire] = new PyFloat(v as number);
    else if (kind === "num") out[wire] = Number.isSafeInteger(v) ? (v as number) : new PyFloat(v as number);
    else out[wire] = structuredClone(v) as PyJson;
  }
}

function readFields(obj: Record<string, unknown>, table: readonly ConfigField<AdapterMethod["config"]>[], known: Set<string>, source: string) {
  const partial: Record<string, unknown> = {};
  for (const [wire, key, kind] of table) {
    known.add(wire);
    if (!(wire in obj)) continue;
    const v = obj[wire];
    if (!fitsKind(v, kind)) {
      throw new FormatError(`${source}: "${wire}" has the wrong type for ${kindText[kind]} (got ${preview(v)}).`);
    }
    partial[key] = structuredClone(v);
  }
  return partial;
}

const kindText: Record<WireType, string> = {
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

function fitsKind(v: unknown, kind: WireType): boolean {
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
