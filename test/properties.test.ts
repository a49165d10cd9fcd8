/**
 * Invariants over many random configurations (fixed seeds): the structured rotation equals a dense
 * reference built independently from PEFT's permutation index arrays; exact Cayley is orthogonal;
 * factors applied in pairs or one by one give the same values and gradients; merge∘unmerge = id; merged
 * forward = unmerged forward; the gradient of boft_R is skew-symmetric.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { np, tree, valueAndGrad, fromHost, toHost, type Arr } from "../src/engine/index.js";
import { butterflyPerm, permuteRows, unpermuteRows, rotateRows, orthogonalityError, type ButterflyShape } from "../src/math/index.js";
import { boftInit, boftLinear, boftMerge, boftUnmerge, boftBlocks, type BoftLayerShape } from "../src/methods/boft/layer.js";
import { oftInit, oftLinear, oftMerge, oftUnmerge, type OftLayerShape } from "../src/methods/oft/layer.js";
import { normalSampler } from "./helpers.js";

/** A random valid butterfly shape: b even (for m > 1), D divisible by 2^(m−1). */
function randomShape(rand: () => number): ButterflyShape {
  const m = 1 + Math.floor(rand() * 4);
  const b = m > 1 ? 2 * (1 + Math.floor(rand() * 4)) : 1 + Math.floor(rand() * 8);
  const D = 2 ** (m - 1) * (1 + Math.floor(rand() * 3));
  return { n: D * b, blockNum: D, blockSize: b, nFactors: m };
}

function uniform(seed: number): () => number {
  const normal = normalSampler(seed);
  return () => {
    const z = normal();
    return 0.5 * (1 + Math.tanh(z)); // any deterministic value in (0,1) will do for choosing shapes
  };
}

function randomArr(shape: number[], normal: () => number, std: number, dtype: "float32" | "float64" = "float64", mean = 0): Arr {
  const data = new Float64Array(shape.reduce((a, b) => a * b, 1)).map(() => mean + std * normal());
  return fromHost({ dtype, shape, data: dtype === "float64" ? data : Float32Array.from(data) });
}

/** Dense Rot from index arrays and blocks, in plain float64 JS: M_i[j,j'] = BD_i[perm[j], perm[j']]. */
function denseReference(s: ButterflyShape, q: Float64Array): Float64Array {
  const { n, blockSize: b, blockNum: D } = s;
  let rot = new Float64Array(n * n);
  for (let j = 0; j < n; j++) rot[j * n + j] = 1;
  for (let i = 0; i < s.nFactors; i++) {
    const perm = butterflyPerm(s, i);
    const bd = (r: number, c: number) => {
      const d = Math.floor(r / b);
      return d === Math.floor(c / b) ? q[((i * D + d) * b + (r % b)) * b + (c % b)] : 0;
    };
    const m = new Float64Array(n * n);
    for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) m[r * n + c] = bd(perm[r], perm[c]);
    // Rot = M_i · Rot (factor i applies after the earlier ones on column vectors)
    const next = new Float64Array(n * n);
    for (let r = 0; r < n; r++) for (let k = 0; k < n; k++) {
      const v = m[r * n + k];
      if (v !== 0) for (let c = 0; c < n; c++) next[r * n + c] += v * rot[k * n + c];
    }
    rot = next;
  }
  return rot;
}

test("permuteRows/unpermuteRows equal gathers with PEFT's index arrays (40 shapes)", () => {
  const rand = uniform(1);
  for (let trial = 0; trial < 40; trial++) {
    const s = randomShape(rand);
    const x = Float64Array.from({ length: 2 * s.n }, (_, k) => k);
    for (let i = 0; i < s.nFactors; i++) {
      const perm = butterflyPerm(s, i);
      const got = toHost(permuteRows(fromHost({ dtype: "float64", shape: [2, s.n], data: x }), s, i)).data;
      const back = toHost(unpermuteRows(fromHost({ dtype: "float64", shape: [2, s.n], data: got as Float64Array }), s, i)).data;
      for (let r = 0; r < 2; r++) for (let j = 0; j < s.n; j++) {
        assert.equal(got[r * s.n + j], x[r * s.n + perm[j]], `shape ${JSON.stringify(s)} factor ${i}`);
        assert.equal(back[r * s.n + j], x[r * s.n + j]);
      }
    }
  }
});

test("structured rotation equals the dense reference, both directions, factors paired or not (60 random configs, float64)", () => {
  const rand = uniform(2);
  const normal = normalSampler(3);
  for (let trial = 0; trial < 60; trial++) {
    const s = randomShape(rand);
    const pairs = trial % 2 === 0;
    const qArr = boftBlocks(randomArr([s.nFactors, s.blockNum, s.blockSize, s.blockSize], normal, 0.5));
    const q = toHost(qArr.ref).data as Float64Array;
    const rot = denseReference(s, q);
    const T = 3;
    const x = Float64Array.from({ length: T * s.n }, () => normal());
    const xr = toHost(rotateRows(fromHost({ dtype: "float64", shape: [T, s.n], data: x }), qArr.ref, { pairs })).data;
    const xrt = toHost(rotateRows(fromHost({ dtype: "float64", shape: [T, s.n], data: x }), qArr, { transpose: true, pairs })).data;
    let err = 0;
    for (let t = 0; t < T; t++) for (let c = 0; c < s.n; c++) {
      let want = 0;
      let wantT = 0;
      for (let k = 0; k < s.n; k++) {
        want += x[t * s.n + k] * rot[k * s.n + c];
        wantT += x[t * s.n + k] * rot[c * s.n + k];
      }
      err = Math.max(err, Math.abs(xr[t * s.n + c] - want), Math.abs(xrt[t * s.n + c] - wantT));
    }
    assert.ok(err < 1e-12, `config ${JSON.stringify(s)} pairs=${pairs}: error ${err}`);
  }
});

