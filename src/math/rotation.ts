/**
 * Applying a BOFT rotation Rot = M_{m−1}⋯M_1·M_0 (M_i = P_i·BD_i·P_iᵀ) to row vectors, structured:
 * per factor a reshape-permutation, a batched b×b product and the inverse permutation. No n×n matrix.
 * OFT is the one-factor case (all permutations are the identity).
 *
 * Two neighbouring factors are applied as one product with 2b×2b blocks when b is small (see `pairedBlocks`):
 * twice the multiply-adds, but half the kernels, and jax-js's products with b ≤ 16 are far below its matmul speed.
 */
import { np, type Arr } from "../engine/index.js";
import { ShapeError } from "../errors.js";
import { type ButterflyShape, checkButterflyShape, permuteRows, unpermuteRows } from "./butterfly.js";

/**
 * Rows z [T, D·b] times the block-diagonal of q [D, b, b] (each z_d ← z_d·q_d). Consumes z and q.
 * Written as T·D products [1, b]·[b, b] so the result comes out in row order: a [D, T, b] result viewed back as
 * [T, D·b] is a strided view, and jax-js fuses such a view into the next (frozen, large) matmul, which then leaves
 * its SIMD path (13× slower at 768², 512 tokens). q needs its explicit leading 1: jax-js 0.1.25's matmul of
 * [T, D, 1, b] by [D, b, b] returns [D, T, 1, b].
 */
export function blockDiagMul(z: Arr, q: Arr): Arr {
  const [D, b] = q.shape;
  const T = z.shape[0];
  return np.matmul(z.reshape([T, D, 1, b]), q.reshape([1, D, b, b])).reshape([T, D * b]);
}

export function shapeOfBlocks(q: Arr): ButterflyShape {
  if (q.ndim !== 4 || q.shape[2] !== q.shape[3]) {
    throw new ShapeError(`rotation: blocks must be [nFactors, blockNum, b, b], got [${q.shape}]`);
  }
  const [nFactors, blockNum, blockSize] = q.shape;
  const s = { n: blockNum * blockSize, blockNum, blockSize, nFactors };
  checkButterflyShape(s);
  return s;
}

/**
 * z·Rot (or z·Rotᵀ with `transpose`) for rows z [..., n], given the orthogonal blocks q [m, D, b, b].
 * z·Rot applies factor m−1 first; z·Rotᵀ applies factor 0 first with transposed blocks. `pairs: false` applies
 * every factor on its own (for comparisons; the result is the same up to rounding). Consumes z and q.
 */
export function rotateRows(z: Arr, q: Arr, opts: { transpose?: boolean; pairs?: boolean } = {}): Arr {
  return rotate(z, q, shapeOfBlocks(q), null, opts);
}

/**
 * rotateRows for a rotation whose every factor pairs (`pairsAllFactors`), given its paired blocks g
 * [m/2, D/2, 2b, 2b] from `pairFactors` instead of q: the same products, without building the pairs here.
 * Consumes z and g.
 */
export function rotateRowsPaired(z: Arr, g: Arr, opts: { transpose?: boolean } = {}): Arr {
  const [half, groups, twoB] = g.shape;
  const s = { n: groups * twoB, blockNum: 2 * groups, blockSize: twoB / 2, nFactors: 2 * half };
  if (g.ndim !== 4 || g.shape[2] !== g.shape[3] || twoB % 2 !== 0 || !pairsAllFactors(s)) {
    z.dispose();
    g.dispose();
    throw new ShapeError(`rotateRowsPaired: paired blocks must be [m/2, D/2, 2b, 2b] with every factor paired (even m, b ≤ ${MAX_PAIRED_BLOCK}), got [${g.shape}]`);
  }
  return rotate(z, g, s, "paired", opts);
}

