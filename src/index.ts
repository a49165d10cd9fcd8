/**
 * boft: orthogonal finetuning (BOFT, OFT) and LoRA, PEFT-exact, for TypeScript.
 *
 * This entry point is browser-clean (no Node APIs); `boft/node` adds files, checkpoints, runs and data loaders.
 * Everything here takes and returns plain data (HostTensor: dtype, shape, TypedArray), so callers never deal with
 * the engine's array ownership rules.
 */
import { fromHost, toHost, type HostTensor } from "./engine/index.js";
import { cayleySolve, skewFromFull, skewFromPacked, cayleyNeumann, denseRotation, orthogonalityError } from "./math/index.js";
import { cayleyJit } from "./math/cayley-jit.js";
import { type AdapterMethod, type ModuleInfo, type LayerParams, planLayer, mergeLayer, unmergeLayer, layerParamShapes, nestLayerParams } from "./methods/adapter.js";

export type { HostTensor, FloatDType, Device } from "./engine/index.js";
export { initDevice, currentDevice } from "./engine/index.js";
export * as errors from "./errors.js";
export { butterflyPerm, butterflyPerms, invertPerm, type ButterflyShape } from "./math/butterfly.js";
export { boftConfig, resolveBoftShape, type BoftConfig } from "./methods/boft/config.js";
export { oftConfig, resolveOftShape, type OftConfig } from "./methods/oft/config.js";
export { loraConfig, loraScaling, type LoraConfig } from "./methods/lora/config.js";
export { matchesTarget, defaultTargetModules } from "./methods/targets.js";
export { boftCount, oftCount, loraCount, type ParamCount } from "./methods/param-count.js";
export type { AdapterMethod, ModuleInfo } from "./methods/adapter.js";
export { toAdapterConfigJson, parseAdapterConfig, PEFT_VERSION } from "./formats/peft-config.js";
export { adapterKey, extraKey, baseKeyOfExtra, groupAdapterKeys, toPeftState, fromPeftState } from "./formats/peft-adapter.js";
export { parseHeader, serialize, encodeFile } from "./formats/safetensors.js";
export { decode as decodeDType, encode as encodeDType, roundTo, type StDType } from "./formats/dtype.js";
export { parseHfConfig } from "./formats/hf-config.js";
export { linePlot } from "./plot/svg.js";
export { lrAt } from "./train/schedule.js";

function nest(params: Record<string, HostTensor>): LayerParams {
  return nestLayerParams(Object.fromEntries(Object.entries(params).map(([k, t]) => [k, fromHost(t)])));
}

/**
 * Merges one adapter layer into its base weight (BOFT diag(s)·W·Rotᵀ, OFT W·BDᵀ, LoRA W + s·B·A), computed in the
 * weight's dtype. `params` are keyed by PEFT suffix ("boft_R", "boft_s", "oft_R.weight", "lora_A.weight", …).
 */
export function mergeWeight(method: AdapterMethod, module: ModuleInfo, params: Record<string, HostTensor>, weight: HostTensor): HostTensor {
  const layer = planLayer(method, module);
  for (const [suffix] of layerParamShapes(layer)) if (!params[suffix]) throw new TypeError(`mergeWeight: missing "${suffix}"`);
  return toHost(mergeLayer(layer, nest(params), fromHost(weight)));
}

/** The inverse of mergeWeight. */
export function unmergeWeight(method: AdapterMethod, module: ModuleInfo, params: Record<string, HostTensor>, weight: HostTensor): HostTensor {
  return toHost(unmergeLayer(planLayer(method, module), nest(params), fromHost(weight)));
}

/** BOFT's orthogonal blocks Cayley(½(R − Rᵀ)) for boft_R [m, D, b, b]. */
export function boftBlocks(boftR: HostTensor): HostTensor {
  return toHost(cayleyJit(skewFromFull(fromHost(boftR))));
}

/** The dense n×n rotation of BOFT blocks [m, D, b, b] (for inspection; training never builds it). */
export function boftRotation(blocks: HostTensor): HostTensor {
  return toHost(denseRotation(fromHost(blocks)));
}

/** OFT's blocks from packed oft_R.weight [r, b(b−1)/2]: exact Cayley, or PEFT's Neumann series with `terms`. */
export function oftBlocks(packed: HostTensor, blockSize: number, o: { neumannTerms?: number } = {}): HostTensor {
  const a = skewFromPacked(fromHost(packed), blockSize);
  return toHost(o.neumannTerms ? cayleyNeumann(a, o.neumannTerms) : cayleySolve(a));
}

/** max |QQᵀ − I| over square blocks [..., b, b]. */
export function orthogonality(blocks: HostTensor): number {
  return toHost(orthogonalityError(fromHost(blocks))).data[0];
}
