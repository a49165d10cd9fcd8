/**
 * Training an adapted model: only trainable tensors change (frozen ones compared bit for bit), exact-Cayley
 * rotations stay orthogonal, the merged model equals the adapted one, and a resumed run ends with the same
 * tensors as an uninterrupted one.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { np, tree, toHost, type Arr } from "../src/engine/index.js";
import { rng, type Rng } from "../src/data/rng.js";
import { mlp } from "../src/models/mlp.js";
import { cnn } from "../src/models/cnn.js";
import { adaptedModel, addAdapter, initWeights, forward, withTrained, mergeAndUnload, type AdaptedModel } from "../src/models/adapted.js";
import { boftConfig } from "../src/methods/boft/config.js";
import { oftConfig } from "../src/methods/oft/config.js";
import { loraConfig } from "../src/methods/lora/config.js";
import { type AdapterMethod } from "../src/methods/method.js";
import { train, crossEntropy, trainDefaults, type Task, type TrainSnapshot } from "../src/train/trainer.js";
import { boftBlocks } from "../src/methods/boft/layer.js";
import { oftBlocks, type OftLayerShape, type OftParams } from "../src/methods/oft/layer.js";
import { orthogonalityError } from "../src/math/index.js";
import { NonFiniteError } from "../src/errors.js";

/** A fixed synthetic classification problem: labels from a random teacher, so the loss can fall. */
function teacherTask(inputs: number, classes: number, batch: number): Task<Arr, Arr, Arr> {
  const teacher = rng(123);
  const w = Float32Array.from({ length: inputs * classes }, () => teacher.nextFloat() - 0.5);
  return {
    batch(r: Rng) {
      const x = Float32Array.from({ length: batch * inputs }, () => r.nextFloat() * 2 - 1);
      const y = new Int32Array(batch);
      for (let i = 0; i < batch; i++) {
        let best = 0;
        let bestV = -Infinity;
        for (let c = 0; c < classes; c++) {
          let v = 0;
          for (let k = 0; k < inputs; k++) v += x[i * inputs + k] * w[k * classes + c];
          if (v > bestV) [best, bestV] = [c, v];
        }
        y[i] = best;
      }
      return { input: np.array(x).reshape([batch, inputs]), target: np.array(y, { dtype: np.int32 }), items: batch };
    },
    loss: (logits, labels) => crossEntropy(logits, labels),
  };
}

function model(method: AdapterMethod): AdaptedModel<Arr, Arr> {
  const def = mlp({ sizes: [32, 64, 8] });
  return addAdapter(adaptedModel(def, initWeights(def.weights, rng(1))), "default", method, { rng: rng(2) });
}

const methods: [string, AdapterMethod][] = [
  ["BOFT m=2 b=4", { kind: "BOFT", config: boftConfig({ blockSize: 4, nButterflyFactor: 2, targetModules: ["lin0", "lin1"], bias: "boft_only" }) }],
  ["OFT exact b=8", { kind: "OFT", config: oftConfig({ blockSize: 8, useCayleyNeumann: false, targetModules: ["lin0", "lin1"] }) }],
  ["LoRA r=4", { kind: "LORA", config: loraConfig({ r: 4, loraAlpha: 8, targetModules: ["lin0"] }) }],
];

const cfg = { ...trainDefaults, steps: 30, lr: 5e-2, warmupSteps: 2 };

