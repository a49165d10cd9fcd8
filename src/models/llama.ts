/**
 * A Llama-family causal LM (Llama, Mistral, Qwen2), weight names and math as in Hugging Face transformers'
 * modeling_llama / modeling_qwen2: RMSNorm, rotary embeddings (default and "llama3" scaling), grouped-query
 * attention, SwiGLU MLP, optional tied embeddings, Qwen2's q/k/v biases. Reading order follows the forward.
 */
import { np, nn, contiguous, type Arr } from "../engine/index.js";
import type { ModuleInfo } from "../methods/adapter.js";
import { ShapeError } from "../errors.js";
import type { ModelDef, Weights, LayerFn, WeightSpec } from "./model.js";
import { llamaLayerwise } from "./llama-grad.js"; // the cycle is safe: each side uses the other only when called

export interface RopeScaling {
  ropeType: "llama3";
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

/**
 * A Llama-family decoder (Llama, Mistral, Qwen2) in camelCase: what transformers' config.json says, read by
 * parseHfConfig; build a model from it with llamaFromConfig.
 */
export interface LlamaConfig {
  modelType: "llama" | "mistral" | "qwen2";
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  /** q/k/v biases (Qwen2: true; Llama: attention_bias). */
  attentionBias: boolean;
  /** o_proj bias (Llama's attention_bias also sets it; Qwen2 has none). Default false. */
  oProjBias?: boolean;
  /** gate/up/down biases (Llama's mlp_bias). Default false. */
  mlpBias?: boolean;
}

/** Per-layer key/value cache for generation: [B, kvHeads, past, headDim] per layer. */
export interface KvCache {
  k: Arr[];
  v: Arr[];
  length: number;
}

export interface LlamaInput {
  /** Token ids [B, T] (int32). */
  ids: Arr;
  /**
   * Generation: past keys/values (borrowed; `{ k: [], v: [], length: 0 }` to start one). The forward returns the
   * extended cache in `cache` (fresh arrays); the caller disposes the old one.
   */
  cache?: KvCache;
  /** Logits for the last position only ([B, 1, V]): what generation needs, without the full [B, T, V] head. */
  lastOnly?: boolean;
  /**
   * Eager inference only: run each layer's kernels before building the next. jax-js gives every new array the set
   * of all unsubmitted kernels upstream, so one long lazy graph costs O(kernels²) to build (at SmolLM2-135M's
   * size an eager decoding step spent most of its time there). Generation's prefill uses it. Ignored under tracing
   * (grad, jit).
   */
  flush?: boolean;
  /** Jitted decoding of one new token against a cache of fixed capacity (see SlotCache). Excludes `cache`. */
  slots?: SlotCache;
}

/**
 * A key/value cache of fixed capacity, for decoding one token at a time under jit: every step has the same shapes,
 * so one compiled step serves a whole generation (the eager cache grows by one every token, which would retrace
 * it each time). Everything that depends on the position arrives as an array: the RoPE tables of the new position,
 * the slot it is written to and the slots it may attend to. Borrowed; the forward returns the updated k and v in
 * `cache` (fresh arrays; its `length` is not the filled length, which only the caller knows: it chose `write`).
 */
export interface SlotCache {
  /** Per layer [B, kvHeads, capacity, headDim]; slots past the filled length hold anything finite (masked). */
  k: Arr[];
  v: Arr[];
  /** RoPE tables of the new position [1, 1, 1, headDim] (slotInputs). */
  cos: Arr;
  sin: Arr;
  /** [capacity], 1 at the slot the new token's key and value go to, 0 elsewhere. */
  write: Arr;
  /** [capacity], 0 at the slots the new token attends to (the filled ones and its own), −1e9 elsewhere. */
  mask: Arr;
}

/** The position-dependent inputs of a SlotCache step: the token at `position` of a cache of `capacity` slots. */
export function slotInputs(c: LlamaConfig, position: number, capacity: number, dtype: Arr["dtype"]): Pick<SlotCache, "cos" | "sin" | "write" | "mask"> {
  if (!(Number.isInteger(position) && position >= 0 && position < capacity)) {
    throw new ShapeError(`llama: slot position ${position} is outside a cache of ${capacity} slots`);
  }
  const write = new Float32Array(capacity);
  write[position] = 1;
  const mask = new Float32Array(capacity).fill(-1e9, position + 1);
  return { ...ropeTables(c, position, 1, dtype), write: np.array(write).astype(dtype), mask: np.array(mask).astype(dtype) };
}

/** An empty cache to start generation with. */
export function emptyKvCache(): KvCache {
  return { k: [], v: [], length: 0 };
}

/** RoPE inverse frequencies [headDim/2], with Llama 3's band-wise rescaling when configured. */
export function ropeInvFreq(c: Pick<LlamaConfig, "headDim" | "ropeTheta" | "ropeScaling">): Float64Array {
  const half = c.headDim / 2;
  const inv = Float64Array.from({ length: half }, (_, i) => 1 / c.ropeTheta ** ((2 * i) / c.headDim));
  const s = c.ropeScaling;
  if (!s) return inv;
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / s.factor;
    const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}

function ropeTables(c: LlamaConfig, start: number, T: number, dtype: Arr["dtype"]): { cos: Arr; sin: Arr } {
  const inv = ropeInvFreq(c);
  const d = c.headDim;
  const cos = new Float32Array(T * d);
  const sin = new Float32Array(T * d);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < d; i++) {
      const angle = (start + t) * inv[i % (d / 2)]; // HF duplicates the frequencies: cat(freqs, freqs)
      cos[t * d + i] = Math.cos(angle);
      sin[t * d + i] = Math.sin(angle);
    }
  }
  // [1, 1, T, d] to broadcast over [B, heads, T, d]
  return { cos: np.array(cos).reshape([1, 1, T, d]).astype(dtype), sin: np.array(sin).reshape([1, 1, T, d]).astype(dtype) };
}

