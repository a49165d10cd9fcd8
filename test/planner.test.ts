/**
 * The parameter planner (src/methods/planner.ts): counting formulas against hand-computed small cases and against
 * the tensors initAdapter really creates for the same modules; model shapes from config.json and the presets; the
 * paper's reported counts and the rules that reproduce them; `boft inspect --model`.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { tree, type Arr } from "../src/engine/index.js";
import { ConfigError, FormatError } from "../src/errors.js";
import { boftConfig } from "../src/methods/boft/config.js";
import { oftConfig } from "../src/methods/oft/config.js";
import { loraConfig } from "../src/methods/lora/config.js";
import type { AdapterMethod } from "../src/methods/method.js";
import { planAdapter, initAdapter } from "../src/methods/adapter.js";
import { type ModelShape, planParameters, planModule, groupPlannedModules } from "../src/methods/planner.js";
import { PAPER_CLAIMS, explainClaim, roundsTo } from "../src/methods/paper-counts.js";
import { MODEL_PRESETS, findModelPreset, presetModelShape, modelShapeFromConfig } from "../src/formats/hf-model-shapes.js";
import { normalSampler } from "./helpers.js";

/** A toy model: two linears per layer (one with a bias) and a conv stem. */
const TOY: ModelShape = {
  name: "toy",
  modelType: "toy",
  totalParams: 10_000,
  modules: [
    { path: "stem.conv", kind: "conv2d", inFeatures: 2, outFeatures: 4, kernel: [3, 3], bias: true }, // n = 2·3·3 = 18
    { path: "model.layers.0.q", kind: "linear", inFeatures: 16, outFeatures: 8 },
    { path: "model.layers.0.v", kind: "linear", inFeatures: 16, outFeatures: 12, bias: true },
    { path: "model.layers.1.q", kind: "linear", inFeatures: 16, outFeatures: 8 },
    { path: "model.layers.1.v", kind: "linear", inFeatures: 16, outFeatures: 12, bias: true },
  ],
  otherBiasParams: 5,
};

const boft = (o: Parameters<typeof boftConfig>[0]): AdapterMethod => ({ kind: "BOFT", config: boftConfig(o) });
const oft = (o: Parameters<typeof oftConfig>[0]): AdapterMethod => ({ kind: "OFT", config: oftConfig(o) });
const lora = (o: Parameters<typeof loraConfig>[0]): AdapterMethod => ({ kind: "LORA", config: loraConfig(o) });

describe("planner.planModule()", () => {
  const q = TOY.modules[1];
  it("counts BOFT m=2 b=4 on a 16→8 linear by hand: stored 2·16·4 + 8, effective ½·3·16·2 + 8, span 4·2", () => {
    const p = planModule(boft({ blockSize: 4, nButterflyFactor: 2 }), q);
    assert.deepEqual(p.tensors, { boft_R: [2, 4, 4, 4], boft_s: [8, 1] });
    assert.equal(p.stored, 136);
    assert.equal(p.effective, 56);
    assert.equal(p.span, 8);
  });
  it("counts a Conv2d over in·kh·kw (n = 18), with boft_s [1, out]", () => {
    const p = planModule(boft({ blockSize: 3 }), TOY.modules[0]);
    assert.equal(p.n, 18);
    assert.deepEqual(p.tensors, { boft_R: [1, 6, 3, 3], boft_s: [1, 4] });
    assert.equal(p.stored, 1 * 18 * 3 + 4);
    assert.equal(p.effective, (2 * 18) / 2 + 4);
  });
  it("counts OFT as packed upper triangles: r·b(b−1)/2, one block with block_share", () => {
    assert.equal(planModule(oft({ blockSize: 4 }), q).stored, 4 * 6);
    assert.equal(planModule(oft({ blockSize: 4, blockShare: true }), q).stored, 6);
    assert.deepEqual(planModule(oft({ r: 2, blockSize: 0 }), q).tensors, { "oft_R.weight": [2, 28] });
  });
  it("keeps OFT's auto-adjust warning (block size 5 on n = 16 becomes 4)", () => {
    const p = planModule(oft({ blockSize: 5 }), q);
    assert.equal(p.stored, 4 * 6);
    assert.match(p.warnings[0], /Adjusted `oft_block_size` to \(4\)/);
  });
  it("counts LoRA as r·(n + out)", () => {
    const p = planModule(lora({ r: 2 }), TOY.modules[2]);
    assert.equal(p.stored, 2 * (16 + 12));
    assert.deepEqual(p.tensors, { "lora_A.weight": [2, 16], "lora_B.weight": [12, 2] });
  });
  it("rejects what PEFT rejects, with PEFT's message", () => {
    assert.throws(() => planModule(boft({ blockSize: 3, nButterflyFactor: 2 }), TOY.modules[0]), ConfigError);
    assert.throws(() => planModule(boft({ blockSize: 16, nButterflyFactor: 2 }), q), /Invalid combination of in_features \(16\), boft_n_butterfly_factor \(2\)/);
    assert.throws(() => planModule(lora({ r: 2 }), TOY.modules[0]), /LoRA here adapts Linear layers only/);
  });
});

