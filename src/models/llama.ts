/**
 * A Llama-family causal LM (Llama, Mistral, Qwen2), weight names and math as in Hugging Face transformers'
 * modeling_llama / modeling_qwen2: RMSNorm, rotary embeddings (default and "llama3" scaling), grouped-query
 * attention, SwiGLU MLP, optional tied embeddings, Qwen2's q/k/v biases. Reading order follows the forward.
 */
import { np, nn, type Arr } from "../engine/index.js";
import type { ModuleInfo } from "../methods/adapter.js";
import type { ModelDef, Weights, LayerFn, WeightSpec } from "./model.js";

export interface RopeScaling {
  ropeType: "llama3";
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

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
  /** q/k/v biases (Qwen2: true). */
  attentionBias: boolean;
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
  /** Generation: past keys/values; the forward returns the extended cache in `cache`. */
  cache?: KvCache;
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

function attention(c: LlamaConfig, w: Weights, layer: LayerFn, i: number, h: Arr, cache: KvCache | undefined, out: KvCache | undefined): Arr {
  const p = `model.layers.${i}.self_attn`;
  const [B, T] = h.shape;
  const { numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: hd } = c;
  const start = cache?.length ?? 0;
  const heads = (x: Arr, n: number) => x.reshape([B, T, n, hd]).transpose([0, 2, 1, 3]); // [B, n, T, hd]
  const { cos, sin } = ropeTables(c, start, T, h.dtype);
  const q = applyRope(heads(layer(`${p}.q_proj`, h.ref), H), cos, sin);
  let k = applyRope(heads(layer(`${p}.k_proj`, h.ref), Hkv), cos, sin);
  let v = heads(layer(`${p}.v_proj`, h), Hkv);
  cos.dispose();
  sin.dispose();
  if (cache) {
    k = np.concatenate([cache.k[i].ref, k], 2);
    v = np.concatenate([cache.v[i].ref, v], 2);
  }
  if (out) {
    out.k[i] = k.ref;
    out.v[i] = v.ref;
  }
  const S = k.shape[2];
  const group = H / Hkv;
  const expand = (x: Arr) => (group === 1 ? x : np.broadcastTo(x.reshape([B, Hkv, 1, S, hd]), [B, Hkv, group, S, hd]).reshape([B, H, S, hd]));
  const scores = np.matmul(q, np.matrixTranspose(expand(k))).mul(1 / Math.sqrt(hd)); // [B, H, T, S]
  // Query t (absolute position start + t) sees keys 0..start + t.
  const mask = new Float32Array(T * S);
  for (let t = 0; t < T; t++) for (let s = start + t + 1; s < S; s++) mask[t * S + s] = -1e9;
  const probs = nn.softmax(scores.add(np.array(mask).reshape([1, 1, T, S]).astype(scores.dtype)), -1);
  const ctx = np.matmul(probs, expand(v)).transpose([0, 2, 1, 3]).reshape([B, T, H * hd]);
  return layer(`${p}.o_proj`, ctx);
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

/** Weight layout as in transformers, with its init (normal(0, 0.02) for matrices, ones for norms). */
export function llamaWeights(c: LlamaConfig): WeightSpec[] {
  const specs: WeightSpec[] = [{ name: "model.embed_tokens.weight", shape: [c.vocabSize, c.hiddenSize], init: { normal: 0.02 } }];
  for (const m of llamaModules(c)) {
    if (m.path === "lm_head" && c.tieWordEmbeddings) continue;
    specs.push({ name: `${m.path}.weight`, shape: [m.outFeatures, m.inFeatures], init: { normal: 0.02 } });
    if (c.attentionBias && /\.(q|k|v)_proj$/.test(m.path)) specs.push({ name: `${m.path}.bias`, shape: [m.outFeatures], init: "zeros" });
  }
  for (let i = 0; i < c.numHiddenLayers; i++) {
    specs.push({ name: `model.layers.${i}.input_layernorm.weight`, shape: [c.hiddenSize], init: "ones" });
    specs.push({ name: `model.layers.${i}.post_attention_layernorm.weight`, shape: [c.hiddenSize], init: "ones" });
  }
  specs.push({ name: "model.norm.weight", shape: [c.hiddenSize], init: "ones" });
  return specs;
}

/** The model; with tied embeddings, `lm_head` reads model.embed_tokens.weight (the LayerFn is given that alias). */
export function llama(c: LlamaConfig): ModelDef<LlamaInput, { logits: Arr; cache?: KvCache }> {
  const modules = llamaModules(c);
  return {
    type: c.modelType,
    modules,
    weights: llamaWeights(c),
    aliases: c.tieWordEmbeddings ? { "lm_head.weight": "model.embed_tokens.weight" } : undefined,
    apply(w, layer, input) {
      const { ids, cache } = input;
      let h = np.take(w["model.embed_tokens.weight"].ref, ids, 0); // [B, T, d]
      const out: KvCache | undefined = cache ? { k: [], v: [], length: cache.length + h.shape[1] } : undefined;
      for (let i = 0; i < c.numHiddenLayers; i++) {
        const p = `model.layers.${i}`;
        const a = attention(c, w, layer, i, rmsNorm(h.ref, w[`${p}.input_layernorm.weight`], c.rmsNormEps), cache, out);
        h = h.add(a);
        h = h.add(mlpBlock(w, layer, i, rmsNorm(h.ref, w[`${p}.post_attention_layernorm.weight`], c.rmsNormEps)));
      }
      const logits = layer("lm_head", rmsNorm(h, w["model.norm.weight"], c.rmsNormEps));
      return { logits, cache: out };
    },
  };
}