/** x·cos + rotate_half(x)·sin, rotate_half(x) = cat(−x₂, x₁). Consumes x; borrows the tables. */
function applyRope(x: Arr, cos: Arr, sin: Arr): Arr {
  const d = x.shape[x.shape.length - 1];
  const x1 = x.ref.slice([], [], [], [0, d / 2]);
  const x2 = x.ref.slice([], [], [], [d / 2, d]);
  const rotated = np.concatenate([np.negative(x2), x1], -1);
  return x.mul(cos.ref).add(rotated.mul(sin.ref));
}

/** HF LlamaRMSNorm: x / √(mean(x²) + eps) · weight. Consumes x; borrows weight. */
export function rmsNorm(x: Arr, weight: Arr, eps: number): Arr {
  const ms = np.square(x.ref).mean(-1, { keepdims: true });
  return x.mul(np.reciprocal(np.sqrt(ms.add(eps)))).mul(weight.ref);
}

function attention(c: LlamaConfig, w: Weights, layer: LayerFn, i: number, h: Arr, cache: KvCache | undefined, out: KvCache | undefined, slots: SlotCache | undefined): Arr {
  const p = `model.layers.${i}.self_attn`;
  const [B, T] = h.shape;
  const { numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: hd } = c;
  const start = cache?.length ?? 0;
  const heads = (x: Arr, n: number) => x.reshape([B, T, n, hd]).transpose([0, 2, 1, 3]); // [B, n, T, hd]
  const { cos, sin } = slots ? { cos: slots.cos.ref, sin: slots.sin.ref } : ropeTables(c, start, T, h.dtype);
  const q = applyRope(heads(layer(`${p}.q_proj`, h.ref), H), cos, sin);
  let k = applyRope(heads(layer(`${p}.k_proj`, h.ref), Hkv), cos, sin);
  let v = contiguous(heads(layer(`${p}.v_proj`, h), Hkv));
  cos.dispose();
  sin.dispose();
  if (slots) {
    // Slot = old·(1 − write) + new·write: exact, as write is 0 or 1.
    const write = slots.write.ref.reshape([1, 1, -1, 1]);
    const keep = np.subtract(1, write.ref);
    k = slots.k[i].ref.mul(keep.ref).add(k.mul(write.ref));
    v = slots.v[i].ref.mul(keep).add(v.mul(write));
  } else if (cache && cache.length > 0) {
    k = np.concatenate([cache.k[i].ref, k], 2);
    v = np.concatenate([cache.v[i].ref, v], 2);
  }
  if (out) {
    out.k[i] = k.ref;
    out.v[i] = v.ref;
  }
  const S = k.shape[2];
  const group = H / Hkv;
  // GQA without copying keys/values: query head h = kv·group + g, so the `group` query heads of one kv head are
  // adjacent and fold into rows: q [B, H, T, hd] → [B, Hkv, group·T, hd] against k, v [B, Hkv, S, hd].
  const qg = q.reshape([B, Hkv, group * T, hd]);
  const scores = np.matmul(qg, np.matrixTranspose(k)).mul(1 / Math.sqrt(hd)).reshape([B, H, T, S]);
  const probs = nn.softmax(scores.add(slots ? slots.mask.ref.reshape([1, 1, 1, S]) : causalMask(start, T, S, scores.dtype)), -1);
  const heads4 = np.matmul(probs.reshape([B, Hkv, group * T, S]), v).reshape([B, H, T, hd]);
  const ctx = contiguous(heads4.transpose([0, 2, 1, 3]).reshape([B, T, H * hd])); // [B, T, H·hd]
  return layer(`${p}.o_proj`, ctx);
}

