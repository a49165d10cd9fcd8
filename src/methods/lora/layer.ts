/**
 * The LoRA layer (Hu et al. 2021) as pure functions, PEFT tuners/lora/layer.py semantics, as the baseline
 * every BOFT/OFT comparison is made against.
 *   y = x·Wᵀ + bias + scaling·(x·Aᵀ)·Bᵀ,  scaling = α/r (α/√r with rsLoRA)     merge: W ← W + scaling·B·A
 * Parameters, named as in PEFT's state dict: lora_A.weight [r, in], lora_B.weight [out, r].
 */
import { np, type Arr, type FloatDType, jaxDType, fromDraws } from "../../engine/index.js";
import { ConfigError, ShapeError } from "../../errors.js";
import type { LoraInit } from "./config.js";
import { type LinearWeights, linear } from "../base-layers.js";

export type LoraParams = { lora_A: { weight: Arr }; lora_B: { weight: Arr } };

export interface LoraLayerShape {
  kind: "linear";
  n: number;
  out: number;
  r: number;
  scaling: number;
}

export function loraParamShapes(s: LoraLayerShape): { lora_A: number[]; lora_B: number[] } {
  return { lora_A: [s.r, s.n], lora_B: [s.out, s.r] };
}

/** The `init_lora_weights` values loraInit implements; PEFT's others (PiSSA, OLoRA, EVA, …) change the base weights or need data. */
export const LORA_INITS_IMPLEMENTED: readonly LoraInit[] = [true, false, "gaussian"];

/**
 * PEFT's init (reset_lora_parameters): A ~ kaiming_uniform(a=√5), i.e. U(−1/√in, 1/√in), and B = 0 (identity at
 * init); "gaussian": A ~ N(0, (1/r)²), B = 0; false makes B random too (U(−1/√r, 1/√r)), as PEFT's tests do, so
 * the adapter is not a no-op. `uniform` yields numbers in [0, 1), `normal` standard normal ones (needed for
 * "gaussian"). Throws ConfigError for an init it does not implement, naming the ones it does.
 */
export function loraInit(
  s: LoraLayerShape,
  o: { init: LoraInit; dtype?: FloatDType; uniform: () => number; normal?: () => number },
): LoraParams {
  const { init } = o;
  if (!LORA_INITS_IMPLEMENTED.includes(init)) {
    throw new ConfigError(
      `loraInit: init_lora_weights=${JSON.stringify(init)} is not implemented (supported: ${LORA_INITS_IMPLEMENTED.map((v) => JSON.stringify(v)).join(", ")}).`,
    );
  }
  const dtype = jaxDType(o.dtype ?? "float32");
  // Draws are made in float64 on the host and rounded there, so WebGPU (no float64) gets the same numbers.
  const fromHost = (shape: number[], f: () => number) => fromDraws(Float64Array.from({ length: shape[0] * shape[1] }, f), shape, o.dtype ?? "float32");
  const uniform = (shape: number[], lim: number) => fromHost(shape, () => (2 * o.uniform() - 1) * lim);
  const shapes = loraParamShapes(s);
  let a: Arr;
  if (init === "gaussian") {
    const normal = o.normal;
    if (!normal) throw new TypeError('loraInit: init_lora_weights="gaussian" needs a normal sampler');
    a = fromHost(shapes.lora_A, () => normal() / s.r);
  } else a = uniform(shapes.lora_A, 1 / Math.sqrt(s.n));
  return {
    lora_A: { weight: a },
    lora_B: { weight: init === false ? uniform(shapes.lora_B, 1 / Math.sqrt(s.r)) : np.zeros(shapes.lora_B, { dtype }) },
  };
}

function checkParams(s: LoraLayerShape, p: LoraParams): void {
  const want = loraParamShapes(s);
  const a = p.lora_A.weight.shape;
  const b = p.lora_B.weight.shape;
  if (a[0] !== want.lora_A[0] || a[1] !== want.lora_A[1] || b[0] !== want.lora_B[0] || b[1] !== want.lora_B[1]) {
    throw new ShapeError(`lora: lora_A [${a}] / lora_B [${b}] do not fit the layer (expected [${want.lora_A}] / [${want.lora_B}])`);
  }
}

/** Adapted Linear forward. Dropout (training only) acts on the adapter's input, as in PEFT. Consumes params, base and x. */
export function loraLinear(
  s: LoraLayerShape,
  p: LoraParams,
  base: LinearWeights,
  x: Arr,
  o: { training?: boolean; dropout?: number; random?: () => number } = {},
): Arr {
  checkParams(s, p);
  let xa = x.ref;
  const rate = o.dropout ?? 0;
  if (o.training && rate > 0) {
    // The mask is drawn on the host from the caller's seeded source, so runs (and resumes) are reproducible.
    const draw = o.random ?? Math.random;
    const keep = Float32Array.from({ length: xa.size }, () => (draw() < rate ? 0 : 1 / (1 - rate)));
    xa = xa.mul(np.array(keep).reshape(xa.shape).astype(xa.dtype));
  }
  const delta = np.matmul(np.matmul(xa, np.matrixTranspose(p.lora_A.weight)), np.matrixTranspose(p.lora_B.weight)).mul(s.scaling);
  return linear(x, base).add(delta);
}

/** W ← W + scaling·B·A. Consumes params and weight. */
export function loraMerge(s: LoraLayerShape, p: LoraParams, weight: Arr): Arr {
  checkParams(s, p);
  return weight.add(np.matmul(p.lora_B.weight, p.lora_A.weight).mul(s.scaling));
}

/** W ← W − scaling·B·A. Consumes params and weight. */
export function loraUnmerge(s: LoraLayerShape, p: LoraParams, weight: Arr): Arr {
  checkParams(s, p);
  return weight.sub(np.matmul(p.lora_B.weight, p.lora_A.weight).mul(s.scaling));
}
