/**
 * models/adapted.ts records are never modified: withTrained and deleteAdapter return new records and leave the old
 * one usable (its arrays alive, its forward unchanged); releaseReplaced frees exactly what the new record dropped.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { np, tree, toHost, type Arr } from "../src/engine/index.js";
import { rng } from "../src/data/rng.js";
import { mlp } from "../src/models/mlp.js";
import { adaptedModel, addAdapter, initWeights, forward, trainableOf, withTrained, deleteAdapter, releaseReplaced, type AdaptedModel } from "../src/models/adapted.js";
import { boftConfig } from "../src/methods/boft/config.js";

function model(): AdaptedModel<Arr, Arr> {
  const def = mlp({ sizes: [8, 16, 4] });
  const method = { kind: "BOFT" as const, config: boftConfig({ blockSize: 4, targetModules: ["lin0"], bias: "boft_only", initWeights: false }) };
  return addAdapter(adaptedModel(def, initWeights(def.weights, rng(1))), "default", method, { rng: rng(2) });
}

const input = () => np.array(Float32Array.from({ length: 3 * 8 }, (_, i) => Math.sin(i))).reshape([3, 8]);
const out = (m: AdaptedModel<Arr, Arr>) => Array.from(toHost(forward(m, input())).data);

/** The trainables of `m`, every value moved by 0.5 (a stand-in for a training run's result). */
function shifted(m: AdaptedModel<Arr, Arr>) {
  return tree.map((a: Arr) => a.add(0.5), trainableOf(m) as never) as unknown as ReturnType<typeof trainableOf>;
}

test("withTrained() leaves the old record usable, with its own outputs; releaseReplaced() frees only what was replaced", () => {
  const m = model();
  const before = out(m);
  const next = withTrained(m, shifted(m));
  assert.deepEqual(out(m), before, "the old record still computes what it did");
  assert.notDeepEqual(out(next), before, "the new record has the new parameters");
  const old = m.adapters.default.params.lin0 as { boft_R: Arr; boft_s: Arr };
  assert.equal(old.boft_R.refCount, 1);
  assert.equal(m.weights["lin0.bias"].refCount, 1); // a trained extra, replaced in `next`
  releaseReplaced(m, next);
  assert.equal(old.boft_R.refCount, 0);
  assert.equal(m.weights["lin0.bias"].refCount, 0);
  assert.equal(next.weights["lin0.weight"].refCount, 1, "shared frozen weights stay");
  assert.notDeepEqual(out(next), before);
});

test("deleteAdapter() leaves the old record usable; releaseReplaced() frees the deleted adapter's arrays", () => {
  const m = model();
  const before = out(m);
  const base = out({ ...m, active: null });
  const next = deleteAdapter(m, "default");
  assert.deepEqual(out(m), before, "the old record still has its adapter");
  assert.deepEqual(out(next), base, "the new record is the base model");
  const params = m.adapters.default.params.lin0 as { boft_R: Arr; boft_s: Arr };
  releaseReplaced(m, next);
  assert.equal(params.boft_R.refCount, 0);
  assert.equal(params.boft_s.refCount, 0);
  assert.deepEqual(out(next), base);
});
