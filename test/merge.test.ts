/**
 * mergeCheckpoint() on real files: random bases (F64/F32/BF16/F16; Linear and Conv2d, square and non-square
 * kernels) and random BOFT (m = 1..4, block-size and block-num forms), OFT (exact, Neumann, block_share, COFT,
 * auto-adjusted b) and LoRA adapters. Each merged weight is compared with an independent float64 path (mergeLayer on
 * float64 arrays of the whole weight, itself checked against PEFT in peft-vectors.test.ts): relative Frobenius error
 * ≤ 1e-5 for F32, ≤ 1e-12 for F64, and for BF16/F16 every element equal to the rounded float64 value or one step
 * (one code) away from it. Every other tensor and the metadata are byte-identical. Merges run both in one chunk
 * and in many small row chunks (uneven last chunk).
 */
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { fromHost, toHost } from "../src/engine/index.js";
import { type StDType, roundTo, encode } from "../src/formats/dtype.js";
import { parseAdapterConfig } from "../src/formats/peft-config.js";
import { type AdapterMethod, type ModuleInfo, type LayerParams, planLayer, layerParamShapes, mergeLayer } from "../src/methods/adapter.js";
import { mergeCheckpoint } from "../src/node/merge-checkpoint.js";
import { normalSampler, caseNames, loadCase, ref } from "./helpers.js";
import { type NamedTensor, type AdapterTensor, tempDir, tensor, randomValues, writeCheckpoint, writeAdapterDir, readFile, size } from "./merge-helpers.js";

