/**
 * Hugging Face causal LMs end to end, on tiny random checkpoints written in transformers' exact layout
 * (test/hf-fixture.ts): loading (config, single/sharded safetensors in bf16/f16/f32, tokenizer), the forward
 * against an independent float64 reference (test/reference/llama-ref.ts), the KV cache, BOFT training with PEFT's
 * key set, PEFT-written adapters = merged weights, and `boft generate` with base / adapter / merged weights.
 *
 * Tolerance. Our forward runs in float32 (unit roundoff 6e-8); the reference in float64 on the very values the
 * files store. Per layer, dot products of length ≤ 64, the f32 exp / rsqrt kernels and a softmax each add ~1e-7
 * relative; measured over the cases below: max |ours − ref| / max |ref| ≤ 7e-7. We allow 1e-5: 14× the worst
 * measured, yet tight enough that an rms_norm_eps off by 10× fails (3.8e-5 on these weights), while a wrong RoPE
 * pairing (0.5), GQA head mapping (0.7), rope_theta (0.15) or a dropped bias (3e-2) fail by orders of magnitude.
 * (The ~1e-4 one would expect at real sizes comes from depth and width: 30 layers of 576-wide dot products.)
 */
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as nodePath from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { np, tree, toHost, valueAndGrad, type Arr } from "../src/engine/index.js";
import { FormatError, ShapeError } from "../src/errors.js";
import { rng, type Rng } from "../src/data/rng.js";
import { parseHfConfig } from "../src/formats/hf-config.js";
import { adapterKey } from "../src/formats/peft-adapter.js";
import { loadHfModel, type HfModel } from "../src/node/hf-model.js";
import { loadAdapter, saveModelAdapter } from "../src/node/model-adapter.js";
import { openAdapter } from "../src/node/adapter-files.js";
import { mergeCheckpoint } from "../src/node/merge-checkpoint.js";
import { openCheckpoint, saveSafetensors } from "../src/node/safetensors-file.js";
import { adaptedModel, addAdapter, forward, forwardWith, gaussian, trainableOf, withTrained, mergeAndUnload, type Trainable } from "../src/models/adapted.js";
import { layerwiseValueAndGrad, layerwiseLoss } from "../src/models/llama-grad.js";
import { ropeInvFreq, emptyKvCache, slotInputs, type KvCache, type LlamaDef, type LlamaInput } from "../src/models/llama.js";
import { generate, sampleToken, SLOT_CHUNK, type CausalLm } from "../src/models/generate.js";
import { boftConfig } from "../src/methods/boft/config.js";
import { oftConfig } from "../src/methods/oft/config.js";
import { loraConfig } from "../src/methods/lora/config.js";
import { train, crossEntropy, trainDefaults, type Task } from "../src/train/trainer.js";
import { refLogits, refRopeFrequencies, type RefWeights } from "./reference/llama-ref.js";
import { writeTinyModel, tinyTokenizerFiles, tinyConfigJson, TINY, SPECIAL, CHAT_TEMPLATE, type TinySpec } from "./hf-fixture.js";

