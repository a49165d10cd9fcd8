/**
 * Seeded Haar-random rotations on the host (float64, no engine): the targets of the expressivity experiment.
 *
 * Recipe (Mezzadri 2007, "How to generate random matrices from the classical compact groups"): G with i.i.d.
 * N(0, 1) entries, G = QR by Householder, then Q·diag(sign R_ii) is Haar-distributed on O(n). Every BOFT/OFT
 * rotation has determinant +1 (each Cayley block does, and the permutations cancel in P·BD·Pᵀ), so a target with
 * det −1 would put a floor of 2 under every method's error (the nearest rotation to a reflection is at distance 2).
 * We therefore negate the first column when det = −1: right-multiplying by a fixed reflection maps Haar on the
 * det −1 coset onto Haar on SO(n), so the result is Haar on SO(n).
 */
import { ConfigError } from "../errors.js";
import { rng } from "../data/rng.js";

/** A Haar-random rotation in SO(n), the target the expressivity experiment fits BOFT to. */
export interface RandomRotation {
  n: number;
  /** Row-major n×n, QᵀQ = I to float64 rounding, det Q = +1. */
  q: Float64Array;
  /** True when the Haar O(n) draw had det −1 and its first column was negated. */
  flipped: boolean;
}

/** n·n standard normals from a seeded xoshiro128** stream (Box–Muller, both outputs used). */
export function normalMatrix(n: number, seed: number): Float64Array {
  const r = rng(seed);
  const out = new Float64Array(n * n);
  for (let k = 0; k < out.length; k += 2) {
    const u1 = 1 - r.nextFloat(); // (0, 1]: log is finite
    const u2 = r.nextFloat();
    const rad = Math.sqrt(-2 * Math.log(u1));
    out[k] = rad * Math.cos(2 * Math.PI * u2);
    if (k + 1 < out.length) out[k + 1] = rad * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

/** A Haar-random element of SO(n) for `seed` (same seed, same matrix, on every platform). */
export function randomRotation(n: number, seed: number): RandomRotation {
  if (!(Number.isInteger(n) && n >= 1)) throw new ConfigError(`randomRotation: n must be an integer ≥ 1 (n=${n})`);
  const g = normalMatrix(n, seed);
  // Work on columns: cols[j·n + i] = G[i, j], so a column is contiguous.
  const cols = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) cols[j * n + i] = g[i * n + j];

  const vs: Float64Array[] = []; // Householder vectors, v_k acts on rows k..n−1
  const rDiag = new Float64Array(n);
  let reflections = 0;
  for (let k = 0; k < n; k++) {
    const x = cols.subarray(k * n + k, k * n + n);
    let norm = 0;
    for (let i = 0; i < x.length; i++) norm += x[i] * x[i];
    norm = Math.sqrt(norm);
    if (k === n - 1 || norm === 0) {
      rDiag[k] = x[0];
      vs.push(new Float64Array(0));
      continue;
    }
    const alpha = x[0] >= 0 ? -norm : norm; // sign chosen against cancellation
    const v = Float64Array.from(x);
    v[0] -= alpha;
    let vn = 0;
    for (let i = 0; i < v.length; i++) vn += v[i] * v[i];
    vn = Math.sqrt(vn);
    for (let i = 0; i < v.length; i++) v[i] /= vn;
    vs.push(v);
    reflections++;
    rDiag[k] = alpha;
    for (let j = k + 1; j < n; j++) reflect(cols.subarray(j * n + k, j * n + n), v);
  }

  // Q = H_0·H_1⋯H_{n−2}, built from the identity one reflection at a time (columns of Q stored contiguously).
  const qCols = new Float64Array(n * n);
  for (let j = 0; j < n; j++) qCols[j * n + j] = 1;
  for (let k = vs.length - 1; k >= 0; k--) {
    const v = vs[k];
    if (v.length === 0) continue;
    for (let j = 0; j < n; j++) reflect(qCols.subarray(j * n + k, j * n + n), v);
  }
  // Mezzadri's fix: column j times sign(R_jj) makes the O(n) draw Haar; det Q = (−1)^reflections · Π sign.
  let det = reflections % 2 === 0 ? 1 : -1;
  for (let j = 0; j < n; j++) {
    if (rDiag[j] < 0) {
      det = -det;
      for (let i = 0; i < n; i++) qCols[j * n + i] = -qCols[j * n + i];
    }
  }
  const flipped = det < 0;
  if (flipped) for (let i = 0; i < n; i++) qCols[i] = -qCols[i];

  const q = new Float64Array(n * n);
  for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) q[i * n + j] = qCols[j * n + i];
  return { n, q, flipped };
}

/** x ← (I − 2vvᵀ)x in place, ‖v‖ = 1. */
function reflect(x: Float64Array, v: Float64Array): void {
  let dot = 0;
  for (let i = 0; i < v.length; i++) dot += v[i] * x[i];
  dot *= 2;
  for (let i = 0; i < v.length; i++) x[i] -= dot * v[i];
}
