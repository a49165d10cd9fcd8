/**
 * One adapter over a model: which modules it adapts (the plan, plain data), its parameters (by module path),
 * and the single dispatch every model calls for an adapted Linear or Conv2d. Models never import a method.
 *
 * PEFT's split: config (methods/<m>/config.ts), layer math (methods/<m>/layer.ts), and this, the model part.
 */
import { np, type Arr, type FloatDType } from "../engine/index.js";
import { ConfigError, NoTargetsError } from "../errors.js";
import { type BoftConfig, resolveBoftShape } from "./boft/config.js";
import { type OftConfig, resolveOftShape } from "./oft/config.js";
import { type LoraConfig, loraScaling } from "./lora/config.js";
import type { AdapterMethod } from "./method.js";
import { type TargetFields, matchesTarget, defaultTargetModules } from "./targets.js";
import { type LinearWeights, type Conv2dGeometry, defaultConvGeometry, linear, conv2d } from "./base-layers.js";
import { type BoftLayerShape, type BoftParams, boftInit, boftLinear, boftConv2d, boftMerge, boftUnmerge, boftParamShapes, boftSkew } from "./boft/layer.js";
import { type OftLayerShape, type OftParams, oftInit, oftLinear, oftConv2d, oftMerge, oftUnmerge, oftParamShape, oftProjectParams, oftSkew } from "./oft/layer.js";
import { type LoraLayerShape, type LoraParams, loraInit, loraLinear, loraMerge, loraUnmerge, loraParamShapes } from "./lora/layer.js";
import type { RotationSide } from "./side.js";
import { cayleyNeumann } from "../math/index.js";
import { cayleyJit } from "../math/cayley-jit.js";

export type { AdapterMethod };

/** A module a model offers for adaptation. Conv2d: `inFeatures` is in_channels. */
export interface ModuleInfo {
  path: string;
  kind: "linear" | "conv2d";
  inFeatures: number;
  outFeatures: number;
  kernel?: [number, number];
  geometry?: Conv2dGeometry;
}

export type LayerPlan =
  | { method: "BOFT"; module: ModuleInfo; shape: BoftLayerShape; dropout: number }
  | { method: "OFT"; module: ModuleInfo; shape: OftLayerShape; warnings: string[] }
  | { method: "LORA"; module: ModuleInfo; shape: LoraLayerShape; dropout: number };

export interface AdapterPlan {
  method: AdapterMethod;
  layers: LayerPlan[];
}

export type LayerParams = BoftParams | OftParams | LoraParams;
/** Adapter parameters by module path. */
export type AdapterParams = Record<string, LayerParams>;

/** Rotation input size: in_features, or in_channels·kh·kw for a Conv2d (PEFT: in·k0², same for square kernels). */
export function rotationDim(m: ModuleInfo): number {
  return m.kind === "linear" ? m.inFeatures : m.inFeatures * m.kernel![0] * m.kernel![1];
}

/** Resolves one module's adapter shape (PEFT's update_layer checks). Throws ConfigError. */
export function planLayer(method: AdapterMethod, module: ModuleInfo): LayerPlan {
  const n = rotationDim(module);
  const out = module.outFeatures;
  const g = module.geometry ?? defaultConvGeometry;
  if (module.kind === "conv2d" && g.groups !== 1) {
    throw new ConfigError(`${module.path}: grouped Conv2d (groups=${g.groups}) cannot be adapted`);
  }
  switch (method.kind) {
    case "BOFT": {
      const s = resolveBoftShape(method.config, n, module.kind);
      return { method: "BOFT", module, shape: { kind: module.kind, n, out, ...s }, dropout: method.config.dropout };
    }
    case "OFT": {
      const c = method.config;
      const s = resolveOftShape(c, n, { dilation: Math.max(...g.dilation) });
      return {
        method: "OFT",
        module,
        warnings: s.warnings,
        shape: {
          kind: module.kind, n, out, r: s.r, blockSize: s.blockSize, blockShare: c.blockShare, coft: c.coft, eps: c.eps,
          useCayleyNeumann: c.useCayleyNeumann, numCayleyNeumannTerms: c.numCayleyNeumannTerms, kernel: module.kernel,
        },
      };
    }
    case "LORA": {
      if (module.kind !== "linear") throw new ConfigError(`${module.path}: LoRA here adapts Linear layers only`);
      const c = method.config;
      return { method: "LORA", module, dropout: c.loraDropout, shape: { kind: "linear", n, out, r: c.r, scaling: loraScaling(c) } };
    }
  }
}

