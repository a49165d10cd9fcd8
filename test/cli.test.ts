/**
 * The `boft` command as users run it (`node bin/boft.js …`, from the repo root after `npm run build`): merge and
 * inspect on good input, and every bad input of issue 3 exiting non-zero with one line on stderr, leaving no output
 * (no file, no folder, no temp file) and never touching an existing output.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { mergeCheckpoint } from "../src/node/merge-checkpoint.js";
import { normalSampler, loadCase, ref } from "./helpers.js";
import { type NamedTensor, type AdapterTensor, tempDir, tensor, randomValues, writeCheckpoint, writeAdapterDir, readFile, rawSafetensors } from "./merge-helpers.js";
import { boft } from "./cli-helpers.js";


const root = tempDir("boft-cli-test-");
after(() => fs.rmSync(root, { recursive: true, force: true }));
const at = (...p: string[]) => path.join(root, ...p);
const UP = "model.layers.0.mlp.up_proj";
const DOWN = "model.layers.1.mlp.up_proj";

/** Good base: two adapted Linear [24, 16] weights (F32 and BF16) with biases, plus untouched tensors. */
function baseTensors(normal: () => number): NamedTensor[] {
  return [
    tensor(`${UP}.weight`, "F32", [24, 16], normal),
    tensor(`${UP}.bias`, "F32", [24], normal),
    tensor(`${DOWN}.weight`, "BF16", [24, 16], normal),
    tensor("model.norm.weight", "F16", [16], normal),
  ];
}

const BOFT_CONFIG = { peft_type: "BOFT", boft_block_size: 4, boft_n_butterfly_factor: 2, target_modules: ["up_proj"] };

function boftTensors(normal: () => number, modules = [UP, DOWN], n = 16): AdapterTensor[] {
  return modules.flatMap((m) => [
    { key: `base_model.model.${m}.boft_R`, shape: [2, n / 4, 4, 4], data: randomValues([2, n / 4, 4, 4], normal, { std: 0.3, dtype: "F32" }) },
    { key: `base_model.model.${m}.boft_s`, shape: [24, 1], data: randomValues([24, 1], normal, { mean: 1, std: 0.2, dtype: "F32" }) },
  ]);
}

before(() => {
  const normal = normalSampler(31);
  writeCheckpoint(at("base.safetensors"), baseTensors(normal));
  fs.mkdirSync(at("model"));
  fs.copyFileSync(at("base.safetensors"), at("model", "model.safetensors"));
  fs.writeFileSync(at("model", "config.json"), '{"model_type": "llama"}');
  writeAdapterDir(at("boft"), BOFT_CONFIG, boftTensors(normal));
  writeAdapterDir(at("oft"), { peft_type: "OFT", r: 0, oft_block_size: 4, use_cayley_neumann: false, target_modules: ["up_proj"] }, [UP, DOWN].map((m) => ({ key: `base_model.model.${m}.oft_R.weight`, shape: [4, 6], data: randomValues([4, 6], normal, { std: 0.1, dtype: "F32" }) })));
  writeAdapterDir(at("lora"), { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["up_proj"] }, [UP, DOWN].flatMap((m) => [
    { key: `base_model.model.${m}.lora_A.weight`, shape: [4, 16], data: randomValues([4, 16], normal, { dtype: "F32" }) },
    { key: `base_model.model.${m}.lora_B.weight`, shape: [24, 4], data: randomValues([24, 4], normal, { dtype: "F32" }) },
  ]));
});

