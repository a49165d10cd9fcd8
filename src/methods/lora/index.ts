/** LoRA as one method record (PEFT tuners/lora, plain LoRA on Linear layers): the baseline BOFT/OFT are compared to. */
import { ConfigError, FormatError } from "../../errors.js";
import { loraCount } from "../param-count.js";
import type { MethodRecord, JsonValue } from "../record.js";
import { type LoraConfig, loraConfig, loraScaling } from "./config.js";
import { type LoraLayerShape, type LoraParams, loraParamShapes, loraInit, loraLinear, loraMerge, loraUnmerge } from "./layer.js";

export * from "./config.js";
export * from "./layer.js";

/** unmodelledFields entries: PEFT's default per field, and what a file with another value gets. */
const unmodelled = (otherwise: "refuse" | "ignore", defaults: Record<string, JsonValue>, written = true) =>
  Object.entries(defaults).map(([wire, d]) => ({ wire, default: d, otherwise, written }));

/** LoRA: lora_A.weight [r, in] and lora_B.weight [out, r] per adapted Linear. */
export const lora: MethodRecord<"LORA", LoraConfig, LoraLayerShape, LoraParams> = {
  kind: "LORA",
  className: "LoraConfig",
  suffixes: ["lora_A.weight", "lora_B.weight"],
  unsupportedSuffixes: ["lora_embedding_A", "lora_embedding_B"],
  ignoredSuffixes: [],
  configFields: [
    ["r", "r", "int"],
    ["lora_alpha", "loraAlpha", "num"],
    ["lora_dropout", "loraDropout", "float"],
    ["init_lora_weights", "initLoraWeights", "init"],
    ["use_rslora", "useRslora", "bool"],
  ],
  unmodelledFields: {
    fields: [
      // Each changes the adapter's math or structure (PEFT v0.20.0 defaults).
      ...unmodelled("refuse", {
        alora_invocation_tokens: null,
        alpha_pattern: {},
        arrow_config: null,
        ensure_weight_tying: false,
        layer_replication: null,
        lora_bias: false,
        megatron_config: null,
        monteclora_config: null,
        rank_pattern: {},
        target_parameters: null,
        trainable_token_indices: null,
        use_bdlora: null,
        use_dora: false,
        use_qalora: false,
        velora_config: null,
      }),
      // Added after v0.20.0 (KaSA): not written, but a non-null value must not be dropped silently.
      ...unmodelled("refuse", { kasa_config: null }, false),
      // Only steer initialisation (or an option above that is off): trained weights are unaffected by them.
      ...unmodelled("ignore", { corda_config: null, eva_config: null, loftq_config: {}, lora_ga_config: null, megatron_core: "megatron.core", qalora_group_size: 16 }),
    ],
    label: "LoRA",
    refuseHint: "Only plain LoRA (r, lora_alpha, use_rslora, target selection) can be loaded.",
    ignoreHint: "it has no effect on a trained plain-LoRA adapter.",
  },
  config: loraConfig,
  resolve(c, module, n) {
    if (module.kind !== "linear") throw new ConfigError(`${module.path}: LoRA here adapts Linear layers only`);
    return { shape: { kind: "linear", n, out: module.outFeatures, r: c.r, scaling: loraScaling(c) }, dropout: c.loraDropout, warnings: [] };
  },
  paramShapes(shape) {
    const s = loraParamShapes(shape);
    return [s.lora_A, s.lora_B];
  },
  describe: (s) => `r=${s.r}`,
  count: (s) => loraCount(s),
  init: (shape, c, o) => loraInit(shape, { init: c.initLoraWeights, dtype: o.dtype, uniform: o.uniform, normal: o.normal }),
  apply: (shape, params, base, x, o) => loraLinear(shape, params, base, x, { training: o.training, dropout: o.dropout, random: o.random }),
  merge: loraMerge,
  unmerge: loraUnmerge,
  fromTensors(shapes, c, where) {
    const [A, B] = [shapes["lora_A.weight"], shapes["lora_B.weight"]];
    if (A.length !== 2 || B.length !== 2 || A[0] !== B[1]) {
      throw new FormatError(`${where}: lora_A.weight [${A}] and lora_B.weight [${B}] must be [r, in] and [out, r]`);
    }
    const [r, n] = A;
    const out = B[0];
    return { shape: { kind: "linear", n, out, r, scaling: loraScaling({ ...c, r }) }, n, out, blockSize: null, nFactors: 0 };
  },
};
