/**
 * The exact Cayley transform from ops that run under `jit` (jax-js's solve/inv cannot, field notes §5.2).
 *
 * Q = (I + S)⁻¹(I − S) = 2(I + S)⁻¹ − I, so one inverse is enough. The inverse is Gauss–Jordan elimination
 * without pivoting, unrolled over the columns, on batches [..., b, b]; above `leaf` it recurses on 2×2 blocks
 * (Schur complements), so the work for large b is matmuls.
 *
 * No pivoting is safe here: A = I + S with S skew has symmetric part I, so xᵀAx = ‖x‖². Every Schur complement
 * Sc = T − C·P⁻¹·B met on the way keeps xᵀ·Sc·x = zᵀAz ≥ ‖x‖² (z = (−P⁻¹Bx, x)), so every pivot, a diagonal
 * entry of such a complement, is ≥ 1: the elimination never breaks down. The multipliers are not bounded by 1 as
 * with pivoting, though (they grow with ‖S‖), so large skew entries cost digits: at |S_ij| ~ 30, b = 32, f32, the
 * plain elimination's Q is orthogonal to 8e-4 where the pivoted solve reaches 5e-6. One Newton step on the inverse,
 * X ← X(2I − AX), brings it back to 2e-5 for two batched matmuls, so it is on by default (`refine`).
 * For a general matrix use `cayleySolve` (LU with pivoting, eager only).
 */
import { np, lax, type Arr, fusionBarrier } from "../engine/index.js";
import { ShapeError } from "../errors.js";

/** Above this size the inverse splits into 2×2 blocks instead of eliminating column by column. */
const DEFAULT_LEAF = 8;

export type InverseOptions = {
  /** Blocks larger than this split into 2×2 blocks instead of eliminating column by column. Default 8. */
  leaf?: number;
  /** Newton steps X ← X(2I − AX) after the elimination (each: two batched matmuls). Default 1. */
  refine?: number;
};

/**
 * A⁻¹ for square blocks a [..., b, b] by Gauss–Jordan elimination without pivoting (in place, one column per
 * unrolled step), recursing on 2×2 blocks above `leaf`, then `refine` Newton steps. Only for matrices whose
 * leading principal blocks are safely invertible, e.g. I + skew (see the file comment). Runs under jit and is
 * differentiable. Consumes a.
 */
export function inverseNoPivot(a: Arr, opts: InverseOptions = {}): Arr {
  const { leaf = DEFAULT_LEAF, refine = 1 } = opts;
  const b = a.shape[a.shape.length - 1];
  if (a.ndim < 2 || a.shape[a.ndim - 2] !== b) {
    a.dispose();
    throw new ShapeError(`inverseNoPivot: needs square blocks [..., b, b], got [${a.shape}]`);
  }
  if (!(Number.isInteger(leaf) && leaf >= 1) || !(Number.isInteger(refine) && refine >= 0)) {
    a.dispose();
    throw new ShapeError(`inverseNoPivot: leaf must be an integer ≥ 1 and refine an integer ≥ 0 (leaf=${leaf}, refine=${refine})`);
  }
  // The elimination runs on a gradient-free copy: backpropagating through its b unrolled steps cost more than the
  // forward. The gradient comes from the inverse's own rule, d(A⁻¹) = −A⁻¹·dA·A⁻¹, i.e. Ā = −Xᵀ·X̄·Xᵀ.
  const frozen = lax.stopGradient(a.ref);
  let x = inverseValue(frozen.ref, leaf);
  for (let k = 0; k < refine - 1; k++) x = newtonStep(x, frozen.ref);
  if (refine === 0) {
    // X − X·Δ·X with Δ = A − stopGradient(A) = 0: the value is X, the gradient the inverse's (two matmuls on zeros).
    const delta = a.sub(frozen);
    return fusionBarrier(x.ref.sub(np.matmul(np.matmul(x.ref, delta), x)));
  }
  frozen.dispose();
  // The last Newton step X(2I − A·X), with X held fixed, differentiates to −X·dA·X: the inverse's gradient (at
  // X ≈ A⁻¹), so one step both refines the value and carries the gradient. jax-js has no custom-VJP hook.
  return fusionBarrier(newtonStep(x, a));
}

/** X(2I − A·X): one Newton step towards A⁻¹. Consumes x and a. */
function newtonStep(x: Arr, a: Arr): Arr {
  const b = x.shape[x.ndim - 1];
  const twoI = np.eye(b, undefined, { dtype: x.dtype }).mul(2);
  return np.matmul(x.ref, twoI.sub(np.matmul(a, x)));
}

/** A⁻¹ by elimination (b ≤ leaf) or 2×2 block recursion; values only (the caller stops gradients). Consumes a. */
function inverseValue(a: Arr, leaf: number): Arr {
  return a.shape[a.ndim - 1] > leaf ? inverseBlocked(a, leaf) : gaussJordan(a);
}

