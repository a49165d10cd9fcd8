/**
 * Long-run orthogonality: 10,000 BOFT steps on a small Linear layer (n = 32, out = 16, b = 4, m = 2) at a high
 * learning rate, in float32, towards a target no rotation reaches (so the gradient never dies and the skew
 * parameters keep growing). The rotation is recomputed from the parameters each step by the exact Cayley transform,
 * so nothing accumulates; what could go wrong is rounding growing with ‖S‖. The bound is the issue's: max|QQᵀ−I| ≤
 * 1e-5, checked every 1,000 steps. The step (forward, gradient, Adam update) is one jit-compiled call.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { np, jit, valueAndGrad, fromHost, blockUntilReady, type Arr } from "../src/engine/index.js";
import { rotateRows, orthogonalityError } from "../src/math/index.js";
import { boftInit, boftLinear, boftBlocks, type BoftLayerShape, type BoftParams } from "../src/methods/boft/layer.js";
import { normalSampler } from "./helpers.js";

/** Steps and bound the README's "Reliability" section quotes. */
const STEPS = 10_000;
const BOUND = 1e-5;
const LR = 0.05; // Adam's usual 1e-3 × 50

test(`BOFT keeps max|QQᵀ−I| ≤ ${BOUND} over ${STEPS} float32 steps at lr ${LR}`, { timeout: 600_000 }, async (t) => {
  const shape: BoftLayerShape = { kind: "linear", n: 32, out: 16, nFactors: 2, blockNum: 8, blockSize: 4 };
  const normal = normalSampler(11);
  const rand = (s: number[], std = 1) => fromHost({ dtype: "float32", shape: s, data: Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => std * normal()) });
  const weight = rand([16, 32], 0.3);
  const x = rand([64, 32]);
  const target = rand([64, 16]); // unrelated to x·Wᵀ: no rotation fits it
  const loss = (p: BoftParams, w: Arr, xs: Arr, y: Arr) => np.square(boftLinear(shape, p, { weight: w }, xs).sub(y)).mean();
  // Adam without bias correction keeps the step a pure function of arrays, so one compiled step serves all 10,000
  // (the correction only scales the first few hundred steps).
  const one = (p: BoftParams, m: BoftParams, v: BoftParams, w: Arr, xs: Arr, y: Arr) => {
    const [l, g] = valueAndGrad(loss)({ boft_R: p.boft_R.ref, boft_s: p.boft_s.ref }, w, xs, y) as [Arr, BoftParams];
    const out = { p: {} as BoftParams, m: {} as BoftParams, v: {} as BoftParams };
    for (const k of ["boft_R", "boft_s"] as const) {
      const m1 = m[k].mul(0.9).add(g[k].ref.mul(0.1));
      const v1 = v[k].mul(0.999).add(np.square(g[k]).mul(0.001));
      out.p[k] = p[k].sub(m1.ref.div(np.sqrt(v1.ref).add(1e-8)).mul(LR));
      out.m[k] = m1;
      out.v[k] = v1;
    }
    return [l, out.p, out.m, out.v] as const;
  };
  const step = jit(one as never) as unknown as typeof one & { dispose(): void };
  let p = boftInit(shape, { initWeights: true });
  let m = boftInit(shape, { initWeights: true });
  let v = boftInit(shape, { initWeights: true });
  m.boft_s = np.zerosLike(m.boft_s);
  v.boft_s = np.zerosLike(v.boft_s);
  const orthogonality = () => orthogonalityError(rotateRows(np.eye(shape.n, undefined, { dtype: np.float32 }), boftBlocks(p.boft_R.ref))).js() as number;
  const maxSkew = () => np.abs(p.boft_R.ref).max().js() as number;
  const t0 = performance.now();
  let worst = 0;
  let firstLoss = NaN;
  let lastLoss = NaN;
  for (let k = 1; k <= STEPS; k++) {
    const [l, p1, m1, v1] = step(p, m, v, weight.ref, x.ref, target.ref);
    [p, m, v] = [p1, m1, v1];
    // Left lazy, each step's work would pile onto the next (the pending graph grows, and so does each step's time).
    await blockUntilReady([p, m, v] as never);
    if (k === 1) firstLoss = l.js() as number;
    else if (k === STEPS) lastLoss = l.js() as number;
    else l.dispose();
    if (k % 1000 === 0 || k === STEPS) {
      const err = orthogonality();
      worst = Math.max(worst, err);
      t.diagnostic(`step ${k}: max|QQᵀ−I| = ${err.toExponential(2)}, max|R| = ${maxSkew().toFixed(2)}`);
      assert.ok(err <= BOUND, `step ${k}: max|QQᵀ−I| = ${err}`);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  t.diagnostic(`${STEPS} steps in ${seconds.toFixed(1)} s; worst max|QQᵀ−I| = ${worst.toExponential(2)}; loss ${firstLoss.toFixed(4)} → ${lastLoss.toFixed(4)}`);
  // The run did move far from the identity (else the bound says nothing) and trained.
  assert.ok(maxSkew() > 1, `max|R| = ${maxSkew()}`);
  assert.ok(lastLoss < firstLoss, `loss ${firstLoss} → ${lastLoss}`);
  step.dispose();
});
