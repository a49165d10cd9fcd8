/**
 * `boft train` writes the same files for the same run.json as before it trained through the library's `finetune`:
 * every adapter, full model, checkpoint (optimizer and generator states included), loss.svg and metrics.jsonl (its
 * wall-clock field aside) has the SHA-256 recorded from the runner at e7297b1, which drove the trainer directly.
 * The runs cover text and brown data, MNIST rows, an eval file and splits, checkpoints, dropout, gradient
 * accumulation, extras (bias, COFT), full finetuning, a 12-layer Llama trained layer by layer, pretrained CNN weights,
 * and runs cut back to a checkpoint and resumed with --resume.
 *
 * Paths inside files (the run folder, the repository) are replaced by placeholders before hashing. Record anew only
 * when a change of the files is intended: BOFT_GOLDEN=write node --test dist/test/run-golden.test.js.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { BIN } from "./cli-helpers.js";

const REPO = process.cwd();
const GOLDEN = path.join(REPO, "test", "fixtures", "run-golden.json");
const root = fs.mkdtempSync(path.join(os.tmpdir(), "boft-golden-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const tiny = (layers: number) => ({
  arch: "llama",
  config: { model_type: "llama", vocab_size: 97, hidden_size: 16, intermediate_size: 32, num_hidden_layers: layers, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 8, rms_norm_eps: 1e-5, max_position_embeddings: 64 },
});
const brown = { kind: "brown", train: ["humor"], eval: { val: ["humor"], other: ["news"] }, seqLen: 16, batchSize: 2, evalWindows: 4 };
const text = { kind: "text", path: path.join(REPO, "examples/text/train.jsonl"), eval: path.join(REPO, "examples/text/eval.jsonl"), field: "text", seqLen: 32, batchSize: 4, evalWindows: 4 };
const mnist = { kind: "mnist", transform: "rotate:30", evalTransforms: { upright: "none", rotated: "rotate:30" }, batchSize: 16, trainLimit: 500, evalLimit: 100 };
const mlp = { arch: "mlp", config: { sizes: [784, 32, 10] } };

const RUNS: Record<string, object> = {
  "text-boft": { model: { hf: path.join(REPO, "assets/brown-lm") }, data: text, method: { peft_type: "BOFT", boft_block_size: 8, boft_n_butterfly_factor: 2, target_modules: ["q_proj", "v_proj"] }, train: { steps: 6, lr: 0.005, warmupSteps: 2, evalEvery: 3, checkpointEvery: 2, seed: 1 } },
  "brown-lora-dropout": { model: tiny(2), data: brown, method: { peft_type: "LORA", r: 2, lora_dropout: 0.1, target_modules: ["q_proj", "v_proj", "up_proj"] }, train: { steps: 6, lr: 0.02, evalEvery: 4, checkpointEvery: 3, gradAccum: 2, seed: 2 } },
  "brown-oft-bias": { model: tiny(2), data: brown, method: { peft_type: "OFT", oft_block_size: 4, r: 0, coft: true, bias: "all", target_modules: ["q_proj", "o_proj"] }, train: { steps: 5, lr: 0.02, evalEvery: 2, seed: 4 } },
  "brown-full": { model: tiny(2), data: brown, method: { peft_type: "FULL" }, train: { steps: 4, lr: 0.01, evalEvery: 2, checkpointEvery: 2, seed: 0 } },
  "deep-boft": { model: tiny(12), data: brown, method: { peft_type: "BOFT", boft_block_size: 4, boft_n_butterfly_factor: 2 }, train: { steps: 4, lr: 0.02, evalEvery: 2, checkpointEvery: 2, seed: 0 } },
  "deep-full": { model: tiny(12), data: brown, method: { peft_type: "FULL" }, train: { steps: 3, lr: 0.01, evalEvery: 3, seed: 0 } },
  "mnist-mlp-boft": { model: mlp, data: mnist, method: { peft_type: "BOFT", boft_block_size: 4, boft_n_butterfly_factor: 2, target_modules: ["lin0", "lin1"] }, train: { steps: 6, lr: 0.01, evalEvery: 3, checkpointEvery: 2, seed: 0 } },
  "mnist-cnn-oft": { model: { arch: "cnn", config: { channels: [16, 32], classes: 10, size: 28 }, weights: path.join(REPO, "assets/mnist-cnn.safetensors") }, data: mnist, method: { peft_type: "OFT", oft_block_size: 4, r: 0, target_modules: ["conv1", "fc"] }, train: { steps: 4, lr: 0.01, evalEvery: 4, seed: 0 } },
  "mnist-mlp-full": { model: mlp, data: mnist, method: { peft_type: "FULL" }, train: { steps: 4, lr: 0.01, seed: 0 } },
};
/** Runs cut back to their first checkpoint and resumed: they must end with the uninterrupted run's files. */
const RESUMED = ["text-boft", "brown-lora-dropout", "brown-full"];

