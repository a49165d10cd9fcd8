/**
 * `boft train` never loses an earlier run by mistake (issue 16, cases 3–5): every setting is checked before the
 * output folder is touched, a new run refuses a non-empty folder without --overwrite, --resume continues only a
 * checkpoint of the same run.json (naming what differs), and run.json's method rejects typos.
 * Runs the CLI on assets/brown-lm with the tiny JSONL of examples/text (a few seconds per run).
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { BROWN_LM, TEXT, boft } from "./cli-helpers.js";


const root = fs.mkdtempSync(path.join(os.tmpdir(), "boft-run-guard-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const out = path.join(root, "out");

type Run = { model: Record<string, unknown>; data: Record<string, unknown>; method: Record<string, unknown>; train: Record<string, unknown>; output: string };
const good = (): Run => ({
  model: { hf: BROWN_LM },
  data: { kind: "text", path: TEXT, seqLen: 32, batchSize: 2 },
  method: { peft_type: "BOFT", boft_block_size: 8, boft_n_butterfly_factor: 2, target_modules: ["q_proj", "v_proj"] },
  train: { steps: 3, lr: 0.01, checkpointEvery: 1, seed: 0 },
  output: out,
});

let n = 0;
function config(run: Run): string {
  const file = path.join(root, `run-${n++}.json`);
  fs.writeFileSync(file, JSON.stringify(run));
  return file;
}

/** Every file under `dir` with a hash of its bytes (null: the folder does not exist). */
function snapshot(dir: string): Record<string, string> | null {
  if (!fs.existsSync(dir)) return null;
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = createHash("sha256").update(new Uint8Array(fs.readFileSync(p))).digest("hex");
    }
  };
  walk(dir);
  return out;
}

function refused(args: string[], error: RegExp, dir = out): void {
  const before = snapshot(dir);
  const r = boft("train", ...args);
  assert.equal(r.status, 1, `exit code; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0], /^boft train: /);
  assert.match(lines[0], error);
  assert.deepEqual(snapshot(dir), before, "the output folder is unchanged");
}

describe("boft train: nothing of an earlier run is lost by a mistake", () => {
  let earlierMetrics = 0;
  before(() => {
    const r = boft("train", "--config", config(good()));
    assert.equal(r.status, 0, r.stderr);
    earlierMetrics = fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8").trim().split("\n").length;
    assert.ok(earlierMetrics >= 7, `the earlier run logged ${earlierMetrics} lines`);
  });

  const bad: { name: string; edit: (r: Run) => void; error: RegExp }[] = [
    { name: "warmupSteps > steps", edit: (r) => (r.train.warmupSteps = 10), error: /train\.warmupSteps must be an integer in \[0, steps\] \(warmupSteps=10, steps=3\)/ },
    { name: "lr < 0", edit: (r) => (r.train.lr = -1), error: /train\.lr must be a number > 0 \(lr=-1\)/ },
    { name: "lr 0", edit: (r) => (r.train.lr = 0), error: /train\.lr must be a number > 0 \(lr=0\)/ },
    { name: "steps 0", edit: (r) => (r.train.steps = 0), error: /train\.steps must be an integer ≥ 1 \(steps=0\)/ },
    {
      name: "a typo in method",
      edit: (r) => ((r.method.boft_n_butterfy_factor = 2), delete r.method.boft_n_butterfly_factor),
      error: /method: unknown key "boft_n_butterfy_factor" \(did you mean "boft_n_butterfly_factor"\?\); allowed: .*boft_block_size/,
    },
    { name: "a missing data file", edit: (r) => (r.data.path = path.join(root, "nowhere.jsonl")), error: /nowhere\.jsonl: no such file or folder/ },
    { name: "a missing eval file", edit: (r) => (r.data.eval = path.join(root, "no-eval.jsonl")), error: /no-eval\.jsonl: no such file or folder/ },
    { name: "seqLen longer than the text", edit: (r) => (r.data.seqLen = 100_000), error: /the training data has \d+ tokens, fewer than seqLen \+ 1 = 100001/ },
    { name: "a missing model folder", edit: (r) => (r.model.hf = path.join(root, "no-model")), error: /no-model: not a folder/ },
    { name: "an adapter shape the model cannot take", edit: (r) => (r.method.boft_block_size = 7), error: /in_features \(128\) must be divisible by boft_block_size \(7\)/ },
  ];
  for (const c of bad) {
    it(`${c.name}: refused before the folder is touched, with or without --overwrite / --resume`, () => {
      const run = good();
      c.edit(run);
      const file = config(run);
      for (const flags of [[], ["--overwrite"], ["--resume"]]) refused(["--config", file, ...flags], c.error);
      assert.equal(fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8").trim().split("\n").length, earlierMetrics);
    });
  }

  it("a new run into the earlier run's folder is refused without --overwrite", () => {
    refused(["--config", config(good())], /out is not empty \(adapter, checkpoint-000001, .*\): give --resume to continue the run there, --overwrite to replace it/);
  });

  it("--resume with another run.json names every field that differs", () => {
    const run = good();
    run.train.steps = 20;
    run.method.boft_block_size = 4;
    refused(["--config", config(run), "--resume"], /checkpoint-000003 belongs to another run: method\.boft_block_size is 8 there, 4 in run\.json; train\.steps is 3 there, 20 in run\.json/);
  });

  it("--resume with no checkpoint leaves nothing behind", () => {
    const run = good();
    run.output = path.join(root, "fresh");
    refused(["--config", config(run), "--resume"], /--resume: no checkpoint in .*fresh; start the run without --resume/, run.output);
    assert.ok(!fs.existsSync(run.output));
  });

  it("--resume and --overwrite together are a usage error", () => {
    const r = boft("train", "--config", config(good()), "--resume", "--overwrite");
    assert.equal(r.status, 2);
  });

  it("--overwrite replaces a longer earlier run: its later checkpoints go, so --resume cannot pick them up", () => {
    const long = good();
    long.train.steps = 5;
    assert.equal(boft("train", "--config", config(long), "--overwrite").status, 0);
    assert.ok(fs.existsSync(path.join(out, "checkpoint-000005")));
    fs.writeFileSync(path.join(out, "notes.txt"), "the user's own file");
    const short = config(good());
    const r = boft("train", "--config", short, "--overwrite");
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(fs.readdirSync(out).filter((f) => f.startsWith("checkpoint-")).sort(), ["checkpoint-000001", "checkpoint-000002", "checkpoint-000003"]);
    assert.equal(fs.readFileSync(path.join(out, "notes.txt"), "utf8"), "the user's own file");
    const adapter = fs.readFileSync(path.join(out, "adapter", "adapter_model.safetensors"));
    const resumed = boft("train", "--config", short, "--resume");
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr + resumed.stdout, /resuming from step 3 of 3 \(.*checkpoint-000003\)/);
    assert.deepEqual(fs.readFileSync(path.join(out, "adapter", "adapter_model.safetensors")), adapter);
  });

  it("a checkpoint that does not record its run (older boft) is not resumed", () => {
    const state = path.join(out, "checkpoint-000003", "trainer_state.json");
    const s = JSON.parse(fs.readFileSync(state, "utf8")) as Record<string, unknown>;
    delete s.run;
    fs.writeFileSync(state, JSON.stringify(s));
    refused(["--config", config(good()), "--resume"], /checkpoint-000003 does not record its run's settings \(an older boft wrote it\)/);
  });
});
