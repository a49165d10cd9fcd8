/**
 * OFT configuration: PEFT's OFTConfig (tuners/oft/config.py) in camelCase, its `__post_init__` checks, and the
 * per-layer shape resolution of `update_layer` (tuners/oft/layer.py), including PEFT's auto-adjust of a block size
 * or block count that does not divide the layer: unlike BOFT, OFT never rejects a shape, it picks the nearest
 * divisor and warns. The warnings are returned, not printed, so the caller decides how to surface them.
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

export type OftBias = "none" | "all" | "oft_only";

/**
 * PEFT's OFTConfig (≥ 0.18) in camelCase (oft_block_size → blockSize, …): one block-diagonal rotation of r
 * orthogonal b×b blocks (n = r·b) per adapted layer. Build one with oftConfig (defaults and PEFT's checks).
 */
export type OftConfig = TargetFields & {
  /** Number of blocks; exactly one of r / blockSize is non-zero. */
  r: number;
  /** b (PEFT's oft_block_size). */
  blockSize: number;
  /** Stored by PEFT but never applied in any forward at the pinned commit, so it has no effect there either. */
  moduleDropout: number;
  /** Constrained OFT: each skew block is projected onto the Frobenius ball of radius eps/√(#blocks). */
  coft: boolean;
  eps: number;
  /** One block shared by all blocks: oft_R.weight is [1, b(b−1)/2]. */
  blockShare: boolean;
  /** Neumann series instead of the exact Cayley solve. PEFT's default is true (its docstring says false). */
  useCayleyNeumann: boolean;
  numCayleyNeumannTerms: number;
  modulesToSave: string[] | null;
  bias: OftBias;
  initWeights: boolean;
  fanInFanOut: boolean;
};

export const OFT_DEFAULTS: Readonly<OftConfig> = {
  r: 0,
  blockSize: 32,
  moduleDropout: 0,
  coft: false,
  eps: 6e-5,
  blockShare: false,
  useCayleyNeumann: true,
  numCayleyNeumannTerms: 5,
  targetModules: null,
  excludeModules: null,
  modulesToSave: null,
  bias: "none",
  initWeights: true,
  fanInFanOut: false,
  layersToTransform: null,
  layersPattern: null,
};

/** Defaults plus `partial`, checked as OFTConfig.__post_init__ does. Throws ConfigError. */
export function oftConfig(partial: Partial<OftConfig> = {}): OftConfig {
  const cfg = normalizeTargetFields({ ...OFT_DEFAULTS, ...dropUndefined(partial) });
  const { r, blockSize } = cfg;
  requireExactlyOne(["r", r], ["oft_block_size", blockSize]);
  requireInt("r", r, 0);
  requireInt("blockSize", blockSize, 0);
  // Any integer is meaningful to PEFT: K ≤ 1 gives the identity.
  requireInt("numCayleyNeumannTerms", cfg.numCayleyNeumannTerms, Number.NEGATIVE_INFINITY);
  requireProbability("moduleDropout", cfg.moduleDropout);
  if (!(Number.isFinite(cfg.eps) && cfg.eps >= 0)) {
    throw new ConfigError(`config: eps must be a finite number >= 0 (eps=${cfg.eps}).`);
  }
  checkBias(cfg.bias, ["none", "all", "oft_only"]);
  checkInitWeights(cfg.initWeights);
  return cfg;
}

export type OftShape = { r: number; blockSize: number; warnings: string[] };

/**
 * Layer-time block count and size for input dim `n` (Linear: in_features; Conv2d: in_channels·k0²), as PEFT's
 * `update_layer`. oft_R.weight is then [blockShare ? 1 : r, b(b−1)/2]. Pass `dilation` for a Conv2d layer: PEFT
 * rejects dilation > 1. r > n resolves to r = n, b = 1 (a zero-size parameter), as in PEFT.
 */
export function resolveOftShape(cfg: OftConfig, n: number, opts: { dilation?: number } = {}): OftShape {
  const { dilation = 1 } = opts;
  requireLayerDim("resolveOftShape", n);
  if (dilation > 1) throw new ConfigError("Conv2d with dilation > 1 is not supported by OFT.");
  const warnings: string[] = [];
  let { r, blockSize } = cfg;
  if (r === 0 && blockSize !== 0) {
    if (n % blockSize !== 0 || blockSize > n) {
      const old = blockSize;
      blockSize = adjustOftParameter(n, blockSize);
      warnings.push(`Invalid \`oft_block_size\` (${old})! Adjusted \`oft_block_size\` to (${blockSize}).`);
    }
    r = Math.floor(n / blockSize);
  } else if (r !== 0 && blockSize === 0) {
    if (n % r !== 0 || r > n) {
      const old = r;
      r = adjustOftParameter(n, r);
      warnings.push(`Invalid \`r\` (${old})! Adjusted \`r\` to (${r}).`);
    }
    blockSize = Math.floor(n / r);
  } else {
    throw new ConfigError("Something went wrong, please report this error: https://github.com/huggingface/peft/issues");
  }
  return { r, blockSize, warnings };
}

/**
 * PEFT's `adjust_oft_parameters`: a value ≥ n becomes n; otherwise the nearest divisor of n, the lower one on a
 * tie (e.g. n=24, 5 → 4; n=16, 7 → 8; n=10, 7 → 5).
 */
export function adjustOftParameter(n: number, value: number): number {
  if (value >= n) return n;
  let higher = value;
  while (higher <= n && n % higher !== 0) higher += 1;
  let lower = value;
  while (lower > 1 && n % lower !== 0) lower -= 1;
  return value - lower <= higher - value ? lower : higher;
}