function train(dir: string, ...args: string[]): void {
  // The thread count fixed, so the recorded hashes do not depend on the machine's cores.
  const r = spawnSync(process.execPath, [BIN, "train", "--config", path.join(dir, "run.json"), ...args], { encoding: "utf8", env: { ...process.env, BOFT_THREADS: "2" } });
  assert.equal(r.status, 0, `${path.basename(dir)}: ${r.stderr}`);
}

const filesOf = (dir: string): string[] => fs.readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => fs.statSync(path.join(dir, f)).isFile()).sort();

/** SHA-256 of every file under the run's out/, with paths (and metrics' elapsedMs) made independent of where it ran. */
function hashes(dir: string): Record<string, string> {
  const out = path.join(dir, "out");
  const result: Record<string, string> = {};
  for (const f of filesOf(out)) {
    let text = fs.readFileSync(path.join(out, f), "latin1").replaceAll(dir, "<RUN>").replaceAll(REPO, "<REPO>");
    if (f === "metrics.jsonl") text = text.replace(/,"elapsedMs":[0-9.e+-]+/g, "");
    result[f] = createHash("sha256").update(text, "latin1").digest("hex");
  }
  return result;
}

/** A copy of run folder `from` cut back to its first checkpoint, as a run stopped there leaves it. */
function cutBack(from: string, dir: string): number {
  fs.cpSync(from, dir, { recursive: true });
  const out = path.join(dir, "out");
  const steps = fs.readdirSync(out).filter((n) => /^checkpoint-\d+$/.test(n)).map((n) => Number(n.slice(11))).sort((a, b) => a - b);
  for (const s of steps.slice(1)) fs.rmSync(path.join(out, `checkpoint-${String(s).padStart(6, "0")}`), { recursive: true });
  for (const n of ["adapter", "model", "loss.svg"]) fs.rmSync(path.join(out, n), { recursive: true, force: true });
  const lines = fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8").split("\n");
  const at = lines.findIndex((l) => l.startsWith(`{"kind":"checkpoint","step":${steps[0]},`));
  fs.writeFileSync(path.join(out, "metrics.jsonl"), lines.slice(0, at + 1).join("\n").replaceAll(from, dir) + "\n");
  return steps[0];
}

test("boft train: the same adapters, checkpoints, metrics and plots as recorded, straight and resumed", { timeout: 900_000 }, () => {
  const got: Record<string, Record<string, string>> = {};
  for (const [name, run] of Object.entries(RUNS)) {
    const dir = path.join(root, name);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "run.json"), JSON.stringify({ ...run, output: "out" }, null, 1));
    train(dir);
    got[name] = hashes(dir);
  }
  for (const name of RESUMED) {
    const dir = path.join(root, `${name}-resumed`);
    const step = cutBack(path.join(root, name), dir);
    assert.ok(step < (RUNS[name] as { train: { steps: number } }).train.steps, `${name}: cut back to step ${step}`);
    train(dir, "--resume");
    assert.deepEqual(hashes(dir), got[name], `${name} resumed from step ${step}`);
  }
  if (process.env.BOFT_GOLDEN === "write") {
    fs.writeFileSync(GOLDEN, JSON.stringify(got, null, 1) + "\n");
    return;
  }
  const want = JSON.parse(fs.readFileSync(GOLDEN, "utf8")) as typeof got;
  assert.deepEqual(Object.keys(got), Object.keys(want));
  for (const name of Object.keys(want)) assert.deepEqual(got[name], want[name], name);
});