/**
 * Exact Cayley transform Q = (I + S)⁻¹(I − S) of skew blocks s [..., b, b], jit-able (no solve).
 * Agrees with `cayleySolve` to rounding. Consumes s.
 */
export function cayleyJit(s: Arr, opts: InverseOptions = {}): Arr {
  const b = s.shape[s.shape.length - 1];
  const eye = np.eye(b, undefined, { dtype: s.dtype });
  return inverseNoPivot(eye.ref.add(s), opts).mul(2).sub(eye);
}

/*
 * Step k of in-place Gauss–Jordan (p = a_kk, row r = a_k·, column c = a_·k):
 *   a_ij ← a_ij − a_ik·a_kj/p (i ≠ k, j ≠ k)     a_ik ← −a_ik/p (i ≠ k)
 *   a_kj ← a_kj/p (j ≠ k)                         a_kk ← 1/p
 * As one array expression, with e_k the k-th unit vector:
 *   A ← A − c·e_kᵀ − (c − e_k)·r̂ + e_k·e_kᵀ,   r̂ = (r + (1 − p)·e_kᵀ)/p.
 * After all b steps A holds A⁻¹. The row, column and pivot are slices (views), so a step is one fused kernel;
 * fusionBarrier writes each step's A to memory, or jax-js's jit would fuse all b steps into one expression whose
 * size grows exponentially with b (b = 16 exhausted a 4 GB heap while compiling). No gradient flows through here
 * (inverseNoPivot takes the inverse's own), so the slices' gather-like transposes never arise.
 */
function gaussJordan(a: Arr): Arr {
  const nd = a.ndim;
  const b = a.shape[nd - 1];
  const lead: [][] = Array.from({ length: nd - 2 }, () => []);
  const ones = Array.from({ length: nd - 2 }, () => 1);
  let x = a;
  for (let k = 0; k < b; k++) {
    const unit = new Float32Array(b);
    unit[k] = 1;
    const eRow = np.array(unit).reshape([...ones, 1, b]).astype(x.dtype); // e_kᵀ [..., 1, b]
    const eCol = eRow.ref.reshape([...ones, b, 1]); // e_k [..., b, 1]
    const row = x.ref.slice(...lead, [k, k + 1], []); // [..., 1, b]
    const col = x.ref.slice(...lead, [], [k, k + 1]); // [..., b, 1]
    const p = x.ref.slice(...lead, [k, k + 1], [k, k + 1]); // [..., 1, 1]
    const rHat = row.add(np.subtract(1, p.ref).mul(eRow.ref)).div(p); // [..., 1, b]
    x = fusionBarrier(
      x
        .sub(col.ref.mul(eRow.ref))
        .sub(col.sub(eCol.ref).mul(rHat))
        .add(eCol.mul(eRow)),
    );
  }
  return x;
}

/*
 * 2×2 block inverse with Schur complement, A = [[P, B], [C, T]], X = P⁻¹, Y = (T − C·X·B)⁻¹:
 *   A⁻¹ = [[X + X·B·Y·C·X, −X·B·Y], [−Y·C·X, Y]].
 * For A = I + S the diagonal blocks P and T are again I + skew, and T − C·X·B has symmetric part
 * I + Bᵀ·sym(X)·B (C = −Bᵀ), which is positive definite: the recursion keeps the no-pivot guarantee.
 */
function inverseBlocked(a: Arr, leaf: number): Arr {
  const nd = a.ndim;
  const b = a.shape[nd - 1];
  const h = Math.floor(b / 2);
  const lead: [][] = Array.from({ length: nd - 2 }, () => []);
  const part = (r: [number, number], c: [number, number]) => a.ref.slice(...lead, r, c);
  const P = part([0, h], [0, h]);
  const B = part([0, h], [h, b]);
  const C = part([h, b], [0, h]);
  const T = part([h, b], [h, b]);
  a.dispose();
  const X = inverseValue(P, leaf);
  const XB = np.matmul(X.ref, B.ref); // [..., h, b−h]
  const CX = np.matmul(C, X.ref); // [..., b−h, h]
  const Y = inverseValue(T.sub(np.matmul(CX.ref, B)), leaf); // Schur complement⁻¹ [..., b−h, b−h]
  const XBY = np.matmul(XB, Y.ref); // [..., h, b−h]
  const YCX = np.matmul(Y.ref, CX.ref); // [..., b−h, h]
  const topLeft = X.add(np.matmul(XBY.ref, CX));
  const top = np.concatenate([topLeft, XBY.mul(-1)], nd - 1);
  const bottom = np.concatenate([YCX.mul(-1), Y], nd - 1);
  return np.concatenate([top, bottom], nd - 2);
}