/**
 * Which modules the adapter goes on, with their resolved shapes. `modelType` supplies PEFT's default targets
 * when target_modules is null. Throws NoTargetsError when nothing matches, ConfigError for shapes PEFT rejects.
 */
export function planAdapter(method: AdapterMethod, modules: readonly ModuleInfo[], opts: { modelType?: string } = {}): AdapterPlan {
  let targets: TargetFields = method.config;
  if (targets.targetModules === null) {
    if (!opts.modelType) throw new ConfigError("Please specify `target_modules` in `peft_config`");
    targets = { ...targets, targetModules: defaultTargetModules(opts.modelType) };
  }
  const chosen = modules.filter((m) => matchesTarget(targets, m.path));
  if (chosen.length === 0) {
    const sample = modules.slice(0, 5).map((m) => m.path).join(", ");
    throw new NoTargetsError(
      `Target modules ${JSON.stringify(targets.targetModules)} not found in the base model (layers_to_transform=${JSON.stringify(
        targets.layersToTransform,
      )}). Modules include: ${sample}${modules.length > 5 ? ", …" : ""}. Please check the target modules and try again.`,
    );
  }
  return { method, layers: chosen.map((m) => planLayer(method, m)) };
}

/** A layer's params from arrays keyed by PEFT suffix: "oft_R.weight" becomes { oft_R: { weight } }. Takes ownership. */
export function nestLayerParams(flat: Record<string, Arr>): LayerParams {
  const out: Record<string, unknown> = {};
  for (const [suffix, a] of Object.entries(flat)) {
    const [head, tail] = suffix.split(".");
    out[head] = tail ? { ...((out[head] as object) ?? {}), [tail]: a } : a;
  }
  return out as LayerParams;
}

/** The parameter tensors one layer stores, as (PEFT key suffix, shape). */
export function layerParamShapes(layer: LayerPlan): [string, number[]][] {
  switch (layer.method) {
    case "BOFT": {
      const s = boftParamShapes(layer.shape);
      return [["boft_R", s.boft_R], ["boft_s", s.boft_s]];
    }
    case "OFT":
      return [["oft_R.weight", oftParamShape(layer.shape)]];
    case "LORA": {
      const s = loraParamShapes(layer.shape);
      return [["lora_A.weight", s.lora_A], ["lora_B.weight", s.lora_B]];
    }
  }
}

export interface InitOptions {
  dtype?: FloatDType;
  /** Standard-normal and uniform [0,1) sources (seeded by the caller, so runs are reproducible). */
  normal: () => number;
  uniform: () => number;
}

/** Fresh parameters for every planned layer (identity at init unless the config says init_weights=false). */
export function initAdapter(plan: AdapterPlan, o: InitOptions): AdapterParams {
  const out: AdapterParams = {};
  for (const layer of plan.layers) {
    const path = layer.module.path;
    if (layer.method === "BOFT") {
      out[path] = boftInit(layer.shape, { initWeights: (plan.method.config as BoftConfig).initWeights, dtype: o.dtype, normal: o.normal });
    } else if (layer.method === "OFT") {
      out[path] = oftInit(layer.shape, { initWeights: (plan.method.config as OftConfig).initWeights, dtype: o.dtype, normal: o.normal });
    } else {
      const init = (plan.method.config as LoraConfig).initLoraWeights;
      out[path] = loraInit(layer.shape, { initWeights: init !== false, dtype: o.dtype, uniform: o.uniform });
    }
  }
  return out;
}

/**
 * Whether any layer of the plan has dropout. Its masks are drawn on the host (ApplyOptions.random) while tracing, so
 * such an adapter must not run compiled: a compiled step would replay the first masks.
 */
export function planUsesDropout(plan: AdapterPlan | null): boolean {
  return (plan?.layers ?? []).some((l) => "dropout" in l && l.dropout > 0);
}

export interface ApplyOptions {
  training?: boolean;
  /** Uniform [0,1) source for dropout (BOFT's block dropout, LoRA's input dropout). */
  random?: () => number;
  side?: RotationSide | "auto";
}

/**
 * Every BOFT/OFT layer's Cayley blocks at once: one batched transform per (block size, exact or Neumann-K)
 * instead of one per layer. The exact transform is an unrolled elimination, so its cost is mostly per call;
 * batching the 28 adapted layers of the demo LM took its BOFT training step from 4.8 s to 1.4 s.
 * Borrows params. Returns owned blocks by module path: BOFT [m, D, b, b], OFT [r or 1, b, b].
 */
