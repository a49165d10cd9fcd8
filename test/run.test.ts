/** `boft train` runs from run.json: a deep Llama (≥ 12 layers) trains and evaluates layer by layer. */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as nodePath from "node:path";
import { readRunConfig } from "../src/node/run-config.js";
import { runTraining, prepareRun, evaluatePrepared, LAYERWISE_FROM_LAYERS, type Prepared } from "../src/node/run.js";

const deepRun = (method: Record<string, unknown>, train: Record<string, unknown>) => ({
  model: {
    arch: "llama",
    config: {
      model_type: "llama", vocab_size: 97, hidden_size: 16, intermediate_size: 24, num_hidden_layers: LAYERWISE_FROM_LAYERS,
      num_attention_heads: 2, num_key_value_heads: 1, head_dim: 8, rms_norm_eps: 1e-5, max_position_embeddings: 64,
    },
  },
  data: { kind: "brown", train: ["humor"], eval: { val: ["humor"] }, seqLen: 16, batchSize: 2, evalWindows: 4 },
  method,
  train,
  output: "out",
});

test("a 12-layer Llama trains with BOFT via layer-wise gradients; the adapter has PEFT's keys", async () => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "boft-run-"));
  const run = deepRun({ peft_type: "BOFT", boft_block_size: 4, boft_n_butterfly_factor: 2 }, { steps: 6, lr: 0.02, seed: 0 });
  fs.writeFileSync(nodePath.join(dir, "run.json"), JSON.stringify(run));
  const losses: number[] = [];
  const r = await runTraining(readRunConfig(nodePath.join(dir, "run.json")), { onEvent: (e) => e.kind === "step" && losses.push(e.loss) });
  assert.equal(losses.length, 6);
  assert.ok(losses.every(Number.isFinite));
  assert.ok(losses[5] < losses[0], `loss ${losses[0]} → ${losses[5]}`);
  const config = JSON.parse(fs.readFileSync(nodePath.join(r.adapterDir, "adapter_config.json"), "utf8")) as { target_modules: string[]; task_type: string };
  assert.deepEqual(config.target_modules, ["q_proj", "v_proj"]); // null in run.json: saved resolved, as PEFT does
  assert.equal(config.task_type, "CAUSAL_LM");
  fs.rmSync(dir, { recursive: true, force: true });
});

test("a 12-layer Llama finetuned in full trains layer by layer too; its layer-wise evaluation sees the trained weights", async () => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "boft-run-"));
  fs.writeFileSync(nodePath.join(dir, "run.json"), JSON.stringify(deepRun({ peft_type: "FULL" }, { steps: 3, lr: 0.01, seed: 0, evalEvery: 3 })));
  const evals: number[] = [];
  const r = await runTraining(readRunConfig(nodePath.join(dir, "run.json")), { onEvent: (e) => e.kind === "eval" && e.step > 0 && evals.push(e.loss) }); // step 0: the base model
  assert.equal(evals.length, 1); // during training: layer by layer, trained tensors (embedding included) passed apart
  const p = r.prepared as Prepared & { kind: "lm" };
  assert.ok(p.taskOptions.layerwise, "deep models evaluate layer by layer");
  // The same weights, now in place, evaluated by one compiled forward of the whole model.
  const whole = await evaluatePrepared({ ...p, model: r.model, taskOptions: { ...p.taskOptions, layerwise: undefined } } as Prepared, null);
  assert.ok(Math.abs(whole[0].loss - evals[0]) < 1e-5 * evals[0], `layer-wise ${evals[0]} vs whole ${whole[0].loss}`);
  fs.rmSync(dir, { recursive: true, force: true });
});

test("a batch too large for the 4 GiB heap trains as micro-batches, and the run says so", async () => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "boft-run-"));
  // A real vocabulary's logits dominate: 16 × 256 tokens × 49152 logits need about 8 GB, 4 × 256 fit.
  const run = deepRun({ peft_type: "BOFT", boft_block_size: 4, boft_n_butterfly_factor: 2 }, { steps: 1 });
  run.model.config.vocab_size = 49152;
  Object.assign(run.data, { seqLen: 256, batchSize: 16 });
  fs.writeFileSync(nodePath.join(dir, "run.json"), JSON.stringify(run));
  const p = (await prepareRun(readRunConfig(nodePath.join(dir, "run.json")))) as Prepared & { kind: "lm" };
  assert.equal(p.accumulate, 4);
  assert.equal(p.taskOptions.batchSize, 4);
  assert.equal(p.notes?.length, 1);
  assert.match(p.notes![0], /a batch of 16×256 tokens needs about \d+\.\d GB.*4 micro-batches of 4/);
  // A batch that fits is left alone.
  Object.assign(run.data, { batchSize: 2 });
  fs.writeFileSync(nodePath.join(dir, "run.json"), JSON.stringify(run));
  const q = (await prepareRun(readRunConfig(nodePath.join(dir, "run.json")))) as Prepared & { kind: "lm" };
  assert.equal(q.accumulate, 1);
  assert.deepEqual(q.notes, []);
  fs.rmSync(dir, { recursive: true, force: true });
});
