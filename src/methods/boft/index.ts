/** BOFT as one method record (PEFT tuners/boft): config, layer shape, parameters, forward, merge, counts. */
import { FormatError } from "../../errors.js";
import { boftCount } from "../param-count.js";
import type { MethodRecord } from "../record.js";
import { type BoftConfig, boftConfig, resolveBoftShape } from "./config.js";
import {
  type BoftLayerShape, type BoftParams,
  boftParamShapes, boftInit, boftLinear, boftConv2d, boftMerge, boftUnmerge, boftSkew,
} from "./layer.js";

export * from "./config.js";
export * from "./layer.js";

/** BOFT: boft_R [m, D, b, b] and boft_s ([out, 1] Linear, [1, out] Conv2d) per adapted module. */
export const boft: MethodRecord<"BOFT", BoftConfig, BoftLayerShape, BoftParams> = {
  kind: "BOFT",
  className: "BOFTConfig",
  suffixes: ["boft_R", "boft_s"],
  unsupportedSuffixes: [],
  ignoredSuffixes: ["boft_P"],
  configFields: [
    ["boft_block_size", "blockSize", "int"],
    ["boft_block_num", "blockNum", "int"],
    ["boft_n_butterfly_factor", "nButterflyFactor", "int"],
    ["boft_dropout", "dropout", "float"],
    ["init_weights", "initWeights", "bool"],
  ],
  config: boftConfig,
  resolve(config, module, n) {
    const s = resolveBoftShape(config, n, module.kind);
    return { shape: { kind: module.kind, n, out: module.outFeatures, ...s }, dropout: config.dropout, warnings: [] };
  },
  paramShapes(shape) {
    const s = boftParamShapes(shape);
    return [s.boft_R, s.boft_s];
  },
  describe: (s) => `m=${s.nFactors} D=${s.blockNum} b=${s.blockSize}`,
  count: (s) => boftCount(s),
  init: (shape, config, o) => boftInit(shape, { initWeights: config.initWeights, dtype: o.dtype, normal: o.normal }),
  apply(shape, params, base, x, o) {
    const opts = { training: o.training, dropout: o.dropout, random: o.random, side: o.side, blocks: o.blocks };
    return shape.kind === "conv2d" ? boftConv2d(shape, params, base, x, o.geometry, opts) : boftLinear(shape, params, base, x, opts);
  },
  merge: boftMerge,
  unmerge: boftUnmerge,
  skew: (shape, params) => {
    params.boft_s.dispose();
    return { skew: boftSkew(params.boft_R), terms: null, blockSize: shape.blockSize };
  },
  skewSource: (_shape, params) => {
    params.boft_s.dispose();
    return params.boft_R;
  },
  skewOf: boftSkew,
  fromTensors(shapes, _config, where) {
    const [R, s] = [shapes.boft_R, shapes.boft_s];
    if (R.length !== 4 || R[2] !== R[3] || R.includes(0)) throw new FormatError(`${where}: boft_R [${R}] must be [m, D, b, b] with m, D, b ≥ 1`);
    if (s.length !== 2 || (s[0] !== 1 && s[1] !== 1)) throw new FormatError(`${where}: boft_s [${s}] must be [out, 1] (Linear) or [1, out] (Conv2d)`);
    const [m, D, b] = R;
    const conv = s[0] === 1 && s[1] !== 1;
    const out = conv ? s[1] : s[0];
    const shape: BoftLayerShape = { kind: conv ? "conv2d" : "linear", n: D * b, out, nFactors: m, blockNum: D, blockSize: b };
    return { shape, n: D * b, out, blockSize: b, nFactors: m };
  },
};
