/**
 * math.cayleyJit / math.inverseNoPivot (src/math/cayley-jit.ts): the jit-able exact Cayley equals the solve-based
 * one, eagerly and under jit, in f32 and f64, through the Gauss–Jordan path and the 2×2-block recursion, and so do
 * its gradients. Ownership as every math function: consumes its argument.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { np, jit, grad, type Arr } from "../src/engine/index.js";
import { ShapeError } from "../src/errors.js";
import { cayleySolve, cayleyJit, inverseNoPivot, skewFromFull } from "../src/math/index.js";
import { normalSampler } from "./helpers.js";

/** Skew blocks [B, b, b] with entries of size ~scale, in the given dtype. */
function skew(B: number, b: number, scale: number, seed: number, dtype: "float32" | "float64" = "float32"): Arr {
  const normal = normalSampler(seed);
  const a = Float64Array.from({ length: B * b * b }, () => scale * normal());
  return skewFromFull(np.array(a, { dtype: np.float64 }).reshape([B, b, b]).astype(dtype === "float64" ? np.float64 : np.float32));
}

function maxAbsDiff(a: Arr, b: Arr): number {
  const x = a.dataSync();
  const y = b.dataSync();
  assert.equal(x.length, y.length);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

describe("math.cayleyJit()", () => {
  // b ≤ 16: Gauss–Jordan only; 48 and 100 (odd halves at 25): one or more levels of the block recursion.
  const cases: Array<[number, number, number]> = [[6, 1, 1], [5, 2, 1], [7, 4, 0.5], [4, 16, 0.3], [4, 16, 3], [2, 48, 0.2], [1, 100, 0.1]];
  for (const [B, b, scale] of cases) {
    it(`equals the solve-based cayley to 1e-6 in f32 (B=${B}, b=${b}, |S|~${scale}), eagerly and under jit`, () => {
      const s = skew(B, b, scale, b);
      const want = cayleySolve(s.ref);
      const f = jit((x: Arr) => cayleyJit(x, { leaf: 16 }));
      try {
        assert.ok(maxAbsDiff(cayleyJit(s.ref, { leaf: 16 }), want.ref) < 1e-6);
        assert.ok(maxAbsDiff(f(s) as Arr, want) < 1e-6);
      } finally {
        f.dispose();
      }
    });
  }
  it("equals it to 1e-12 in f64", () => {
    const s = skew(3, 24, 0.7, 1, "float64");
    assert.ok(maxAbsDiff(cayleyJit(s.ref, { leaf: 8 }), cayleySolve(s)) < 1e-12);
  });
  it("stays within a few times the pivoted solve's orthogonality for large skew entries (refine: 1)", () => {
    const orth = (q: Arr) => np.abs(np.matmul(q.ref, np.matrixTranspose(q)).sub(np.eye(32))).max().dataSync()[0];
    const s = skew(2, 32, 30, 3);
    const solve = orth(cayleySolve(s.ref));
    const refined = orth(cayleyJit(s.ref, { leaf: 8 }));
    const plain = orth(cayleyJit(s, { leaf: 8, refine: 0 }));
    assert.ok(refined < 10 * solve + 1e-6, `refined ${refined} vs solve ${solve}`);
    assert.ok(refined < plain, `refined ${refined} vs unrefined ${plain}`);
  });
  it("has the solve-based gradient (a loss through both, f64)", () => {
    const target = np.array(Float64Array.from({ length: 2 * 20 * 20 }, (_, i) => Math.sin(i)), { dtype: np.float64 }).reshape([2, 20, 20]);
    const loss = (c: (x: Arr) => Arr) => (r: Arr) => c(skewFromFull(r)).mul(target.ref).sum();
    const r = skew(2, 20, 0.4, 5, "float64");
    const g1 = grad(loss((x) => cayleyJit(x, { leaf: 8 })))(r.ref) as Arr;
    const g2 = grad(loss(cayleySolve))(r) as Arr;
    assert.ok(maxAbsDiff(g1, g2) < 1e-10);
    target.dispose();
  });
  it("has the same gradient without the Newton step (refine: 0) and under jit (f64)", () => {
    const target = np.array(Float64Array.from({ length: 3 * 12 * 12 }, (_, i) => Math.cos(i)), { dtype: np.float64 }).reshape([3, 12, 12]);
    const loss = (c: (x: Arr) => Arr) => (r: Arr) => c(skewFromFull(r)).mul(target.ref).sum();
    const r = skew(3, 12, 0.6, 7, "float64");
    const want = grad(loss(cayleySolve))(r.ref) as Arr;
    const g0 = grad(loss((x) => cayleyJit(x, { leaf: 4, refine: 0 })))(r.ref) as Arr;
    const gj = jit(grad(loss((x) => cayleyJit(x, { leaf: 4 }))) as (r: Arr) => Arr);
    try {
      assert.ok(maxAbsDiff(g0, want.ref) < 1e-10);
      assert.ok(maxAbsDiff(gj(r) as Arr, want) < 1e-6); // jit folds number constants to f32 (field notes)
    } finally {
      gj.dispose();
      target.dispose();
    }
  });
  it("consumes its argument", () => {
    const s = skew(2, 4, 0.1, 9);
    cayleyJit(s.ref).dispose();
    assert.equal(s.refCount, 1);
    s.dispose();
  });
});

describe("math.inverseNoPivot()", () => {
  it("inverts I + skew: A·A⁻¹ = I", () => {
    const a = np.eye(40).add(skew(3, 40, 1, 11));
    const x = inverseNoPivot(a.ref, { leaf: 8 });
    assert.ok(maxAbsDiff(np.matmul(a, x), np.broadcastTo(np.eye(40), [3, 40, 40])) < 1e-5);
  });
  it("rejects non-square input and a bad leaf with a ShapeError", () => {
    assert.throws(() => inverseNoPivot(np.zeros([2, 3])), ShapeError);
    assert.throws(() => inverseNoPivot(np.zeros([2, 2]), { leaf: 0 }), ShapeError);
  });
});
