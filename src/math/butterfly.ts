/**
 * Butterfly permutations of BOFT (Liu et al. 2024, §4), as index arrays and as reshapes.
 *
 * PEFT builds factor i's permutation with `block_butterfly_perm(n, D/2^i, b/2, m-1)` and turns it into a
 * dense n×n matrix P_i with P_i[j, perm[j]] = 1. We keep the index array (for files, inspection and tests)
 * and apply it as a reshape + transpose, which needs no gather and no n×n buffer.
 */
import { ShapeError } from "../errors.js";
import type { Arr } from "../engine/index.js";

/** Geometry of a butterfly rotation: n = blockNum·blockSize, nFactors butterfly factors (1 = OFT). */
export interface ButterflyShape {
  n: number;
  blockNum: number;
  blockSize: number;
  nFactors: number;
}

export function checkButterflyShape(s: ButterflyShape): void {
  const { n, blockNum: D, blockSize: b, nFactors: m } = s;
  if (!(Number.isInteger(n) && Number.isInteger(D) && Number.isInteger(b) && Number.isInteger(m)) || m < 1 || D < 1 || b < 1) {
    throw new ShapeError(`butterfly: invalid shape (n=${n}, blockNum=${D}, blockSize=${b}, nFactors=${m})`);
  }
  if (D * b !== n) throw new ShapeError(`butterfly: blockNum·blockSize must equal n (${D}·${b} ≠ ${n})`);
  if (m > 1 && (b % 2 !== 0 || D % 2 ** (m - 1) !== 0)) {
    throw new ShapeError(
      `butterfly: ${m} factors need an even blockSize and blockNum divisible by 2^${m - 1} (blockSize=${b}, blockNum=${D})`,
    );
  }
}

/**
 * PEFT's permutation of factor `i` (0-based) as an index array: (P_i v)[j] = v[perm[j]].
 * Factor 0 and every factor of a one-factor rotation are the identity.
 */
export function butterflyPerm(s: ButterflyShape, i: number): Int32Array {
  checkButterflyShape(s);
  const { n, blockSize: b, nFactors: m } = s;
  const perm = new Int32Array(n);
  if (m === 1) {
    for (let j = 0; j < n; j++) perm[j] = j;
    return perm;
  }
  const c = b * 2 ** i; // chunk length
  const r = b / 2; // half-block
  const K = c / r; // half-blocks per chunk: even ones first, then odd ones
  const sorted = new Int32Array(c);
  let p = 0;
  for (const parity of [0, 1]) {
    for (let o = parity; o < K; o += 2) for (let t = 0; t < r; t++) sorted[p++] = o * r + t;
  }
  for (let q = 0; q < n / c; q++) for (let j = 0; j < c; j++) perm[q * c + j] = q * c + sorted[j];
  return perm;
}

/** All factors' permutations, [nFactors][n]. */
export function butterflyPerms(s: ButterflyShape): Int32Array[] {
  return Array.from({ length: s.nFactors }, (_, i) => butterflyPerm(s, i));
}

/** The inverse of a permutation of 0…n−1: `inv[perm[i]] = i` (undoes butterflyPerm's shuffle). */
export function invertPerm(perm: Int32Array): Int32Array {
  const inv = new Int32Array(perm.length);
  for (let j = 0; j < perm.length; j++) inv[perm[j]] = j;
  return inv;
}

/*
 * Within a chunk of c = b·2^i values, factor i's permutation reads half-blocks (size r = b/2) in the order
 * even-indexed first, then odd. Viewing the chunk as [2^i, 2, r] (half-block o = 2a + e), the permuted chunk
 * is its transpose [2, 2^i, r]. So `z[:, perm]` and `z[:, argsort(perm)]` are a reshape and a swap of two axes.
 */

/** `z[..., perm_i]` for rows z [T, n]. Consumes z. */
export function permuteRows(z: Arr, s: ButterflyShape, i: number): Arr {
  if (s.nFactors === 1 || i === 0) return z;
  const T = z.shape[0];
  const half = 2 ** i;
  const r = s.blockSize / 2;
  const q = s.n / (s.blockSize * half);
  return z.reshape([T, q, half, 2, r]).transpose([0, 1, 3, 2, 4]).reshape([T, s.n]);
}

/** `z[..., argsort(perm_i)]` for rows z [T, n]: the inverse of permuteRows. Consumes z. */
export function unpermuteRows(z: Arr, s: ButterflyShape, i: number): Arr {
  if (s.nFactors === 1 || i === 0) return z;
  const T = z.shape[0];
  const half = 2 ** i;
  const r = s.blockSize / 2;
  const q = s.n / (s.blockSize * half);
  return z.reshape([T, q, 2, half, r]).transpose([0, 1, 3, 2, 4]).reshape([T, s.n]);
}
