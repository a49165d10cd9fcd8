/**
 * BOFT's factor pairs built for every layer at once (pairFactors, adapterBlocks with `paired`) and applied by
 * rotateRowsPaired give what rotateRows gives from the raw blocks: values and gradients, both directions, for one
 * rotation and for several stacked along D (float64). A layer forward with paired blocks equals one without.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { np, tree, valueAndGrad, fromHost, toHost, type Arr } from "../src/engine/index.js";
import { rotateRows, rotateRowsPaired, pairFactors, pairsAllFactors, cayleyJit, skewFromFull } from "../src/math/index.js";
import { ShapeError } from "../src/errors.js";
import { rng } from "../src/data/rng.js";
import { mlp } from "../src/models/mlp.js";
import { adaptedModel, addAdapter, initWeights, trainableOf, forwardWith } from "../src/models/adapted.js";
import { adapterBlocks } from "../src/methods/adapter.js";
import { boftConfig } from "../src/methods/boft/config.js";
import { normalSampler } from "./helpers.js";

function randomArr(shape: number[], normal: () => number, std: number): Arr {
  const data = new Float64Array(shape.reduce((a, b) => a * b, 1)).map(() => std * normal());
  return fromHost({ dtype: "float64", shape, data });
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

/** Orthogonal blocks [m, D, b, b] from random skew parameters. */
function blocks(m: number, D: number, b: number, normal: () => number): Arr {
  return cayleyJit(skewFromFull(randomArr([m, D, b, b], normal, 0.5)));
}

test("rotateRowsPaired(pairFactors(q)) = rotateRows(q): values and gradients, both directions (m = 2, 4; b = 2…16)", () => {
  const normal = normalSampler(21);
  const shapes = [
    { m: 2, D: 2, b: 2 },
    { m: 2, D: 6, b: 8 },
    { m: 2, D: 4, b: 16 },
    { m: 4, D: 8, b: 4 },
    { m: 4, D: 16, b: 8 },
  ];
  for (const { m, D, b } of shapes) {
    const q = blocks(m, D, b, normal);
    const x = randomArr([3, D * b], normal, 1);
    const g = randomArr([3, D * b], normal, 1);
    for (const transpose of [false, true]) {
      const viaRaw = (q: Arr, x: Arr) => rotateRows(x, q, { transpose }).mul(g.ref).sum();
      const viaPaired = (q: Arr, x: Arr) => rotateRowsPaired(x, pairFactors(q), { transpose }).mul(g.ref).sum();
      const [r, p] = [viaRaw, viaPaired].map((f) => {
        const [value, [dq, dx]] = valueAndGrad(f, { argnums: [0, 1] })(q.ref, x.ref) as unknown as [Arr, [Arr, Arr]];
        return { value: toHost(value).data[0], dq: toHost(dq).data, dx: toHost(dx).data };
      });
      const err = Math.max(Math.abs(r.value - p.value), maxDiff(r.dq, p.dq), maxDiff(r.dx, p.dx));
      assert.ok(err < 1e-12, `m=${m} D=${D} b=${b} transpose=${transpose}: ${err}`);
      assert.ok(maxDiff(r.dq, new Float64Array(r.dq.length)) > 1e-3, "the gradient is not trivially zero");
    }
    tree.dispose([q, x, g]);
  }
});

test("pairFactors of rotations stacked along D = each rotation's pairFactors, sliced at D_<i/2 (m = 2 and 4)", () => {
  const normal = normalSampler(22);
  for (const { m, Ds, b } of [{ m: 2, Ds: [16, 44, 8], b: 8 }, { m: 4, Ds: [8, 24], b: 4 }]) {
    const qs = Ds.map((D) => blocks(m, D, b, normal));
    const stacked = toHost(pairFactors(np.concatenate(qs.map((q) => q.ref), 1))).data;
    const total = Ds.reduce((a, d) => a + d, 0);
    let start = 0;
    for (const [i, D] of Ds.entries()) {
      const own = toHost(pairFactors(qs[i])).data;
      const per = (D / 2) * 4 * b * b; // one pair step's elements for this rotation
      for (let j = 0; j < m / 2; j++) {
        const offset = (j * (total / 2) + start / 2) * 4 * b * b;
        assert.deepEqual(Array.from(stacked.slice(offset, offset + per)), Array.from(own.slice(j * per, (j + 1) * per)), `rotation ${i}, pair ${j}`);
      }
      start += D;
    }
  }
});

test("rotateRowsPaired and pairFactors refuse rotations that do not pair every factor", () => {
  assert.equal(pairsAllFactors({ nFactors: 3, blockSize: 4 }), false);
  assert.equal(pairsAllFactors({ nFactors: 2, blockSize: 32 }), false);
  assert.equal(pairsAllFactors({ nFactors: 2, blockSize: 16 }), true);
  assert.throws(() => pairFactors(np.zeros([3, 4, 4, 4])), ShapeError);
  assert.throws(() => rotateRowsPaired(np.zeros([2, 64]), np.zeros([1, 1, 64, 64])), ShapeError); // b = 32
});

test("adapterBlocks({ paired }) pairs BOFT layers without dropout, and the forward equals the unpaired one (float64)", () => {
  const def = mlp({ sizes: [16, 32, 8] });
  const weights = tree.map((w: Arr) => w.astype(np.float64), initWeights(def.weights, rng(1)) as never) as never;
  for (const dropout of [0, 0.1]) {
    const method = { kind: "BOFT" as const, config: boftConfig({ blockSize: 4, nButterflyFactor: 2, targetModules: ["lin0", "lin1"], initWeights: false, dropout }) };
    const m = addAdapter(adaptedModel(def, tree.ref(weights as never) as never), "default", method, { rng: rng(2), dtype: "float64" });
    const plan = m.adapters.default.plan;
    const t = trainableOf(m);
    const paired = adapterBlocks(plan, t.adapter, { paired: true });
    const raw = adapterBlocks(plan, t.adapter);
    assert.deepEqual(paired.get("lin0")!.shape, dropout === 0 ? [1, 2, 8, 8] : [2, 4, 4, 4]);
    assert.deepEqual(paired.get("lin1")!.shape, dropout === 0 ? [1, 4, 8, 8] : [2, 8, 4, 4]);
    assert.deepEqual(raw.get("lin1")!.shape, [2, 8, 4, 4]);
    const x = np.array(Float64Array.from({ length: 3 * 16 }, (_, i) => Math.sin(i)), { dtype: np.float64 }).reshape([3, 16]);
    const viaPaired = toHost(forwardWith(m, tree.ref(t), x.ref, {}, paired)).data;
    const viaRaw = toHost(forwardWith(m, tree.ref(t), x.ref, {}, raw)).data;
    const own = toHost(forwardWith(m, tree.ref(t), x, {}, new Map())).data; // each layer computes its own blocks
    assert.ok(maxDiff(viaPaired, viaRaw) < 1e-13, `paired vs raw blocks: ${maxDiff(viaPaired, viaRaw)}`);
    assert.ok(maxDiff(viaPaired, own) < 1e-13, `paired vs the layer's own blocks: ${maxDiff(viaPaired, own)}`);
    for (const q of [...paired.values(), ...raw.values()]) q.dispose();
    tree.dispose(t);
  }
  tree.dispose(weights);
});
