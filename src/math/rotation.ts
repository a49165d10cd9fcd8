/**
 * Applying a BOFT rotation Rot = M_{m−1}⋯M_1·M_0 (M_i = P_i·BD_i·P_iᵀ) to row vectors, structured:
 * per factor a reshape-permutation, a batched b×b product and the inverse permutation. No n×n matrix.
 * OFT is the one-factor case (all permutations are the identity).
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
 * z·Rot applies factor m−1 first; z·Rotᵀ applies factor 0 first with transposed blocks.
 * Consumes z and q.
 */
export function rotateRows(z: Arr, q: Arr, opts: { transpose?: boolean } = {}): Arr {
  const s = shapeOfBlocks(q);
  const lead = z.shape.slice(0, -1);
  if (z.shape[z.shape.length - 1] !== s.n) {
    q.dispose();
    z.dispose();
    throw new ShapeError(`rotateRows: rows have ${z.shape[z.shape.length - 1]} features, rotation is ${s.n}×${s.n}`);
  }
  let x = z.reshape([-1, s.n]);
  const factors = [...Array(s.nFactors).keys()];
  if (!opts.transpose) factors.reverse();
  const blocks = opts.transpose ? np.matrixTranspose(q) : q;
  for (const i of factors) {
    const qi = blocks.ref.slice(i); // [D, b, b]
    x = permuteRows(blockDiagMul(unpermuteRows(x, s, i), qi), s, i);
  }
  blocks.dispose();
  return x.reshape([...lead, s.n]);
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
