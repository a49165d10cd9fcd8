/**
 * `boft train` / `boft generate` as users run them (node bin/boft.js, after `npm run build`) on the model the
 * repository ships: assets/brown-lm trains on the user's own text ("kind": "text") and generates, through its
 * tokenizer.json.
 */
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { encode, decode } from "../src/data/text.js";
import { writeAdapterDir } from "./merge-helpers.js";
import { BROWN_LM, TEXT, boft } from "./cli-helpers.js";


const root = fs.mkdtempSync(path.join(os.tmpdir(), "boft-cli-run-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));

describe("boft train + generate on assets/brown-lm", () => {
  const run = path.join(root, "run.json");
  const out = path.join(root, "out");

  it('trains a BOFT adapter on "kind": "text" JSONL through the tokenizer.json', () => {
    fs.writeFileSync(
      run,
      JSON.stringify({
        model: { hf: BROWN_LM },
        data: { kind: "text", path: TEXT, seqLen: 32, batchSize: 4 },
        method: { peft_type: "BOFT", boft_block_size: 8, boft_n_butterfly_factor: 2, target_modules: ["q_proj", "v_proj"] },
        train: { steps: 3, lr: 0.01, seed: 0 },
        output: out,
      }),
    );
    const r = boft("train", "--config", run);
    assert.equal(r.status, 0, r.stderr);
    const config = JSON.parse(fs.readFileSync(path.join(out, "adapter", "adapter_config.json"), "utf8")) as { peft_type: string; base_model_name_or_path: string };
    assert.equal(config.peft_type, "BOFT");
    assert.equal(config.base_model_name_or_path, BROWN_LM);
    const steps = fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { kind: string; loss?: number }).filter((e) => e.kind === "step");
    assert.equal(steps.length, 3);
    // brown-lm already models English characters: its loss starts far below ln(97) = 4.57 of a uniform guess.
    assert.ok(steps.every((e) => Number.isFinite(e.loss) && e.loss! < 3), JSON.stringify(steps));
  });

  it("generates through the trained adapter; ids are the character vocabulary's", () => {
    const prompt = "The committee said";
    const r = boft("generate", "--model", BROWN_LM, "--adapter", path.join(out, "adapter"), "--prompt", prompt, "--max-new-tokens", "12", "--json");
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout.trim().split("\n").pop()!) as { prompt_ids: number[]; output_ids: number[]; text: string };
    assert.deepEqual(j.prompt_ids, Array.from(encode(prompt)));
    assert.equal(j.output_ids.length, 12);
    assert.equal(j.text, decode(j.output_ids));
  });
});

describe("boft generate and train say what happens", () => {
  it("generate stops at max_position_embeddings (256) with a note, and refuses a prompt that fills it", () => {
    const prompt = "a".repeat(250);
    const r = boft("generate", "--model", BROWN_LM, "--prompt", prompt, "--max-new-tokens", "300", "--json");
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout.trim().split("\n").pop()!) as { output_ids: number[] };
    assert.equal(j.output_ids.length, 6);
    assert.match(r.stderr, /note: stopped after 6 new tokens, at max_position_embeddings = 256 \(prompt 250 \+ 300 asked would pass it\)/);
    const long = boft("generate", "--model", BROWN_LM, "--prompt", "a".repeat(256), "--max-new-tokens", "1");
    assert.equal(long.status, 1);
    assert.match(long.stderr, /^boft generate: the prompt is 256 tokens; the model takes at most max_position_embeddings = 256 in all\n$/);
  });

  it("generate with an adapter made for another model says so", () => {
    const other = path.join(root, "other-model-adapter");
    // BOFT on a 64-wide q_proj: [m, n/b, b, b] = [2, 8, 4, 4]; brown-lm's q_proj is 128 wide.
    const tensors = [0, 1, 2, 3].flatMap((l) => [
      { key: `base_model.model.model.layers.${l}.self_attn.q_proj.boft_R`, shape: [2, 16, 4, 4], data: new Float64Array(512) },
      { key: `base_model.model.model.layers.${l}.self_attn.q_proj.boft_s`, shape: [64, 1], data: new Float64Array(64).fill(1) },
    ]);
    writeAdapterDir(other, { peft_type: "BOFT", boft_block_size: 4, boft_n_butterfly_factor: 2, target_modules: ["q_proj"], base_model_name_or_path: "tiny-64" }, tensors);
    const r = boft("generate", "--model", BROWN_LM, "--adapter", other, "--prompt", "The", "--max-new-tokens", "2");
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /^boft generate: .*The adapter was trained for another model \(tiny-64\)\.\n$/);
  });

  it("OFT's block-size auto-adjust is a warning in train and in generate, as in merge", () => {
    const run = path.join(root, "oft.json");
    const out = path.join(root, "oft");
    fs.writeFileSync(
      run,
      JSON.stringify({
        model: { hf: BROWN_LM },
        data: { kind: "text", path: TEXT, seqLen: 32, batchSize: 2 },
        method: { peft_type: "OFT", oft_block_size: 12, r: 0, target_modules: ["q_proj"] },
        train: { steps: 1, lr: 0.01 },
        output: out,
      }),
    );
    const warning = /warning: Invalid `oft_block_size` \(12\)! Adjusted `oft_block_size` to \(\d+\)\./;
    const t = boft("train", "--config", run);
    assert.equal(t.status, 0, t.stderr);
    assert.match(t.stderr, warning);
    const g = boft("generate", "--model", BROWN_LM, "--adapter", path.join(out, "adapter"), "--prompt", "The", "--max-new-tokens", "2");
    assert.equal(g.status, 0, g.stderr);
    assert.match(g.stderr, warning);
  });

  it("an adapter file with a key PEFT does not know keeps PEFT's newer-PEFT warning (run.json's method rejects it)", () => {
    const dir = path.join(root, "newer-peft-adapter");
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(root, "out", "adapter", "adapter_model.safetensors"), path.join(dir, "adapter_model.safetensors"));
    const config = JSON.parse(fs.readFileSync(path.join(root, "out", "adapter", "adapter_config.json"), "utf8")) as Record<string, unknown>;
    fs.writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify({ ...config, boft_future_option: 3 }));
    const r = boft("generate", "--model", BROWN_LM, "--adapter", dir, "--prompt", "The", "--max-new-tokens", "2");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /warning: .*ignoring keys unknown to BOFTConfig: \['boft_future_option'\]\. The file was probably written by a newer PEFT/);
  });

  it("--version prints the package's name and version", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(process.cwd(), "package.json"), "utf8")) as { version: string };
    const r = boft("--version");
    assert.equal(r.status, 0);
    assert.equal(r.stdout, `boft ${pkg.version}\n`);
  });
});

