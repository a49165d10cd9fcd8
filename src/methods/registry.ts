/**
 * The adapter methods by PEFT's peft_type. Everything that works for any method looks the method up here;
 * adding a method is a folder methods/<m>/ exporting its record, and one line below.
 */
import { ConfigError } from "../errors.js";
import type { MethodRecord, ModuleInfo } from "./record.js";
import { boft } from "./boft/index.js";
import { oft } from "./oft/index.js";
import { lora } from "./lora/index.js";

export type { ModuleInfo };

/** Every method, by peft_type. */
export const METHODS = { BOFT: boft, OFT: oft, LORA: lora } as const;

type Methods = typeof METHODS;

/** A supported peft_type. */
export type MethodKind = keyof Methods;
/** The config, layer shape and layer parameters of method K, read off its record. */
type PartsOf<K extends MethodKind> = Methods[K] extends MethodRecord<K, infer C, infer S, infer P> ? { config: C; shape: S; params: P } : never;
type ConfigOf<K extends MethodKind> = PartsOf<K>["config"];
/** The resolved layer shape of method K, read off its record. */
export type ShapeOf<K extends MethodKind> = PartsOf<K>["shape"];
type ParamsOf<K extends MethodKind> = PartsOf<K>["params"];

/** An adapter method with its config: what PEFT's adapter_config.json says. */
export type AdapterMethod = { [K in MethodKind]: { kind: K; config: ConfigOf<K> } }[MethodKind];
/** One module's resolved layer shape, of any method. */
export type LayerShape = { [K in MethodKind]: ShapeOf<K> }[MethodKind];
/** One layer's parameters, of any method. */
export type LayerParams = { [K in MethodKind]: ParamsOf<K> }[MethodKind];
/** A method's record with its types erased, as generic code uses it. */
export type AnyMethodRecord = MethodRecord<MethodKind, AdapterMethod["config"], LayerShape, LayerParams>;

/** The supported peft_types, in the registry's order. */
export const METHOD_KINDS = Object.keys(METHODS) as MethodKind[];

/** Whether `kind` is a supported peft_type. */
export function isMethodKind(kind: unknown): kind is MethodKind {
  return typeof kind === "string" && Object.hasOwn(METHODS, kind);
}

/** The record of peft_type `kind`. Throws ConfigError naming the supported ones. */
export function methodRecord(kind: string): AnyMethodRecord {
  if (!isMethodKind(kind)) throw new ConfigError(`peft_type ${JSON.stringify(kind)} is not supported (supported: ${METHOD_KINDS.join(", ")}).`);
  return METHODS[kind];
}
