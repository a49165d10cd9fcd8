/** LoRA as one method record (PEFT tuners/lora, plain LoRA on Linear layers): the baseline BOFT/OFT are compared to. */
import { ConfigError, FormatError } from "../../errors.js";
import { loraCount } from "../param-count.js";
import type { MethodRecord } from "../record.js";
import { type LoraConfig, loraConfig, loraScaling } from "./config.js";
import { type LoraLayerShape, type LoraParams, loraParamShapes, loraInit, loraLinear, loraMerge, loraUnmerge } from "./layer.js";

export * from "./config.js";
export * from "./layer.js";

/** LoRA: lora_A.weight [r, in] and lora_B.weight [out, r] per adapted Linear. */
export const lora: MethodRecord<"LORA", LoraConfig, LoraLayerShape, LoraParams> = {
  kind: "LORA",
  className: "LoraConfig",
  suffixes: ["lora_A.weight", "lora_B.weight"],
  unsupportedSuffixes: ["lora_embedding_A", "lora_embedding_B"],
  ignoredSuffixes: [],
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
