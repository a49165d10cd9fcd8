/** The adapter methods as one tagged type: the config of the method PEFT calls peft_type. */
import { defaultTargetModules } from "./targets.js";
import type { AdapterMethod, MethodKind } from "./registry.js";

export type { AdapterMethod, MethodKind };

/** The method with `target_modules: null` resolved to the model type's defaults, as PEFT saves it (_prepare_adapter_config). */
export function withDefaultTargets(method: AdapterMethod, modelType: string): AdapterMethod {
  if (method.config.targetModules !== null) return method;
  return { ...method, config: { ...method.config, targetModules: defaultTargetModules(modelType) } } as AdapterMethod;
}
