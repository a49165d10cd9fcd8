/**
 * Skew-symmetric parametrisations and the Cayley transform, batched over blocks [..., b, b].
 *
 * BOFT stores full b×b matrices and uses S = ½(R − Rᵀ); OFT stores the packed strict upper triangle
 * (torch.triu_indices order) and uses A = U − Uᵀ (no ½). Both then map a skew matrix to an orthogonal one.
 * Exact Cayley: Q = (I − S)(I + S)⁻¹ = (I + S)⁻¹(I − S), computed with a solve (the two factors commute).
 */
import { np, lax, type Arr, fusionBarrier } from "../engine/index.js";

/** S = ½(R − Rᵀ) over the last two axes. Consumes r. */
export function skewFromFull(r: Arr): Arr {
  return r.ref.sub(np.matrixTranspose(r)).mul(0.5);
}

/** Row/column indices of the strict upper triangle of a b×b matrix, row-major (torch.triu_indices(b, b, 1)). */
export function triuIndices(b: number): { rows: Int32Array; cols: Int32Array } {
  const len = (b * (b - 1)) / 2;
  const rows = new Int32Array(len);
  const cols = new Int32Array(len);
  let k = 0;
  for (let i = 0; i < b; i++) for (let j = i + 1; j < b; j++) (rows[k] = i), (cols[k] = j), k++;
  return { rows, cols };
}

/**
 * One-hot scatter matrix E [b(b−1)/2, b·b] with E[k, rows[k]·b + cols[k]] = 1, so that packed·E is the
 * flattened upper triangle. A matmul keeps this differentiable and jit-friendly (no scatter).
 */
function triuScatter(b: number, dtype: Arr["dtype"]): Arr {
  const { rows, cols } = triuIndices(b);
  const e = new Float32Array(rows.length * b * b);
  for (let k = 0; k < rows.length; k++) e[k * b * b + rows[k] * b + cols[k]] = 1;
  return np.array(e).reshape([rows.length, b * b]).astype(dtype);
}

/** A = U − Uᵀ from packed upper triangles v [..., b(b−1)/2] → [..., b, b]. Consumes v. */
export function skewFromPacked(v: Arr, b: number): Arr {
  const lead = v.shape.slice(0, -1);
  const upper = np.matmul(v.reshape([-1, v.shape[v.shape.length - 1]]), triuScatter(b, v.dtype)).reshape([...lead, b, b]);
  // S's cotangent is a sum over every use of S (the Neumann series uses it once per power); without the barrier
  // jax-js fuses that sum into the backward of the scatter matmul (OFT, 4096², b = 32: 61 ms for that one kernel).
  return fusionBarrier(upper.ref.sub(np.matrixTranspose(upper)));
}

function eyeLike(s: Arr): Arr {
  const b = s.shape[s.shape.length - 1];
  return np.eye(b, undefined, { dtype: s.dtype });
}

/** Exact Cayley transform Q = (I + S)⁻¹(I − S) of skew blocks S [..., b, b]. Consumes s. Not jit-able (solve). */
export function cayleySolve(s: Arr): Arr {
  const eye = eyeLike(s);
  return np.linalg.solve(eye.ref.add(s.ref), eye.sub(s));
}

/**
 * PEFT's Cayley–Neumann polynomial with `terms` = K: I + 2A + 2A² + … + 2A^{K−2} + A^{K−1}
 * (K=1 → I, K=2 → I+2A, and K=3 and K=4 both give I+2A+2A²+A³, as in PEFT ≥ 0.18).
 * It approximates (I + A)(I − A)⁻¹, the transpose of `cayleySolve(A)`; PEFT uses it as is, and so do we.
 * Consumes a.
 */
export function cayleyNeumann(a: Arr, terms: number): Arr {
  let q = eyeLike(a);
  if (terms < 2) {
    a.dispose();
    return q;
  }
  q = q.add(a.ref.mul(2));
  if (terms === 2) {
    a.dispose();
    return q;
  }
  let power = np.matmul(a.ref, a.ref); // A²
  // PEFT adds 2A² whenever K > 2, then 2A^j for 3 ≤ j ≤ K−2, then A^{K−1} (which for K=3 is A³ too).
  q = q.add(power.ref.mul(2));
  const last = Math.max(terms - 1, 3);
  for (let j = 3; j <= last; j++) {
    power = np.matmul(power, a.ref);
    q = q.add(j === last ? power.ref : power.ref.mul(2));
  }
  power.dispose();
  a.dispose();
  return q;
}

/**
 * COFT projection (Qiu et al. 2023): each skew block A with ‖A‖_F > ε' is scaled onto the ball ‖A‖_F = ε',
 * ε' = eps/√(number of stored blocks). Acts on the packed parameter v [r, k] and returns the projected v.
 * Consumes v.
 */
export function coftProject(v: Arr, eps: number): Arr {
  const blocks = v.shape[0];
  const epsBlock = eps / Math.sqrt(blocks);
  // ‖U − Uᵀ‖_F = √2·‖v‖ for the packed strict upper triangle.
  const norm = np.sqrt(v.ref.mul(v.ref).sum(-1, { keepdims: true }).mul(2));
  const scale = np.where(norm.ref.greater(epsBlock), np.reciprocal(norm).mul(epsBlock), 1);
  return v.mul(scale);
}

/**
 * Straight-through COFT: the forward value is the projection, the gradient is taken at the projected value,
 * which is what PEFT computes after projecting the parameter in place. Consumes v.
 */
export function coftStraightThrough(v: Arr, eps: number): Arr {
  const projected = lax.stopGradient(coftProject(v.ref, eps));
  return v.ref.add(projected.sub(lax.stopGradient(v)));
}