describe("planner.planParameters()", () => {
  it("sums the matched modules and reports shares of the model", () => {
    const plan = planParameters(TOY, boft({ blockSize: 4, nButterflyFactor: 2, targetModules: ["q", "v"] }));
    assert.equal(plan.totals.modules, 4);
    assert.equal(plan.totals.stored, 2 * (136 + (2 * 16 * 4 + 12)));
    assert.equal(plan.totals.effective, 2 * (56 + (48 + 12)));
    assert.equal(plan.percent.stored, (100 * plan.totals.stored) / 10_000);
  });
  it("counts biases: <method>_only takes the adapted modules', all takes every listed bias", () => {
    const only = planParameters(TOY, boft({ blockSize: 4, targetModules: ["q", "v"], bias: "boft_only" }));
    assert.equal(only.totals.bias, 2 * 12);
    const all = planParameters(TOY, boft({ blockSize: 4, targetModules: ["q"], bias: "all" }));
    assert.equal(all.totals.bias, 2 * 12 + 4 + 5);
    assert.equal(planParameters(TOY, boft({ blockSize: 4, targetModules: ["q", "v"] })).totals.bias, 0);
  });
  it("matches targets as PEFT does (layers_to_transform narrows) and fails when nothing matches", () => {
    const one = planParameters(TOY, lora({ r: 2, targetModules: ["v"], layersToTransform: [1] }));
    assert.deepEqual(one.modules.map((p) => p.path), ["model.layers.1.v"]);
    assert.throws(() => planParameters(TOY, lora({ r: 2, targetModules: ["k_proj"] })), /no module of toy matches/);
  });
  it("uses PEFT's default targets for the model type when target_modules is null", () => {
    const llama = presetModelShape(findModelPreset("Llama-2-7B")!);
    const plan = planParameters(llama, lora({ r: 8 }));
    assert.deepEqual(plan.targets, ["q_proj", "v_proj"]);
    assert.equal(plan.totals.stored, 32 * 2 * 8 * (4096 + 4096)); // 4,194,304
  });
  it("groups modules by name across layers", () => {
    const g = groupPlannedModules(planParameters(TOY, lora({ r: 2, targetModules: ["q", "v"] })).modules);
    assert.deepEqual(g.map((x) => [x.path, x.count, x.stored]), [["model.layers.N.q", 2, 2 * 48], ["model.layers.N.v", 2, 2 * 56]]);
  });
});

/** Flattens initAdapter's params for one module to PEFT key suffixes → shapes. */
function tensorShapes(p: unknown, prefix = ""): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [k, v] of Object.entries(p as Record<string, unknown>)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && "shape" in v) out[key] = (v as Arr).shape.slice();
    else Object.assign(out, tensorShapes(v, key));
  }
  return out;
}