/** Applies q [m, D, b, b] (paired null) or pairFactors' g [m/2, D/2, 2b, 2b] ("paired"). Consumes z and q. */
function rotate(z: Arr, q: Arr, s: ButterflyShape, paired: "paired" | null, opts: { transpose?: boolean; pairs?: boolean }): Arr {
  const lead = z.shape.slice(0, -1);
  if (z.shape[z.shape.length - 1] !== s.n) {
    q.dispose();
    z.dispose();
    throw new ShapeError(`rotateRows: rows have ${z.shape[z.shape.length - 1]} features, rotation is ${s.n}×${s.n}`);
  }
  let x = z.reshape([-1, s.n]);
  // Slices of the transposed blocks, not transposes of slices: the latter made the 4096² merge 5× slower.
  const blocks = paired ? null : opts.transpose ? np.matrixTranspose(q.ref) : q.ref;
  for (const step of factorSchedule(s, paired ? { ...opts, pairs: true } : opts)) {
    if (step.pair) {
      // M_{k+1}·M_k on groups
      const merged = paired ? q.ref.slice(step.k / 2) : pairedBlocks(q.ref.slice(step.k + 1), q.ref.slice(step.k), s, step.k);
      x = pairedMul(x, opts.transpose ? np.matrixTranspose(merged) : merged, s, step.k);
    } else {
      x = permuteRows(blockDiagMul(unpermuteRows(x, s, step.k), blocks!.ref.slice(step.k)), s, step.k);
    }
  }
  blocks?.dispose();
  q.dispose();
  return x.reshape([...lead, s.n]);
}

/** Factors pair up to this block size: measured, pairs save time at b = 4 and 8, break even at 16, lose at 32. */
const MAX_PAIRED_BLOCK = 16;

/** Whether rotateRows applies every factor of this shape in pairs (m even, b ≤ 16), so pairFactors can stand in for q. */
export function pairsAllFactors(s: Pick<ButterflyShape, "nFactors" | "blockSize">): boolean {
  return s.nFactors >= 2 && s.nFactors % 2 === 0 && s.blockSize <= MAX_PAIRED_BLOCK;
}

/**
 * The paired group blocks [m/2, D/2, 2b, 2b] of blocks q [m, D, b, b] (entry j: M_{2j+1}·M_{2j}, what rotateRows
 * builds for that pair), for rotateRowsPaired. q may stack several rotations with the same m and b along D (each
 * one's D a multiple of 2^(m−1)): a pair's groups never straddle two of them, so rotation i's group blocks are the
 * slice [D_<i/2, (D_<i + D_i)/2) of axis 1. That is how every layer's pairs are built in one batched product
 * (adapterBlocks) instead of a handful of small kernels per layer. Consumes q.
 */
export function pairFactors(q: Arr): Arr {
  const s = shapeOfBlocks(q);
  if (!pairsAllFactors(s)) {
    q.dispose();
    throw new ShapeError(`pairFactors: a rotation with m=${s.nFactors}, b=${s.blockSize} does not pair every factor`);
  }
  const pairs: Arr[] = [];
  for (let k = 0; k < s.nFactors; k += 2) pairs.push(pairedBlocks(q.ref.slice(k + 1), q.ref.slice(k), s, k).reshape([1, s.blockNum / 2, 2 * s.blockSize, 2 * s.blockSize]));
  q.dispose();
  return pairs.length === 1 ? pairs[0] : np.concatenate(pairs, 0);
}

type FactorStep = { k: number; pair: boolean };

/**
 * The order rotateRows applies factors in: z·Rot applies M_{m−1} first, z·Rotᵀ applies M_0ᵀ first. With pairing,
 * factors (k+1, k) go together for k = m−2, m−4, … (so an odd m leaves factor 0 alone, in both directions).
 */
function factorSchedule(s: ButterflyShape, opts: { transpose?: boolean; pairs?: boolean }): FactorStep[] {
  const pair = (opts.pairs ?? true) && s.nFactors >= 2 && s.blockSize <= MAX_PAIRED_BLOCK;
  const steps: FactorStep[] = [];
  let k = s.nFactors - 1;
  while (k >= 0) {
    if (pair && k >= 1) {
      steps.push({ k: k - 1, pair: true });
      k -= 2;
    } else steps.push({ k: k--, pair: false });
  }
  return opts.transpose ? steps.reverse() : steps;
}

