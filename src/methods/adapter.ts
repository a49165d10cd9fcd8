/**
 * One adapter over a model: which modules it adapts (the plan, plain data), its parameters (by module path),
 * and the single dispatch every model calls for an adapted Linear or Conv2d. Models never import a method.
 *
 * Method-generic: each function looks the method up in the registry (methods/registry.ts) and calls its record.
 */
import { np, tree, type Arr } from "../engine/index.js";
import { ConfigError, NoTargetsError } from "../errors.js";
import { type TargetFields, matchesTarget, defaultTargetModules } from "./targets.js";
import { type LinearWeights, defaultConvGeometry, linear, conv2d } from "./base-layers.js";
import { type ModuleInfo, type InitOptions, type ApplyOptions, rotationDim } from "./record.js";
import { type AdapterMethod, type MethodKind, type ShapeOf, type LayerParams, methodRecord } from "./registry.js";
import { cayleyNeumann, pairsAllFactors, pairFactors } from "../math/index.js";
import { cayleyJit } from "../math/cayley-jit.js";

export type { AdapterMethod, MethodKind, LayerParams, ModuleInfo, InitOptions, ApplyOptions };
export { rotationDim };

/** One adapted module: its method, the module, and the shape the method resolved for it. */
export type LayerPlan = {
  [K in MethodKind]: {
    /** PEFT's peft_type, the value AdapterMethod calls `kind` (plans name it `method`, as ParameterPlan does). */
    method: K;
    module: ModuleInfo;
    shape: ShapeOf<K>;
    /** Dropout rate on this layer (0: none). */
    dropout: number;
    /** PEFT's auto-adjust warnings for this layer (OFT). */
    warnings: string[];
  };
}[MethodKind];

export interface AdapterPlan {
  method: AdapterMethod;
  layers: LayerPlan[];
}

/** Adapter parameters by module path. */
export type AdapterParams = Record<string, LayerParams>;

/** Resolves one module's adapter shape (PEFT's update_layer checks). Throws ConfigError. */
export function planLayer(method: AdapterMethod, module: ModuleInfo): LayerPlan {
  const g = module.geometry ?? defaultConvGeometry;
  if (module.kind === "conv2d" && g.groups !== 1) {
    throw new ConfigError(`${module.path}: grouped Conv2d (groups=${g.groups}) cannot be adapted`);
  }
  const n = rotationDim(module);
  const { shape, dropout, warnings } = methodRecord(method.kind).resolve(method.config, module, n);
  return { method: method.kind, module, shape, dropout, warnings } as LayerPlan;
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
  const rec = methodRecord(layer.method);
  const shapes = rec.paramShapes(layer.shape);
  return rec.suffixes.map((suffix, i) => [suffix, shapes[i]]);
}

/** Fresh parameters for every planned layer (identity at init unless the config says otherwise). */
export function initAdapter(plan: AdapterPlan, o: InitOptions): AdapterParams {
  const rec = methodRecord(plan.method.kind);
  const out: AdapterParams = {};
  for (const layer of plan.layers) out[layer.module.path] = rec.init(layer.shape, plan.method.config, o);
  return out;
}

/**
 * Whether any layer of the plan has dropout. Its masks are drawn on the host (ApplyOptions.random) while tracing, so
 * such an adapter must not run compiled: a compiled step would replay the first masks.
 */
export function planUsesDropout(plan: AdapterPlan | null): boolean {
  return (plan?.layers ?? []).some((l) => l.dropout > 0);
}

/**
 * Every BOFT/OFT layer's Cayley blocks at once: one batched transform per (block size, exact or Neumann-K)
 * instead of one per layer. The exact transform is an unrolled elimination, so its cost is mostly per call;
 * batching the 28 adapted layers of the demo LM took its BOFT training step from 4.8 s to 1.4 s.
 * Borrows params. Returns owned blocks by module path: BOFT [m, D, b, b], OFT [r or 1, b, b]. With `paired`, a BOFT
 * layer whose every factor pairs (even m, b ≤ 16) and that has no dropout gets its paired blocks [m/2, D/2, 2b, 2b]
 * instead (pairFactors; what its forward applies), built for all such layers at once.
 */