describe("planner against initAdapter's tensors", () => {
  const normal = normalSampler(7);
  const cases: Array<[string, AdapterMethod]> = [
    ["BOFT m=2 b=4", boft({ blockSize: 4, nButterflyFactor: 2, targetModules: ["q", "v"] })],
    ["BOFT D=2 m=2", boft({ blockSize: 0, blockNum: 2, nButterflyFactor: 2, targetModules: ["q", "v"] })],
    ["BOFT conv b=3", boft({ blockSize: 3, targetModules: ["conv"] })],
    ["OFT b=4", oft({ blockSize: 4, targetModules: ["q", "v", "conv"], useCayleyNeumann: false })],
    ["OFT r=4 shared", oft({ r: 4, blockSize: 0, blockShare: true, targetModules: ["q", "v"] })],
    ["LoRA r=3", lora({ r: 3, targetModules: ["q", "v"] })],
  ];
  for (const [name, method] of cases) {
    it(`${name}: every tensor's shape and the stored count equal the real parameters`, () => {
      const plan = planParameters(TOY, method);
      const real = initAdapter(planAdapter(method, TOY.modules), { normal, uniform: () => 0.5 });
      try {
        assert.deepEqual(Object.keys(real).sort(), plan.modules.map((p) => p.path).sort());
        for (const p of plan.modules) {
          const shapes = tensorShapes(real[p.path]);
          assert.deepEqual(shapes, p.tensors, p.path);
          const size = Object.values(shapes).reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
          assert.equal(size, p.stored, p.path);
          if (method.kind === "BOFT") {
            // Effective = the skew part's free entries (b(b−1)/2 per b×b block of boft_R) + boft_s.
            const [m, D, b] = shapes.boft_R;
            assert.equal(p.effective, (m * D * b * (b - 1)) / 2 + shapes.boft_s[0] * shapes.boft_s[1], p.path);
          }
        }
      } finally {
        tree.dispose(Object.values(real) as never);
      }
    });
  }
});

describe("formats.modelShapeFromConfig()", () => {
  it("reads a Qwen2 config: GQA head sizes, q/k/v biases, tied embeddings counted once", () => {
    const cfg = {
      model_type: "qwen2",
      hidden_size: 64,
      intermediate_size: 96,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 16,
      vocab_size: 100,
      tie_word_embeddings: true,
      rope_scaling: { rope_type: "yarn", factor: 4 }, // irrelevant to counting: accepted here
    };
    const m = modelShapeFromConfig(JSON.stringify(cfg), "tiny-qwen2");
    const byName = Object.fromEntries(m.modules.filter((x) => x.path.startsWith("model.layers.0.")).map((x) => [x.path.split(".").at(-1), x]));
    assert.deepEqual([byName.q_proj.outFeatures, byName.k_proj.outFeatures, byName.v_proj.outFeatures, byName.o_proj.inFeatures], [64, 32, 32, 64]);
    assert.deepEqual([byName.q_proj.bias, byName.o_proj.bias, byName.up_proj.bias], [true, false, false]);
    // embed 100·64; per layer q 64·64+64, k,v 64·32+32 each, o 64·64, gate/up/down 3·64·96, 2 norms; final norm.
    const layer = 64 * 64 + 64 + 2 * (64 * 32 + 32) + 64 * 64 + 3 * 64 * 96 + 2 * 64;
    assert.equal(m.totalParams, 100 * 64 + 2 * layer + 64);
  });
  it("names the field when a size is missing, and the supported types when model_type is unknown", () => {
    assert.throws(() => modelShapeFromConfig({ model_type: "llama", hidden_size: 8 }, "x"), (e: Error) => e instanceof FormatError && /intermediate_size/.test(e.message));
    assert.throws(() => modelShapeFromConfig({ model_type: "gpt2" }, "x"), /"deberta-v2", "dinov2"/);
  });
  it("presets carry the published totals: DeBERTaV3-base 184M, DINOv2-large 304M, Llama-2-7B 6,738,415,616", () => {
    const total = (name: string) => presetModelShape(findModelPreset(name)!).totalParams;
    assert.equal(total("microsoft/deberta-v3-base"), 183_831_552); // 98.4M embedding + 85.4M backbone
    assert.equal(total("dinov2-large"), 304_368_640);
    assert.equal(total("llama-2-7b"), 6_738_415_616);
    assert.deepEqual(MODEL_PRESETS.map((p) => presetModelShape(p).modules.length), [72, 145, 225]);
  });
});

