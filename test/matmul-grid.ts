/**
 * A grid of batched and 2-D products checked against float64 host products, forward and under grad, in both wasm
 * matmul plans: the tiled plan (right operand read along N, `np.matmul(a, b)`) and the K-SIMD plan (right operand
 * stored [.., N, K] and read through `matrixTranspose`, as jit stores a linear's weight under grad). Used by
 * jax-patch.test.ts in-process (one thread) and in a child with two worker threads, where kernels run in chunks.
 *
 * Reads are asynchronous, so it runs with worker threads too.
 */
import { createHash } from "node:crypto";
import { np, jit, grad, type Arr } from "../src/engine/index.js";

/** One product: a [...batchA, M, K] times b [...batchB, K, N] (or [...batchB, N, K] read transposed). */
export interface GridCase {
  a: number[];
  b: number[];
  transposeB: boolean;
}

const SHAPES: [number[], number[]][] = [
  [[3, 768, 64], [3, 64, 256]], // attention-sized: the case the patch is for
  [[2, 64, 16], [2, 16, 32]],
  [[4, 48, 32], [4, 32, 24]],
  [[3, 40, 8], [3, 8, 20]],
  [[5, 6, 12], [5, 12, 8]],
  [[4, 5, 8], [4, 8, 12]], // a batch (60 outputs) is no multiple of a 4-row block (48): blocks straddle batches
  [[2, 7, 16], [2, 16, 16]],
  [[3, 9, 4], [3, 4, 36]],
  [[2, 3, 32, 16], [2, 3, 16, 32]], // [B, H, T, hd]·[B, H, hd, T]
  [[3, 32, 16], [16, 24]], // right operand shared by the batch
  [[64, 8, 1, 16], [1, 8, 16, 16]], // a BOFT factor's block product
  [[2, 16, 6], [2, 6, 8]], // K not a multiple of 4: the scalar loop
  [[96, 64], [64, 48]],
  [[33, 20], [20, 12]],
  [[8, 4], [4, 4]],
  [[20, 48], [48, 40]], // 10 vectors a row: whole micro blocks of 4 and a tail of 2
  [[130, 64], [64, 72]], // rows past one 128-row tile
  [[6, 32], [32, 12]], // 6 rows: micro blocks of 2 rows fit, of 4 do not
];

/** Every shape in both plans. */
export const GRID: GridCase[] = SHAPES.flatMap(([a, b]) => [
  { a, b, transposeB: false },
  { a, b: [...b.slice(0, -2), b[b.length - 1], b[b.length - 2]], transposeB: true },
]);

const size = (s: readonly number[]) => s.reduce((x, y) => x * y, 1);

/** Deterministic float32-representable values in [-1, 1). */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  });
}

/** Offsets of each output batch index into a and b, with NumPy broadcasting of the batch axes. */
function batchOffsets(aBatch: number[], bBatch: number[]): { out: number[]; a: number[]; b: number[] } {
  const rank = Math.max(aBatch.length, bBatch.length);
  const pad = (s: number[]) => [...Array(rank - s.length).fill(1), ...s];
  const [pa, pb] = [pad(aBatch), pad(bBatch)];
  const out = pa.map((d, i) => Math.max(d, pb[i]));
  const a: number[] = [];
  const b: number[] = [];
  for (let flat = 0; flat < size(out); flat++) {
    let rest = flat;
    let ia = 0;
    let ib = 0;
    let sa = 1;
    let sb = 1;
    for (let i = rank - 1; i >= 0; i--) {
      const idx = rest % out[i];
      rest = Math.floor(rest / out[i]);
      ia += (pa[i] === 1 ? 0 : idx) * sa;
      ib += (pb[i] === 1 ? 0 : idx) * sb;
      sa *= pa[i];
      sb *= pb[i];
    }
    a.push(ia);
    b.push(ib);
  }
  return { out, a, b };
}

/** The product's shape: broadcast batch axes, then M and N. */
function outputShape(c: GridCase): number[] {
  const N = c.transposeB ? c.b[c.b.length - 2] : c.b[c.b.length - 1];
  return [...batchOffsets(c.a.slice(0, -2), c.b.slice(0, -2)).out, c.a[c.a.length - 2], N];
}

/** |fl(Σ xᵢyᵢ) − Σ xᵢyᵢ| ≤ γₙ Σ|xᵢyᵢ| for any summation order (FMA or not), γₙ = nu/(1 − nu), u = 2⁻²⁴. */
const gamma = (n: number) => (n * 2 ** -24) / (1 - n * 2 ** -24);

interface HostProduct {
  value: Float64Array;
  bound: Float64Array;
}

