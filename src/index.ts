/**
 * boft: orthogonal finetuning (BOFT, OFT) and LoRA, PEFT-exact, for TypeScript — the browser-clean entry point.
 *
 * PEFT's API in camelCase, as a handle plus functions: build a Model (mlp, cnn, defineModel, llamaFromConfig,
 * loadCausalLm), wrap it with getPeftModel, train it with finetune (an async iterator of events), save it with
 * savePretrained (bytes) and load it with fromPretrained, merge it with mergeAndUnload, generate with generate.
 * Tensors cross the boundary as plain data (HostTensor: { dtype, shape, data }); every read is asynchronous, so it
 * runs where reads cannot be synchronous (WebGPU). `boft/node` adds folders, runs and data sets. See docs/api.md.
 *
 * @example
 * import { init, defineModel, getPeftModel, finetune, savePretrained, fromPretrained, forward, jax } from "boft";
 * await init();
 * const build = () => defineModel({ type: "mine", modules: [
 *   { path: "fc1", kind: "linear", inFeatures: 8, outFeatures: 16 },
 *   { path: "fc2", kind: "linear", inFeatures: 16, outFeatures: 3 } ],
 *   forward: (x, layer) => layer("fc2", jax.nn.relu(layer("fc1", x))) }, { seed: 0 });
 * const peft = getPeftModel(build(), { peftType: "BOFT", blockSize: 4, nButterflyFactor: 2, targetModules: ["fc1", "fc2"] });
 * for await (const e of finetune(peft, { inputs, targets }, { steps: 50, lr: 0.01 })) if (e.kind === "step") console.log(e.loss);
 * const again = await fromPretrained(build(), await savePretrained(peft));
 */
import { jax, tree, initDevice, fromHost, toHostAsync, type Device, type HostTensor, type HostDType } from "./engine/index.js";
import { denseRotation, orthogonalityError } from "./math/index.js";
import { type AdapterMethod, type ModuleInfo, type LayerParams, planLayer, mergeLayer, unmergeLayer, layerParamShapes, nestLayerParams, adapterBlocks } from "./methods/adapter.js";

/**
 * jax-js itself (`jax.numpy`, `jax.nn`, `jax.grad`, …), the very copy boft computes with: use it for your own
 * model's forward (defineModel) and loss, never a second installed copy.
 */
export { jax };

// jax-js's types (the `jax` export) name GPUDevice and GPUBuffer (@webgpu/types), which a consumer's TypeScript may
// lack (skipLibCheck: false then fails inside jax-js); empty declarations give the names and merge with the real types.
// Float16Array comes from lib esnext.float16, referenced from the published index.d.ts (scripts/types-refs.mjs).
declare global {
  interface GPUDevice {}
  interface GPUBuffer {}
}

export type { HostTensor, HostDType, HostData, FloatDType, Device } from "./engine/index.js";
export { currentDevice } from "./engine/index.js";
/** The error classes as one namespace (`errors.ConfigError` …); the same classes are also exported by name. */
export * as errors from "./errors.js";
export { BoftError, ConfigError, ShapeError, FormatError, NoTargetsError, NonFiniteError } from "./errors.js";