describe("paper counts", () => {
  it("roundsTo reads the printed precision", () => {
    assert.ok(roundsTo("0.75M", 746_496, 1));
    assert.ok(!roundsTo("0.75M", 663_552, 1));
    assert.ok(roundsTo("0.12%", 7_970_816, 6_738_415_616));
    assert.ok(!roundsTo("0.12%", 9_330_688, 6_738_415_616));
  });
  it("each reported count is reproduced, and only by the expected target set and rule", () => {
    const expected: Record<string, string[]> = {
      "DeBERTaV3-base OFT b=16": ["all 6 linear / skew + s + bias"],
      "DeBERTaV3-base BOFT m=2 b=8": ["all 6 linear / skew + s + bias"],
      "DeBERTaV3-base LoRA r=8": ["all 6 linear / A + B"],
      "Llama-2-7B BOFT m=2 b=8": ["all 7 linear / skew only"],
    };
    for (const c of PAPER_CLAIMS) {
      const hits = explainClaim(c, presetModelShape(findModelPreset(c.model)!)).filter((x) => x.matches);
      assert.deepEqual(hits.map((h) => `${h.targets} / ${h.rule}`), expected[`${c.model} ${c.label}`], `${c.model} ${c.label}`);
    }
  });
  it("PEFT stores 1,410,048 values for both GLUE orthogonal settings (wy1iu/butterfly-oft#2)", () => {
    const deberta = presetModelShape(findModelPreset("DeBERTaV3-base")!);
    const targets = ["query_proj", "key_proj", "value_proj", "output.dense", "intermediate.dense"];
    assert.equal(planParameters(deberta, boft({ blockSize: 16, targetModules: targets })).totals.stored, 1_410_048);
    assert.equal(planParameters(deberta, boft({ blockSize: 8, nButterflyFactor: 2, targetModules: targets })).totals.stored, 1_410_048);
  });
});

describe("boft inspect --model (CLI)", () => {
  const main = join(dirname(fileURLToPath(import.meta.url)), "..", "cli", "main.js");
  const run = (...args: string[]) => spawnSync(process.execPath, [main, "inspect", ...args], { encoding: "utf8" });
  it("prints the per-module table, totals and the paper's count with the rule that reproduces it", () => {
    const r = run("--model", "DeBERTaV3-base", "--method", "boft", "--block-size", "8", "--factors", "2", "--target", "query_proj,key_proj,value_proj,output.dense,intermediate.dense");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /encoder\.layer\.N\.output\.dense\s+12\s+3,072\s+768\s+m=2 D=384 b=8/);
    assert.match(r.stdout, /stored \(as PEFT saves it\): 1,410,048/);
    assert.match(r.stdout, /reproduced by: all 6 linear, skew \+ s \+ bias = 746,496/);
  });
  it("plans LoRA with --json", () => {
    const r = run("--model", "llama-2-7b", "--method", "lora", "--rank", "8", "--target", "q_proj,v_proj", "--json");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).plan.totals.stored, 4_194_304); // 32 layers × 2 × 8·(4096 + 4096)
  });
  it("refuses a positional with --model, and unknown models, with exit code 2", () => {
    assert.equal(run("some-adapter", "--model", "llama-2-7b").status, 2);
    const r = run("--model", "no-such-model");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /presets: DeBERTaV3-base, DINOv2-large, Llama-2-7B/);
  });
  it("exits 1 with PEFT's message on a shape PEFT rejects", () => {
    const r = run("--model", "llama-2-7b", "--method", "boft", "--block-size", "4096", "--factors", "2");
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Invalid combination of in_features \(4096\), boft_n_butterfly_factor \(2\)/);
  });
});
