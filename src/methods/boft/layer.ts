/**
 * The BOFT layer as pure functions (PEFT tuners/boft/layer.py semantics, GPU path: m honoured).
 *
 * Parameters, named as in PEFT's state dict: boft_R [m, D, b, b] (only its skew part ½(R−Rᵀ) is used) and
 * boft_s, the per-output scale: [out, 1] for Linear, [1, out] for Conv2d.
 *   Linear:  y = ((x·Rot)·Wᵀ) ⊙ s + bias          merge: W ← diag(s)·W·Rotᵀ     unmerge: W ← diag(1/s)·W·Rot
 *   Conv2d:  conv(x, diag(s)·W_flat·Rotᵀ) + bias   with W_flat = W.reshape(out, in·kh·kw)
 * Rot is applied structured (src/math/rotation.ts), on x or on W, whichever is cheaper.
 */
import { np, type Arr, type FloatDType, jaxDType, fromDraws } from "../../engine/index.js";
import { ShapeError } from "../../errors.js";
import { skewFromFull, multiplicativeDropoutMask, rotateRows, rotateRowsPaired, denseRotation } from "../../math/index.js";
import { cayleyJit } from "../../math/cayley-jit.js"; // exact, and runs under jit (no solve)
import { type LinearWeights, type Conv2dGeometry, linear, conv2d } from "../base-layers.js";
import { type RotationSide, chooseSide } from "../side.js";

/**
 * One BOFT layer's parameters, named as in PEFT's state dict: boft_R [m, D, b, b], boft_s [out, 1] (Conv2d [1, out]).
 */
export type BoftParams = { boft_R: Arr; boft_s: Arr };

/** Resolved geometry of one adapted layer. */
export interface BoftLayerShape {
  kind: "linear" | "conv2d";
  n: number; // in_features, or in_channels·kh·kw
  out: number;
  nFactors: number;
  blockNum: number;
  blockSize: number;
}

export interface BoftForwardOptions {
  /** Dropout applies only in training, as in PEFT. */
  training?: boolean;
  dropout?: number;
  /** Uniform [0,1) source for dropout's choices. */
  random?: () => number;
  side?: RotationSide | "auto";
  /**
   * Cayley blocks already computed from this layer's boft_R (batched across layers; boft_R is then unused): the
   * blocks [m, D, b, b], or their paired form [m/2, D/2, 2b, 2b] (pairFactors; only without dropout).
   */
  blocks?: Arr;
}

export function boftParamShapes(s: BoftLayerShape): { boft_R: number[]; boft_s: number[] } {
  return {
    boft_R: [s.nFactors, s.blockNum, s.blockSize, s.blockSize],
    boft_s: s.kind === "linear" ? [s.out, 1] : [1, s.out],
  };
}

/**
 * New adapter parameters. `initWeights` true gives the identity (R = 0, s = 1); false draws R ~ N(0, 0.1²),
 * s ~ N(1, 0.1²) as PEFT does, from `normal` (standard normal samples).
 */
export function boftInit(s: BoftLayerShape, o: { initWeights: boolean; dtype?: FloatDType; normal?: () => number }): BoftParams {
  const shapes = boftParamShapes(s);
  const dtype = jaxDType(o.dtype ?? "float32");
  if (o.initWeights) return { boft_R: np.zeros(shapes.boft_R, { dtype }), boft_s: np.ones(shapes.boft_s, { dtype }) };
  if (!o.normal) throw new TypeError("boftInit: initWeights=false needs a normal sampler");
  const draw = (shape: number[], mean: number) => {
    const a = new Float64Array(shape.reduce((x, y) => x * y, 1));
    for (let k = 0; k < a.length; k++) a[k] = mean + 0.1 * o.normal!();
    return fromDraws(a, shape, o.dtype ?? "float32");
  };
  return { boft_R: draw(shapes.boft_R, 0), boft_s: draw(shapes.boft_s, 1) };
}

/** The orthogonal blocks Q [m, D, b, b] = Cayley(½(R−Rᵀ)). Consumes r. */
export function boftBlocks(r: Arr): Arr {
  return cayleyJit(boftSkew(r));
}

/** The skew blocks ½(R − Rᵀ) the rotation is the Cayley transform of. Consumes r. */
export function boftSkew(r: Arr): Arr {
  return skewFromFull(r);
}

function withDropout(q: Arr, o: BoftForwardOptions): Arr {
  const p = o.dropout ?? 0;
  if (!o.training || p <= 0) return q;
  const [m, D, b] = q.shape;
  const mask = multiplicativeDropoutMask(m, D, p, o.random ?? Math.random);
  const keep = np.array(mask.map((v) => 1 - v)).reshape([m, D, 1, 1]).astype(q.dtype);
  const eye = np.eye(b, undefined, { dtype: q.dtype }).mul(np.array(mask).reshape([m, D, 1, 1]).astype(q.dtype));
  return q.mul(keep).add(eye);
}

function scaleVector(s: Arr): Arr {
  return s.reshape([-1]);
}