const TOL = 1e-5;
const root = fs.mkdtempSync(nodePath.join(os.tmpdir(), "boft-hf-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const CASES: [string, TinySpec][] = [
  ["llama GQA 4/2, tied, bf16, single file", { modelType: "llama", heads: 4, kvHeads: 2, tied: true, dtype: "BF16", sharded: false }],
  ["llama MHA 4/4, untied, f32, sharded, attention_bias", { modelType: "llama", heads: 4, kvHeads: 4, tied: false, dtype: "F32", sharded: true, attentionBias: true }],
  ["llama MQA 4/1, head_dim 16 ≠ hidden/heads, rope llama3, bf16, sharded", { modelType: "llama", heads: 4, kvHeads: 1, headDim: 16, tied: false, dtype: "BF16", sharded: true, llama3: true }],
  ["qwen2 GQA 4/2 (q/k/v biases), tied with lm_head stored, f16, single file", { modelType: "qwen2", heads: 4, kvHeads: 2, tied: true, storeTiedHead: true, dtype: "F16", sharded: false }],
  ["qwen2 MHA 2/2, untied, f32, sharded", { modelType: "qwen2", heads: 2, kvHeads: 2, tied: false, dtype: "F32", sharded: true }],
  ["mistral GQA 4/2, untied, bf16, sharded, sliding_window", { modelType: "mistral", heads: 4, kvHeads: 2, tied: false, dtype: "BF16", sharded: true, slidingWindow: 4096 }],
];

const folders = new Map<string, { dir: string; ref: ReturnType<typeof writeTinyModel> }>();
function fixture(label: string): { dir: string; ref: ReturnType<typeof writeTinyModel> } {
  const hit = folders.get(label);
  if (hit) return hit;
  const spec = CASES.find(([l]) => l === label)![1];
  const dir = nodePath.join(root, `m${folders.size}`);
  const made = { dir, ref: writeTinyModel(dir, spec) };
  folders.set(label, made);
  return made;
}

/** B sequences of T random token ids (any id below vocab_size). */
function sampleIds(seed: number, T = 12, B = 2): number[][] {
  const r = rng(seed);
  return Array.from({ length: B }, () => Array.from({ length: T }, () => r.nextInt(TINY.vocab)));
}

function idsArr(ids: number[][]): Arr {
  return np.array(Int32Array.from(ids.flat()), { dtype: np.int32 }).reshape([ids.length, ids[0].length]);
}

/** Our logits [B, T, V] as host data. Borrows the model. */
function logitsOf(m: CausalLm, ids: number[][]): Float32Array {
  return toHost(forward(m, { ids: idsArr(ids) }).logits).data as Float32Array;
}

/** max |a − b| / max |b|. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let err = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
}

function refBatch(ref: ReturnType<typeof writeTinyModel>, ids: number[][], weights: RefWeights = ref.weights): Float64Array {
  const parts = ids.map((seq) => refLogits(ref.ref, weights, seq));
  const out = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function dispose(hf: HfModel): void {
  tree.dispose(hf.weights);
}

describe("loadHfModel(): forward = independent float64 reference", () => {
  for (const [label, spec] of CASES) {
    test(label, () => {
      const { dir, ref } = fixture(label);
      const hf = loadHfModel(dir);
      assert.equal(hf.modelType, spec.modelType);
      assert.equal(hf.config.numKeyValueHeads, spec.kvHeads);
      assert.equal(hf.config.tieWordEmbeddings, spec.tied);
      if (spec.slidingWindow && spec.modelType === "mistral") assert.match(hf.notes.join("\n"), /sliding_window=4096 is not applied/);
      const ids = sampleIds(1);
      const err = relErr(logitsOf(adaptedModel(hf.def, hf.weights), ids), refBatch(ref, ids));
      assert.ok(err < TOL, `relative error ${err.toExponential(2)}`);
      dispose(hf);
    });
  }

  test("RoPE frequencies, llama3 scaling in all three bands, equal the reference's", () => {
    const cfg = { headDim: 16, ropeTheta: 10000, ropeScaling: { ropeType: "llama3" as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 } };
    const ours = ropeInvFreq(cfg);
    const theirs = refRopeFrequencies({ headDim: 16, ropeTheta: 10000, llama3: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 } } as never);
    assert.ok(relErr(ours, theirs) < 1e-14);
    const plain = refRopeFrequencies({ headDim: 16, ropeTheta: 10000, llama3: null } as never);
    const kept = [...ours].filter((f, i) => f === plain[i]).length;
    const divided = [...ours].filter((f, i) => Math.abs(f - plain[i] / 8) < 1e-18).length;
    assert.ok(kept > 0 && divided > 0 && kept + divided < ours.length, `bands: kept ${kept}, divided ${divided}, of ${ours.length}`);
  });
});

describe("llama(): KV cache", () => {
  test("incremental logits (prefill 5, then 3, then 1 at a time) equal the full-sequence logits", () => {
    const label = CASES[2][0];
    const hf = loadHfModel(fixture(label).dir);
    const m: CausalLm = adaptedModel(hf.def, hf.weights);
    const ids = sampleIds(3, 12, 1)[0];
    const full = logitsOf(m, [ids]);
    const V = TINY.vocab;
    let cache: KvCache = emptyKvCache();
    const chunks = [5, 3, 1, 1, 1, 1];
    let at = 0;
    for (const n of chunks) {
      const res = forward(m, { ids: idsArr([ids.slice(at, at + n)]), cache } as LlamaInput);
      tree.dispose([cache.k, cache.v] as never);
      cache = res.cache!;
      assert.equal(cache.length, at + n);
      const got = toHost(res.logits).data;
      const want = full.subarray(at * V, (at + n) * V);
      const err = relErr(got, want);
      assert.ok(err < 1e-5, `positions ${at}..${at + n - 1}: ${err}`);
      at += n;
    }
    tree.dispose([cache.k, cache.v] as never);
    const last = toHost(forward(m, { ids: idsArr([ids]), lastOnly: true }).logits);
    assert.deepEqual(last.shape, [1, 1, V]);
    assert.ok(relErr(last.data, full.subarray(11 * V)) < 1e-6);
    dispose(hf);
  });
});

describe("parseHfConfig(): validation names the field", () => {
  const tok = tinyTokenizerFiles();
  const base = () => tinyConfigJson({ modelType: "llama", heads: 4, kvHeads: 2, tied: true, dtype: "BF16", sharded: false }, tok.bosId, tok.eosId);
  const cases: [string, (c: Record<string, unknown>) => void, RegExp][] = [
    ["missing hidden_size", (c) => delete c.hidden_size, /missing required field "hidden_size"/],
    ["heads not a multiple of kv heads", (c) => (c.num_key_value_heads = 3), /num_attention_heads=4, num_key_value_heads=3/],
    ["zero layers", (c) => (c.num_hidden_layers = 0), /num_hidden_layers must be a positive integer/],
    ["yarn rope scaling", (c) => (c.rope_scaling = { rope_type: "yarn", factor: 4 }), /rope scaling type "yarn" is not supported/],
    ["linear rope scaling (old `type` key)", (c) => (c.rope_scaling = { type: "linear", factor: 2 }), /"linear" is not supported/],
    ["unknown model_type", (c) => (c.model_type = "gpt2"), /model_type "gpt2" is not supported/],
    ["classifier architecture", (c) => (c.architectures = ["LlamaForSequenceClassification"]), /architectures must name LlamaForCausalLM/],
    ["gelu", (c) => (c.hidden_act = "gelu"), /hidden_act must be "silu"/],
    ["odd head_dim", (c) => (c.head_dim = 7), /head_dim must be even/],
    ["llama3 without factor", (c) => (c.rope_scaling = { rope_type: "llama3", low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 }), /missing required field "factor"/],
  ];
  for (const [name, edit, msg] of cases) {
    test(name, () => {
      const c = base();
      edit(c);
      assert.throws(() => parseHfConfig(JSON.stringify(c)), (e: unknown) => e instanceof FormatError && msg.test((e as Error).message));
    });
  }
  test("defaults and special cases: kv heads = heads, head_dim = hidden/heads, qwen2 biases, rope_parameters, eos lists", () => {
    const c = base();
    delete c.num_key_value_heads;
    delete c.rms_norm_eps;
    c.eos_token_id = [5, 6];
    let p = parseHfConfig(c);
    assert.equal(p.config.numKeyValueHeads, 4);
    assert.equal(p.config.headDim, 8);
    assert.equal(p.config.rmsNormEps, 1e-6);
    assert.deepEqual(p.eosTokenIds, [5, 6]);
    const q = tinyConfigJson({ modelType: "qwen2", heads: 4, kvHeads: 2, tied: false, dtype: "BF16", sharded: false }, 1, 2);
    p = parseHfConfig({ ...q, use_sliding_window: true, sliding_window: 128 });
    assert.equal(p.config.attentionBias, true);
    assert.equal(p.config.oProjBias, false);
    assert.equal(p.slidingWindow, 128);
    const v5 = { ...base(), rope_theta: undefined, rope_scaling: undefined, rope_parameters: { rope_type: "llama3", rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } };
    p = parseHfConfig(v5);
    assert.equal(p.config.ropeTheta, 500000);
    assert.equal(p.config.ropeScaling?.factor, 8);
  });
});

describe("loadHfModel(): the checkpoint must match the config", () => {
  const spec: TinySpec = { modelType: "llama", heads: 4, kvHeads: 2, tied: true, dtype: "F32", sharded: false };
  const build = (name: string, edit: (t: { name: string; shape: number[]; data: Float32Array }[]) => void) => {
    const dir = nodePath.join(root, `bad-${name}`);
    writeTinyModel(dir, spec);
    const ck = openCheckpoint(dir);
    const tensors = ck.tensors.map((t) => ({ name: t.name, shape: t.shape, data: ck.read(t.name).data as Float32Array }));
    ck.close();
    edit(tensors);
    saveSafetensors(nodePath.join(dir, "model.safetensors"), tensors.map((t) => ({ ...t, dtype: "F32" as const })));
    return dir;
  };
  test("a missing tensor, an unexpected one, a wrong shape and an unequal tied head are errors", () => {
    const missing = build("missing", (t) => t.splice(t.findIndex((x) => x.name === "model.norm.weight"), 1));
    assert.throws(() => loadHfModel(missing), (e: unknown) => e instanceof FormatError && /missing: "model\.norm\.weight"/.test((e as Error).message));
    const extra = build("extra", (t) => t.push({ name: "model.layers.9.mlp.up_proj.weight", shape: [2], data: new Float32Array(2) }));
    assert.throws(() => loadHfModel(extra), (e: unknown) => e instanceof FormatError && /do not belong.*layers\.9/.test((e as Error).message));
    const shape = build("shape", (t) => {
      const i = t.findIndex((x) => x.name === "model.norm.weight");
      t[i] = { ...t[i], shape: [16], data: t[i].data.slice(0, 16) };
    });
    assert.throws(() => loadHfModel(shape), (e: unknown) => e instanceof ShapeError && /model\.norm\.weight" is \[16\].*\[32\]/.test((e as Error).message));
    const head = build("head", (t) => t.push({ name: "lm_head.weight", shape: [TINY.vocab, TINY.hidden], data: new Float32Array(TINY.vocab * TINY.hidden) }));
    assert.throws(() => loadHfModel(head), (e: unknown) => e instanceof FormatError && /lm_head\.weight differs/.test((e as Error).message));
    const buffers = build("buffers", (t) => t.push({ name: "model.layers.0.self_attn.rotary_emb.inv_freq", shape: [4], data: new Float32Array(4) }));
    const ok = loadHfModel(buffers);
    assert.match(ok.notes.join("\n"), /skipped 1 rotary_emb\.inv_freq/);
    dispose(ok);
  });
});

describe("tokenizer (tokenizer.json via @huggingface/tokenizers, chat template via @huggingface/jinja)", () => {
  test("byte-level BPE: BOS, merges, special tokens, exact round trip; chat template renders", () => {
    const hf = loadHfModel(fixture(CASES[0][0]).dir);
    const tok = hf.tokenizer!;
    const files = tinyTokenizerFiles();
    assert.equal(tok.size, files.size);
    const ids = tok.encode("the cat sat on the mat");
    assert.equal(ids[0], files.bosId);
    assert.equal(ids.length, 1 + 6, `merged words: ${ids}`); // "the", " cat", " sat", " on", " the", " mat"
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), "the cat sat on the mat");
    const text = "Grüße, 東京! 12 \n\t tabs";
    assert.equal(tok.decode(tok.encode(text, { addSpecialTokens: false })), text);
    assert.deepEqual(tok.encode(`${SPECIAL.imStart}user`, { addSpecialTokens: false }).slice(0, 1), [tok.tokenId(SPECIAL.imStart)]);
    assert.equal(hf.chatTemplate, CHAT_TEMPLATE);
    assert.equal(
      tok.applyChatTemplate([{ role: "user", content: "hi" }]),
      `${SPECIAL.imStart}user\nhi${SPECIAL.imEnd}\n${SPECIAL.imStart}assistant\n`,
    );
    assert.deepEqual(hf.eosTokenIds, [files.eosId, files.imEndId]);
    dispose(hf);
  });
});

// ---- training -----------------------------------------------------------------------------------------------

const CORPUS = "the cat sat on the mat. the cat sat on the hat. on the mat the cat sat. ".repeat(8);

/** Next-token prediction on random windows of one token stream. */
function lmTask(tokens: readonly number[], T: number, B: number): Task<LlamaInput, { logits: Arr }, Arr> {
  return {
    batch(r: Rng) {
      const x = new Int32Array(B * T);
      const y = new Int32Array(B * T);
      for (let b = 0; b < B; b++) {
        const s = r.nextInt(tokens.length - T - 1);
        for (let t = 0; t < T; t++) {
          x[b * T + t] = tokens[s + t];
          y[b * T + t] = tokens[s + t + 1];
        }
      }
      return { input: { ids: np.array(x, { dtype: np.int32 }).reshape([B, T]) }, target: np.array(y, { dtype: np.int32 }).reshape([B, T]), items: B * T };
    },
    loss: (out, target) => crossEntropy(out.logits, target),
  };
}

const trained = new Map<string, string>(); // case label → adapter folder

describe("BOFT training on a loaded model: PEFT keys and config", () => {
  for (const label of [CASES[0][0], CASES[3][0]]) {
    test(`${label}: loss falls; adapter keys are PEFT's; reloaded adapter = trained model`, async () => {
      const { dir } = fixture(label);
      const hf = loadHfModel(dir);
      const method = { kind: "BOFT" as const, config: boftConfig({ blockSize: 4, nButterflyFactor: 2, targetModules: null }) };
      let m: CausalLm = addAdapter(adaptedModel(hf.def, hf.weights), "default", method, { rng: rng(1) });
      const tokens = hf.tokenizer!.encode(CORPUS);
      const losses: number[] = [];
      const result = await train(m, lmTask(tokens, 16, 4), { ...trainDefaults, steps: 8, lr: 3e-2, seed: 3 }, { onEvent: (e) => e.kind === "step" && losses.push(e.loss) });
      m = withTrained(m, result);
      const first = (losses[0] + losses[1]) / 2;
      const last = (losses[6] + losses[7]) / 2;
      assert.ok(last < first * 0.95, `loss ${losses.map((l) => l.toFixed(3)).join(" ")}`);

      const out = nodePath.join(root, `adapter-${trained.size}`);
      const keys = await saveModelAdapter(m, out, { baseModelNameOrPath: dir, taskType: "CAUSAL_LM" });
      const want: string[] = [];
      for (let i = 0; i < hf.config.numHiddenLayers; i++) {
        for (const p of ["q_proj", "v_proj"]) for (const s of ["boft_R", "boft_s"]) want.push(adapterKey(`model.layers.${i}.self_attn.${p}`, s));
      }
      assert.deepEqual([...keys].sort(), want.sort());
      assert.equal(want[0], "base_model.model.model.layers.0.self_attn.q_proj.boft_R");
      const cfg = JSON.parse(fs.readFileSync(nodePath.join(out, "adapter_config.json"), "utf8"));
      assert.equal(cfg.base_model_name_or_path, dir);
      assert.equal(cfg.task_type, "CAUSAL_LM");
      assert.equal(cfg.peft_type, "BOFT");
      assert.deepEqual(cfg.target_modules, ["q_proj", "v_proj"]);
      const a = openAdapter(out);
      assert.deepEqual(a.reader.entry(want[0]).shape, [2, 8, 4, 4]);
      assert.deepEqual(a.reader.entry(adapterKey("model.layers.0.self_attn.v_proj", "boft_s")).shape, [hf.config.numKeyValueHeads * hf.config.headDim, 1]);
      a.close();
      trained.set(label, out);

      const ids = sampleIds(5);
      const mine = logitsOf(m, ids);
      const reloaded = loadAdapter(adaptedModel(hf.def, hf.weights), out).model;
      assert.ok(relErr(logitsOf(reloaded, ids), mine) < 1e-6);
      const merged = adaptedModel(hf.def, mergeAndUnload(m));
      assert.ok(relErr(logitsOf(merged, ids), mine) < TOL);
      assert.ok(relErr(logitsOf(adaptedModel(hf.def, hf.weights), ids), mine) > 1e-3, "training changed the logits");
      dispose(hf);
    });
  }
});

/** The spacing of float32 values at x. */
const ulp32 = (x: number) => 2 ** (Math.floor(Math.log2(Math.abs(x))) - 23);
const LAYER_MODES = [
  { compiled: true, keepResiduals: true, name: "compiled layers keeping their residuals" },
  { compiled: true, keepResiduals: false, name: "compiled layers recomputed in the backward" },
  { compiled: false, name: "eager vjp per layer" },
];
for (const { name, ...mode } of LAYER_MODES) {
  test(`layerwiseValueAndGrad() = valueAndGrad of the whole forward (BOFT with trained biases, GQA, q/k/v biases; ${name})`, async () => {
    const { dir } = fixture(CASES[3][0]);
    const hf = loadHfModel(dir, { tokenizer: false });
    const method = { kind: "BOFT" as const, config: boftConfig({ blockSize: 4, nButterflyFactor: 2, targetModules: null, bias: "boft_only", initWeights: false }) };
    const m: CausalLm = addAdapter(adaptedModel(hf.def, hf.weights), "default", method, { rng: rng(6) });
    assert.deepEqual(m.adapters.default.extras.length, 2 * hf.config.numHiddenLayers); // q_proj.bias, v_proj.bias
    const [ids, ys] = sampleIds(17, 12, 2).map((s, i, all) => (i === 0 ? all : all.map((r) => r.map((v) => (v * 7 + 3) % TINY.vocab))));
    const target = () => idsArr(ys);
    const [l1, g1] = (valueAndGrad((t: Trainable) => crossEntropy(forwardWith(m, t, { ids: idsArr(ids) }).logits, target())) as (t: Trainable) => [Arr, Trainable])(trainableOf(m));
    const [l2, g2] = await layerwiseValueAndGrad(m, hf.config, trainableOf(m), idsArr(ids), (logits) => crossEntropy(logits, target()), mode);
    const [x1, x2] = [toHost(l1).data[0], toHost(l2).data[0]];
    // Keeping residuals, the forward is jax-js's partial evaluation of the layer's JVP: it stores more intermediates
    // than the plain forward, so its kernels fuse (and round) differently; the loss may then differ in its last bits.
    assert.ok(Math.abs(x1 - x2) < (mode.keepResiduals ? 4 * ulp32(x1) : 1e-6), `${x2} vs ${x1}`);
    const a = tree.leaves(g1 as never) as Arr[];
    const b = tree.leaves(g2 as never) as Arr[];
    assert.equal(a.length, b.length);
    assert.deepEqual(Object.keys(g2.adapter), Object.keys(g1.adapter));
    assert.deepEqual(Object.keys(g2.extras), Object.keys(g1.extras));
    for (let i = 0; i < a.length; i++) {
      const err = relErr(toHost(b[i]).data, toHost(a[i]).data);
      assert.ok(err < 1e-5, `gradient leaf ${i}: ${err}`);
    }
    dispose(hf);
  });
}

// In float64 the rounding that lets the float32 modes above differ in their last bits is gone: keeping residuals gives
// the recomputing mode's loss and gradients to 1e-12. Both are compiled, and jax-js makes number constants inside jit
// float32 even in float64 graphs (docs/engine-notes.md), so against the eager whole forward they agree to ~5e-8 only.
test("layerwiseValueAndGrad() in float64: residuals kept = recomputed to 1e-12, and = valueAndGrad of the whole forward to 1e-6 (BOFT with trained biases)", async () => {
  const hf = loadHfModel(fixture(CASES[3][0]).dir, { tokenizer: false, dtype: "float64" });
  const method = { kind: "BOFT" as const, config: boftConfig({ blockSize: 4, nButterflyFactor: 2, targetModules: null, bias: "boft_only", initWeights: false }) };
  const m: CausalLm = addAdapter(adaptedModel(hf.def, hf.weights), "default", method, { rng: rng(6) });
  const [ids, ys] = sampleIds(17, 12, 2).map((s, i, all) => (i === 0 ? all : all.map((r) => r.map((v) => (v * 7 + 3) % TINY.vocab))));
  const hostOf = ([l, g]: [Arr, Trainable]) => ({ loss: toHost(l), grads: (tree.leaves(g as never) as Arr[]).map((a) => toHost(a)) });
  const whole = hostOf((valueAndGrad((t: Trainable) => crossEntropy(forwardWith(m, t, { ids: idsArr(ids) }).logits, idsArr(ys))) as (t: Trainable) => [Arr, Trainable])(trainableOf(m)));
  const layerwise = (keepResiduals: boolean) => layerwiseValueAndGrad(m, hf.config, trainableOf(m), idsArr(ids), (logits) => crossEntropy(logits, idsArr(ys)), { compiled: true, keepResiduals });
  const kept = hostOf(await layerwise(true));
  const recomputed = hostOf(await layerwise(false));
  assert.deepEqual([whole.loss.dtype, kept.loss.dtype, recomputed.loss.dtype], ["float64", "float64", "float64"]);
  const close = (a: typeof whole, b: typeof whole, tol: number, what: string) => {
    assert.ok(Math.abs(a.loss.data[0] - b.loss.data[0]) < tol * Math.abs(b.loss.data[0]), `${what}: loss ${a.loss.data[0]} vs ${b.loss.data[0]}`);
    assert.equal(a.grads.length, b.grads.length);
    a.grads.forEach((g, i) => assert.ok(relErr(g.data, b.grads[i].data) < tol, `${what}: gradient leaf ${i}: ${relErr(g.data, b.grads[i].data)}`));
  };
  close(kept, recomputed, 1e-12, "residuals kept vs recomputed");
  close(recomputed, whole, 1e-6, "compiled layers vs the whole forward"); // measured 4.8e-8: the float32 constants
  dispose(hf);
});

for (const [c, keepResiduals] of [[CASES[0], true], [CASES[1], false], [CASES[1], true]] as const) {
  test(`layerwiseValueAndGrad() in full finetuning = valueAndGrad of the whole forward (every weight, the embedding included; ${c[0]}; ${keepResiduals ? "residuals kept" : "layers recomputed"})`, async () => {
    const hf = loadHfModel(fixture(c[0]).dir, { tokenizer: false });
    const m: CausalLm = adaptedModel(hf.def, hf.weights);
    const all = (): Trainable => ({ adapter: {}, extras: Object.fromEntries(Object.entries(m.weights).map(([k, v]) => [k, v.ref])) });
    const [ids, ys] = sampleIds(23, 12, 2).map((s, i, all) => (i === 0 ? all : all.map((r) => r.map((v) => (v * 3 + 2) % TINY.vocab))));
    const [l1, g1] = (valueAndGrad((t: Trainable) => crossEntropy(forwardWith(m, t, { ids: idsArr(ids) }).logits, idsArr(ys))) as (t: Trainable) => [Arr, Trainable])(all());
    const [l2, g2] = await layerwiseValueAndGrad(m, hf.config, all(), idsArr(ids), (logits) => crossEntropy(logits, idsArr(ys)), { keepResiduals });
    const [x1, x2] = [toHost(l1).data[0], toHost(l2).data[0]];
    assert.ok(Math.abs(x1 - x2) < (keepResiduals ? 4 * ulp32(x1) : 1e-6), `${x2} vs ${x1}`); // see above
    assert.deepEqual(Object.keys(g2.extras).sort(), Object.keys(g1.extras).sort());
    for (const k of Object.keys(g1.extras)) {
      const err = relErr(toHost(g2.extras[k]).data, toHost(g1.extras[k]).data);
      assert.ok(err < 1e-5, `gradient of ${k}: ${err}`);
    }
    dispose(hf);
  });
}

test("layerwiseLoss() = the loss of the whole forward, with the adapter and for the base model", async () => {
  const { dir } = fixture(CASES[3][0]);
  const hf = loadHfModel(dir, { tokenizer: false });
  const method = { kind: "BOFT" as const, config: boftConfig({ blockSize: 4, nButterflyFactor: 2, targetModules: null, bias: "boft_only", initWeights: false }) };
  const m: CausalLm = addAdapter(adaptedModel(hf.def, hf.weights), "default", method, { rng: rng(7) });
  const [ids, ys] = sampleIds(19, 12, 2).map((s, i, all) => (i === 0 ? all : all.map((r) => r.map((v) => (v * 5 + 1) % TINY.vocab))));
  for (const t of [trainableOf(m), null]) {
    const want = toHost(crossEntropy(forwardWith(m, t ? tree.ref(t) : null, { ids: idsArr(ids) }).logits, idsArr(ys))).data[0];
    const got = toHost(await layerwiseLoss(m, hf.config, t, idsArr(ids), (logits) => crossEntropy(logits, idsArr(ys)))).data[0];
    assert.ok(Math.abs(got - want) < 1e-6 * Math.abs(want), `${t ? "adapter" : "base"}: ${got} vs ${want}`);
  }
  dispose(hf);
});

test(
  "crossEntropy() is right at real vocabulary sizes (label·vocab ≥ 2^31)",

  () => {
    const V = 49152;
    const loss = toHost(crossEntropy(np.zeros([2, V]), np.array(Int32Array.from([49151, 3]), { dtype: np.int32 }))).data[0];
    assert.ok(Math.abs(loss - Math.log(V)) < 1e-4, `uniform logits give log V = ${Math.log(V)}, got ${loss}`);
  },
);

describe("saveModelAdapter() / loadAdapter() round trip", () => {
  test("OFT and LoRA adapters (non-identity) reload with the same logits; a mismatched file is refused", async () => {
    const { dir } = fixture(CASES[1][0]);
    const hf = loadHfModel(dir, { tokenizer: false });
    const ids = sampleIds(13);
    const methods = [
      { kind: "OFT" as const, config: oftConfig({ blockSize: 8, targetModules: ["q_proj", "o_proj"], initWeights: false }) },
      { kind: "LORA" as const, config: loraConfig({ r: 4, loraAlpha: 8, targetModules: ["v_proj", "down_proj"], initLoraWeights: false }) },
    ];
    for (const method of methods) {
      const m = addAdapter(adaptedModel(hf.def, hf.weights), "default", method, { rng: rng(4) });
      const out = nodePath.join(root, `roundtrip-${method.kind}`);
      const keys = await saveModelAdapter(m, out, { baseModelNameOrPath: dir, taskType: "CAUSAL_LM" });
      assert.equal(keys.length, method.kind === "OFT" ? 4 : 8);
      const back = loadAdapter(adaptedModel(hf.def, hf.weights), out).model;
      const err = relErr(logitsOf(back, ids), logitsOf(m, ids));
      assert.ok(err < 1e-6, `${method.kind}: ${err}`);
      assert.ok(relErr(logitsOf(adaptedModel(hf.def, hf.weights), ids), logitsOf(m, ids)) > 1e-3, `${method.kind} changes the logits`);
    }
    // The LoRA file onto a model whose config targets other modules: refused before anything is read.
    const cfgPath = nodePath.join(root, "roundtrip-LORA", "adapter_config.json");
    const cfg = JSON.parse(fs.readFileSync(cfgPath, "utf8"));
    fs.writeFileSync(cfgPath, JSON.stringify({ ...cfg, target_modules: ["q_proj"] }));
    assert.throws(() => loadAdapter(adaptedModel(hf.def, hf.weights), nodePath.join(root, "roundtrip-LORA")), (e: unknown) => e instanceof FormatError && /no tensors for|does not target/.test((e as Error).message));
    dispose(hf);
  });
});

describe("a PEFT-written BOFT adapter", () => {
  test("loads onto the model and gives the merged checkpoint's logits (which equal the reference on merged weights)", () => {
    const label = CASES[1][0]; // f32, sharded, untied, q/k/v/o biases
    const { dir, ref } = fixture(label);
    const hf = loadHfModel(dir);
    // As PEFT 0.13's save_pretrained writes it (older key order, no peft_version), with random non-identity tensors.
    const adapterDir = nodePath.join(root, "peft-written");
    fs.mkdirSync(adapterDir);
    const peftConfig = {
      auto_mapping: null, base_model_name_or_path: "tiny-llama", bias: "none", boft_block_num: 0, boft_block_size: 8,
      boft_dropout: 0.0, boft_n_butterfly_factor: 2, fan_in_fan_out: false, inference_mode: true, init_weights: true,
      layers_pattern: null, layers_to_transform: null, modules_to_save: null, peft_type: "BOFT", revision: null,
      target_modules: ["v_proj", "q_proj"], task_type: "CAUSAL_LM",
    };
    fs.writeFileSync(nodePath.join(adapterDir, "adapter_config.json"), JSON.stringify(peftConfig, null, 2));
    const r = rng(11);
    const normal = () => gaussian(r);
    const tensors = [];
    for (let i = 0; i < TINY.layers; i++) {
      for (const p of ["q_proj", "v_proj"]) {
        const module = `model.layers.${i}.self_attn.${p}`;
        tensors.push({ name: `base_model.model.${module}.boft_R`, dtype: "F32" as const, shape: [2, 4, 8, 8], data: Float32Array.from({ length: 2 * 4 * 64 }, () => 0.2 * normal()) });
        tensors.push({ name: `base_model.model.${module}.boft_s`, dtype: "F32" as const, shape: [32, 1], data: Float32Array.from({ length: 32 }, () => 1 + 0.1 * normal()) });
      }
    }
    saveSafetensors(nodePath.join(adapterDir, "adapter_model.safetensors"), tensors, { format: "pt" });

    const ids = sampleIds(9);
    const base = logitsOf(adaptedModel(hf.def, hf.weights), ids);
    const adapted = logitsOf(loadAdapter(adaptedModel(hf.def, hf.weights), adapterDir).model, ids);
    const mergedDir = nodePath.join(root, "peft-merged");
    const report = mergeCheckpoint({ base: dir, adapter: adapterDir, out: mergedDir });
    assert.equal(report.merged.length, 4);
    const mergedHf = loadHfModel(mergedDir);
    const merged = logitsOf(adaptedModel(mergedHf.def, mergedHf.weights), ids);
    assert.ok(relErr(adapted, merged) < TOL, `adapter vs merged ${relErr(adapted, merged)}`);
    assert.ok(relErr(base, merged) > 1e-2, "the adapter changes the logits");
    // The merged checkpoint, read by the reference straight from its files.
    const ck = openCheckpoint(mergedDir);
    const mergedWeights: RefWeights = new Map(ck.tensors.map((t) => [t.name, { shape: t.shape, data: Float64Array.from(ck.read(t.name).data) }]));
    ck.close();
    assert.ok(relErr(merged, refBatch(ref, ids, mergedWeights)) < TOL);
    dispose(hf);
    dispose(mergedHf);
  });
});

// ---- generation ---------------------------------------------------------------------------------------------

describe("generate()", () => {
  test("sampling: temperature 0 and top-k 1 are argmax; seeds reproduce; top-p keeps the nucleus", () => {
    const logits = Float32Array.from([0.1, 2.5, -1, 2.4, 0]);
    assert.equal(sampleToken(logits, {}, rng(0)), 1);
    assert.equal(sampleToken(logits, { temperature: 5, topK: 1 }, rng(0)), 1);
    const draw = (seed: number, o: object) => Array.from({ length: 40 }, ((r) => () => sampleToken(logits, o, r))(rng(seed)));
    assert.deepEqual(draw(4, { temperature: 1 }), draw(4, { temperature: 1 }));
    assert.deepEqual(new Set(draw(4, { temperature: 1, topP: 0.5 })), new Set([1, 3]));
    assert.deepEqual(new Set(draw(4, { temperature: 1, topK: 2 })), new Set([1, 3]));
    assert.ok(new Set(draw(4, { temperature: 3 })).size >= 4);
  });

  test("greedy with the KV cache = greedy by recomputing the whole sequence", async () => {
    const hf = loadHfModel(fixture(CASES[3][0]).dir);
    const m: CausalLm = adaptedModel(hf.def, hf.weights);
    const prompt = hf.tokenizer!.encode("the cat");
    const fast = await generate(m, prompt, { maxNewTokens: 8 });
    const slow: number[] = [];
    for (let i = 0; i < 8; i++) {
      const seq = [...prompt, ...slow];
      const logits = toHost(forward(m, { ids: idsArr([seq]), lastOnly: true }).logits).data;
      slow.push(sampleToken(logits, {}, rng(0)));
    }
    assert.deepEqual(fast, slow);
    dispose(hf);
  });

  test("a slot-cache step gives the logits of the whole sequence recomputed, at every slot position", () => {
    const hf = loadHfModel(fixture(CASES[2][0]).dir); // MQA, head_dim ≠ hidden/heads, Llama 3 RoPE scaling
    const m: CausalLm = adaptedModel(hf.def, hf.weights);
    const config = (hf.def as LlamaDef).config;
    const seq = [5, 9, 2, 7, 3, 11, 4];
    const capacity = seq.length + 2;
    for (const P of [1, 3, seq.length - 1]) {
      const pre = forward(m, { ids: idsArr([seq.slice(0, P)]), cache: emptyKvCache(), lastOnly: true });
      pre.logits.dispose();
      // Unfilled slots hold 3s: the mask, not zeros, must keep them out.
      const pad = (x: Arr) => np.concatenate([x, np.full([x.shape[0], x.shape[1], capacity - P, x.shape[3]], 3, { dtype: x.dtype })], 2);
      const { k, v } = pre.cache!;
      const at = slotInputs(config, P, capacity, np.float32);
      const step = forward(m, { ids: idsArr([[seq[P]]]), slots: { k: k.map(pad), v: v.map(pad), ...at } });
      const got = toHost(step.logits).data;
      tree.dispose([step.cache!.k, step.cache!.v, at] as never);
      const want = toHost(forward(m, { ids: idsArr([seq.slice(0, P + 1)]), lastOnly: true }).logits).data;
      const scale = Math.max(...want.map(Math.abs));
      const diff = Math.max(...want.map((x, i) => Math.abs(x - got[i])));
      assert.ok(diff <= 1e-5 * scale, `P=${P}: max |Δ| ${diff} vs max |logit| ${scale}`);
    }
    assert.throws(() => slotInputs(config, capacity, capacity, np.float32), ShapeError);
    dispose(hf);
  });

  test("generation across a growth of the slot cache, with an adapter, = recomputing the sequence", async () => {
    const hf = loadHfModel(fixture(CASES[0][0]).dir);
    const method = { kind: "BOFT" as const, config: boftConfig({ blockSize: 4, nButterflyFactor: 2, targetModules: null, initWeights: false }) };
    const m: CausalLm = addAdapter(adaptedModel(hf.def, hf.weights), "default", method, { rng: rng(5) });
    const vocab = (hf.def as LlamaDef).config.vocabSize;
    const prompt = Array.from({ length: SLOT_CHUNK - 2 }, (_, i) => (i * 7 + 3) % vocab); // slots run out after 2 tokens
    const fast = await generate(m, prompt, { maxNewTokens: 5 });
    const slow: number[] = [];
    for (let i = 0; i < 5; i++) {
      const logits = toHost(forward(m, { ids: idsArr([[...prompt, ...slow]]), lastOnly: true }).logits).data;
      slow.push(sampleToken(logits, {}, rng(0)));
    }
    assert.deepEqual(fast, slow);
    dispose(hf);
  });
});

describe("boft generate", () => {
  const cli = nodePath.join(nodePath.dirname(fileURLToPath(import.meta.url)), "..", "cli", "main.js");
  const run = (args: string[]) => {
    const r = spawnSync(process.execPath, [cli, "generate", ...args], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    return JSON.parse(lines[lines.length - 1]) as { prompt_ids: number[]; output_ids: number[]; text: string };
  };
  test("base / adapter / merged; adapter and merged give the same tokens (greedy)", async () => {
    const label = CASES[0][0];
    const { dir } = fixture(label);
    // The adapter trained above, or (when this test runs alone) a random non-identity one.
    let adapter = trained.get(label);
    if (!adapter) {
      adapter = nodePath.join(root, "cli-adapter");
      const hf = loadHfModel(dir, { tokenizer: false });
      const method = { kind: "BOFT" as const, config: boftConfig({ blockSize: 4, nButterflyFactor: 2, targetModules: null, initWeights: false }) };
      await saveModelAdapter(addAdapter(adaptedModel(hf.def, hf.weights), "default", method, { rng: rng(2) }), adapter, { baseModelNameOrPath: dir, taskType: "CAUSAL_LM" });
      dispose(hf);
    }
    const common = ["--model", dir, "--prompt", "the cat sat", "--max-new-tokens", "10", "--json"];
    const base = run(common);
    const withAdapter = run([...common, "--adapter", adapter]);
    const merged = run([...common, "--adapter", adapter, "--merge"]);
    const tok = tinyTokenizerFiles();
    assert.equal(base.prompt_ids[0], tok.bosId);
    assert.equal(base.prompt_ids.length, 4);
    for (const r of [base, withAdapter, merged]) {
      assert.ok(r.output_ids.length >= 1 && r.output_ids.length <= 10);
      assert.equal(typeof r.text, "string");
    }
    assert.deepEqual(withAdapter.output_ids, merged.output_ids);
    assert.equal(withAdapter.text, merged.text);
    const sampled = run([...common, "--adapter", adapter, "--temperature", "0.8", "--top-k", "50", "--top-p", "0.9", "--seed", "3", "--chat"]);
    assert.equal(sampled.prompt_ids[0], tok.size - 2); // <|im_start|> opens the chat prompt
    // The same sampling in process, twice: a seed reproduces the run, and the CLI draws the same tokens.
    const hf = loadHfModel(dir);
    const m = loadAdapter(adaptedModel(hf.def, hf.weights), adapter).model;
    const o = { maxNewTokens: 10, temperature: 0.8, topK: 50, topP: 0.9, seed: 3, stopIds: hf.eosTokenIds };
    const again = await generate(m, sampled.prompt_ids, o);
    assert.deepEqual(again, sampled.output_ids);
    assert.deepEqual(await generate(m, sampled.prompt_ids, o), again);
    dispose(hf);
  });

  test("usage errors exit 2 with the usage line", () => {
    const r = spawnSync(process.execPath, [cli, "generate", "--model", "x", "--prompt", "p", "--max-new-tokens", "2", "--merge"], { encoding: "utf8" });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--merge needs --adapter/);
  });
});
