/**
 * The expressivity experiment (src/experiments/expressivity.ts, `npm run paper -- --quick`): its shortcuts compute
 * exactly the plain loss and gradient, its targets are rotations, and the quick run, in-process, behaves as the
 * paper says it should: every configuration improves on the identity, more parameters help the block-diagonal
 * family, more butterfly factors help at a fixed block size.
 */
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { np, valueAndGrad, type Arr } from "../src/engine/index.js";
import { cayleyJit, skewFromFull, rotateRows } from "../src/math/index.js";
import { randomRotation } from "../src/experiments/random-rotation.js";
import {
  buildProblem,
  runExpressivity,
  expressivityPreset,
  paperFindings,
  boftSpecError,
  defaultExpressivityConfigs,
  type BoftSpec,
  type ExpressivityResult,
} from "../src/experiments/expressivity.js";
import { normalSampler } from "./helpers.js";

/** Determinant of a row-major n×n matrix (LU with partial pivoting, float64). */
function det(a: Float64Array, n: number): number {
  const m = Float64Array.from(a);
  let d = 1;
  for (let k = 0; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(m[i * n + k]) > Math.abs(m[p * n + k])) p = i;
    if (p !== k) {
      for (let j = 0; j < n; j++) [m[k * n + j], m[p * n + j]] = [m[p * n + j], m[k * n + j]];
      d = -d;
    }
    d *= m[k * n + k];
    for (let i = k + 1; i < n; i++) {
      const f = m[i * n + k] / m[k * n + k];
      for (let j = k; j < n; j++) m[i * n + j] -= f * m[k * n + j];
    }
  }
  return d;
}

describe("experiments.randomRotation()", () => {
  it("gives QᵀQ = I and det +1 for every seed, the same matrix for the same seed", () => {
    const n = 24;
    let flipped = 0;
    for (let seed = 0; seed < 8; seed++) {
      const { q, flipped: f } = randomRotation(n, seed);
      flipped += f ? 1 : 0;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          let dot = 0;
          for (let k = 0; k < n; k++) dot += q[k * n + i] * q[k * n + j];
          assert.ok(Math.abs(dot - (i === j ? 1 : 0)) < 1e-12);
        }
      }
      assert.ok(Math.abs(det(q, n) - 1) < 1e-9, `seed ${seed}`);
      assert.deepEqual(randomRotation(n, seed).q, q);
    }
    assert.ok(flipped > 0 && flipped < 8, "about half the Haar O(n) draws have det −1");
  });
});

/** ‖rotateRows(I_n, Cayley blocks)_s − Q_s‖² per seed, the plain way (no chunks, no hand-written gradient). */
function plainPerSeed(p: Arr, qs: Float64Array[], n: number): Arr {
  const S = qs.length;
  const eye = new Float32Array(n * S * n);
  const target = new Float32Array(n * S * n);
  qs.forEach((q, s) => {
    for (let i = 0; i < n; i++) {
      eye[i * S * n + s * n + i] = 1;
      for (let j = 0; j < n; j++) target[i * S * n + s * n + j] = q[i * n + j];
    }
  });
  const d = rotateRows(np.array(eye).reshape([n, S * n]), cayleyJit(skewFromFull(p))).sub(np.array(target).reshape([n, S * n]));
  return d.ref.mul(d).reshape([n, S, n]).sum([0, 2]);
}

