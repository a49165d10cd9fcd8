/** The three adapter methods as one tagged type: the config of the method PEFT calls peft_type. */
import type { BoftConfig } from "./boft/config.js";
import type { OftConfig } from "./oft/config.js";
import type { LoraConfig } from "./lora/config.js";
import { defaultTargetModules } from "./targets.js";

export type AdapterMethod = { kind: "BOFT"; config: BoftConfig } | { kind: "OFT"; config: OftConfig } | { kind: "LORA"; config: LoraConfig };

export type MethodKind = AdapterMethod["kind"];

/** The method with `target_modules: null` resolved to the model type's defaults, as PEFT saves it (_prepare_adapter_config). */
export function withDefaultTargets(method: AdapterMethod, modelType: string): AdapterMethod {
  if (method.config.targetModules !== null) return method;
  return { ...method, config: { ...method.config, targetModules: defaultTargetModules(modelType) } } as AdapterMethod;
}