// Models
export { mlp, cnn, llamaFromConfig, defineModel, type Model, type ModelInit, type ModelSpec, type ModuleSpec, type MlpConfig, type CnnConfig, type LlamaConfig, type Conv2dGeometry, type TextTokenizer, type WeightSpec, type LayerFn } from "./api/model.js";
export type { Weights } from "./models/model.js";
export type { ChatMessage } from "./formats/hf-tokenizer.js";
// Adapters
export {
  getPeftModel, addAdapter, setAdapter, disableAdapters, enableAdapters, deleteAdapter, forward, mergeAdapter, unmergeAdapter, mergeAndUnload,
  adapterConfig, isPeftModel, trainableParameterCount,
  type PeftModel, type AdapterOptions, type AdapterConfigInput, type TypedAdapterConfig, type BoftConfig, type OftConfig, type LoraConfig,
} from "./api/peft.js";
export type { AdapterMethod, ModuleInfo } from "./methods/adapter.js";
export { boftConfig, resolveBoftShape } from "./methods/boft/config.js";
export { oftConfig, resolveOftShape } from "./methods/oft/config.js";
export { loraConfig, loraScaling } from "./methods/lora/config.js";
export { matchesTarget, defaultTargetModules } from "./methods/targets.js";
export { boftCount, oftCount, loraCount, type ParamCount } from "./methods/param-count.js";
// Training
export {
  finetune, evaluate, causalLmDataset, causalLmSampler, microBatchPlan, type MicroBatchPlan,
  type FinetuneOptions, type TrainData, type Dataset, type Batch, type BatchSampler, type DataRandom, type Evaluator, type EvalResult, type LossFn, type LossName,
  type TrainEvent, type StepEvent, type EvalEvent, type CheckpointEvent, type DoneEvent, type TrainSnapshot, type TrainConfig,
} from "./api/train.js";
export { trainDefaults, crossEntropy } from "./train/trainer.js";
export { lrAt } from "./train/schedule.js";
export { toJsonLine, parseJsonLine, parseJsonLines, lossCurves, median } from "./train/metrics.js";
// Files
export { savePretrained, fromPretrained, loadAdapter, loadCausalLm, saveWeights, ADAPTER_CONFIG, ADAPTER_WEIGHTS, type AdapterFiles, type FileSource, type FileMap, type LoadCausalLmOptions, type FromPretrainedOptions } from "./api/files.js";
export { toAdapterConfigJson, parseAdapterConfig, PEFT_VERSION } from "./formats/peft-config.js";
export { adapterKey, extraKey, baseKeyOfExtra, groupAdapterKeys } from "./formats/peft-adapter.js";
export { parseHeader, serialize, encodeFile } from "./formats/safetensors.js";
export { bytesStore, type TensorStore, type StoredTensor } from "./formats/tensor-store.js";
export { decode as decodeDType, encode as encodeDType, roundTo, type StDType } from "./formats/dtype.js";
export { parseHfConfig } from "./formats/hf-config.js";
// Text
export { generate, type GenerateOptions, type GeneratedToken, type GenerateResult, type FinishReason } from "./api/generate.js";
export { tensor } from "./api/tensor.js";
export { checkSampling } from "./models/generate.js";
export { charTokenizerJson, charTokenizerConfig } from "./data/char-tokenizer.js";
// Math and plots
export { butterflyPerm, butterflyPerms, invertPerm, type ButterflyShape } from "./math/butterfly.js";
export { linePlot, type PlotSeries } from "./plot/svg.js";
// Planning adapters on model shapes, without weights (what `boft inspect --model` reports)
export { planParameters, planModule, groupPlannedModules, type ModelShape, type PlannedModule, type ParameterPlan } from "./methods/planner.js";
export { PAPER_CLAIMS, CANDIDATE_TARGETS, explainClaim, claimMethod, type PaperClaim, type ClaimCandidate } from "./methods/paper-counts.js";
export { MODEL_PRESETS, findModelPreset, presetModelShape, modelShapeFromConfig, type ModelPreset } from "./formats/hf-model-shapes.js";
/** The BOFT paper's expressivity experiment (bench/paper.ts) and random rotations. */
export * as experiments from "./api/experiments.js";
/** The adapted layers as pure functions of engine arrays (jax-js ownership), for benchmarks and custom models. */
export * as layers from "./api/layers.js";

/**
 * Chooses the device before any model is built: "wasm" (the default; every JS runtime), "webgpu" (a browser with
 * WebGPU; in Node use boft/node's init, which brings the optional `webgpu` package) or "auto" (WebGPU when
 * `navigator.gpu` gives an adapter, wasm otherwise). Importing boft fixes nothing: until init, arrays live on wasm.
 * Throws a ConfigError when the device is unknown or unavailable. WebGPU has no float64.
 *
 * @example const { device } = await init({ device: "auto" }); // "webgpu" or "wasm"
 */
