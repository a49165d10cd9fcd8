/**
 * Parameter planner: how many parameters an adapter config puts on a model, before anything is allocated.
 *
 * Pure (allocates no arrays): a model shape (its adaptable modules) and a method config in, per-module and total
 * counts out. Each module is planned exactly as an adapter would be (methods/adapter.ts planLayer: PEFT's target
 * rule, then the method record's shape resolution with PEFT's checks), so a config PEFT would reject fails here
 * with the same message, and the counts, shapes and tensors are the method record's own.
 *
 * Counts per adapted module (n = in_features, or in·kh·kw for a Conv2d):
 *   stored     what the adapter file holds. BOFT boft_R [m, D, b, b] + boft_s: m·n·b + out. OFT oft_R packed upper
 *              triangles: r·b(b−1)/2 (one block with block_share). LoRA A [r, n] + B [out, r]: r·(n + out).
 *   effective  degrees of freedom. BOFT: only the skew part of each b×b block counts, ½(b−1)·n·m, plus s (out).
 *              OFT and LoRA: = stored.
 *   span       inputs one output of the rotation mixes: b·2^(m−1) (capped at n) for BOFT, b for OFT, n for LoRA.
 *   bias       base-layer biases the config's `bias` setting makes trainable ("<method>_only": the adapted
 *              modules' biases; "all": every bias the model shape lists). Reported apart from the adapter.
 */
import { ConfigError } from "../errors.js";
import { type AdapterMethod, type ModuleInfo, methodRecord } from "./registry.js";
import { planLayer, layerParamShapes } from "./adapter.js";
import { type TargetFields, matchesTarget, defaultTargetModules } from "./targets.js";

/** A model as the planner sees it. */
export type ModelShape = {
  name: string;
  /** transformers' model_type, for PEFT's default targets when target_modules is null. */
  modelType: string;
  modules: ModuleInfo[];
  /** All parameters of the base model (for percentages). */
  totalParams: number;
  /** Bias parameters outside `modules` (LayerNorm biases …), trainable only with bias="all". */
  otherBiasParams?: number;
  notes?: string[];
};

/** One module of a ParameterPlan: its shape under the method and what the adapter stores and trains for it. */
export type PlannedModule = {
  path: string;
  kind: "linear" | "conv2d";
  /** Rotation / LoRA input size. */
  n: number;
  out: number;
  /** Human-readable layer shape, e.g. "m=2 D=96 b=8" or "r=8". */
  shape: string;
  /** The tensors the adapter stores for this module (PEFT key suffix → shape). */
  tensors: Record<string, number[]>;
  stored: number;
  effective: number;
  span: number;
  /** Trainable base bias values of this module under the config's `bias` setting. */
  bias: number;
  /** OFT only: PEFT's auto-adjust warnings for this layer. */
  warnings: string[];
};

/**
 * What an adapter config would add to a model, from its shape alone (no weights): per module and in total, the
 * stored and effective parameter counts (planParameters; `boft inspect --model` prints it).
 */
export type ParameterPlan = {
  model: string;
  /** PEFT's peft_type (AdapterMethod's `kind`). */
  method: AdapterMethod["kind"];
  modules: PlannedModule[];
  totals: {
    modules: number;
    stored: number;
    effective: number;
    /** Trainable base biases (adapted modules' or all, by the `bias` setting). */
    bias: number;
  };
  /** The base model's parameter count, and the totals as a share of it (in %). */
  totalParams: number;
  percent: { stored: number; effective: number; effectivePlusBias: number };
  /** Targets as matched (after PEFT's default for the model type, if target_modules was null). */
  targets: TargetFields["targetModules"];
};

/** The counts for one module, or throws ConfigError where PEFT's update_layer would. */
export function planModule(method: AdapterMethod, m: ModuleInfo): PlannedModule {
  const layer = planLayer(method, m);
  const rec = methodRecord(method.kind);
  return {
    path: m.path,
    kind: m.kind,
    n: layer.shape.n,
    out: layer.shape.out,
    shape: rec.describe(layer.shape),
    tensors: Object.fromEntries(layerParamShapes(layer)),
    ...rec.count(layer.shape),
    bias: 0,
    warnings: layer.warnings,
  };
}

/**
 * Per-module and total parameter counts of `method` on `model`. Throws NoTargets-style ConfigError when nothing
 * matches (listing a few module paths), and ConfigError for shapes PEFT rejects.
 */
export function planParameters(model: ModelShape, method: AdapterMethod): ParameterPlan {
  let fields: TargetFields = method.config;
  if (fields.targetModules === null) fields = { ...fields, targetModules: defaultTargetModules(model.modelType) };
  const chosen = model.modules.filter((m) => matchesTarget(fields, m.path));
  if (chosen.length === 0) {
    const sample = [...new Set(model.modules.map((m) => m.path.replace(/\.\d+\./, ".N.")))].slice(0, 8).join(", ");
    throw new ConfigError(
      `planParameters: no module of ${model.name} matches target_modules=${JSON.stringify(fields.targetModules)}. Modules include: ${sample}.`,
    );
  }
  const biasMode = method.config.bias;
  const modules = chosen.map((m) => {
    const p = planModule(method, m);
    if (biasMode !== "none" && m.bias) p.bias = m.outFeatures;
    return p;
  });
  const sum = (f: (p: PlannedModule) => number) => modules.reduce((a, p) => a + f(p), 0);
  let bias = sum((p) => p.bias);
  if (biasMode === "all") {
    const adapted = new Set(chosen.map((m) => m.path));
    bias += model.modules.filter((m) => m.bias && !adapted.has(m.path)).reduce((a, m) => a + m.outFeatures, 0) + (model.otherBiasParams ?? 0);
  }
  const totals = { modules: modules.length, stored: sum((p) => p.stored), effective: sum((p) => p.effective), bias };
  const pct = (x: number) => (100 * x) / model.totalParams;
  return {
    model: model.name,
    method: method.kind,
    modules,
    totals,
    totalParams: model.totalParams,
    percent: { stored: pct(totals.stored), effective: pct(totals.effective), effectivePlusBias: pct(totals.effective + bias) },
    targets: fields.targetModules,
  };
}

/**
 * Modules grouped by their path with the layer index replaced by "N" (q_proj of every layer is one row), for
 * tables of large models. Counts are sums over the group.
 */
export function groupPlannedModules(modules: readonly PlannedModule[]): Array<PlannedModule & { count: number }> {
  const groups = new Map<string, PlannedModule & { count: number }>();
  for (const p of modules) {
    const key = p.path.replace(/\.\d+\./, ".N.");
    const g = groups.get(key);
    if (!g) {
      groups.set(key, { ...p, path: key, count: 1, warnings: [...p.warnings] });
      continue;
    }
    if (g.shape !== p.shape || g.n !== p.n || g.out !== p.out) {
      // Same name, different geometry (rare): keep the rows apart.
      groups.set(`${p.path}`, { ...p, count: 1 });
      continue;
    }
    g.count += 1;
    g.stored += p.stored;
    g.effective += p.effective;
    g.bias += p.bias;
  }
  return [...groups.values()];
}