for (const [label, method] of methods) {
  test(`${label}: loss falls, frozen weights unchanged bit for bit, merged = adapted`, async () => {
    let m = model(method);
    const before = Object.fromEntries(Object.entries(m.weights).map(([k, v]) => [k, toHost(v.ref).data]));
    const losses: number[] = [];
    const trained = await train(m, teacherTask(32, 8, 64), cfg, { onEvent: (e) => e.kind === "step" && losses.push(e.loss) });
    assert.ok(losses[losses.length - 1] < losses[0] * 0.95, `loss falls ≥ 5%: ${losses[0]} → ${losses[losses.length - 1]}`);
    m = withTrained(m, trained);
    const extras = new Set(m.adapters.default.extras);
    for (const [k, v] of Object.entries(m.weights)) {
      const now = toHost(v.ref).data;
      if (extras.has(k)) assert.notDeepEqual(now, before[k], `${k} is trained`);
      else assert.deepEqual(now, before[k], `${k} is frozen`);
    }
    if (method.kind === "BOFT") {
      assert.deepEqual([...extras], ["lin0.bias", "lin1.bias"]);
      for (const p of Object.values(m.adapters.default.params)) {
        const err = orthogonalityError(boftBlocks((p as { boft_R: Arr }).boft_R.ref)).js() as number;
        assert.ok(err < 1e-5, `trained rotation orthogonal: ${err}`);
      }
    }
    if (method.kind === "OFT") {
      for (const l of m.adapters.default.plan.layers) {
        const shape = (l as { shape: OftLayerShape }).shape;
        const err = orthogonalityError(oftBlocks(shape, tree.ref(m.adapters.default.params[l.module.path]) as OftParams)).js() as number;
        assert.ok(err < 1e-5, `trained OFT rotation orthogonal: ${err}`);
      }
    }
    const x = np.array(Float32Array.from({ length: 5 * 32 }, (_, i) => Math.sin(i))).reshape([5, 32]);
    const y = toHost(forward(m, x.ref)).data;
    const merged = mergeAndUnload(m);
    const plain = adaptedModel(m.def, merged);
    const y2 = toHost(forward(plain, x)).data;
    let gap = 0;
    for (let i = 0; i < y.length; i++) gap = Math.max(gap, Math.abs(y[i] - y2[i]));
    assert.ok(gap < 1e-5, `merged vs adapted ${gap}`);
    tree.dispose(merged);
  });
}

test("safe merge refuses an adapter that would put NaN into the weights", () => {
  const m = model(methods[0][1]);
  const p = m.adapters.default.params.lin0 as { boft_R: Arr; boft_s: Arr };
  const broken = { ...m, adapters: { default: { ...m.adapters.default, params: { ...m.adapters.default.params, lin0: { ...p, boft_s: p.boft_s.ref.mul(NaN) } } } } };
  assert.throws(() => mergeAndUnload(broken, { safe: true }), NonFiniteError);
  // A healthy adapter merges, and the safe merge is the plain one.
  const safe = mergeAndUnload(m, { safe: true });
  const plain = mergeAndUnload(m);
  for (const k of Object.keys(plain)) assert.deepEqual(toHost(safe[k]).data, toHost(plain[k]).data, k);
});

test("resume from a snapshot ends with the same tensors as the uninterrupted run (bit for bit)", async () => {
  const method = methods[0][1];
  const task = teacherTask(32, 8, 32);
  const full = await train(model(method), task, { ...cfg, steps: 8 });
  let snap: TrainSnapshot | undefined;
  const partial = await train(model(method), task, { ...cfg, steps: 8, checkpointEvery: 3 }, {
    onEvent: (e) => {
      if (e.kind === "checkpoint" && e.step === 3) snap = e.snapshot;
    },
  });
  tree.dispose(partial);
  assert.ok(snap);
  const resumed = await train(model(method), task, { ...cfg, steps: 8 }, { resume: snap });
  const a = tree.leaves(full as never) as Arr[];
  const b = tree.leaves(resumed as never) as Arr[];
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.deepEqual(toHost(a[i]).data, toHost(b[i]).data);
});

test("BOFT on a CNN's Conv2d layers trains and merges", async () => {
  const def = cnn({ channels: [4, 8], classes: 10, size: 8 });
  // conv0 has n = 1·3·3 = 9 and conv1 n = 4·3·3 = 36: three blocks fit both.
  let m = addAdapter(adaptedModel(def, initWeights(def.weights, rng(5))), "default",
    { kind: "BOFT", config: boftConfig({ blockSize: 0, blockNum: 3, targetModules: ["conv0", "conv1"] }) }, { rng: rng(6) });
  const task = teacherTask(64, 10, 16);
  const trained = await train(m, task, { ...cfg, steps: 4 });
  m = withTrained(m, trained);
  const x = np.array(Float32Array.from({ length: 2 * 64 }, (_, i) => Math.cos(i))).reshape([2, 64]);
  const y = toHost(forward(m, x.ref)).data;
  const y2 = toHost(forward(adaptedModel(def, mergeAndUnload(m)), x)).data;
  for (let i = 0; i < y.length; i++) assert.ok(Math.abs(y[i] - y2[i]) < 1e-5);
});
