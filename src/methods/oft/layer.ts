/**
 * The OFT layer as pure functions (PEFT ≥ 0.18 tuners/oft/layer.py semantics).
 *
 * Parameter, named as in PEFT's state dict: oft_R.weight [r, b(b−1)/2] (block_share: [1, …]), packed strict
 * upper triangles; A = U − Uᵀ; Q = Cayley(A) exactly, or PEFT's Neumann polynomial (≈ Cayley(A)ᵀ).
 *   Linear:  y = (x·BD)·Wᵀ + bias     merge: W ← W·BDᵀ     unmerge: W ← W·(BD⁻¹)ᵀ
 * No scale vector. COFT projects the parameter (straight-through here; the trainer writes the projection back).
 * Conv2d with a k×k kernel, k > 1: PEFT rotates unfolded input patches and folds them back with overlaps
 * summed before the base conv, which is not a rotation of the conv (nor the identity at init). We reproduce it
 * because adapters must give PEFT's numbers; merge uses W_flat·BDᵀ, as PEFT's does.
 */
import { np, type Arr, type FloatDType, jaxDType, fromDraws } from "../../engine/index.js";
import { ShapeError } from "../../errors.js";
import { cayleyNeumann, coftStraightThrough, skewFromPacked, rotateRows, denseRotation } from "../../math/index.js";
import { cayleyJit } from "../../math/cayley-jit.js"; // exact, and runs under jit (no solve)
import { type LinearWeights, type Conv2dGeometry, linear, conv2d } from "../base-layers.js";
import { type RotationSide, chooseSide } from "../side.js";

/**
 * One OFT layer's parameter, named as in PEFT's state dict: oft_R.weight [r or 1, b(b−1)/2], packed upper triangles.
 */
export type OftParams = { oft_R: { weight: Arr } };

/** Resolved geometry and the options that change the math. */
export interface OftLayerShape {
  kind: "linear" | "conv2d";
  n: number; // in_features, or in_channels·kh·kw
  out: number;
  r: number; // number of blocks
  blockSize: number;
  blockShare: boolean;
  coft: boolean;
  eps: number;
  useCayleyNeumann: boolean;
  numCayleyNeumannTerms: number;
  /** Conv2d only: (kh, kw). */
  kernel?: [number, number];
}

export function oftParamShape(s: OftLayerShape): number[] {
  return [s.blockShare ? 1 : s.r, (s.blockSize * (s.blockSize - 1)) / 2];
}

/** New parameters: zeros (identity) or N(0, 0.1²) like PEFT's init_weights=false. */
export function oftInit(s: OftLayerShape, o: { initWeights: boolean; dtype?: FloatDType; normal?: () => number }): OftParams {
  const shape = oftParamShape(s);
  const dtype = jaxDType(o.dtype ?? "float32");
  if (o.initWeights) return { oft_R: { weight: np.zeros(shape, { dtype }) } };
  if (!o.normal) throw new TypeError("oftInit: initWeights=false needs a normal sampler");
  const a = new Float64Array(shape[0] * shape[1]);
  for (let k = 0; k < a.length; k++) a[k] = 0.1 * o.normal();
  return { oft_R: { weight: fromDraws(a, shape, o.dtype ?? "float32") } };
}

function checkParams(s: OftLayerShape, p: OftParams): void {
  const want = oftParamShape(s);
  const got = p.oft_R.weight.shape;
  if (got.length !== 2 || got[0] !== want[0] || got[1] !== want[1]) {
    throw new ShapeError(`oft: oft_R.weight is [${got}], the layer needs [${want}]`);
  }
}

/**
 * The skew blocks of the stored parameters (COFT-projected when on), and which Cayley transform turns them into
 * rotations: `terms` of PEFT's Neumann series, or null for the exact one. Consumes params.
 */
export function oftSkew(s: OftLayerShape, p: OftParams): { skew: Arr; terms: number | null } {
  checkParams(s, p);
  let v = p.oft_R.weight;
  if (s.coft) v = coftStraightThrough(v, s.eps);
  return { skew: skewFromPacked(v, s.blockSize), terms: s.useCayleyNeumann ? s.numCayleyNeumannTerms : null };
}

/** The stored blocks' rotations, [r, b, b] (block_share: [1, b, b]), as PEFT's `_cayley_batch`. Consumes params. */
export function oftBlocks(s: OftLayerShape, p: OftParams): Arr {
  const { skew, terms } = oftSkew(s, p);
  return terms === null ? cayleyJit(skew) : cayleyNeumann(skew, terms);
}

/** The block-diagonal as one butterfly factor [1, r, b, b] (block_share repeats the one block). Consumes q. */
function asFactor(s: OftLayerShape, q: Arr): Arr {
  const b = s.blockSize;
  return (s.blockShare ? np.broadcastTo(q, [s.r, b, b]) : q).reshape([1, s.r, b, b]);
}

/** The COFT-projected parameter PEFT would hold after a forward (identity when coft is off). Consumes params. */
export function oftProjectParams(s: OftLayerShape, p: OftParams): OftParams {
  const w = p.oft_R.weight;
  return { oft_R: { weight: s.coft ? coftStraightThrough(w, s.eps) : w } };
}