export function adapterBlocks(plan: AdapterPlan, params: AdapterParams, o: { paired?: boolean } = {}): Map<string, Arr> {
  const groups = new Map<string, { b: number; terms: number | null; pair: boolean; items: { path: string; skew: Arr }[] }>();
  const rec = methodRecord(plan.method.kind);
  if (!rec.skew) return new Map();
  for (const layer of plan.layers) {
    const path = layer.module.path;
    // With skewOf, `skew` holds the layer's skew source until the group's skew is taken (stacked) below.
    const source = rec.skewSource && rec.skewOf ? rec.skewSource(layer.shape, tree.ref(params[path])) : null;
    const { skew, terms, blockSize: b } = source ? { skew: source, terms: null, blockSize: source.shape[source.ndim - 1] } : rec.skew(layer.shape, tree.ref(params[path]));
    // BOFT's skew is [m, D, b, b], OFT's [r, b, b]: layers stack along the axis before the blocks, so leading axes
    // (BOFT's m) must agree. Block dropout needs each factor's own blocks, so such layers are never paired.
    const lead = skew.shape.slice(0, -3);
    const pair = (o.paired ?? false) && skew.ndim === 4 && layer.dropout === 0 && pairsAllFactors({ nFactors: skew.shape[0], blockSize: b });
    const key = `${b}:${terms ?? "exact"}:${lead.join(",")}:${pair}`;
    if (!groups.has(key)) groups.set(key, { b, terms, pair, items: [] });
    groups.get(key)!.items.push({ path, skew });
  }
  const out = new Map<string, Arr>();
  for (const { b, terms, pair, items } of groups.values()) {
    const shapes = items.map((i) => i.skew.shape);
    const axis = shapes[0].length - 3;
    const stackedInput = items.length === 1 ? items[0].skew : np.concatenate(items.map((i) => i.skew), axis);
    const all = rec.skewSource && rec.skewOf ? rec.skewOf(stackedInput) : stackedInput;
    const stacked = all.shape;
    const flat = all.reshape([-1, b, b]);
    const q = (terms === null ? cayleyJit(flat) : cayleyNeumann(flat, terms)).reshape(stacked);
    // Paired, all layers' factor pairs are one batched product here rather than a few small kernels per layer.
    const blocks = pair ? pairFactors(q) : q;
    const shrink = pair ? 2 : 1; // pairFactors halves the block count (and the leading axis)
    let start = 0;
    for (const [k, item] of items.entries()) {
      const count = shapes[k][axis] / shrink;
      const slice = items.length === 1 ? blocks.ref : blocks.ref.slice(...Array.from({ length: axis }, () => [] as []), [start, start + count]);
      out.set(item.path, slice);
      start += count;
    }
    blocks.dispose();
  }
  return out;
}

/**
 * The adapted layer's forward, adapter unmerged. `blocks` are this layer's precomputed Cayley blocks (from
 * adapterBlocks), if any. Consumes params, base weights, x and blocks.
 */
export function applyLayer(layer: LayerPlan, params: LayerParams, base: LinearWeights, x: Arr, o: ApplyOptions = {}, blocks?: Arr): Arr {
  const geometry = layer.module.geometry ?? defaultConvGeometry;
  return methodRecord(layer.method).apply(layer.shape, params, base, x, { ...o, dropout: layer.dropout, geometry, blocks });
}

/** The frozen layer alone (no adapter, or adapters disabled). Consumes base and x. */
export function applyBase(module: ModuleInfo, base: LinearWeights, x: Arr): Arr {
  return module.kind === "conv2d" ? conv2d(x, base, module.geometry ?? defaultConvGeometry) : linear(x, base);
}

/** The base weight with the adapter merged in. Consumes params and weight. */
export function mergeLayer(layer: LayerPlan, params: LayerParams, weight: Arr): Arr {
  return methodRecord(layer.method).merge(layer.shape, params, weight);
}

/** Undo mergeLayer. Consumes params and weight. */
export function unmergeLayer(layer: LayerPlan, params: LayerParams, weight: Arr): Arr {
  return methodRecord(layer.method).unmerge(layer.shape, params, weight);
}

/**
 * What PEFT holds in the parameter after a forward: COFT projects OFT parameters in place, so the trainer writes
 * this back after each step (and files store the projected values). Identity for everything else. Consumes params.
 */
export function projectLayerParams(layer: LayerPlan, params: LayerParams): LayerParams {
  const rec = methodRecord(layer.method);
  return rec.project ? rec.project(layer.shape, params) : params;
}