/*
 * Why two factors make one block-diagonal. Number the n features in half-blocks of r = b/2. Factor k's permutation
 * (butterflyPerm) puts side by side the two half-blocks whose indices differ only in bit k: its block d holds
 * half-blocks h (bit k = 0) and h + 2^k, d is h with bit k deleted, and inside the block the order is (bit k, offset).
 * So factors k and k+1 together only ever mix the 4 half-blocks that differ in bits k and k+1: a group of 2b
 * features, g = h with both bits deleted. Viewing n as [H, 2 (bit k+1), 2 (bit k), L = 2^k, r], the groups are
 * [H·L, 2b] after one transpose, ordered (bit k+1, bit k, offset). In that order, with β = (β1, β0, e) and
 * γ = (γ1, γ0, f), applying M_{k+1} then M_k is the group matrix
 *   G[β, γ] = Σ_h Q_{k+1}[(H, β0, L)][(β1, e), (γ1, h)] · Q_k[(H, γ1, L)][(β0, h), (γ0, f)],
 * a batched matmul over (g, β0, γ1). Everything is reshapes and transposes, so it runs under jit with gradients.
 */

/** The 2b×2b group blocks [D/2, 2b, 2b] of M_{k+1}·M_k (M_{k+1} applied first), from their blocks [D, b, b]. Consumes both. */
function pairedBlocks(qHi: Arr, qLo: Arr, s: ButterflyShape, k: number): Arr {
  const { b, r, H, L, G } = pairGeometry(s, k);
  // qHi's block (H, β0, L), rows (β1, e), columns (γ1, h) → [g, β0, γ1, (β1, e), h]
  const hi = qHi.reshape([H, 2, L, 2, r, 2, r]).transpose([0, 2, 1, 5, 3, 4, 6]).reshape([G, 2, 2, b, r]);
  // qLo's block (H, γ1, L), rows (β0, h), columns (γ0, f) → [g, β0, γ1, h, (γ0, f)]
  const lo = qLo.reshape([H, 2, L, 2, r, 2, r]).transpose([0, 2, 3, 1, 4, 5, 6]).reshape([G, 2, 2, r, b]);
  // [g, β0, γ1, β1, e, γ0, f] → [g, (β1, β0, e), (γ1, γ0, f)]
  return np.matmul(hi, lo).reshape([G, 2, 2, 2, r, 2, r]).transpose([0, 3, 1, 4, 2, 5, 6]).reshape([G, 2 * b, 2 * b]);
}

/** Rows z [T, n] times the paired factors' group blocks g [D/2, 2b, 2b] (from pairedBlocks). Consumes z and g. */
function pairedMul(z: Arr, g: Arr, s: ButterflyShape, k: number): Arr {
  const { r, H, L } = pairGeometry(s, k);
  const T = z.shape[0];
  const grouped = z.reshape([T, H, 2, 2, L, r]).transpose([0, 1, 4, 2, 3, 5]).reshape([T, s.n]);
  return blockDiagMul(grouped, g).reshape([T, H, L, 2, 2, r]).transpose([0, 1, 3, 4, 2, 5]).reshape([T, s.n]);
}

function pairGeometry(s: ButterflyShape, k: number): { b: number; r: number; H: number; L: number; G: number } {
  const b = s.blockSize;
  const L = 2 ** k;
  const H = s.blockNum / (2 * L);
  return { b, r: b / 2, H, L, G: H * L };
}

/**
 * The dense n×n rotation, for inspection and tests only: Rot = I·Rot, built row by row from the identity.
 * Consumes q.
 */
export function denseRotation(q: Arr): Arr {
  const s = shapeOfBlocks(q);
  return rotateRows(np.eye(s.n, undefined, { dtype: q.dtype }), q);
}

/** max |A·Aᵀ − I| of square matrices [..., n, n]. Consumes a. */
export function orthogonalityError(a: Arr): Arr {
  const n = a.shape[a.shape.length - 1];
  const gram = np.matmul(a.ref, np.matrixTranspose(a));
  return np.abs(gram.sub(np.eye(n, undefined, { dtype: gram.dtype }))).max();
}