describe("boft merge (CLI)", () => {
  it("merges into a file: exit 0, a summary on stdout, the same bytes as the library call", () => {
    const r = boft("merge", "--base", at("base.safetensors"), "--adapter", at("boft"), "--out", at("cli-out.safetensors"));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^merged 2 weights, replaced 0 trained tensors, copied 2 unchanged, in [\d.]+ s\nwrote .*cli-out\.safetensors\n$/);
    assert.equal(r.stderr, "");
    mergeCheckpoint({ base: at("base.safetensors"), adapter: at("boft"), out: at("lib-out.safetensors") });
    assert.deepEqual(new Uint8Array(fs.readFileSync(at("cli-out.safetensors"))), new Uint8Array(fs.readFileSync(at("lib-out.safetensors"))));
  });

  it("merges a model folder into a folder, with its config.json", () => {
    const r = boft("merge", "--base", at("model"), "--adapter", at("lora"), "--out", at("merged-model"));
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(fs.readdirSync(at("merged-model")).sort(), ["config.json", "model.safetensors"]);
    assert.equal(fs.readFileSync(at("merged-model", "config.json"), "utf8"), '{"model_type": "llama"}');
  });

  for (const name of ["boft_lin_in32_out12_num4_m2_nobias", "oft_lin_in16_out12_b4_exact_bias"]) {
    it(`${name}: PEFT's merged weight through the CLI (F64) to 1e-12`, () => {
      const c = loadCase(name);
      const dir = at(name);
      const w = ref(c, "base_weight");
      writeCheckpoint(path.join(dir + "-base.safetensors"), [{ name: `${UP}.weight`, dtype: "F64", shape: w.shape, data: Float64Array.from(w.data) }]);
      const params = c.method === "BOFT" ? [["boft_R", "boft_R"], ["boft_s", "boft_s"]] : [["oft_R.weight", "oft_R_weight_after_forward"]];
      const tensors = params.map(([suffix, key]) => ({ key: `base_model.model.${UP}.${suffix}`, shape: ref(c, key).shape, data: Float64Array.from(ref(c, key).data) }));
      writeAdapterDir(dir, { peft_type: c.method, ...c.config, target_modules: ["up_proj"] }, tensors, "F64");
      const r = boft("merge", "--base", dir + "-base.safetensors", "--adapter", dir, "--out", dir + "-out.safetensors");
      assert.equal(r.status, 0, r.stderr);
      const got = readFile(dir + "-out.safetensors").tensors.get(`${UP}.weight`)!.data;
      const want = ref(c, "merged_weight").data;
      const scale = Math.max(...want.map(Math.abs));
      want.forEach((v, k) => assert.ok(Math.abs(got[k] - v) <= 1e-12 * scale, `element ${k}: ${got[k]} vs ${v}`));
    });
  }
});