const root = tempDir("boft-merge-test-");
after(() => fs.rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = (name: string) => path.join(root, `${dirCount++}-${name}`);

// ---- the float64 path ------------------------------------------------------------------------

function moduleInfo(p: string, shape: number[]): ModuleInfo {
  return shape.length === 2
    ? { path: p, kind: "linear", inFeatures: shape[1], outFeatures: shape[0] }
    : { path: p, kind: "conv2d", inFeatures: shape[1], outFeatures: shape[0], kernel: [shape[2], shape[3]] };
}

function methodOf(config: Record<string, unknown>): AdapterMethod {
  const c = parseAdapterConfig(JSON.stringify(config), "test config");
  return { kind: c.kind, config: c.config } as AdapterMethod;
}

/** The merged weight in float64, whole, from the same numbers the files hold. */
function referenceMerge(method: AdapterMethod, module: string, w: NamedTensor, params: Map<string, AdapterTensor>): Float64Array {
  const plan = planLayer(method, moduleInfo(module, w.shape));
  const p: Record<string, unknown> = {};
  for (const [suffix] of layerParamShapes(plan)) {
    const t = params.get(`base_model.model.${module}.${suffix}`)!;
    const a = fromHost({ dtype: "float64", shape: t.shape, data: t.data });
    const [head, tail] = suffix.split(".");
    p[head] = tail ? { [tail]: a } : a;
  }
  return toHost(mergeLayer(plan, p as LayerParams, fromHost({ dtype: "float64", shape: w.shape, data: w.data }))).data as Float64Array;
}

// ---- comparisons -----------------------------------------------------------------------------

function frobRel(got: Float64Array, want: Float64Array): number {
  let num = 0;
  let den = 0;
  for (let k = 0; k < want.length; k++) (num += (got[k] - want[k]) ** 2), (den += want[k] ** 2);
  return Math.sqrt(num / den);
}

/** Codes of a 16-bit float in value order (−0 and +0 both 0), so adjacent values differ by 1. */
function order16(dtype: StDType, x: Float64Array): Int32Array {
  const b = encode(dtype, x);
  return Int32Array.from({ length: x.length }, (_, i) => {
    const h = b[2 * i] | (b[2 * i + 1] << 8);
    return h & 0x8000 ? -(h & 0x7fff) : h;
  });
}

function assertMerged(name: string, dtype: StDType, got: Float64Array, want: Float64Array): void {
  if (dtype === "F32" || dtype === "F64") {
    const err = frobRel(got, want);
    assert.ok(err <= (dtype === "F32" ? 1e-5 : 1e-12), `${name} (${dtype}): relative error ${err.toExponential(2)}`);
    return;
  }
  const a = order16(dtype, got);
  const b = order16(dtype, roundTo(dtype, want) as Float64Array);
  let far = 0;
  let steps = 0;
  for (let k = 0; k < a.length; k++) {
    const d = Math.abs(a[k] - b[k]);
    if (d > 1) far++;
    steps += d;
  }
  assert.equal(far, 0, `${name} (${dtype}): ${far} elements more than one rounding step from the float64 result`);
  // Float32 arithmetic against float64 rarely lands on the other side of a bf16/f16 rounding boundary.
  assert.ok(steps <= Math.max(2, a.length / 100), `${name} (${dtype}): ${steps} one-step differences in ${a.length} elements`);
}

// ---- cases -----------------------------------------------------------------------------------

interface Layer {
  shape: number[];
  dtype: StDType;
}
interface Case {
  name: string;
  config: Record<string, unknown>;
  layers: Layer[];
  /** bias="all": trained biases of the adapted layers replace the base biases. */
  trainedBias?: boolean;
}

const L = (out: number, n: number, dtype: StDType): Layer => ({ shape: [out, n], dtype });
const C = (out: number, cin: number, kh: number, kw: number, dtype: StDType): Layer => ({ shape: [out, cin, kh, kw], dtype });
const boft = (b: number, D: number, m: number) => ({ peft_type: "BOFT", boft_block_size: b, boft_block_num: D, boft_n_butterfly_factor: m });
const oft = (o: Record<string, unknown>) => ({ peft_type: "OFT", r: 0, oft_block_size: 0, ...o });

const CASES: Case[] = [
  { name: "BOFT b=4 m=1", config: boft(4, 0, 1), layers: [L(24, 16, "F32"), C(6, 4, 3, 3, "BF16")], trainedBias: true },
  { name: "BOFT b=4 m=2", config: boft(4, 0, 2), layers: [L(24, 32, "BF16"), C(6, 4, 3, 2, "F16")] },
  { name: "BOFT b=2 m=3", config: boft(2, 0, 3), layers: [L(12, 16, "F16"), L(20, 24, "F32")] },
  { name: "BOFT b=2 m=4", config: boft(2, 0, 4), layers: [L(12, 32, "F64"), C(5, 4, 2, 2, "F32")] },
  { name: "BOFT D=4 m=1", config: boft(0, 4, 1), layers: [L(12, 16, "F32"), C(6, 4, 2, 2, "BF16")] },
  { name: "BOFT D=4 m=2", config: boft(0, 4, 2), layers: [L(24, 32, "F16"), L(7, 16, "F64")] },
  { name: "BOFT D=8 m=3", config: boft(0, 8, 3), layers: [L(12, 32, "BF16"), C(4, 4, 4, 2, "F32")] },
  { name: "BOFT D=8 m=4", config: boft(0, 8, 4), layers: [L(12, 64, "F32"), L(10, 32, "F64")] },
  { name: "OFT exact b=4", config: oft({ oft_block_size: 4, use_cayley_neumann: false }), layers: [L(12, 16, "F32"), L(12, 16, "BF16"), C(6, 8, 1, 1, "F16"), C(6, 4, 3, 3, "F32")], trainedBias: true },
  { name: "OFT Neumann-5 r=4", config: oft({ r: 4 }), layers: [L(24, 32, "F16"), C(6, 4, 3, 2, "BF16"), L(8, 16, "F64")] },
  { name: "OFT Neumann-3 b=8", config: oft({ oft_block_size: 8, num_cayley_neumann_terms: 3 }), layers: [L(16, 32, "F32")] },
  { name: "OFT block_share b=8", config: oft({ oft_block_size: 8, block_share: true, use_cayley_neumann: false }), layers: [L(24, 32, "F32"), L(16, 16, "BF16")] },
  { name: "OFT COFT eps=1e-2", config: oft({ oft_block_size: 4, coft: true, eps: 1e-2 }), layers: [L(12, 16, "BF16"), L(8, 16, "F32")] },
  { name: "OFT b=5 auto-adjusted", config: oft({ oft_block_size: 5, use_cayley_neumann: false }), layers: [L(12, 24, "F32"), L(6, 16, "F16")] },
  { name: "LoRA r=4", config: { peft_type: "LORA", r: 4, lora_alpha: 8 }, layers: [L(24, 16, "F32"), L(16, 24, "BF16")], trainedBias: true },
  { name: "LoRA rsLoRA", config: { peft_type: "LORA", r: 4, lora_alpha: 16, use_rslora: true }, layers: [L(12, 16, "F16")] },
];

const PARAM_STATS: Record<string, [mean: number, std: number]> = {
  boft_R: [0, 0.3],
  boft_s: [1, 0.2],
  "oft_R.weight": [0, 0.1],
  "lora_A.weight": [0, 0.3],
  "lora_B.weight": [0, 0.3],
};

const UNTOUCHED: [string, StDType, number[]][] = [
  ["model.embed_tokens.weight", "BF16", [10, 8]],
  ["model.norm.weight", "F32", [8]],
  ["model.layers.0.input_layernorm.weight", "F16", [8]],
  ["model.rope.scale", "F64", []],
  ["model.empty", "F32", [0, 3]],
];

const moduleName = (i: number, l: Layer) => (l.shape.length === 2 ? `model.layers.${i}.mlp.up_proj` : `model.layers.${i}.conv`);

/** Writes a base checkpoint and an adapter for `c`; returns everything needed to check the merge. */
function build(c: Case, seed: number) {
  const normal = normalSampler(seed);
  const method = methodOf(c.config);
  const base: NamedTensor[] = UNTOUCHED.map(([name, dtype, shape]) => tensor(name, dtype, shape, normal));
  const adapter: AdapterTensor[] = [];
  c.layers.forEach((l, i) => {
    const module = moduleName(i, l);
    base.push(tensor(`${module}.weight`, l.dtype, l.shape, normal, 0.5), tensor(`${module}.bias`, l.dtype, [l.shape[0]], normal));
    for (const [suffix, shape] of layerParamShapes(planLayer(method, moduleInfo(module, l.shape)))) {
      const [mean, std] = PARAM_STATS[suffix];
      adapter.push({ key: `base_model.model.${module}.${suffix}`, shape, data: randomValues(shape, normal, { mean, std, dtype: "F32" }) });
    }
    if (c.trainedBias) adapter.push({ key: `base_model.model.${module}.base_layer.bias`, shape: [l.shape[0]], data: randomValues([l.shape[0]], normal, { dtype: "F32" }) });
  });
  const dir = freshDir(c.name.replace(/[^a-zA-Z0-9]+/g, "-"));
  fs.mkdirSync(dir);
  const metadata = { format: "pt", note: "random base for boft merge tests" };
  writeCheckpoint(path.join(dir, "base.safetensors"), base, metadata);
  writeAdapterDir(path.join(dir, "adapter"), { ...c.config, target_modules: ["up_proj", "conv"], bias: c.trainedBias ? "all" : "none" }, adapter);
  return { dir, method, base, adapter: new Map(adapter.map((t) => [t.key, t])), metadata };
}

describe("mergeCheckpoint() vs the float64 path", () => {
  CASES.forEach((c, ci) => {
    it(`${c.name}: ${c.layers.map((l) => `${l.dtype}[${l.shape}]`).join(", ")}`, () => {
      const { dir, method, base, adapter, metadata } = build(c, 1000 + ci);
      const baseFile = readFile(path.join(dir, "base.safetensors"));
      for (const chunkBytes of [undefined, 450]) {
        const out = path.join(dir, `merged-${chunkBytes ?? "whole"}.safetensors`);
        const report = mergeCheckpoint({ base: path.join(dir, "base.safetensors"), adapter: path.join(dir, "adapter"), out, chunkBytes });
        const weights = c.layers.map((l, i) => `${moduleName(i, l)}.weight`);
        const biases = c.trainedBias ? c.layers.map((l, i) => `${moduleName(i, l)}.bias`) : [];
        assert.deepEqual(report.merged, [...weights].sort());
        assert.deepEqual(report.replaced, [...biases].sort());
        assert.equal(report.copied, base.length - weights.length - biases.length);
        // Only the b = 5 case makes PEFT warn: it adjusts b to a divisor of n.
        assert.deepEqual(report.warnings, c.name.includes("auto-adjusted") ? ["Invalid `oft_block_size` (5)! Adjusted `oft_block_size` to (4)."] : []);
        const merged = readFile(out);
        assert.deepEqual(merged.metadata, metadata, "metadata kept");
        assert.deepEqual([...merged.tensors.keys()].sort(), [...baseFile.tensors.keys()].sort());
        for (const t of base) {
          const got = merged.tensors.get(t.name)!;
          assert.equal(got.dtype, t.dtype, `${t.name} keeps its dtype`);
          assert.deepEqual(got.shape, t.shape);
          const i = weights.indexOf(t.name);
          if (i >= 0) {
            const module = moduleName(i, c.layers[i]);
            assertMerged(`${t.name} chunk=${chunkBytes ?? "whole"}`, t.dtype, got.data, referenceMerge(method, module, t, adapter));
          } else if (biases.includes(t.name)) {
            const trained = adapter.get(`base_model.model.${t.name.replace(/\.bias$/, ".base_layer.bias")}`)!;
            assert.deepEqual(got.raw, encode(t.dtype, trained.data), `${t.name} replaced by the trained bias`);
          } else {
            assert.deepEqual(got.raw, baseFile.tensors.get(t.name)!.raw, `${t.name} copied bit for bit`);
          }
        }
      }
    });
  });
});

describe("mergeCheckpoint() on a sharded model folder", () => {
  it("writes the same shards, copies the index and companion files, merges across shards", () => {
    const normal = normalSampler(7);
    const dir = freshDir("sharded");
    const model = path.join(dir, "model");
    fs.mkdirSync(model, { recursive: true });
    const config = boft(4, 0, 2);
    const method = methodOf(config);
    const shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
    const weightMap: Record<string, string> = {};
    const all: NamedTensor[] = [];
    const adapter: AdapterTensor[] = [];
    shards.forEach((shard, s) => {
      const tensors: NamedTensor[] = [tensor(`model.layers.${s}.input_layernorm.weight`, "F32", [16], normal)];
      for (const proj of ["q_proj", "v_proj", "k_proj"]) tensors.push(tensor(`model.layers.${s}.self_attn.${proj}.weight`, s ? "BF16" : "F32", [24, 16], normal));
      if (s === 0) tensors.push(tensor("model.embed_tokens.weight", "BF16", [10, 16], normal));
      for (const proj of ["q_proj", "v_proj"]) {
        const module = `model.layers.${s}.self_attn.${proj}`;
        for (const [suffix, shape] of layerParamShapes(planLayer(method, moduleInfo(module, [24, 16])))) {
          const [mean, std] = PARAM_STATS[suffix];
          adapter.push({ key: `base_model.model.${module}.${suffix}`, shape, data: randomValues(shape, normal, { mean, std, dtype: "F32" }) });
        }
      }
      writeCheckpoint(path.join(model, shard), tensors, { format: "pt", shard: String(s) });
      for (const t of tensors) weightMap[t.name] = shard;
      all.push(...tensors);
    });
    const index = JSON.stringify({ metadata: { total_size: 4242 }, weight_map: weightMap }, null, 2);
    fs.writeFileSync(path.join(model, "model.safetensors.index.json"), index);
    fs.writeFileSync(path.join(model, "config.json"), '{"model_type": "llama"}');
    fs.writeFileSync(path.join(model, "tokenizer.json"), "{}");
    writeAdapterDir(path.join(dir, "adapter"), { ...config, target_modules: ["q_proj", "v_proj"] }, adapter);
    const adapterByKey = new Map(adapter.map((t) => [t.key, t]));

    // A stale single-file checkpoint in the output folder would shadow the new index: refused, folder untouched.
    const stale = path.join(dir, "out-stale");
    fs.mkdirSync(stale);
    fs.writeFileSync(path.join(stale, "model.safetensors"), "old");
    assert.throws(() => mergeCheckpoint({ base: model, adapter: path.join(dir, "adapter"), out: stale }), /out-stale: already holds model\.safetensors/);
    assert.deepEqual(fs.readdirSync(stale), ["model.safetensors"]);

    for (const [label, basePath] of [["folder", model], ["index file", path.join(model, "model.safetensors.index.json")]]) {
      const out = path.join(dir, `out-${label.replace(" ", "-")}`);
      const report = mergeCheckpoint({ base: basePath, adapter: path.join(dir, "adapter"), out });
      assert.equal(report.merged.length, 4, label);
      assert.deepEqual(fs.readdirSync(out).sort(), ["config.json", "model.safetensors.index.json", ...shards, "tokenizer.json"].sort(), label);
      assert.equal(fs.readFileSync(path.join(out, "model.safetensors.index.json"), "utf8"), index, "index copied unchanged");
      assert.equal(fs.readFileSync(path.join(out, "config.json"), "utf8"), '{"model_type": "llama"}');
      shards.forEach((shard, s) => {
        const before = readFile(path.join(model, shard));
        const after = readFile(path.join(out, shard));
        assert.deepEqual(after.metadata, { format: "pt", shard: String(s) }, "each shard keeps its metadata");
        assert.deepEqual([...after.tensors.keys()].sort(), [...before.tensors.keys()].sort(), "same tensors in the same shard");
        for (const [name, t] of after.tensors) {
          const module = name.replace(/\.weight$/, "");
          if (adapterByKey.has(`base_model.model.${module}.boft_R`)) {
            const w = all.find((x) => x.name === name)!;
            assertMerged(name, t.dtype, t.data, referenceMerge(method, module, w, adapterByKey));
          } else {
            assert.deepEqual(t.raw, before.tensors.get(name)!.raw, `${name} copied bit for bit`);
          }
        }
      });
    }
  });
});

describe("mergeCheckpoint() with PEFT's reference vectors (F64 base and adapter)", () => {
  for (const name of [...caseNames("boft_"), ...caseNames("oft_")]) {
    it(`${name}: merged weight equals PEFT's to 1e-12`, () => {
      const c = loadCase(name);
      const dir = freshDir(name);
      const module = c.layer === "linear" ? "model.layers.0.mlp.up_proj" : "model.conv";
      const w = ref(c, "base_weight");
      const base: NamedTensor[] = [{ name: `${module}.weight`, dtype: "F64", shape: w.shape, data: Float64Array.from(w.data) }];
      const bias = c.tensors.base_bias;
      if (bias) base.push({ name: `${module}.bias`, dtype: "F64", shape: bias.shape, data: Float64Array.from(bias.data) });
      fs.mkdirSync(dir);
      writeCheckpoint(path.join(dir, "base.safetensors"), base);
      const params = c.method === "BOFT" ? [["boft_R", "boft_R"], ["boft_s", "boft_s"]] : [["oft_R.weight", "oft_R_weight_after_forward"]];
      const tensors = params.map(([suffix, key]) => ({ key: `base_model.model.${module}.${suffix}`, shape: ref(c, key).shape, data: Float64Array.from(ref(c, key).data) }));
      writeAdapterDir(path.join(dir, "adapter"), { peft_type: c.method, ...c.config, target_modules: [module.split(".").pop()] }, tensors, "F64");
      mergeCheckpoint({ base: path.join(dir, "base.safetensors"), adapter: path.join(dir, "adapter"), out: path.join(dir, "out.safetensors"), chunkBytes: 300 });
      const got = readFile(path.join(dir, "out.safetensors")).tensors;
      const want = ref(c, "merged_weight").data;
      const merged = got.get(`${module}.weight`)!.data;
      const scale = Math.max(...want.map(Math.abs));
      const err = Math.max(...want.map((v, k) => Math.abs(merged[k] - v)));
      assert.ok(err <= 1e-12 * scale, `max error ${(err / scale).toExponential(2)} of scale`);
      if (bias) assert.deepEqual(got.get(`${module}.bias`)!.data, Float64Array.from(bias.data), "bias untouched");
      assert.equal(size(w.shape), merged.length);
    });
  }
});
