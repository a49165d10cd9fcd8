/**
 * src/engine helpers that exist for jax-js's jit: fusionBarrier is the identity in value and gradient, eagerly and
 * under jit, and is built from the one primitive jax-js always materialises the input of (pad).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { np, jit, grad, valueAndGrad, makeJaxpr, fusionBarrier, type Arr } from "../src/engine/index.js";

const data = (n: number) => np.array(Float64Array.from({ length: n }, (_, i) => Math.sin(i + 1)), { dtype: np.float64 });

test("fusionBarrier: identity in value and gradient, eagerly and under jit", () => {
  const x = data(12).reshape([3, 4]);
  assert.deepEqual(Array.from(fusionBarrier(x.ref).dataSync()), Array.from(x.ref.dataSync()));
  // d/dx Σ (barrier(x²)·w) = 2x·w
  const w = data(12).reshape([3, 4]).mul(3);
  const f = (x: Arr) => fusionBarrier(x.ref.mul(x)).mul(w.ref).sum();
  const want = x.ref.mul(2).mul(w.ref).dataSync();
  const g = grad(f)(x.ref) as Arr;
  assert.deepEqual(Array.from(g.dataSync()), Array.from(want));
  const gj = jit(grad(f) as (x: Arr) => Arr);
  try {
    const got = (gj(x.ref) as Arr).dataSync();
    for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-12);
  } finally {
    gj.dispose();
  }
  assert.equal(fusionBarrier(np.array(2)).dataSync()[0], 2, "a scalar passes through");
  x.dispose();
  w.dispose();
});

test("fusionBarrier: a pad and its slice in the traced program, in both passes", () => {
  const f = (x: Arr) => valueAndGrad((x: Arr) => fusionBarrier(x.ref.mul(x)).sum())(x);
  const { jaxpr } = makeJaxpr(f as unknown as (x: Arr) => Arr)(np.ones([4, 3]));
  const prims = (jaxpr.jaxpr as unknown as { eqns: { primitive: string }[] }).eqns.map((e) => e.primitive);
  jaxpr.dispose();
  assert.equal(prims.filter((p) => p === "pad").length, 2, `forward pad and its transpose: ${prims.join(" ")}`);
  assert.equal(prims.filter((p) => p === "shrink").length, 2);
});