export interface OftForwardOptions {
  training?: boolean;
  side?: RotationSide | "auto";
  /** The stored blocks' rotations already computed from p (batched across layers); p is then unused. */
  blocks?: Arr;
}

function blocksOf(s: OftLayerShape, p: OftParams, o: OftForwardOptions): Arr {
  if (!o.blocks) return oftBlocks(s, p);
  checkParams(s, p);
  p.oft_R.weight.dispose();
  return o.blocks;
}

/** Adapted Linear forward, adapter unmerged. Consumes params, base weights, x (and o.blocks). */
export function oftLinear(s: OftLayerShape, p: OftParams, base: LinearWeights, x: Arr, o: OftForwardOptions = {}): Arr {
  const q = asFactor(s, blocksOf(s, p, o));
  const side =
    o.side && o.side !== "auto"
      ? o.side
      : chooseSide({ tokens: x.size / s.n, out: s.out, blockSize: s.blockSize, nFactors: 1, training: o.training ?? false });
  if (side === "weight") return linear(x, { weight: rotatedWeight(s, q, base.weight), bias: base.bias });
  return linear(rotateRows(x, q), base);
}

/** PEFT's patch unfold (stride 1, no padding): x [B, C, H, W] → [B·Ho·Wo, C·kh·kw]. Consumes x. */
function unfoldPatches(x: Arr, kh: number, kw: number): Arr {
  const [B, C, H, W] = x.shape;
  const ho = H - kh + 1;
  const wo = W - kw + 1;
  const pieces: Arr[] = [];
  for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) pieces.push(x.ref.slice([], [], [i, i + ho], [j, j + wo]));
  x.dispose();
  return np.stack(pieces, -1).transpose([0, 2, 3, 1, 4]).reshape([B * ho * wo, C * kh * kw]); // [B, Ho, Wo, C, kh·kw]
}

/**
 * PEFT's fold back to [B, C, H, W]. PEFT permutes the patches to [B, C, Ho, Wo, kh, kw] and then *views* that
 * memory as F.fold's input [B, C·kh·kw, Ho·Wo], which reads the values in a different order than unfold
 * wrote them; F.fold then sums overlaps. Reproduced literally (the reshape below is that view). Consumes p.
 */
function foldPatchesAsPeft(p: Arr, shape: number[], kh: number, kw: number): Arr {
  const [B, C, H, W] = shape;
  const ho = H - kh + 1;
  const wo = W - kw + 1;
  const cols = p
    .reshape([B, ho, wo, C, kh * kw])
    .transpose([0, 3, 1, 2, 4]) // [B, C, Ho, Wo, kh·kw], contiguous as in PEFT
    .reshape([B, C, kh, kw, ho, wo]); // PEFT's .view as [B, C·kh·kw, Ho·Wo]
  let out: Arr | null = null;
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const piece = cols.ref.slice([], [], i, j); // [B, C, Ho, Wo]
      const placed = np.pad(piece, [
        [0, 0],
        [0, 0],
        [i, kh - 1 - i],
        [j, kw - 1 - j],
      ]);
      out = out ? out.add(placed) : placed;
    }
  }
  cols.dispose();
  return out!;
}

/** Adapted Conv2d forward, as PEFT computes it. Consumes params, base weights, x (and o.blocks). */
export function oftConv2d(s: OftLayerShape, p: OftParams, base: LinearWeights, x: Arr, g: Conv2dGeometry, o: OftForwardOptions = {}): Arr {
  const [kh, kw] = s.kernel ?? [base.weight.shape[2], base.weight.shape[3]];
  const q = asFactor(s, blocksOf(s, p, o));
  if (kh * kw === 1) return conv2d(x, { weight: rotatedWeight(s, q, base.weight), bias: base.bias }, g);
  const xShape = x.shape;
  const rotated = rotateRows(unfoldPatches(x, kh, kw), q);
  return conv2d(foldPatchesAsPeft(rotated, xShape, kh, kw), base, g);
}

/** W·Qᵀ for the factor q [1, r, b, b] (Conv2d weights flattened to [out, n] and back). Consumes q and weight. */
function rotatedWeight(s: OftLayerShape, q: Arr, weight: Arr): Arr {
  const wShape = weight.shape;
  return rotateRows(weight.reshape([s.out, s.n]), q, { transpose: true }).reshape(wShape);
}

/** W ← W·BDᵀ (Conv2d weights flattened to [out, n]). Consumes params and weight. */
export function oftMerge(s: OftLayerShape, p: OftParams, weight: Arr): Arr {
  return rotatedWeight(s, asFactor(s, oftBlocks(s, p)), weight);
}

/**
 * W ← W·(BD⁻¹)ᵀ. The block inverse is taken in the working dtype (PEFT inverts in float32, restoring only to
 * ~5e-8 in float64); for exact Cayley BD⁻¹ = BDᵀ, for Neumann it is a true inverse. Consumes params and weight.
 */
export function oftUnmerge(s: OftLayerShape, p: OftParams, weight: Arr): Arr {
  return rotatedWeight(s, asFactor(s, np.linalg.inv(oftBlocks(s, p))), weight);
}

/** PEFT's get_delta_weight: the dense block-diagonal BD [n, n]. For inspection and tests. Consumes params. */
export function oftDelta(s: OftLayerShape, p: OftParams): Arr {
  return denseRotation(asFactor(s, oftBlocks(s, p)));
}