export function adapterBlocks(plan: AdapterPlan, params: AdapterParams): Map<string, Arr> {
  const groups = new Map<string, { b: number; terms: number | null; items: { path: string; skew: Arr }[] }>();
  for (const layer of plan.layers) {
    if (layer.method === "LORA") continue;
    const path = layer.module.path;
    const b = layer.shape.blockSize;
    const { skew, terms } =
      layer.method === "BOFT"
        ? { skew: boftSkew((params[path] as BoftParams).boft_R.ref), terms: null }
        : oftSkew(layer.shape, { oft_R: { weight: (params[path] as OftParams).oft_R.weight.ref } });
    const key = `${b}:${terms ?? "exact"}`;
    if (!groups.has(key)) groups.set(key, { b, terms, items: [] });
    groups.get(key)!.items.push({ path, skew });
  }
  const out = new Map<string, Arr>();
  for (const { b, terms, items } of groups.values()) {
    const shapes = items.map((i) => i.skew.shape);
    const counts = shapes.map((sh) => sh.slice(0, -2).reduce((x, y) => x * y, 1));
    const all = items.length === 1 ? items[0].skew.reshape([-1, b, b]) : np.concatenate(items.map((i) => i.skew.reshape([-1, b, b])), 0);
    const q = terms === null ? cayleyJit(all) : cayleyNeumann(all, terms);
    let start = 0;
    items.forEach((item, k) => {
      out.set(item.path, (items.length === 1 ? q.ref : q.ref.slice([start, start + counts[k]])).reshape(shapes[k]));
      start += counts[k];
    });
    q.dispose();
  }
  return out;
}

/**
 * The adapted layer's forward, adapter unmerged. `blocks` are this layer's precomputed Cayley blocks (from
 * adapterBlocks), if any. Consumes params, base weights, x and blocks.
 */
export function applyLayer(layer: LayerPlan, params: LayerParams, base: LinearWeights, x: Arr, o: ApplyOptions = {}, blocks?: Arr): Arr {
  const g = layer.module.geometry ?? defaultConvGeometry;
  const conv = layer.module.kind === "conv2d";
  switch (layer.method) {
    case "BOFT": {
      const opts = { training: o.training, dropout: layer.dropout, random: o.random, side: o.side, blocks };
      const p = params as BoftParams;
      return conv ? boftConv2d(layer.shape, p, base, x, g, opts) : boftLinear(layer.shape, p, base, x, opts);
    }
    case "OFT": {
      const p = params as OftParams;
      const opts = { training: o.training, side: o.side, blocks };
      return conv ? oftConv2d(layer.shape, p, base, x, g, opts) : oftLinear(layer.shape, p, base, x, opts);
    }
    case "LORA":
      return loraLinear(layer.shape, params as LoraParams, base, x, { training: o.training, dropout: layer.dropout, random: o.random });
  }
}

/** The frozen layer alone (no adapter, or adapters disabled). Consumes base and x. */
export function applyBase(module: ModuleInfo, base: LinearWeights, x: Arr): Arr {
  return module.kind === "conv2d" ? conv2d(x, base, module.geometry ?? defaultConvGeometry) : linear(x, base);
}

/** The base weight with the adapter merged in. Consumes params and weight. */
export function mergeLayer(layer: LayerPlan, params: LayerParams, weight: Arr): Arr {
  switch (layer.method) {
    case "BOFT":
      return boftMerge(layer.shape, params as BoftParams, weight);
    case "OFT":
      return oftMerge(layer.shape, params as OftParams, weight);
    case "LORA":
      return loraMerge(layer.shape, params as LoraParams, weight);
  }
}

/** Undo mergeLayer. Consumes params and weight. */
export function unmergeLayer(layer: LayerPlan, params: LayerParams, weight: Arr): Arr {
  switch (layer.method) {
    case "BOFT":
      return boftUnmerge(layer.shape, params as BoftParams, weight);
    case "OFT":
      return oftUnmerge(layer.shape, params as OftParams, weight);
    case "LORA":
      return loraUnmerge(layer.shape, params as LoraParams, weight);
  }
}

/**
 * What PEFT holds in the parameter after a forward: COFT projects OFT parameters in place, so the trainer writes
 * this back after each step (and files store the projected values). Identity for everything else. Consumes params.
 */
export function projectLayerParams(layer: LayerPlan, params: LayerParams): LayerParams {
  return layer.method === "OFT" ? oftProjectParams(layer.shape, params as OftParams) : params;
}