describe("data.eval and the step-0 evaluation", () => {
  it("evaluates a separate file: the base at step 0 (= boft eval --base) and the final model, in metrics.jsonl and loss.svg", () => {
    const run = path.join(root, "eval-run.json");
    const out = path.join(root, "eval-out");
    const evalFile = path.join(process.cwd(), "examples", "text", "eval.jsonl");
    const seqLen = 16;
    fs.writeFileSync(
      run,
      JSON.stringify({
        model: { hf: BROWN_LM },
        data: { kind: "text", path: TEXT, eval: evalFile, seqLen, batchSize: 4, evalWindows: 64 },
        method: { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj"] },
        train: { steps: 2, lr: 0.01 },
        output: out,
      }),
    );
    const r = boft("train", "--config", run);
    assert.equal(r.status, 0, r.stderr);
    type Ev = { kind: string; step: number; split: string; loss: number; metrics: { tokens: number } };
    const events = fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Ev);
    const evals = events.filter((e) => e.kind === "eval");
    assert.deepEqual(evals.map((e) => [e.step, e.split]), [[0, "val"], [2, "val"]]);
    assert.equal(events[0].kind, "eval", "the base is evaluated before the first step");
    // Every window of the eval file, and nothing of the training file: its tokens are the eval file's text.
    const evalTokens = fs.readFileSync(evalFile, "utf8").trim().split("\n").reduce((n, l) => n + encode((JSON.parse(l) as { text: string }).text).length, 0);
    assert.equal(evals[0].metrics.tokens, Math.floor((evalTokens - 1) / seqLen) * seqLen);
    const base = boft("eval", "--config", run, "--base");
    assert.equal(base.status, 0, base.stderr);
    const row = base.stdout.split("\n").find((l) => l.startsWith("val "))!;
    assert.equal(Number(row.trim().split(/\s+/)[1]).toFixed(2), evals[0].loss.toFixed(2), `${row} vs ${evals[0].loss}`);
    // loss.svg: the eval curve has a marker on the x tick of step 0.
    const svg = fs.readFileSync(path.join(out, "loss.svg"), "utf8");
    const zero = /<text x="([\d.]+)" y="[\d.]+" text-anchor="middle">0<\/text>/.exec(svg);
    assert.ok(zero, "an x tick at step 0");
    assert.ok(svg.includes(`<circle cx="${zero[1]}"`), "a point at step 0");
  });

  it("data.eval with valFraction is refused (one of them)", () => {
    const run = path.join(root, "eval-both.json");
    fs.writeFileSync(run, JSON.stringify({ model: { hf: BROWN_LM }, data: { kind: "text", path: TEXT, eval: TEXT, valFraction: 0.1, seqLen: 16, batchSize: 2 }, method: { peft_type: "FULL" }, output: "x" }));
    const r = boft("train", "--config", run);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /give either "eval" \(a separate evaluation file\) or "valFraction"/);
  });
});