function close(a: Arr, b: Arr, tol: number, what: string): void {
  const x = a.dataSync();
  const y = b.dataSync();
  assert.equal(x.length, y.length, `${what}: sizes`);
  let scale = 0;
  let err = 0;
  for (let i = 0; i < x.length; i++) {
    err = Math.max(err, Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  assert.ok(err <= tol * Math.max(1, scale), `${what}: max diff ${err} (scale ${scale})`);
}

describe("experiments.buildProblem()", () => {
  const n = 32;
  const qs = [randomRotation(n, 1).q, randomRotation(n, 2).q];
  const specs: BoftSpec[] = [
    { nFactors: 1, blockSize: 8 }, // m = 1: hand-written gradient
    { nFactors: 2, blockSize: 4 }, // span 8 < n: chunks
    { nFactors: 3, blockSize: 8 }, // span 32 = n: one chunk
  ];
  for (const c of specs) {
    it(`BOFT(${c.nFactors},${c.blockSize}): loss and gradient equal the plain dense rotation and autodiff`, () => {
      const normal = normalSampler(c.nFactors * 10 + c.blockSize);
      const shape = [c.nFactors, (qs.length * n) / c.blockSize, c.blockSize, c.blockSize];
      const p = np.array(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => 0.3 * normal())).reshape(shape);
      const problem = buildProblem(n, qs, c, 4);
      try {
        const [errors, g] = problem.lossAndGrad(p.ref, problem.data.map((d) => d.ref));
        const [want, wantGrad] = valueAndGrad((x: Arr) => plainPerSeed(x, qs, n).sum())(p.ref) as [Arr, Arr];
        close(errors.ref.sum(), want, 1e-5, "total");
        close(errors, plainPerSeed(p.ref, qs, n), 1e-5, "per seed");
        close(g, wantGrad, 1e-4, "gradient");
        close(problem.perSeed(p.ref, problem.data.map((d) => d.ref)), plainPerSeed(p.ref, qs, n), 1e-5, "perSeed");
      } finally {
        p.dispose();
        for (const d of problem.data) d.dispose();
      }
    });
  }
});

describe("experiments configurations", () => {
  it("the full run has the paper's grid at n = 512, and every entry is a valid BOFT shape", () => {
    const full = expressivityPreset("full");
    const names = full.configs.map((c) => `${c.nFactors},${c.blockSize}`);
    for (const need of ["1,16", "2,16", "6,4", "9,2", "1,64", "1,512"]) assert.ok(names.includes(need), need);
    assert.deepEqual([full.n, full.seeds.length], [512, 10]);
    assert.deepEqual(defaultExpressivityConfigs(512), full.configs);
    assert.equal(boftSpecError(512, { nFactors: 10, blockSize: 2 })?.includes("divisible by 2^9"), true);
  });
});

describe("expressivity, quick run (n = 64, 2 seeds, 60 steps), in-process", () => {
  let run: ExpressivityResult;
  before(async () => {
    run = await runExpressivity(expressivityPreset("quick"));
  });
  const get = (m: number, b: number) => run.results.find((r) => r.nFactors === m && r.blockSize === b)!;

  it("improves on the identity for every configuration and seed, and the curve falls", () => {
    for (const r of run.results) {
      r.finalError.forEach((e, s) => assert.ok(e < r.initialError[s] - 0.5, `BOFT(${r.nFactors},${r.blockSize}) seed ${s}: ${e} vs ${r.initialError[s]}`));
      const [first, last] = [r.curve[0][1], r.curve.at(-1)![1]];
      assert.ok(last < first, `curve of BOFT(${r.nFactors},${r.blockSize})`);
    }
  });
  it("gives the block-diagonal family (m = 1) a lower error for every step up in parameters", () => {
    const f = paperFindings(run.results);
    assert.deepEqual(f.blockFamily.results.map((r) => r.blockSize), [4, 8, 16, 64]);
    assert.ok(f.blockFamily.monotone, f.blockFamily.results.map((r) => r.mean.toFixed(3)).join(" > "));
  });
  it("lowers the error with more butterfly factors at a fixed block size", () => {
    assert.ok(get(3, 4).mean < get(1, 4).mean);
    assert.ok(get(2, 8).mean < get(1, 8).mean);
  });
  it("keeps every Cayley block orthogonal and counts parameters as ½(b−1)·n·m", () => {
    for (const r of run.results) {
      assert.ok(r.orthogonalityError < 1e-5, `BOFT(${r.nFactors},${r.blockSize}): ${r.orthogonalityError}`);
      assert.equal(r.params, ((r.blockSize - 1) * 64 * r.nFactors) / 2);
      assert.equal(r.span, Math.min(64, r.blockSize * 2 ** (r.nFactors - 1)));
    }
  });
});