function checkParams(shape: BoftLayerShape, p: BoftParams): void {
  const want = boftParamShapes(shape);
  const same = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
  if (!same(p.boft_R.shape, want.boft_R) || !same(p.boft_s.shape, want.boft_s)) {
    throw new ShapeError(
      `boft: parameters [${p.boft_R.shape}] / [${p.boft_s.shape}] do not fit the layer (expected boft_R [${want.boft_R}], boft_s [${want.boft_s}])`,
    );
  }
}

/** Whether q is the layer's paired blocks [m/2, D/2, 2b, 2b] rather than its blocks [m, D, b, b] (m ≥ 2 tells them apart). */
function isPaired(shape: BoftLayerShape, q: Arr): boolean {
  const [a, d, b] = q.shape;
  return shape.nFactors >= 2 && a * 2 === shape.nFactors && d * 2 === shape.blockNum && b === 2 * shape.blockSize;
}

/** z·Rot (z·Rotᵀ with `transpose`) from either form of the blocks. Consumes z and q. */
function rotateBy(shape: BoftLayerShape, z: Arr, q: Arr, transpose = false): Arr {
  return isPaired(shape, q) ? rotateRowsPaired(z, q, { transpose }) : rotateRows(z, q, { transpose });
}

/** diag(s)·W·Rotᵀ for W [out, n] (already flattened for Conv2d). Consumes all arguments. */
function rotatedWeight(shape: BoftLayerShape, q: Arr, s: Arr, w: Arr): Arr {
  return rotateBy(shape, w, q, true).mul(scaleVector(s).reshape([-1, 1]));
}

function blocksOf(shape: BoftLayerShape, params: BoftParams, o: BoftForwardOptions): Arr {
  if (!o.blocks) return boftBlocks(params.boft_R);
  params.boft_R.dispose();
  if (o.training && (o.dropout ?? 0) > 0 && isPaired(shape, o.blocks)) {
    o.blocks.dispose();
    throw new ShapeError("boft: block dropout needs each factor's blocks, not their paired form");
  }
  return o.blocks;
}

/** Adapted Linear forward, adapter unmerged. Consumes params, base weights, x (and o.blocks). */
export function boftLinear(shape: BoftLayerShape, params: BoftParams, base: LinearWeights, x: Arr, o: BoftForwardOptions = {}): Arr {
  checkParams(shape, params);
  const q = withDropout(blocksOf(shape, params, o), o);
  const tokens = x.size / shape.n;
  const side =
    o.side && o.side !== "auto"
      ? o.side
      : chooseSide({ tokens, out: shape.out, blockSize: shape.blockSize, nFactors: shape.nFactors, training: o.training ?? false });
  if (side === "weight") {
    return linear(x, { weight: rotatedWeight(shape, q, params.boft_s, base.weight), bias: base.bias });
  }
  const y = linear(rotateBy(shape, x, q), { weight: base.weight }).mul(scaleVector(params.boft_s));
  return base.bias ? y.add(base.bias) : y;
}

/** Adapted Conv2d forward: the rotation goes on the flattened weight. Consumes params, base weights, x (and o.blocks). */
export function boftConv2d(shape: BoftLayerShape, params: BoftParams, base: LinearWeights, x: Arr, g: Conv2dGeometry, o: BoftForwardOptions = {}): Arr {
  checkParams(shape, params);
  const q = withDropout(blocksOf(shape, params, o), o);
  const wShape = base.weight.shape;
  const w = rotatedWeight(shape, q, params.boft_s, base.weight.reshape([wShape[0], -1])).reshape(wShape);
  return conv2d(x, { weight: w, bias: base.bias }, g);
}

/** W ← diag(s)·W·Rotᵀ (Conv2d weights are flattened to [out, n] and back). Consumes params and weight. */
export function boftMerge(shape: BoftLayerShape, params: BoftParams, weight: Arr): Arr {
  checkParams(shape, params);
  const wShape = weight.shape;
  return rotatedWeight(shape, boftBlocks(params.boft_R), params.boft_s, weight.reshape([shape.out, shape.n])).reshape(wShape);
}

/** W ← diag(1/s)·W·Rot, the inverse of boftMerge (Rot is orthogonal). Consumes params and weight. */
export function boftUnmerge(shape: BoftLayerShape, params: BoftParams, weight: Arr): Arr {
  checkParams(shape, params);
  const wShape = weight.shape;
  const unscaled = weight.reshape([shape.out, shape.n]).div(scaleVector(params.boft_s).reshape([-1, 1]));
  return rotateRows(unscaled, boftBlocks(params.boft_R)).reshape(wShape);
}

/**
 * PEFT's get_delta_weight: (Rot, s) with s as [out, 1]. Builds the dense n×n rotation, so it is for
 * inspection and tests; merging never calls it. Consumes params.
 */
export function boftDelta(shape: BoftLayerShape, params: BoftParams): { rotation: Arr; scale: Arr } {
  checkParams(shape, params);
  return { rotation: denseRotation(boftBlocks(params.boft_R)), scale: params.boft_s.reshape([shape.out, 1]) };
}
