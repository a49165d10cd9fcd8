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
 * For a general matrix use `cayley` (LU with pivoting, eager only).
 */
import { np, lax, type Arr, cotangentBarrier } from "../engine/index.js";
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
  // The elimination runs on a gradient-free copy; the gradient comes from the inverse's own rule instead
  // (see withInverseGradient): backpropagating through b unrolled elimination steps cost more than the forward.
  const frozen = lax.stopGradient(a.ref);
  let x = b > leaf ? inverseBlocked(frozen.ref, leaf) : gaussJordan(frozen.ref);
  for (let k = 0; k < refine; k++) {
    const twoI = np.eye(b, undefined, { dtype: a.dtype }).mul(2);
    x = np.matmul(x.ref, twoI.sub(np.matmul(frozen.ref, x))); // X(2I − AX)
  }
  return withInverseGradient(lax.stopGradient(x), a.sub(frozen));
}

/**
 * X − X·Δ·X with Δ = A − stopGradient(A): the value is X (Δ is zero), and the gradient with respect to A is the
 * inverse's, d(A⁻¹) = −A⁻¹·dA·A⁻¹, i.e. Ā = −Xᵀ·X̄·Xᵀ: two batched matmuls in place of the elimination's
 * transpose. jax-js has no custom-VJP hook; this is the straight-through form of one. Consumes x and delta.
 */
function withInverseGradient(x: Arr, delta: Arr): Arr {
  return cotangentBarrier(x.ref.sub(np.matmul(np.matmul(x.ref, delta), x)));
}

/**
 * Exact Cayley transform Q = (I + S)⁻¹(I − S) of skew blocks s [..., b, b], jit-able (no solve).
 * Agrees with `cayley` to rounding. Consumes s.
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
 * After all b steps A holds A⁻¹. The row, column and pivot are read with one-hot matmuls rather than slices:
 * no gather or scatter (so it differentiates under jit), and a matmul's operand is a fusion boundary in jax-js's
 * jit, so each step's A is materialised once. With slices (views) the jit fuses all b steps into one expression
 * whose size grows exponentially with b (b = 16 exhausted a 4 GB heap while compiling).
 */
function gaussJordan(a: Arr): Arr {
  const b = a.shape[a.shape.length - 1];
  // Constants get the full rank of `a`: jax-js's matmul puts the batch axes of a 2-D [1, b] @ [B, b, b] first.
  const ones = Array.from({ length: a.ndim - 2 }, () => 1);
  let x = a;
  for (let k = 0; k < b; k++) {
    const unit = new Float32Array(b);
    unit[k] = 1;
    const eRow = np.array(unit).reshape([...ones, 1, b]).astype(x.dtype); // e_kᵀ [..., 1, b]
    const eCol = eRow.ref.reshape([...ones, b, 1]); // e_k [..., b, 1]
    const eye1 = np.matmul(eCol.ref, eRow.ref); // e_k·e_kᵀ [..., b, b]
    const row = np.matmul(eRow.ref, x.ref); // [..., 1, b]
    const col = np.matmul(x.ref, eCol.ref); // [..., b, 1]
    const p = np.matmul(row.ref, eCol.ref); // [..., 1, 1]
    const rHat = row.add(np.subtract(1, p.ref).mul(eRow.ref)).div(p); // [..., 1, b]
    x = x
      .sub(col.ref.mul(eRow))
      .sub(col.sub(eCol).mul(rHat))
      .add(eye1);
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
  const X = inverseNoPivot(P, { leaf, refine: 0 });
  const XB = np.matmul(X.ref, B.ref); // [..., h, b−h]
  const CX = np.matmul(C, X.ref); // [..., b−h, h]
  const Y = inverseNoPivot(T.sub(np.matmul(CX.ref, B)), { leaf, refine: 0 }); // Schur complement⁻¹ [..., b−h, b−h]
  const XBY = np.matmul(XB, Y.ref); // [..., h, b−h]
  const YCX = np.matmul(Y.ref, CX.ref); // [..., b−h, h]
  const topLeft = X.add(np.matmul(XBY.ref, CX));
  const top = np.concatenate([topLeft, XBY.mul(-1)], nd - 1);
  const bottom = np.concatenate([YCX.mul(-1), Y], nd - 1);
  return np.concatenate([top, bottom], nd - 2);
}