/** [1, 1, T, S]: query t (absolute position start + t) sees keys 0..start + t; −1e9 elsewhere. */
function causalMask(start: number, T: number, S: number, dtype: Arr["dtype"]): Arr {
  const mask = new Float32Array(T * S);
  for (let t = 0; t < T; t++) for (let s = start + t + 1; s < S; s++) mask[t * S + s] = -1e9;
  return np.array(mask).reshape([1, 1, T, S]).astype(dtype);
}

function mlpBlock(w: Weights, layer: LayerFn, i: number, h: Arr): Arr {
  const p = `model.layers.${i}.mlp`;
  const gate = nn.silu(layer(`${p}.gate_proj`, h.ref));
  return layer(`${p}.down_proj`, gate.mul(layer(`${p}.up_proj`, h)));
}

export function llamaModules(c: LlamaConfig): ModuleInfo[] {
  const { hiddenSize: d, intermediateSize: f, numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: hd } = c;
  const lin = (path: string, n: number, out: number): ModuleInfo => ({ path, kind: "linear", inFeatures: n, outFeatures: out });
  const mods: ModuleInfo[] = [];
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const a = `model.layers.${i}.self_attn`;
    const m = `model.layers.${i}.mlp`;
    mods.push(lin(`${a}.q_proj`, d, H * hd), lin(`${a}.k_proj`, d, Hkv * hd), lin(`${a}.v_proj`, d, Hkv * hd), lin(`${a}.o_proj`, H * hd, d));
    mods.push(lin(`${m}.gate_proj`, d, f), lin(`${m}.up_proj`, d, f), lin(`${m}.down_proj`, f, d));
  }
  mods.push(lin("lm_head", d, c.vocabSize));
  return mods;
}

/**
 * Decoder layer i: h + attn(RMSNorm(h)), then that + mlp(RMSNorm(·)). Consumes h; borrows w. With `cache`/`out`,
 * reads past keys/values of layer i from `cache` and stores the extended ones in `out`; with `slots`/`out`, the same
 * for a slot cache (one new token).
 */
export function decoderLayer(c: LlamaConfig, w: Weights, layer: LayerFn, i: number, h: Arr, cache?: KvCache, out?: KvCache, slots?: SlotCache): Arr {
  const p = `model.layers.${i}`;
  h = h.add(attention(c, w, layer, i, rmsNorm(h.ref, w[`${p}.input_layernorm.weight`], c.rmsNormEps), cache, out, slots));
  return h.add(mlpBlock(w, layer, i, rmsNorm(h.ref, w[`${p}.post_attention_layernorm.weight`], c.rmsNormEps)));
}

