/**
 * No n×n buffer on the training path: every intermediate value of forward + backward is traced and its
 * shape checked. n is chosen so that n² exceeds every legitimate intermediate by a wide margin.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { np, valueAndGrad, tracedShapes, type Arr } from "../src/engine/index.js";
import { boftLinear, boftConv2d, boftMerge, type BoftLayerShape, type BoftParams } from "../src/methods/boft/layer.js";
import { oftLinear, type OftLayerShape, type OftParams } from "../src/methods/oft/layer.js";
import { defaultConvGeometry } from "../src/methods/base-layers.js";

const n = 256;

/**
 * An n×n matrix (or a broadcast product through one, like [T, n, n]) has two axes whose product reaches n².
 * Tokens and out features are kept below n, so the frozen matmul's own [T, out, n] never trips this.
 */
function assertNoSquare(label: string, shapes: number[][]): void {
  assert.ok(shapes.length > 20, `${label}: traced only ${shapes.length} values`);
  for (const s of shapes) {
    const [a = 1, b = 1] = [...s].sort((x, y) => y - x);
    assert.ok(a * b < n * n, `${label}: intermediate of shape [${s}] holds an n×n plane (n = ${n})`);
  }
}

test("the tracer sees a dense rotation when one is built (the guard can fail)", () => {
  const shapes = tracedShapes((x: Arr) => np.matmul(x, np.eye(n)), np.ones([2, n]));
  assert.ok(shapes.some((s) => s.length === 2 && s[0] === n && s[1] === n));
});

const boft: BoftLayerShape = { kind: "linear", n, out: 32, nFactors: 4, blockNum: 32, blockSize: 8 };

for (const side of ["x", "weight"] as const) {
  test(`BOFT Linear forward+backward, ${side} side: no intermediate of n² values`, () => {
    const loss = (p: BoftParams, x: Arr, w: Arr) => boftLinear(boft, p, { weight: w }, x, { side, training: true }).sum();
    const step = (p: BoftParams, x: Arr, w: Arr) => valueAndGrad(loss, { argnums: [0, 1] })(p, x, w);
    const p = { boft_R: np.zeros([4, 32, 8, 8]), boft_s: np.ones([32, 1]) };
    assertNoSquare(side, tracedShapes(step, p, np.ones([8, n]), np.ones([32, n])));
  });
}

test("BOFT Conv2d forward+backward and merge: no intermediate of n² values", () => {
  const conv: BoftLayerShape = { kind: "conv2d", n, out: 16, nFactors: 2, blockNum: 32, blockSize: 8 }; // 16 channels · 4·4
  const loss = (p: BoftParams, x: Arr, w: Arr) => boftConv2d(conv, p, { weight: w }, x, defaultConvGeometry, { training: true }).sum();
  const step = (p: BoftParams, x: Arr, w: Arr) => valueAndGrad(loss, { argnums: [0, 1] })(p, x, w);
  const p = { boft_R: np.zeros([2, 32, 8, 8]), boft_s: np.ones([1, 16]) };
  assertNoSquare("conv", tracedShapes(step, p, np.ones([1, 16, 6, 6]), np.ones([16, 16, 4, 4])));
  const merge = (p: BoftParams, w: Arr) => boftMerge(conv, p, w);
  assertNoSquare("merge", tracedShapes(merge, { boft_R: np.zeros([2, 32, 8, 8]), boft_s: np.ones([1, 16]) }, np.ones([16, 16, 4, 4])));
});

test("OFT Linear forward+backward (exact and Neumann): no intermediate of n² values", () => {
  for (const useCayleyNeumann of [false, true]) {
    const s: OftLayerShape = {
      kind: "linear", n, out: 32, r: 16, blockSize: 16, blockShare: false, coft: true, eps: 1e-2, useCayleyNeumann, numCayleyNeumannTerms: 5,
    };
    const loss = (p: OftParams, x: Arr, w: Arr) => oftLinear(s, p, { weight: w }, x, { training: true }).sum();
    const step = (p: OftParams, x: Arr, w: Arr) => valueAndGrad(loss, { argnums: [0, 1] })(p, x, w);
    assertNoSquare(`oft neumann=${useCayleyNeumann}`, tracedShapes(step, { oft_R: { weight: np.zeros([16, 120]) } }, np.ones([8, n]), np.ones([32, n])));
  }
});
