/** OFT as one method record (PEFT ≥ 0.18 tuners/oft): config, layer shape, parameter, forward, merge, counts. */
import { FormatError } from "../../errors.js";
import { defaultConvGeometry } from "../base-layers.js";
import { oftCount } from "../param-count.js";
import type { MethodRecord } from "../record.js";
import { type OftConfig, oftConfig, resolveOftShape } from "./config.js";
import {
  type OftLayerShape, type OftParams,
  oftParamShape, oftInit, oftLinear, oftConv2d, oftMerge, oftUnmerge, oftSkew, oftProjectParams,
} from "./layer.js";

export * from "./config.js";
export * from "./layer.js";

/** OFT: oft_R.weight [r or 1, b(b−1)/2], packed strict upper triangles, per adapted module. */
export const oft: MethodRecord<"OFT", OftConfig, OftLayerShape, OftParams> = {
  kind: "OFT",
  className: "OFTConfig",
  suffixes: ["oft_R.weight"],
  unsupportedSuffixes: ["oft_embedding_R.weight"],
  ignoredSuffixes: [],
  configFields: [
    ["r", "r", "int"],
    ["oft_block_size", "blockSize", "int"],
    ["module_dropout", "moduleDropout", "float"],
    ["coft", "coft", "bool"],
    ["eps", "eps", "float"],
    ["block_share", "blockShare", "bool"],
    ["use_cayley_neumann", "useCayleyNeumann", "bool"],
    ["num_cayley_neumann_terms", "numCayleyNeumannTerms", "int"],
    ["init_weights", "initWeights", "bool"],
  ],
  // OFTConfig.check_kwargs.
  fileGuards: {
    required: [
      {
        wire: "oft_block_size",
        message:
          "OFT has been updated since PEFT 0.14.0. Your trained adapter weights are incompatible " +
          "with the latest version of OFT. Please retrain your adapter weights with newer PEFT versions. " +
          "Alternatively, downgrade PEFT to version 0.13.0 to use the old adapter weights.",
      },
    ],
    // PEFT tests the key as written (kwargs.get(..., False)): a file without it gets the default true but no warning.
    changedIn: [
      {
        wire: "use_cayley_neumann",
        value: true,
        before: "0.18.0",
        warning:
          "The cayley-neumann parameterization has been slightly changed to be more numerically stable in " +
          "PEFT 0.18.0. Please retrain your adapter weights with newer PEFT versions. Alternatively, " +
          "downgrade PEFT to version 0.17.0 to use the old parameterization.",
      },
    ],
  },
  config: oftConfig,
  resolve(c, module, n) {
    const g = module.geometry ?? defaultConvGeometry;
    const s = resolveOftShape(c, n, { dilation: Math.max(...g.dilation) });
    const shape: OftLayerShape = {
      kind: module.kind, n, out: module.outFeatures, r: s.r, blockSize: s.blockSize, blockShare: c.blockShare, coft: c.coft, eps: c.eps,
      useCayleyNeumann: c.useCayleyNeumann, numCayleyNeumannTerms: c.numCayleyNeumannTerms, kernel: module.kernel,
    };
    return { shape, dropout: 0, warnings: s.warnings };
  },
  paramShapes: (s) => [oftParamShape(s)],
  describe: (s) => `r=${s.r} b=${s.blockSize}${s.blockShare ? " shared" : ""}`,
  count: (s) => oftCount(s),
  init: (shape, config, o) => oftInit(shape, { initWeights: config.initWeights, dtype: o.dtype, normal: o.normal }),
  apply(shape, params, base, x, o) {
    const opts = { training: o.training, side: o.side, blocks: o.blocks };
    return shape.kind === "conv2d" ? oftConv2d(shape, params, base, x, o.geometry, opts) : oftLinear(shape, params, base, x, opts);
  },
  merge: oftMerge,
  unmerge: oftUnmerge,
  skew: (shape, params) => ({ ...oftSkew(shape, params), blockSize: shape.blockSize }),
  project: oftProjectParams,
  fromTensors(shapes, c, where) {
    const w = shapes["oft_R.weight"];
    if (w.length !== 2) throw new FormatError(`${where}: oft_R.weight [${w}] must be [r, b(b−1)/2]`);
    const [rows, k] = w;
    const b = (1 + Math.sqrt(1 + 8 * k)) / 2;
    if (!Number.isInteger(b)) throw new FormatError(`${where}: oft_R.weight: last dimension ${k} is not b(b−1)/2 for any block size b`);
    // A block_share layer stores one block whatever r is, so the file does not tell n; r = 1 stands in for it.
    const n = c.blockShare ? null : rows * b;
    const shape: OftLayerShape = {
      kind: "linear", n: n ?? b, out: 0, r: rows, blockSize: b, blockShare: c.blockShare, coft: c.coft, eps: c.eps,
      useCayleyNeumann: c.useCayleyNeumann, numCayleyNeumannTerms: c.numCayleyNeumannTerms,
    };
    return { shape, n, out: null, blockSize: b, nFactors: 1 };
  },
};
