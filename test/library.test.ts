/**
 * The done-when program of issue 13, importing only the package by name ("boft", resolved through package.json's
 * exports): a user's own 2-layer MLP, wrapped with BOFT (b=4, m=2) / OFT / LoRA on both Linears, trained 50 steps on
 * in-memory arrays, saved to bytes and loaded into a freshly built model, merged.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  init, jax, defineModel, getPeftModel, addAdapter, setAdapter, disableAdapters, enableAdapters, deleteAdapter, mergeAdapter, unmergeAdapter,
  finetune, evaluate, forward, savePretrained, fromPretrained, mergeAndUnload, tensor, causalLmSampler, microBatchPlan, llamaFromConfig, ConfigError,
  type HostTensor, type TypedAdapterConfig, type TrainEvent, type DoneEvent, type CheckpointEvent, type EvalEvent, type BatchSampler, type Evaluator,
} from "boft";

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

test("adapters: add, set, disable/enable, delete; merge and unmerge in place", async () => {
  const peft = getPeftModel(build(), { peftType: "LORA", r: 2, initLoraWeights: false, targetModules: ["fc1"] }, { adapterName: "a" });
  addAdapter(peft, "b", { peft_type: "BOFT", boft_block_size: 4, init_weights: false, target_modules: ["fc2"] }, { seed: 3 });
  assert.equal(peft.activeAdapter, "b");
  assert.deepEqual(Object.keys(peft.peftConfig).sort(), ["a", "b"]);
  const base = await forward(peft.baseModel, probe);
  const b = await forward(peft, probe);
  setAdapter(peft, "a");
  const a = await forward(peft, probe);
  assert.ok(maxDiff(a, base) > 1e-4 && maxDiff(b, base) > 1e-4 && maxDiff(a, b) > 1e-4, "two non-identity adapters, two outputs");
  disableAdapters(peft);
  assert.deepEqual(await forward(peft, probe), base);
  enableAdapters(peft);
  assert.deepEqual(await forward(peft, probe), a);
  mergeAdapter(peft);
  assert.equal(peft.mergedAdapter, "a");
  assert.ok(maxDiff(await forward(peft, probe), a) < 1e-5);
  assert.throws(() => setAdapter(peft, "b"), ConfigError);
  unmergeAdapter(peft);
  assert.deepEqual(await forward(peft, probe), a);
  deleteAdapter(peft, "a");
  assert.equal(peft.activeAdapter, null);
  assert.deepEqual(await forward(peft, probe), base);
  setAdapter(peft, "b");
  assert.deepEqual(await forward(peft, probe), b);
  assert.throws(() => setAdapter(peft, "a"), ConfigError);
});

test("finetune: stopped by an AbortSignal, resumed from the in-memory snapshot = one uninterrupted run", async () => {
  const config: TypedAdapterConfig = { peftType: "BOFT", blockSize: 4, nButterflyFactor: 2, targetModules: ["fc1", "fc2"] };
  const options = { steps: 8, lr: 0.02, batchSize: 16, seed: 5 };
  const whole = getPeftModel(build(), config);
  const wholeLosses: number[] = [];
  for await (const e of finetune(whole, data, options)) if (e.kind === "step") wholeLosses.push(e.loss);

  const stop = new AbortController();
  const first = getPeftModel(build(), config);
  const events: TrainEvent[] = [];
  for await (const e of finetune(first, data, { ...options, signal: stop.signal })) {
    events.push(e);
    if (e.kind === "step" && e.step === 3) stop.abort();
  }
  assert.deepEqual(events.map((e) => e.kind), ["step", "step", "step", "checkpoint", "done"]);
  const done = events[4] as DoneEvent;
  assert.deepEqual([done.step, done.stopped], [3, true]);
  const snapshot = (events[3] as CheckpointEvent).snapshot!;
  assert.equal(snapshot.step, 3);

  const resumed = getPeftModel(build(), config);
  const later: number[] = [];
  for await (const e of finetune(resumed, data, { ...options, resume: snapshot })) if (e.kind === "step") later.push(e.loss);
  assert.deepEqual([...events.filter((e) => e.kind === "step").map((e) => (e as { loss: number }).loss), ...later], wholeLosses);
  assert.deepEqual(await forward(resumed, probe), await forward(whole, probe));
});

test("finetune: an async iterable of batches, my own loss, evaluation sets; training ends when the data does", async () => {
  async function* batches() {
    for (let k = 0; k < 5; k++) {
      const rows = Array.from({ length: 12 }, (_, i) => (k * 12 + i) % N);
      yield { input: tensor(rows.flatMap((r) => [...xs.subarray(r * 8, r * 8 + 8)]), [12, 8]), target: tensor(rows.map((r) => ys[r]), [12], "int32") };
    }
  }
  const peft = getPeftModel(build(), { peftType: "OFT", blockSize: 4, targetModules: ["fc1"] });
  let calls = 0;
  // Cross-entropy written by hand: the evaluation with it must equal the built-in one.
  const myLoss = (out: jax.Array, target: jax.Array) => {
    calls++;
    const rows = out.shape[0];
    return jax.nn.logSoftmax(out, -1).mul(jax.nn.oneHot(target, 3)).sum().mul(-1 / rows);
  };
  const events: TrainEvent[] = [];
  for await (const e of finetune(peft, batches(), { steps: 20, lr: 0.01, loss: myLoss, eval: { all: data }, evalEvery: 2 })) events.push(e);
  const steps = events.filter((e) => e.kind === "step");
  assert.equal(steps.length, 5);
  assert.ok(calls >= 1);
  const evals = events.filter((e): e is EvalEvent => e.kind === "eval");
  assert.deepEqual(evals.map((e) => e.step), [2, 4, 5]);
  const direct = await evaluate(peft, data);
  assert.ok(Math.abs(direct.loss - evals[2].loss) < 1e-6, `${direct.loss} vs ${evals[2].loss}`);
  assert.ok(direct.accuracy! >= 0 && direct.accuracy! <= 1);
  assert.equal((events.at(-1) as DoneEvent).step, 5);
});

test("finetune: a BatchSampler draws from the run's seeded generator (a Dataset is the sampler of its rows); stopped and resumed = uninterrupted", async () => {
  const config: TypedAdapterConfig = { peftType: "LORA", r: 2, targetModules: ["fc1", "fc2"] };
  const options = { steps: 6, lr: 0.02, seed: 7 };
  const rows = (idx: number[]) => ({ input: tensor(idx.flatMap((r) => [...xs.subarray(r * 8, r * 8 + 8)]), [idx.length, 8]), target: tensor(idx.map((r) => ys[r]), [idx.length], "int32") });
  const sampler: BatchSampler = (random) => rows(Array.from({ length: 16 }, () => random.nextInt(N)));
  const lossesOf = async (p: ReturnType<typeof getPeftModel>, d: Parameters<typeof finetune>[1], o: Parameters<typeof finetune>[2]) => {
    const out: number[] = [];
    for await (const e of finetune(p, d, o)) if (e.kind === "step") out.push(e.loss);
    return out;
  };
  const fromRows = getPeftModel(build(), config);
  const byRows = await lossesOf(fromRows, data, { ...options, batchSize: 16 });
  const whole = getPeftModel(build(), config);
  assert.deepEqual(await lossesOf(whole, sampler, options), byRows);
  assert.deepEqual(await forward(whole, probe), await forward(fromRows, probe));

  const stop = new AbortController();
  const first = getPeftModel(build(), config);
  let snapshot: CheckpointEvent["snapshot"];
  const before: number[] = [];
  for await (const e of finetune(first, sampler, { ...options, signal: stop.signal })) {
    if (e.kind === "step") before.push(e.loss);
    if (e.kind === "step" && e.step === 2) stop.abort();
    if (e.kind === "checkpoint") snapshot = e.snapshot;
  }
  const resumed = getPeftModel(build(), config);
  assert.deepEqual([...before, ...(await lossesOf(resumed, sampler, { ...options, resume: snapshot }))], byRows);
  assert.deepEqual(await forward(resumed, probe), await forward(whole, probe));
});

test("finetune: an Evaluator sees the values trained so far, on the eval schedule", async () => {
  const peft = getPeftModel(build(), { peftType: "BOFT", blockSize: 4, nButterflyFactor: 2, targetModules: ["fc1", "fc2"] });
  const untrained = await forward(peft, probe);
  const seen: HostTensor[] = [];
  const evaluator: Evaluator = async (view) => {
    seen.push(await forward(view, probe));
    const r = await evaluate(view, data);
    return [{ split: "mine", loss: r.loss, metrics: { accuracy: r.accuracy!, calls: seen.length } }];
  };
  const evals: EvalEvent[] = [];
  for await (const e of finetune(peft, data, { steps: 6, lr: 0.05, batchSize: 16, eval: evaluator, evalEvery: 4 })) if (e.kind === "eval") evals.push(e);
  assert.deepEqual(evals.map((e) => [e.step, e.split, e.metrics?.calls]), [[4, "mine", 1], [6, "mine", 2]]);
  assert.ok(maxDiff(seen[0], untrained) > 1e-4, "the view at step 4 shows trained values");
  assert.deepEqual(seen[1], await forward(peft, probe)); // after the last step: the trained adapter
  assert.equal(evals[1].loss, (await evaluate(peft, data)).loss);
});

test("finetune: full finetuning trains every weight; evaluations and mergeAndUnload see them, the base Model is unchanged", async () => {
  const base = build();
  const peft = getPeftModel(base, { peftType: "LORA", r: 2, targetModules: ["fc1"] });
  await assert.rejects(async () => {
    for await (const _ of finetune(peft, data, { steps: 1, full: true }));
  }, /full finetuning trains the model's own weights, but adapter "default" is active; call disableAdapters first/);
  disableAdapters(peft);
  const baseOut = await forward(base, probe);
  const events: TrainEvent[] = [];
  for await (const e of finetune(peft, data, { steps: 12, lr: 0.02, batchSize: 32, full: true, eval: { all: data }, evalEvery: 6 })) events.push(e);
  const losses = events.filter((e) => e.kind === "step").map((e) => (e as { loss: number }).loss);
  assert.ok(losses[11] < losses[0], `loss ${losses[0]} → ${losses[11]}`);
  const last = events.filter((e): e is EvalEvent => e.kind === "eval").at(-1)!;
  assert.equal(last.step, 12);
  assert.ok(Math.abs(last.loss - (await evaluate(peft, data)).loss) < 1e-6);
  assert.deepEqual(await forward(base, probe), baseOut);
  const trained = await forward(peft, probe);
  assert.ok(maxDiff(trained, baseOut) > 1e-4);
  assert.deepEqual(await forward(mergeAndUnload(peft), probe), trained);
});

test("causalLmSampler: random windows of seqLen ids and the next ids; too little text is a ConfigError", () => {
  const ids = Int32Array.from({ length: 50 }, (_, i) => 1000 + i);
  let k = 0;
  const random = { nextInt: (n: number) => [3, 0, n - 1][k++ % 3], nextFloat: () => 0 };
  const b = causalLmSampler(ids, { seqLen: 4, batchSize: 3 })(random) as { input: HostTensor<"int32">; target: HostTensor<"int32"> };
  assert.deepEqual(b.input.shape, [3, 4]);
  assert.deepEqual([...b.input.data], [1003, 1004, 1005, 1006, 1000, 1001, 1002, 1003, 1045, 1046, 1047, 1048]);
  assert.deepEqual([...b.target.data], [...b.input.data].map((v) => v + 1));
  assert.throws(() => causalLmSampler(ids.subarray(0, 4), { seqLen: 4, batchSize: 1 }), ConfigError);
});

test("microBatchPlan: a batch whose step would not fit the heap is split (a deep Llama's estimate); other models are not estimated", () => {
  // A real vocabulary's logits dominate: 16 × 256 tokens × 49152 logits need about 8 GB, 4 × 256 fit.
  const lm = llamaFromConfig({
    model_type: "llama", vocab_size: 49152, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 12,
    num_attention_heads: 2, num_key_value_heads: 1, head_dim: 8, max_position_embeddings: 256,
  });
  const peft = getPeftModel(lm, { peftType: "BOFT", blockSize: 4, nButterflyFactor: 2 });
  const plan = microBatchPlan(peft, { batchSize: 16, seqLen: 256 })!;
  assert.deepEqual([plan.gradAccum, plan.microBatchSize], [4, 4]);
  assert.ok(plan.batchBytes > plan.heapBytes && plan.batchBytes / 4 < plan.heapBytes, `${plan.batchBytes} vs ${plan.heapBytes}`);
  assert.ok(plan.sequenceBytes < plan.heapBytes);
  assert.equal(microBatchPlan(peft, { batchSize: 2, seqLen: 256 })!.gradAccum, 1);
  assert.equal(microBatchPlan(getPeftModel(build(), { peftType: "LORA", r: 2, targetModules: ["fc1"] }), { batchSize: 4096, seqLen: 1 }), null);
});
