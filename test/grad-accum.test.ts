/**
 * Gradient accumulation: a batch trained as micro-batches gives the step of the whole batch (the same sequences,
 * since the data generator draws them one by one), and deep models pick micro-batches when a batch would not fit
 * jax-js's 4 GiB heap.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { tree, toHost, type Arr } from "../src/engine/index.js";
import { rng } from "../src/data/rng.js";
import { llama, type LlamaConfig } from "../src/models/llama.js";
import { adaptedModel, addAdapter, initWeights } from "../src/models/adapted.js";
import { boftConfig } from "../src/methods/boft/config.js";
import { train, trainDefaults, crossEntropy, updateInGroups, type TrainEvent } from "../src/train/trainer.js";
import { adamw, clipByGlobalNorm, clipScale } from "../src/train/optim.js";
import { np } from "../src/engine/index.js";
import { lmTask } from "../src/train/tasks.js";
import { layerwiseValueAndGrad, layerwiseStepBytes, microBatches, keepsResiduals, residualBytes } from "../src/models/llama-grad.js";

const TINY: LlamaConfig = {
  modelType: "llama",
  vocabSize: 40,
  hiddenSize: 16,
  intermediateSize: 24,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  headDim: 4,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: null,
  tieWordEmbeddings: true,
  maxPositionEmbeddings: 64,
  attentionBias: false,
};

const SMOLLM2_135M: LlamaConfig = { ...TINY, vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30, numAttentionHeads: 9, numKeyValueHeads: 3, headDim: 64 };

/** Trains the tiny model 3 steps with `batchSize` × `gradAccum`; returns the logged losses and the trained values. */
async function run(batchSize: number, gradAccum: number, layerwise: boolean, full: boolean): Promise<{ losses: number[]; values: Float32Array[] }> {
  const def = llama(TINY);
  const base = adaptedModel(def, initWeights(def.weights, rng(3)));
  const m = full ? base : addAdapter(base, "default", { kind: "BOFT", config: boftConfig({ blockSize: 4, nButterflyFactor: 2, targetModules: null }) }, { rng: rng(4) });
  const tokens = Int32Array.from({ length: 400 }, (_, i) => (i * 7 + ((i * i) % 11)) % TINY.vocabSize);
  const task = lmTask({ train: tokens, evals: {}, batchSize, seqLen: 8 });
  const losses: number[] = [];
  const gradients = layerwise
    ? (t: never, input: { ids: Arr }, target: Arr) => layerwiseValueAndGrad(m, TINY, t, input.ids, (logits) => crossEntropy(logits, target))
    : undefined;
  const trained = await train(m, task, { ...trainDefaults, steps: 3, gradAccum, lr: 1e-2 }, {
    full,
    gradients: gradients as never,
    onEvent: (e: TrainEvent) => {
      if (e.kind === "step") losses.push(e.loss);
    },
  });
  const values = (tree.leaves(trained as never) as Arr[]).map((a) => toHost(a).data as Float32Array);
  tree.dispose(m.weights as never);
  return { losses, values };
}

function maxRel(a: Float32Array[], b: Float32Array[]): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    let num = 0;
    let den = 0;
    for (let j = 0; j < a[i].length; j++) {
      num = Math.max(num, Math.abs(a[i][j] - b[i][j]));
      den = Math.max(den, Math.abs(b[i][j]));
    }
    worst = Math.max(worst, num / Math.max(den, 1e-12));
  }
  return worst;
}

for (const [layerwise, full] of [
  [false, false],
  [true, false],
  [true, true],
] as const) {
  test(`a batch of 4 = 2 micro-batches of 2 = 4 of 1 (${layerwise ? "layer by layer" : "whole-model step"}, ${full ? "full finetuning" : "BOFT"})`, async () => {
    const whole = await run(4, 1, layerwise, full);
    for (const [b, k] of [
      [2, 2],
      [1, 4],
    ]) {
      const split = await run(b, k, layerwise, full);
      for (let s = 0; s < 3; s++) assert.ok(Math.abs(split.losses[s] - whole.losses[s]) < 1e-5 * whole.losses[s], `step ${s + 1}: ${split.losses[s]} vs ${whole.losses[s]}`);
      const err = maxRel(split.values, whole.values);
      assert.ok(err < 1e-5, `${b}×${k}: trained values differ by ${err}`);
    }
    // Not a test that cannot fail: a different batch gives different values.
    const other = await run(2, 1, layerwise, full);
    assert.ok(maxRel(other.values, whole.values) > 1e-4);
  });
}

