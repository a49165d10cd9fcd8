/** `boft train` runs from run.json: a deep Llama (≥ 12 layers) trains through the layer-by-layer backward. */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as nodePath from "node:path";
import { readRunConfig } from "../src/node/run-config.js";
import { runTraining, LAYERWISE_FROM_LAYERS } from "../src/node/run.js";

test("a 12-layer Llama trains with BOFT via layer-wise gradients; the adapter has PEFT's keys", async () => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "boft-run-"));
  const run = {
    model: {
      arch: "llama",
      config: {
        model_type: "llama", vocab_size: 97, hidden_size: 16, intermediate_size: 24, num_hidden_layers: LAYERWISE_FROM_LAYERS,
        num_attention_heads: 2, num_key_value_heads: 1, head_dim: 8, rms_norm_eps: 1e-5, max_position_embeddings: 64,
      },
    },
    data: { kind: "brown", train: ["humor"], eval: { val: ["humor"] }, seqLen: 16, batchSize: 2, evalWindows: 4 },
    method: { peft_type: "BOFT", boft_block_size: 4, boft_n_butterfly_factor: 2 },
    train: { steps: 6, lr: 0.02, seed: 0 },
    output: "out",
  };
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
