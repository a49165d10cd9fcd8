/**
 * BOFT configuration: PEFT's BOFTConfig (tuners/boft/config.py) in camelCase, its `__post_init__` checks, and the
 * shape resolution PEFT does per layer in `update_layer` (tuners/boft/layer.py), with PEFT's exact messages.
 *
 * We follow PEFT's GPU semantics: the butterfly factor count m is honoured. (CPU-only PEFT silently forces m = 1
 * when its CUDA extension fails to build; we never do.) m counts factors, 1 = plain block-diagonal OFT; PEFT's
 * internal k = m − 1 appears below only where PEFT's conditions are phrased in it.
 */
import { ConfigError } from "../../errors.js";
import { type TargetFields, normalizeTargetFields } from "../targets.js";
import {
  checkBias,
  checkInitWeights,
  dropUndefined,
  requireInt,
  requireLayerDim,
  requireProbability,
  requireExactlyOne,
} from "../config-checks.js";

export type BoftBias = "none" | "all" | "boft_only";

/**
 * PEFT's BOFTConfig in camelCase (boft_block_size → blockSize, …). Each adapted layer gets m butterfly factors of
 * D orthogonal b×b blocks (n = D·b) and a per-output scale. Build one with boftConfig (defaults and PEFT's checks).
 */
export type BoftConfig = TargetFields & {
  /** b. Exactly one of blockSize / blockNum is non-zero. */
  blockSize: number;
  /** D. If set, b = n / D per layer. */
  blockNum: number;
  /** m ≥ 1 factors; checked per layer (PEFT does it in update_layer). */
  nButterflyFactor: number;
  /** Multiplicative block dropout, training only. */
  dropout: number;
  modulesToSave: string[] | null;
  /** Which base biases become trainable and saved. */
  bias: BoftBias;
  /** true: identity at init (R = 0, s = 1); false: R ~ N(0, 0.1²), s ~ N(1, 0.1²). */
  initWeights: boolean;
  /** No effect for nn.Linear (PEFT forces it to false); kept for the file round trip. */
  fanInFanOut: boolean;
};

export const BOFT_DEFAULTS: Readonly<BoftConfig> = {
  blockSize: 4,
  blockNum: 0,
  nButterflyFactor: 1,
  dropout: 0,
  targetModules: null,
  excludeModules: null,
  modulesToSave: null,
  bias: "none",
  initWeights: true,
  fanInFanOut: false,
  layersToTransform: null,
  layersPattern: null,
};

/** Defaults plus `partial`, checked as BOFTConfig.__post_init__ does. Throws ConfigError. */
export function boftConfig(partial: Partial<BoftConfig> = {}): BoftConfig {
  const cfg = normalizeTargetFields({ ...BOFT_DEFAULTS, ...dropUndefined(partial) });
  const { blockSize, blockNum } = cfg;
  requireExactlyOne(["boft_block_size", blockSize], ["boft_block_num", blockNum]);
  // Not checked by PEFT's config: these values would crash later inside torch with an unrelated error.
  requireInt("blockSize", blockSize, 0);
  requireInt("blockNum", blockNum, 0);
  requireInt("nButterflyFactor", cfg.nButterflyFactor, Number.NEGATIVE_INFINITY);
  requireProbability("dropout", cfg.dropout);
  checkBias(cfg.bias, ["none", "all", "boft_only"]);
  checkInitWeights(cfg.initWeights);
  return cfg;
}

export type BoftShape = { nFactors: number; blockNum: number; blockSize: number };

/**
 * Layer-time shape of boft_R, [nFactors, blockNum, blockSize, blockSize], for a layer with input dim `n`
 * (Linear: in_features; Conv2d: in_channels·k0², k0 = kernel_size[0] as PEFT uses). Same checks, same order and
 * same messages as PEFT's `update_layer` with the CUDA extension available. Throws ConfigError.
 */
export function resolveBoftShape(cfg: BoftConfig, n: number, kind: "linear" | "conv2d"): BoftShape {
  requireLayerDim("resolveBoftShape", n);
  const m = cfg.nButterflyFactor;
  const k = m - 1; // PEFT's k: the number of non-identity butterfly permutations
  if (k < 0) {
    throw new ConfigError(`You can only specify boft_n_butterfly_factor ${m} to be a positive integer number.`);
  }
  const dim = kind === "linear" ? `in_features (${n})` : `Convolutional kernel dimension (${n})`;
  const dimLower = kind === "linear" ? `in_features (${n})` : `convolutional kernel dimension (${n})`;
  let { blockSize, blockNum } = cfg;
  if (blockSize === 0 && blockNum !== 0) {
    if (n % blockNum !== 0) throw new ConfigError(`${dim} must be divisible by boft_block_num (${blockNum})!`);
    if (k !== 0) {
      if (k > Math.floor(Math.log2(blockNum))) {
        throw new ConfigError(`Invalid combination of boft_n_butterfly_factor (${m}) and boft_block_num (${blockNum})!`);
      }
      // PEFT's message prints m although the test is on 2^(m−1).
      if (blockNum % 2 ** k !== 0) {
        throw new ConfigError(
          `boft_block_num (${blockNum}) must be a multiple of 2 raised to the power of boft_n_butterfly_factor (${m})!`,
        );
      }
    }
    blockSize = Math.floor(n / blockNum);
  } else if (blockSize !== 0 && blockNum === 0) {
    if (n % blockSize !== 0) throw new ConfigError(`${dim} must be divisible by boft_block_size (${blockSize})!`);
    if (k !== 0 && (n < blockSize * 2 ** k || n % (blockSize * 2 ** k) !== 0)) {
      throw new ConfigError(
        `Invalid combination of ${dimLower}, boft_n_butterfly_factor (${m}) and boft_block_size (${blockSize})!`,
      );
    }
    blockNum = Math.floor(n / blockSize);
  } else {
    // boftConfig() makes this unreachable; kept for configs built by hand.
    throw new ConfigError("Something went wrong, please report this error: https://github.com/huggingface/peft/issues");
  }
  // Butterfly factors pair up half-blocks, so both counts must be even once there is more than one factor.
  if (k !== 0) {
    if (blockNum % 2 !== 0) throw new ConfigError(`boft_block_num (${blockNum}) must be an even number!`);
    if (blockSize % 2 !== 0) throw new ConfigError(`boft_block_size (${blockSize}) must be an even number!`);
  }
  return { nFactors: m, blockNum, blockSize };
}