test("microBatches(): the smallest split of the batch whose step fits the heap", () => {
  const weights = 134_515_008;
  // Measured at SmolLM2-135M's shape, BOFT on q/v: 4×256 peaked at 3.0 GB, 1×256 at 1.6 GB; both fit.
  assert.equal(microBatches(SMOLLM2_135M, 1, 256, weights, 576_000), 1);
  assert.equal(microBatches(SMOLLM2_135M, 4, 256, weights, 576_000), 1);
  assert.equal(microBatches(SMOLLM2_135M, 8, 256, weights, 576_000), 2);
  assert.equal(microBatches(SMOLLM2_135M, 16, 256, weights, 576_000), 4);
  assert.equal(microBatches(SMOLLM2_135M, 6, 256, weights, 576_000), 2); // 3 per micro-batch
  // Full finetuning keeps a trained copy, gradients and two AdamW moments of every weight: 4×256 fits as 4 × 1.
  assert.equal(microBatches(SMOLLM2_135M, 1, 256, weights, weights), 1);
  assert.equal(microBatches(SMOLLM2_135M, 4, 256, weights, weights), 4);
  // Nothing fits: one sequence at a time.
  assert.equal(microBatches(SMOLLM2_135M, 4, 256, weights, 576_000, 1e6), 4);
  const oneSeq = layerwiseStepBytes(SMOLLM2_135M, 256, 256, weights, 576_000);
  assert.ok(oneSeq > 1.0e9 && oneSeq < 1.4e9, `${oneSeq}`);
});

test("keepsResiduals(): the layer-by-layer step keeps every layer's residuals only where they fit the heap", () => {
  const weights = 134_515_008;
  // Measured at SmolLM2-135M's shape, BOFT on q/v, 1×256: peak RSS 2.4–2.6 GiB with them kept (1.6 without).
  assert.equal(keepsResiduals(SMOLLM2_135M, 1, 256, weights, 576_000), true);
  assert.equal(keepsResiduals(SMOLLM2_135M, 2, 256, weights, 576_000), false);
  assert.equal(keepsResiduals(SMOLLM2_135M, 1, 1024, weights, 576_000), false); // attention's residuals grow as T²
  assert.equal(keepsResiduals(SMOLLM2_135M, 1, 256, weights, weights), false); // full finetuning: the moments first
  assert.equal(keepsResiduals(SMOLLM2_135M, 1, 64, weights, 576_000), true);
  const perToken = residualBytes(SMOLLM2_135M, 256, 256) / 256;
  assert.ok(perToken > 3.5e6 && perToken < 4.5e6, `${perToken}`); // about 1.0 GB at 1×256 (measured +0.8–1.0 GiB)
});

test("updateInGroups(): clipping and AdamW a few leaves at a time = over the whole tree, bit for bit", async () => {
  const r = rng(9);
  const shapes = [[7, 5], [3], [11, 2], [4, 4], [9]];
  const make = () => shapes.map((sh) => np.array(Float32Array.from({ length: sh.reduce((a, b) => a * b, 1) }, () => r.nextFloat() - 0.5)).reshape(sh));
  const params = { adapter: {}, extras: Object.fromEntries(make().map((a, i) => [`w${i}`, a])) };
  const grads = { adapter: {}, extras: Object.fromEntries(make().map((a, i) => [`w${i}`, a])) };
  const opt = adamw({ lr: 1e-2, weightDecay: 0.01 });
  const state = opt.init(tree.ref(params) as never);
  state.mu = tree.map((m: Arr) => m.add(0.1), state.mu) as never; // non-zero moments: a second step
  const host = (t: unknown) => (tree.leaves(t as never) as Arr[]).map((a) => Array.from(toHost(a).data));
  // Clipped to a norm below the gradients' (≈ 2.6), so the factor matters.
  const [clipped, n1] = clipByGlobalNorm(tree.ref(grads) as never, 0.5);
  const [p1, s1] = opt.update(clipped, tree.ref(state) as never, tree.ref(params) as never, 3e-3);
  const [scale, n2] = clipScale(grads as never, 0.5);
  assert.ok(toHost(n1).data[0] > 1 && toHost(n2).data[0] > 1);
  const [p2, s2] = await updateInGroups(opt, grads as never, state as never, params as never, 3e-3, scale, 40); // groups of ≤ 40 values: 3 groups
  scale.dispose();
  assert.equal(s2.count, s1.count);
  assert.deepEqual(host(p2), host(p1));
  assert.deepEqual(host(s2.mu), host(s1.mu));
  assert.deepEqual(host(s2.nu), host(s1.nu));
  assert.deepEqual(Object.keys((p2 as { extras: object }).extras), Object.keys(params.extras));
});
