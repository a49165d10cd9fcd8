/**
 * Every examples/*.json run config parses, loads its model and data and trains (for two steps, on less data, into a
 * temp folder), so the examples cannot rot. The finetuning examples start from the shipped pretrained weights.
 */
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readRunConfig } from "../src/node/run-config.js";
import { runTraining } from "../src/node/run.js";
import type { EvalEvent } from "../src/train/metrics.js";

const dir = path.join(process.cwd(), "examples");
const root = fs.mkdtempSync(path.join(os.tmpdir(), "boft-examples-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const examples = fs.readdirSync(dir).filter((f) => f.endsWith(".json")).sort();

describe("examples/*.json", () => {
  it("has a text example with its own eval file and a finetuning example from assets/mnist-cnn.safetensors", () => {
    const text = readRunConfig(path.join(dir, "text-boft.json"));
    assert.ok(text.data.kind === "text" && text.data.eval && fs.existsSync(text.data.eval) && fs.existsSync(text.data.path));
    const cnn = readRunConfig(path.join(dir, "mnist-cnn-boft.json"));
    assert.ok("weights" in cnn.model && cnn.model.weights === path.join(process.cwd(), "assets", "mnist-cnn.safetensors"));
  });

  for (const name of examples) {
    it(`${name} trains for 2 steps`, async () => {
      const cfg = readRunConfig(path.join(dir, name));
      const steps = 2;
      Object.assign(cfg.train, { steps, warmupSteps: Math.min(cfg.train.warmupSteps, steps), evalEvery: 0, checkpointEvery: 0, snapshotEvery: 0 });
      cfg.output = path.join(root, name.replace(/\.json$/, ""));
      if (cfg.data.kind === "mnist") Object.assign(cfg.data, { trainLimit: 256, evalLimit: 200 });
      if (cfg.data.kind === "brown") cfg.data.evalWindows = 4;
      const evals: EvalEvent[] = [];
      const losses: number[] = [];
      const r = await runTraining(cfg, { onEvent: (e) => (e.kind === "step" ? losses.push(e.loss) : e.kind === "eval" && evals.push(e)) });
      assert.equal(losses.length, steps);
      assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
      assert.ok(fs.existsSync(path.join(r.adapterDir, cfg.method ? "adapter_model.safetensors" : "model.safetensors")));
      assert.ok(r.finalEval.length > 0 && r.finalEval.every((e) => Number.isFinite(e.loss)));
      if (name === "mnist-cnn-boft.json") {
        // Finetuning starts from the pretrained CNN: upright digits are already recognised at step 0.
        const upright = evals.find((e) => e.step === 0 && e.split === "upright")!;
        assert.ok(upright.metrics!.accuracy > 0.9, `step-0 upright accuracy ${upright.metrics!.accuracy}`);
      }
      if (name === "text-boft.json") {
        // brown-lm already models English text: far below a uniform guess over 97 characters (ln 97 = 4.57).
        const base = evals.find((e) => e.step === 0)!;
        assert.ok(base.loss < 2.5, `step-0 eval loss ${base.loss}`);
      }
    });
  }
});
