/** BOFT multiplicative dropout has PEFT's semantics: training only, one factor, exactly ⌊p·D⌋ identity blocks. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { np, tree, toHost } from "../src/engine/index.js";
import { multiplicativeDropoutMask } from "../src/math/index.js";
import { boftInit, boftLinear, type BoftLayerShape } from "../src/methods/boft/layer.js";
import { normalSampler } from "./helpers.js";

function seeded(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
}

test("mask: one factor, exactly ⌊p·D⌋ blocks, chosen differently across draws", () => {
  const random = seeded(11);
  const seen = new Set<string>();
  for (let draw = 0; draw < 50; draw++) {
    for (const [m, D, p] of [[3, 8, 0.1], [3, 8, 0.5], [1, 16, 0.3], [4, 10, 0.99]] as const) {
      const mask = multiplicativeDropoutMask(m, D, p, random);
      const perFactor = Array.from({ length: m }, (_, i) => mask.slice(i * D, (i + 1) * D).reduce((a, b) => a + b, 0));
      const want = Math.floor(p * D);
      assert.equal(perFactor.filter((c) => c > 0).length, want > 0 ? 1 : 0);
      assert.equal(perFactor.reduce((a, b) => a + b, 0), want);
      seen.add(mask.join(""));
    }
  }
  assert.ok(seen.size > 20, "the masks vary");
});

test("dropout applies in training only; dropped blocks act as the identity", () => {
  const s: BoftLayerShape = { kind: "linear", n: 8, out: 3, nFactors: 1, blockNum: 4, blockSize: 2 };
  const params = boftInit(s, { initWeights: false, dtype: "float64", normal: normalSampler(1) });
  const w = np.eye(8, undefined, { dtype: np.float64 }).slice([0, 3]);
  const x = np.eye(8, undefined, { dtype: np.float64 });
  const evalY = toHost(boftLinear(s, tree.ref(params), { weight: w.ref }, x.ref, { dropout: 1, training: false }));
  const plain = toHost(boftLinear(s, tree.ref(params), { weight: w.ref }, x.ref));
  assert.deepEqual(evalY.data, plain.data, "no dropout outside training");
  // p = 1 replaces all D blocks of the single factor: the layer becomes diag(s)·W.
  const dropped = toHost(boftLinear(s, tree.ref(params), { weight: w.ref }, x.ref, { dropout: 1, training: true, random: seeded(3) }));
  const scaleOnly = toHost(np.matmul(x, np.matrixTranspose(w)).mul(params.boft_s.reshape([-1])));
  tree.dispose(params.boft_R);
  for (let k = 0; k < scaleOnly.data.length; k++) assert.ok(Math.abs(dropped.data[k] - scaleOnly.data[k]) < 1e-15);
});
