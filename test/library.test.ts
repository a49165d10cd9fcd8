/**
 * The done-when program of issue 13, importing only the package by name ("boft", resolved through package.json's
 * exports): a user's own 2-layer MLP, wrapped with BOFT (b=4, m=2) / OFT / LoRA on both Linears, trained 50 steps on
 * in-memory arrays, saved to bytes and loaded into a freshly built model, merged.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { init, jax, defineModel, getPeftModel, finetune, forward, savePretrained, fromPretrained, mergeAndUnload, tensor, type HostTensor, type TypedAdapterConfig } from "boft";

await init();

// The user's model: 8 → 16 → 3, ReLU between.
const build = () =>
  defineModel(
    {
      type: "two-layer",
      modules: [
        { path: "fc1", kind: "linear", inFeatures: 8, outFeatures: 16 },
        { path: "fc2", kind: "linear", inFeatures: 16, outFeatures: 3 },
      ],
      forward: (x, layer) => layer("fc2", jax.nn.relu(layer("fc1", x))),
    },
    { seed: 1 },
  );

// A learnable rule: the class is the argmax of three fixed projections of x.
const N = 96;
const xs = Float32Array.from({ length: N * 8 }, (_, i) => Math.sin(i * 1.7) + Math.cos(i * 0.31));
const ys = Int32Array.from({ length: N }, (_, n) => {
  const row = xs.subarray(n * 8, n * 8 + 8);
  const score = [0, 1, 2].map((c) => row.reduce((s, v, j) => s + v * Math.sin(1 + c * 3 + j), 0));
  return score.indexOf(Math.max(...score));
});
const data = { inputs: tensor(xs, [N, 8]), targets: tensor(ys, [N], "int32") };
const probe = tensor(xs.subarray(0, 10 * 8), [10, 8]);
const maxDiff = (a: HostTensor, b: HostTensor) => Array.from(a.data).reduce((m, v, i) => Math.max(m, Math.abs(v - b.data[i])), 0);

const configs: TypedAdapterConfig[] = [
  { peftType: "BOFT", blockSize: 4, nButterflyFactor: 2, targetModules: ["fc1", "fc2"] },
  { peftType: "OFT", blockSize: 4, targetModules: ["fc1", "fc2"] },
  { peftType: "LORA", r: 4, loraAlpha: 8, targetModules: ["fc1", "fc2"] },
];

for (const config of configs) {
  test(`${config.peftType}: trains, saves to bytes, loads into a fresh model, merges`, async () => {
    const peft = getPeftModel(build(), config);
    const losses: number[] = [];
    for await (const e of finetune(peft, data, { steps: 50, lr: 0.02, batchSize: 32 })) if (e.kind === "step") losses.push(e.loss);
    assert.equal(losses.length, 50);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(mean(losses.slice(-10)) < 0.9 * mean(losses.slice(0, 10)), `loss (mean of 10) ${mean(losses.slice(0, 10))} → ${mean(losses.slice(-10))}`);

    const adapted = await forward(peft, probe);
    const base = await forward(peft.baseModel, probe);
    assert.ok(maxDiff(adapted, base) > 1e-3, "training changed the outputs");

    const files = await savePretrained(peft);
    assert.equal(JSON.parse(files["adapter_config.json"]).peft_type, config.peftType);
    const again = await fromPretrained(build(), files);
    assert.deepEqual(await forward(again, probe), adapted);

    const merged = mergeAndUnload(again);
    assert.ok(maxDiff(await forward(merged, probe), adapted) < 1e-5);
  });
}