export async function init(o: { device?: Device | "auto" } = {}): Promise<{ device: Device }> {
  return { device: await initDevice(o.device ?? "wasm") };
}

function nest(params: Readonly<Record<string, HostTensor>>): LayerParams {
  return nestLayerParams(Object.fromEntries(Object.entries(params).map(([k, t]) => [k, fromHost(t)])));
}

function checkParams(method: AdapterMethod, module: ModuleInfo, params: Readonly<Record<string, HostTensor>>, what: string) {
  const layer = planLayer(method, module);
  for (const [suffix] of layerParamShapes(layer)) if (!params[suffix]) throw new TypeError(`${what}: missing "${suffix}"`);
  return layer;
}

/**
 * Merges one adapter layer into its base weight (BOFT diag(s)·W·Rotᵀ, OFT W·BDᵀ, LoRA W + s·B·A), computed in the
 * weight's dtype. `params` are keyed by PEFT suffix ("boft_R" [m, D, b, b], "boft_s" [out, 1], "oft_R.weight"
 * [r, b(b−1)/2], "lora_A.weight" [r, in], "lora_B.weight" [out, r]); `weight` is [out, in] (Conv2d [out, in, kh, kw]).
 */
export async function mergeWeight(method: AdapterMethod, module: ModuleInfo, params: Readonly<Record<string, HostTensor>>, weight: HostTensor): Promise<HostTensor> {
  const layer = checkParams(method, module, params, "mergeWeight");
  return toHostAsync(mergeLayer(layer, nest(params), fromHost(weight)));
}

/** The inverse of mergeWeight: the base weight back from a merged one. */
export async function unmergeWeight(method: AdapterMethod, module: ModuleInfo, params: Readonly<Record<string, HostTensor>>, weight: HostTensor): Promise<HostTensor> {
  const layer = checkParams(method, module, params, "unmergeWeight");
  return toHostAsync(unmergeLayer(layer, nest(params), fromHost(weight)));
}

/**
 * A BOFT or OFT layer's orthogonal blocks, computed as training computes them: BOFT [m, D, b, b] (Cayley of
 * ½(R − Rᵀ)), OFT [r, b, b] (exact Cayley, or PEFT's Neumann series when the config says so).
 */
export async function rotationBlocks(method: AdapterMethod, module: ModuleInfo, params: Readonly<Record<string, HostTensor>>): Promise<HostTensor> {
  if (method.kind === "LORA") throw new TypeError("rotationBlocks: LoRA has no rotation");
  const layer = checkParams(method, module, params, "rotationBlocks");
  const p = nest(params);
  const blocks = adapterBlocks({ method, layers: [layer] }, { [module.path]: p }); // borrows p
  tree.dispose(p);
  return toHostAsync(blocks.get(module.path)!);
}

/** The dense n×n rotation of BOFT blocks [m, D, b, b] (for inspection; training never builds it). */
export async function boftRotation(blocks: HostTensor): Promise<HostTensor> {
  return toHostAsync(denseRotation(fromHost(blocks)));
}

/** max |QQᵀ − I| over square blocks [..., b, b]. */
export async function orthogonality(blocks: HostTensor): Promise<number> {
  return (await toHostAsync(orthogonalityError(fromHost(blocks)))).data[0];
}

/** Makes sure a value is a host tensor of a known dtype (throws ShapeError otherwise). */
export function isHostTensor(x: unknown): x is HostTensor<HostDType> {
  const t = x as HostTensor<HostDType>;
  return typeof x === "object" && x !== null && Array.isArray(t.shape) && ArrayBuffer.isView(t.data) && ["float32", "float64", "int32"].includes(t.dtype);
}