describe("boft merge (CLI) refuses bad input, leaving no output and existing files untouched", () => {
  const normal = normalSampler(77);
  const good = { base: () => at("base.safetensors"), adapter: () => at("boft") };
  const bad = (name: string) => at("bad", name);
  const f32 = (n: number) => new Uint8Array(4 * n);
  const cases: { name: string; make: () => { base?: string; adapter?: string }; error: RegExp }[] = [
    {
      name: "truncated base file",
      make: () => (fs.writeFileSync(bad("trunc.safetensors"), new Uint8Array(fs.readFileSync(at("base.safetensors"))).subarray(0, -10)), { base: bad("trunc.safetensors") }),
      error: /trunc\.safetensors: .*truncated/,
    },
    {
      name: "header length past the end",
      make: () => (fs.writeFileSync(bad("hdr.safetensors"), rawSafetensors({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, f32(1), { lengthOverride: 5000 })), { base: bad("hdr.safetensors") }),
      error: /header length 5000 runs past the end of the file/,
    },
    {
      name: "overlapping offsets",
      make: () => (fs.writeFileSync(bad("overlap.safetensors"), rawSafetensors({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, f32(3))), { base: bad("overlap.safetensors") }),
      error: /tensor "b" .* overlaps tensor "a"/,
    },
    {
      name: "unknown dtype",
      make: () => (fs.writeFileSync(bad("dtype.safetensors"), rawSafetensors({ a: { dtype: "F8_E4M3", shape: [4], data_offsets: [0, 4] } }, new Uint8Array(4))), { base: bad("dtype.safetensors") }),
      error: /unsupported dtype F8_E4M3 for tensor "a"/,
    },
    {
      name: "adapter shapes that do not fit the base layer",
      make: () => (writeAdapterDir(bad("misfit"), BOFT_CONFIG, boftTensors(normal, [UP], 32)), { adapter: bad("misfit") }),
      error: /boft_R" has shape \[2,8,4,4\], but base .*\[24,16\] needs \[2,4,4,4\]/,
    },
    {
      name: "target tensor missing from the base",
      make: () => (writeAdapterDir(bad("missing"), BOFT_CONFIG, boftTensors(normal, ["model.layers.7.mlp.up_proj"])), { adapter: bad("missing") }),
      error: /adapter targets model\.layers\.7\.mlp\.up_proj, but the base has no tensor "model\.layers\.7\.mlp\.up_proj\.weight"/,
    },
    {
      name: "both boft_block_size and boft_block_num non-zero",
      make: () => (writeAdapterDir(bad("both"), { ...BOFT_CONFIG, boft_block_num: 4 }, boftTensors(normal)), { adapter: bad("both") }),
      error: /both\/adapter_config\.json: You can only specify either boft_block_size \(4\) or boft_block_num \(4\)/,
    },
    ...[NaN, Infinity].map((v) => ({
      name: `${v} in the adapter`,
      make: () => {
        const t = boftTensors(normal);
        t[0].data[5] = v;
        writeAdapterDir(bad(`nonfinite-${v}`), BOFT_CONFIG, t);
        return { adapter: bad(`nonfinite-${v}`) };
      },
      error: new RegExp(`nonfinite-${v}/adapter_model\\.safetensors: tensor ".*boft_R" contains ${v} at index 5; refusing to merge`),
    })),
    {
      name: "Inf in a base weight (found while writing)",
      make: () => {
        const t = baseTensors(normal);
        t[2].data[5 * 16 + 3] = -Infinity;
        writeCheckpoint(bad("inf-base.safetensors"), t);
        return { base: bad("inf-base.safetensors") };
      },
      error: /inf-base\.safetensors: merging "model\.layers\.1\.mlp\.up_proj\.weight" gives (NaN|-?Infinity) in row 5; refusing to merge/,
    },
    {
      name: "an OFT adapter in PEFT's pre-0.15 oft_r format",
      make: () => {
        const old = [UP, DOWN].flatMap((m) => [
          { key: `base_model.model.${m}.oft_r`, shape: [4, 4, 4], data: randomValues([4, 4, 4], normal, { dtype: "F32" }) },
          { key: `base_model.model.${m}.oft_s`, shape: [24, 1], data: randomValues([24, 1], normal, { dtype: "F32" }) },
        ]);
        writeAdapterDir(bad("old-oft"), { peft_type: "OFT", r: 4, oft_block_size: 0, peft_version: "0.14.0" }, old);
        return { adapter: bad("old-oft") };
      },
      error: /Trying to load old OFT checkpoint, which is no longer supported/,
    },
  ];

  before(() => fs.mkdirSync(at("bad")));

  for (const c of cases) {
    it(c.name, () => {
      const made = c.make();
      const args = ["merge", "--base", made.base ?? good.base(), "--adapter", made.adapter ?? good.adapter()];
      const outDir = at("bad", `out-${c.name.replace(/[^a-zA-Z0-9]+/g, "-")}`);
      fs.mkdirSync(outDir);
      const existing = path.join(outDir, "existing.safetensors");
      fs.writeFileSync(existing, "precious");
      fs.mkdirSync(path.join(outDir, "existing-folder"));
      fs.writeFileSync(path.join(outDir, "existing-folder", "model.safetensors"), "old model");
      for (const out of ["new.safetensors", "new-folder/sub", "existing.safetensors", "existing-folder"]) {
        const r = boft(...args, "--out", path.join(outDir, out));
        assert.equal(r.status, 1, `exit code (out=${out}); stderr: ${r.stderr}`);
        assert.equal(r.stdout, "");
        const lines = r.stderr.trimEnd().split("\n");
        assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
        assert.match(lines[0], /^boft merge: /);
        assert.match(lines[0], c.error);
        assert.deepEqual(fs.readdirSync(outDir).sort(), ["existing-folder", "existing.safetensors"], `nothing left behind (out=${out})`);
        assert.equal(fs.readFileSync(existing, "utf8"), "precious");
        assert.deepEqual(fs.readdirSync(path.join(outDir, "existing-folder")), ["model.safetensors"]);
        assert.equal(fs.readFileSync(path.join(outDir, "existing-folder", "model.safetensors"), "utf8"), "old model");
      }
    });
  }

  it("a usage error exits 2 with the usage, and writes nothing", () => {
    const out = at("bad", "usage.safetensors");
    const r = boft("merge", "--base", at("base.safetensors"), "--out", out);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^boft merge: missing --adapter\nusage: boft merge --base/);
    assert.ok(!fs.existsSync(out));
    assert.equal(boft("merge", "--bogus").status, 2);
  });
});

describe("boft inspect (CLI)", () => {
  interface Report {
    config: { kind: string };
    layers: { module: string; n: number | null; count: { stored: number; effective: number }; orthogonalityError: number | null }[];
    totals: { stored: number; effective: number };
  }
  const inspect = (dir: string): Report => {
    const r = boft("inspect", dir, "--json");
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as Report;
  };

  it("BOFT: stored m·n·b + out, effective ½(b−1)·n·m + out, exact Cayley is orthogonal", () => {
    const r = inspect(at("boft"));
    assert.equal(r.config.kind, "BOFT");
    // n = 16, out = 24, b = 4, m = 2: stored 2·16·4 + 24 = 152, effective ½·3·16·2 + 24 = 72, per layer.
    assert.deepEqual(r.layers.map((l) => [l.module, l.n, l.count.stored, l.count.effective]), [[UP, 16, 152, 72], [DOWN, 16, 152, 72]]);
    assert.deepEqual(r.totals, { stored: 304, effective: 144, extras: 0 });
    for (const l of r.layers) assert.ok(typeof l.orthogonalityError === "number" && l.orthogonalityError < 1e-12, `max|QQᵀ−I| = ${l.orthogonalityError}`);
    const text = boft("inspect", at("boft"));
    assert.equal(text.status, 0);
    assert.match(text.stdout, /BOFT adapter/);
    assert.match(text.stdout, /layers: 2 {3}stored parameters: 304 {3}effective \(degrees of freedom\): 144/);
  });

  it("OFT: r·b(b−1)/2 per layer, exact Cayley is orthogonal", () => {
    const r = inspect(at("oft"));
    // r = 4 blocks of b = 4: 4·6 = 24 per layer.
    assert.deepEqual(r.layers.map((l) => [l.n, l.count.stored, l.count.effective]), [[16, 24, 24], [16, 24, 24]]);
    assert.deepEqual(r.totals, { stored: 48, effective: 48, extras: 0 });
    for (const l of r.layers) assert.ok(typeof l.orthogonalityError === "number" && l.orthogonalityError < 1e-12, `max|QQᵀ−I| = ${l.orthogonalityError}`);
  });

  it("LoRA: r·(n + out) per layer, no orthogonality", () => {
    const r = inspect(at("lora"));
    // r = 4, n = 16, out = 24: 4·40 = 160 per layer.
    assert.deepEqual(r.layers.map((l) => [l.n, l.count.stored, l.orthogonalityError]), [[16, 160, null], [16, 160, null]]);
    assert.deepEqual(r.totals, { stored: 320, effective: 320, extras: 0 });
  });

  it("bad input: one line on stderr, exit 1; no argument: usage, exit 2", () => {
    const old = at("inspect-old-oft");
    writeAdapterDir(old, { peft_type: "OFT", r: 4, oft_block_size: 0 }, [{ key: `base_model.model.${UP}.oft_r`, shape: [4, 4, 4], data: new Float64Array(64) }]);
    const rank3 = at("inspect-rank3");
    writeAdapterDir(rank3, BOFT_CONFIG, [{ key: `base_model.model.${UP}.boft_R`, shape: [2, 16, 4], data: new Float64Array(128) }, { key: `base_model.model.${UP}.boft_s`, shape: [24, 1], data: new Float64Array(24) }]);
    for (const p of [at("nowhere"), old, at("base.safetensors"), rank3]) {
      const r = boft("inspect", p);
      assert.equal(r.status, 1, `${p}: ${r.stderr}`);
      assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, /^boft inspect: /);
    }
    assert.equal(boft("inspect").status, 2);
  });
});