/** Final RMSNorm and lm_head: hidden states [B, T, d] → logits [B, T, V]. Consumes h; borrows w. */
export function lmHead(c: LlamaConfig, w: Weights, layer: LayerFn, h: Arr): Arr {
  return layer("lm_head", rmsNorm(h, w["model.norm.weight"], c.rmsNormEps));
}

/** Weight layout as in transformers, with its init (normal(0, 0.02) for matrices, ones for norms). */
export function llamaWeights(c: LlamaConfig): WeightSpec[] {
  const specs: WeightSpec[] = [{ name: "model.embed_tokens.weight", shape: [c.vocabSize, c.hiddenSize], init: { normal: 0.02 } }];
  for (const m of llamaModules(c)) {
    if (m.path === "lm_head" && c.tieWordEmbeddings) continue;
    specs.push({ name: `${m.path}.weight`, shape: [m.outFeatures, m.inFeatures], init: { normal: 0.02 } });
    const biased =
      (c.attentionBias && /\.(q|k|v)_proj$/.test(m.path)) || (c.oProjBias && m.path.endsWith(".o_proj")) || (c.mlpBias && m.path.includes(".mlp."));
    if (biased) specs.push({ name: `${m.path}.bias`, shape: [m.outFeatures], init: "zeros" });
  }
  for (let i = 0; i < c.numHiddenLayers; i++) {
    specs.push({ name: `model.layers.${i}.input_layernorm.weight`, shape: [c.hiddenSize], init: "ones" });
    specs.push({ name: `model.layers.${i}.post_attention_layernorm.weight`, shape: [c.hiddenSize], init: "ones" });
  }
  specs.push({ name: "model.norm.weight", shape: [c.hiddenSize], init: "ones" });
  return specs;
}

/** The model's definition, with its config (generation builds RoPE tables for its slot cache from it). */
export interface LlamaDef extends ModelDef<LlamaInput, { logits: Arr; cache?: KvCache }> {
  config: LlamaConfig;
}

/** The model; with tied embeddings, `lm_head` reads model.embed_tokens.weight (the LayerFn is given that alias). */
export function llama(c: LlamaConfig): LlamaDef {
  const modules = llamaModules(c);
  return {
    type: c.modelType,
    config: c,
    modules,
    weights: llamaWeights(c),
    aliases: c.tieWordEmbeddings ? { "lm_head.weight": "model.embed_tokens.weight" } : undefined,
    layerwise: llamaLayerwise(c),
    apply(w, layer, input) {
      const { ids, cache, lastOnly, flush, slots } = input;
      if (cache && (cache.k.length !== (cache.length > 0 ? c.numHiddenLayers : 0) || cache.v.length !== cache.k.length)) {
        ids.dispose();
        throw new ShapeError(`llama: the cache holds ${cache.k.length} layers at length ${cache.length}; the model has ${c.numHiddenLayers}`);
      }
      if (slots && (cache || ids.shape[1] !== 1 || slots.k.length !== c.numHiddenLayers || slots.v.length !== c.numHiddenLayers)) {
        ids.dispose();
        throw new ShapeError(`llama: a slot cache takes one new token per step and ${c.numHiddenLayers} layers, and no growing cache besides (got ${ids.shape[1]} tokens, ${slots.k.length} layers${cache ? ", and a cache" : ""})`);
      }
      let h = np.take(w["model.embed_tokens.weight"].ref, ids, 0); // [B, T, d]
      const out: KvCache | undefined = cache || slots ? { k: [], v: [], length: (cache?.length ?? 0) + h.shape[1] } : undefined;
      for (let i = 0; i < c.numHiddenLayers; i++) {
        h = decoderLayer(c, w, layer, i, h, cache, out, slots);
        if (flush && h instanceof np.Array) h.ref.slice(0, 0, [0, 1]).dataSync(); // one value read: submits the layer
      }
      if (lastOnly && h.shape[1] > 1) h = h.slice([], [h.shape[1] - 1, h.shape[1]], []); // [B, 1, d]
      return { logits: lmHead(c, w, layer, h), cache: out };
    },
  };
}
