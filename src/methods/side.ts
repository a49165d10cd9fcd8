/**
 * Where to apply a rotation: to the activations x [T, n] ("x") or to the weight W [out, n] ("weight").
 * Both give the same numbers; the cost differs.
 *
 * Per factor the rotation costs T·n·b multiply-adds on x, out·n·b on W. In training the weight side also
 * needs dL/dW' = dyᵀ·x (T·n·out) to reach the adapter, a full extra matmul the x side never pays.
 */
export type RotationSide = "x" | "weight";

export function chooseSide(o: { tokens: number; out: number; blockSize: number; nFactors: number; training: boolean }): RotationSide {
  const perRow = o.blockSize * o.nFactors;
  if (!o.training) return o.tokens <= o.out ? "x" : "weight";
  const xCost = 3 * o.tokens * perRow; // forward + two backward products, per input feature
  const wCost = 3 * o.out * perRow + o.tokens * o.out;
  return xCost <= wCost ? "x" : "weight";
}
