/**
 * Ctrl-C during `boft train`: the current step finishes, a checkpoint is written, the user is told how to resume
 * (exit 130), and the resumed run says where it continues and ends with the uninterrupted run's adapter, byte for byte.
 */
import { it, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { BIN } from "./cli-helpers.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "boft-interrupt-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));

function runJson(output: string): string {
  const file = path.join(root, `${path.basename(output)}.json`);
  fs.writeFileSync(
    file,
    JSON.stringify({
      model: { hf: path.join(process.cwd(), "assets", "brown-lm") },
      data: { kind: "text", path: path.join(process.cwd(), "examples", "text", "train.jsonl"), seqLen: 32, batchSize: 2 },
      method: { peft_type: "OFT", oft_block_size: 16, r: 0, target_modules: ["q_proj"] },
      train: { steps: 12, lr: 0.01, warmupSteps: 2, seed: 3 },
      output,
    }),
  );
  return file;
}

const stepsLogged = (metrics: string) => (fs.existsSync(metrics) ? fs.readFileSync(metrics, "utf8").split("\n").filter((l) => l.includes('"kind":"step"')).length : 0);

it("SIGINT: checkpoint after the current step, exit 130 with the resume command; --resume says the step and finishes identically", async () => {
  const straight = path.join(root, "straight");
  const r0 = spawnSync(process.execPath, [BIN, "train", "--config", runJson(straight)], { encoding: "utf8" });
  assert.equal(r0.status, 0, r0.stderr);

  const cut = path.join(root, "cut");
  const config = runJson(cut);
  const child = spawn(process.execPath, [BIN, "train", "--config", config], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += String(d)));
  child.stderr.on("data", (d: Buffer) => (stderr += String(d)));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const metrics = path.join(cut, "metrics.jsonl");
  const deadline = Date.now() + 120_000;
  while (stepsLogged(metrics) < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  child.kill("SIGINT");
  const code = await exited;
  assert.equal(code, 130, `exit code; stderr:\n${stderr}`);
  const m = /interrupted after step (\d+) of 12; checkpoint: (.*checkpoint-0000(\d\d))\n/.exec(stderr);
  assert.ok(m, stderr);
  const step = Number(m[1]);
  assert.ok(step >= 2 && step < 12, `stopped at step ${step}`);
  assert.equal(Number(m[3]), step);
  assert.ok(fs.existsSync(path.join(m[2], "trainer_state.json")));
  assert.match(stderr, new RegExp(`resume with: boft train --config ${config.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} --resume\n`));
  assert.ok(!fs.existsSync(path.join(cut, "adapter")), "no final adapter from an interrupted run");
  assert.equal(stepsLogged(metrics), step, "every finished step is logged, none after the checkpoint");

  const r1 = spawnSync(process.execPath, [BIN, "train", "--config", config, "--resume"], { encoding: "utf8" });
  assert.equal(r1.status, 0, r1.stderr);
  assert.match(r1.stdout, new RegExp(`resuming from step ${step} of 12 \\(.*checkpoint-0000${String(step).padStart(2, "0")}\\)`));
  const file = (dir: string) => new Uint8Array(fs.readFileSync(path.join(dir, "adapter", "adapter_model.safetensors")));
  assert.deepEqual(file(cut), file(straight));
  assert.equal(stepsLogged(metrics), 12);
});