/** The case's three products in float64: C = A·B, dA = W·Bᵀ and dB = Aᵀ·W for the loss Σ C∘W. */
function hostProducts(c: GridCase, A: Float32Array, B: Float32Array, W: Float32Array) {
  const [M, K] = c.a.slice(-2);
  const N = c.transposeB ? c.b[c.b.length - 2] : c.b[c.b.length - 1];
  const { out, a: offA, b: offB } = batchOffsets(c.a.slice(0, -2), c.b.slice(0, -2));
  const bAt = (ib: number, k: number, n: number) => B[ib * K * N + (c.transposeB ? n * K + k : k * N + n)];
  const mk = (n: number): HostProduct => ({ value: new Float64Array(n), bound: new Float64Array(n) });
  const C = mk(size(out) * M * N);
  const dA = mk(A.length);
  const dB = mk(B.length);
  const add = (p: HostProduct, i: number, x: number) => {
    p.value[i] += x;
    p.bound[i] += Math.abs(x);
  };
  for (let t = 0; t < size(out); t++) {
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        const w = W[(t * M + m) * N + n];
        for (let k = 0; k < K; k++) {
          const a = A[(offA[t] * M + m) * K + k];
          const b = bAt(offB[t], k, n);
          add(C, (t * M + m) * N + n, a * b);
          add(dA, (offA[t] * M + m) * K + k, w * b);
          add(dB, offB[t] * K * N + (c.transposeB ? n * K + k : k * N + n), a * w);
        }
      }
    }
  }
  // Terms per element: K for C; N (times the batch's reuse of A) for dA; M times the reuse of B for dB.
  const terms = {
    C: K,
    dA: (N * size(out) * M * K) / A.length,
    dB: (M * size(out) * K * N) / B.length,
  };
  return { out: outputShape(c), C, dA, dB, terms };
}

function compare(what: string, got: Float32Array, want: HostProduct, terms: number, failures: string[]) {
  if (got.length !== want.value.length) {
    failures.push(`${what}: ${got.length} values, expected ${want.value.length}`);
    return;
  }
  const g = gamma(terms);
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - want.value[i]);
    if (!(err <= g * want.bound[i])) {
      failures.push(`${what}[${i}]: ${got[i]} vs float64 ${want.value[i]} (error ${err}, bound ${g * want.bound[i]})`);
      return;
    }
  }
}

/** What runGrid found: failure messages (empty = all passed), and the SHA-256 of every output's float32 bits. */
export interface GridResult {
  failures: string[];
  digest: string;
}

/**
 * Runs every case forward and under grad (both under jit) and checks each element against its float64 product
 * within the float32 dot-product error bound. A batched case is also checked bit for bit against its batches
 * computed as separate 2-D products. The digest covers the forward, dA and dB of every case, in order, so a change to
 * the kernels that changes any bit shows.
 */
export async function runGrid(cases: GridCase[] = GRID): Promise<GridResult> {
  const failures: string[] = [];
  const hash = createHash("sha256");
  const bits = (x: Float32Array) => (hash.update(new Uint8Array(x.buffer, x.byteOffset, x.byteLength)), x);
  for (const [i, c] of cases.entries()) {
    const name = `[${c.a}]·[${c.b}]${c.transposeB ? "ᵀ" : ""}`;
    const A = values(size(c.a), 11 + i);
    const B = values(size(c.b), 23 + i);
    const W = values(size(outputShape(c)), 37 + i);
    const ref = hostProducts(c, A, B, W);
    const rhs = (b: Arr) => (c.transposeB ? np.matrixTranspose(b) : b);
    const product = (a: Arr, b: Arr) => np.matmul(a, rhs(b));
    const forward = jit(product);
    const backward = jit(grad((a: Arr, b: Arr, w: Arr) => product(a, b).mul(w).sum(), { argnums: [0, 1] }));
    try {
      const out = forward(np.array(A).reshape(c.a), np.array(B).reshape(c.b));
      if (out.shape.join() !== ref.out.join()) {
        failures.push(`${name}: shape [${out.shape}], expected [${ref.out}]`);
        out.dispose();
        continue;
      }
      const got = bits((await out.data()) as Float32Array);
      compare(`${name} forward`, got, ref.C, ref.terms.C, failures);
      const [dA, dB] = backward(
        np.array(A).reshape(c.a),
        np.array(B).reshape(c.b),
        np.array(W).reshape(ref.out),
      ) as unknown as [Arr, Arr];
      compare(`${name} dA`, bits((await dA.data()) as Float32Array), ref.dA, ref.terms.dA, failures);
      compare(`${name} dB`, bits((await dB.data()) as Float32Array), ref.dB, ref.terms.dB, failures);
      if (c.a.length === 3 && c.b.length === 3) await compareWith2d(name, c, A, B, got, forward, failures);
    } finally {
      forward.dispose();
      backward.dispose();
    }
  }
  return { failures, digest: hash.digest("hex") };
}

/** Each batch of a [Bt, M, K]·[Bt, K, N] product, computed as its own 2-D product, must match bit for bit. */
async function compareWith2d(
  name: string,
  c: GridCase,
  A: Float32Array,
  B: Float32Array,
  got: Float32Array,
  forward: (a: Arr, b: Arr) => Arr,
  failures: string[],
) {
  const [batches, M, K] = c.a;
  const bRows = c.b.slice(1);
  const per = got.length / batches;
  for (let t = 0; t < batches; t++) {
    const a2 = np.array(A.slice(t * M * K, (t + 1) * M * K)).reshape([M, K]);
    const b2 = np.array(B.slice(t * size(bRows), (t + 1) * size(bRows))).reshape(bRows);
    const flat = (await forward(a2, b2).data()) as Float32Array;
    const slice = got.subarray(t * per, (t + 1) * per);
    const i = flat.findIndex((x, j) => !Object.is(x, slice[j]));
    if (i >= 0) failures.push(`${name} batch ${t}[${i}]: ${slice[i]}, its 2-D product gives ${flat[i]}`);
  }
}
