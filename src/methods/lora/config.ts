/**
 * LoRA configuration: the subset of PEFT's LoraConfig (tuners/lora/config.py, v0.20.0) that plain LoRA uses, in
 * camelCase, with PEFT's defaults and the `__post_init__` checks that concern these fields. PEFT's other LoraConfig
 * fields (DoRA, rank_pattern, …) are handled by the file format: written with their defaults, rejected on load when
 * set, because ignoring them would change the math.
 */
import { ConfigError } from "../../errors.js";
import { type TargetFields, normalizeTargetFields } from "../targets.js";
import { checkBias, dropUndefined, pyRepr, requireProbability } from "../config-checks.js";

export type LoraBias = "none" | "all" | "lora_only";

/** PEFT's accepted `init_lora_weights`. Only true / false / "gaussian" leave the base weights untouched. */
export type LoraInit =
  | boolean
  | "gaussian"
  | "eva"
  | "olora"
  | "pissa"
  | `pissa_niter_${number}`
  | "corda"
  | "loftq"
  | "orthogonal"
  | "mica"
  | "lora_ga";

/**
 * PEFT's LoraConfig in camelCase (lora_alpha → loraAlpha, …), plain LoRA on Linear layers: W + (α/r)·B·A.
 * Build one with loraConfig (defaults and PEFT's checks).
 */
export type LoraConfig = TargetFields & {
  /** Rank of A [r, in] and B [out, r]. */
  r: number;
  /** Scaling is loraAlpha / r (or loraAlpha / √r with useRslora). */
  loraAlpha: number;
  loraDropout: number;
  modulesToSave: string[] | null;
  bias: LoraBias;
  fanInFanOut: boolean;
  /** true: A kaiming-uniform, B = 0; false: random A and B (not an identity at init). */
  initLoraWeights: LoraInit;
  useRslora: boolean;
};

export const LORA_DEFAULTS: Readonly<LoraConfig> = {
  r: 8,
  loraAlpha: 8,
  loraDropout: 0,
  targetModules: null,
  excludeModules: null,
  modulesToSave: null,
  bias: "none",
  fanInFanOut: false,
  initLoraWeights: true,
  useRslora: false,
  layersToTransform: null,
  layersPattern: null,
};

const INIT_STRINGS = new Set(["gaussian", "eva", "olora", "pissa", "corda", "loftq", "orthogonal", "mica", "lora_ga"]);

/** Defaults plus `partial`, checked in PEFT's order (LoraConfig.__post_init__, then update_layer's r check). */
export function loraConfig(partial: Partial<LoraConfig> = {}): LoraConfig {
  const merged: LoraConfig = { ...LORA_DEFAULTS, ...dropUndefined(partial) };
  // A regex target has no per-layer structure to narrow, so PEFT refuses the layer fields with it (LoRA only).
  if (typeof merged.targetModules === "string" && merged.layersToTransform !== null) {
    throw new ConfigError("`layers_to_transform` cannot be used when `target_modules` is a str.");
  }
  if (typeof merged.targetModules === "string" && merged.layersPattern !== null) {
    throw new ConfigError("`layers_pattern` cannot be used when `target_modules` is a str.");
  }
  const cfg = normalizeTargetFields(merged);
  if (!(Number.isInteger(cfg.r) && cfg.r > 0)) {
    throw new ConfigError(`\`r\` should be a positive integer value but the value passed is ${cfg.r}`);
  }
  if (!Number.isFinite(cfg.loraAlpha)) {
    throw new ConfigError(`config: loraAlpha must be a finite number (loraAlpha=${cfg.loraAlpha}).`);
  }
  requireProbability("loraDropout", cfg.loraDropout);
  checkBias(cfg.bias, ["none", "all", "lora_only"]);
  const init: unknown = cfg.initLoraWeights;
  const knownInit =
    typeof init === "boolean" || (typeof init === "string" && (INIT_STRINGS.has(init) || /^pissa_niter_\d+$/.test(init)));
  if (!knownInit) throw new ConfigError(`Unknown initialization init_lora_weights=${pyRepr(init)}`);
  // LoftQ needs its loftq_config, which this config does not carry, so PEFT's check always fires.
  if (init === "loftq") throw new ConfigError("`loftq_config` must be specified when `init_lora_weights` is 'loftq'.");
  return cfg;
}

/** LoRA's scale on B·A: α/r, or α/√r with rank-stabilised LoRA. */
export function loraScaling(cfg: Pick<LoraConfig, "r" | "loraAlpha" | "useRslora">): number {
  return cfg.useRslora ? cfg.loraAlpha / Math.sqrt(cfg.r) : cfg.loraAlpha / cfg.r;
}