test("paired and unpaired factors give the same gradients for the rows and the blocks (20 random configs, float64)", () => {
  const rand = uniform(12);
  const normal = normalSampler(13);
  let multi = 0;
  for (let trial = 0; trial < 20; trial++) {
    const s = randomShape(rand);
    if (s.nFactors > 1) multi++;
    const q = boftBlocks(randomArr([s.nFactors, s.blockNum, s.blockSize, s.blockSize], normal, 0.5));
    const x = randomArr([3, s.n], normal, 1);
    const g = randomArr([3, s.n], normal, 1);
    const grads = [true, false].map((pairs) => {
      const loss = (q: Arr, x: Arr) => rotateRows(x, q, { pairs }).mul(g.ref).sum();
      const [value, [dq, dx]] = valueAndGrad(loss, { argnums: [0, 1] })(q.ref, x.ref) as unknown as [Arr, [Arr, Arr]];
      return { value: toHost(value).data[0], dq: toHost(dq).data, dx: toHost(dx).data };
    });
    tree.dispose([q, x, g]);
    const [p, u] = grads;
    const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
    const err = Math.max(Math.abs(p.value - u.value), maxDiff(p.dq, u.dq), maxDiff(p.dx, u.dx));
    assert.ok(err < 1e-12, `config ${JSON.stringify(s)}: paired vs unpaired differ by ${err}`);
  }
  assert.ok(multi >= 10, `only ${multi} of the configs have several factors`);
});

test("exact Cayley rotations are orthogonal within 1e-5 in float32 (30 configs, parameters up to std 1)", () => {
  const rand = uniform(4);
  const normal = normalSampler(5);
  for (let trial = 0; trial < 30; trial++) {
    const s = randomShape(rand);
    const std = [0.01, 0.3, 1][trial % 3];
    const q = boftBlocks(randomArr([s.nFactors, s.blockNum, s.blockSize, s.blockSize], normal, std, "float32"));
    const err = orthogonalityError(rotateRows(np.eye(s.n, undefined, { dtype: np.float32 }), q)).js() as number;
    assert.ok(err <= 1e-5, `config ${JSON.stringify(s)} std ${std}: |RRᵀ−I| = ${err}`);
  }
});

function boftLayer(s: ButterflyShape, out: number): BoftLayerShape {
  return { kind: "linear", n: s.n, out, nFactors: s.nFactors, blockNum: s.blockNum, blockSize: s.blockSize };
}

test("BOFT: merge∘unmerge = id, merged forward = unmerged forward, grad of boft_R is skew (20 configs)", () => {
  const rand = uniform(6);
  const normal = normalSampler(7);
  for (let trial = 0; trial < 20; trial++) {
    const s = boftLayer(randomShape(rand), 1 + Math.floor(rand() * 12));
    const params = boftInit(s, { initWeights: false, dtype: "float64", normal });
    const w = randomArr([s.out, s.n], normal, 0.3);
    const bias = randomArr([s.out], normal, 0.1);
    const x = randomArr([5, s.n], normal, 1);

    const merged = boftMerge(s, tree.ref(params), w.ref);
    const restored = boftUnmerge(s, tree.ref(params), merged.ref);
    const roundTrip = np.abs(restored.sub(w.ref)).max().js() as number;
    assert.ok(roundTrip < 1e-12, `merge∘unmerge error ${roundTrip}`);

    const yMerged = np.matmul(x.ref, np.matrixTranspose(merged)).add(bias.ref);
    const y = boftLinear(s, tree.ref(params), { weight: w.ref, bias: bias.ref }, x.ref);
    const gap = np.abs(y.sub(yMerged)).max().js() as number;
    assert.ok(gap < 1e-12, `merged vs unmerged forward ${gap}`);

    const loss = (p: typeof params) => np.square(boftLinear(s, p, { weight: w.ref, bias: bias.ref }, x.ref, { training: true })).sum();
    const [, g] = valueAndGrad(loss)(params);
    const skewErr = np.abs(g.boft_R.ref.add(np.matrixTranspose(g.boft_R))).max().js() as number;
    tree.dispose([g.boft_s, w, bias, x]);
    assert.ok(skewErr < 1e-12, `grad boft_R not skew: ${skewErr}`);
  }
});

test("OFT (exact and Neumann, block_share): merge∘unmerge = id and merged forward = unmerged (20 configs)", () => {
  const rand = uniform(8);
  const normal = normalSampler(9);
  for (let trial = 0; trial < 20; trial++) {
    const bs = randomShape(rand);
    const s: OftLayerShape = {
      kind: "linear", n: bs.n, out: 7, r: bs.blockNum, blockSize: bs.blockSize, blockShare: trial % 4 === 0,
      coft: false, eps: 6e-5, useCayleyNeumann: trial % 2 === 0, numCayleyNeumannTerms: 5,
    };
    const params = oftInit(s, { initWeights: false, dtype: "float64", normal });
    const w = randomArr([s.out, s.n], normal, 0.3);
    const x = randomArr([4, s.n], normal, 1);
    const merged = oftMerge(s, tree.ref(params), w.ref);
    const restored = oftUnmerge(s, tree.ref(params), merged.ref);
    const roundTrip = np.abs(restored.sub(w.ref)).max().js() as number;
    assert.ok(roundTrip < 1e-10, `merge∘unmerge error ${roundTrip}`);
    const y = oftLinear(s, params, { weight: w }, x.ref);
    const gap = np.abs(y.sub(np.matmul(x, np.matrixTranspose(merged)))).max().js() as number;
    assert.ok(gap < 1e-12, `merged vs unmerged forward ${gap}`);
  }
});
