/**
 * An independent float64 reference for Llama-family causal LMs (Llama, Mistral, Qwen2), written for clarity:
 * plain loops over Float64Array, one token and one head at a time, no engine and no code shared with src/.
 * It follows the equations as transformers' modeling_llama / modeling_qwen2 state them:
 *
 *   x₀ = E[ids]
 *   for each layer:   a = RMSNorm(x; g_in)                       RMSNorm(x; g) = x / √(mean(x²) + ε) · g
 *                     q, k, v = a·Wqᵀ (+bq), a·Wkᵀ (+bk), a·Wvᵀ (+bv)      split into heads of size hd
 *                     q, k ← RoPE(q, pos), RoPE(k, pos)          pairs (i, i + hd/2) rotated by pos·f_i
 *                     query head h reads key/value head ⌊h / (H / H_kv)⌋ (grouped-query attention)
 *                     attn = softmax_{s ≤ t}(q_t·k_s / √hd) · v    (causal)
 *                     x ← x + attn·Woᵀ (+bo)
 *                     b = RMSNorm(x; g_post);  x ← x + (silu(b·Wgᵀ) ⊙ b·Wuᵀ)·Wdᵀ
 *   logits = RMSNorm(x; g_final)·W_lmᵀ      (W_lm = E when the embeddings are tied)
 *
 * RoPE frequencies f_i = θ^(−2i/hd), with Llama 3's rescaling (Meta's `apply_scaling`): wavelengths 2π/f longer
 * than L/low_freq_factor are divided by `factor`, shorter than L/high_freq_factor are kept, and the band between
 * interpolates linearly in L/wavelength.
 */

export interface RefConfig {
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  eps: number;
  ropeTheta: number;
  llama3: { factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number } | null;
  tied: boolean;
}

/** Weights by Hugging Face state-dict name: row-major values and shape. Missing biases mean "no bias". */
export type RefWeights = Map<string, { shape: number[]; data: Float64Array }>;

function get(w: RefWeights, name: string): Float64Array {
  const t = w.get(name);
  if (!t) throw new Error(`reference: no weight ${name}`);
  return t.data;
}

/** y = W·x (+ b) for W [out, n] row-major. */
function matVec(W: Float64Array, x: Float64Array, out: number, bias?: Float64Array): Float64Array {
  const n = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = bias ? bias[o] : 0;
    for (let i = 0; i < n; i++) s += W[o * n + i] * x[i];
    y[o] = s;
  }
  return y;
}

function rmsNorm(x: Float64Array, g: Float64Array, eps: number): Float64Array {
  let ms = 0;
  for (const v of x) ms += v * v;
  ms /= x.length;
  const inv = 1 / Math.sqrt(ms + eps);
  return x.map((v, i) => v * inv * g[i]);
}

export function refRopeFrequencies(c: RefConfig): Float64Array {
  const half = c.headDim / 2;
  const f = new Float64Array(half);
  for (let i = 0; i < half; i++) f[i] = Math.pow(c.ropeTheta, -(2 * i) / c.headDim);
  if (!c.llama3) return f;
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions: L } = c.llama3;
  for (let i = 0; i < half; i++) {
    const wavelength = (2 * Math.PI) / f[i];
    if (wavelength < L / highFreqFactor) continue; // high frequency: unchanged
    if (wavelength > L / lowFreqFactor) {
      f[i] = f[i] / factor; // low frequency: fully interpolated
      continue;
    }
    const smooth = (L / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    f[i] = (1 - smooth) * (f[i] / factor) + smooth * f[i];
  }
  return f;
}

/** Rotates one head vector in place: (v_i, v_{i+hd/2}) by angle pos·f_i. */
function rope(v: Float64Array, pos: number, freq: Float64Array): void {
  const half = freq.length;
  for (let i = 0; i < half; i++) {
    const a = v[i];
    const b = v[i + half];
    const cos = Math.cos(pos * freq[i]);
    const sin = Math.sin(pos * freq[i]);
    v[i] = a * cos - b * sin;
    v[i + half] = b * cos + a * sin;
  }
}

const silu = (z: number) => z / (1 + Math.exp(-z));

/** Logits [T, vocab] (row-major) for one sequence of token ids. */
export function refLogits(c: RefConfig, w: RefWeights, ids: readonly number[]): Float64Array {
  const { hidden: d, heads: H, kvHeads: Hkv, headDim: hd, intermediate: f, vocab: V } = c;
  const T = ids.length;
  const freq = refRopeFrequencies(c);
  const E = get(w, "model.embed_tokens.weight");
  let x: Float64Array[] = ids.map((id) => E.slice(id * d, (id + 1) * d));
  const opt = (name: string) => w.get(name)?.data;

  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}`;
    const gIn = get(w, `${p}.input_layernorm.weight`);
    const q: Float64Array[][] = []; // [t][head] → hd values
    const k: Float64Array[][] = [];
    const v: Float64Array[][] = [];
    for (let t = 0; t < T; t++) {
      const a = rmsNorm(x[t], gIn, c.eps);
      const qa = matVec(get(w, `${p}.self_attn.q_proj.weight`), a, H * hd, opt(`${p}.self_attn.q_proj.bias`));
      const ka = matVec(get(w, `${p}.self_attn.k_proj.weight`), a, Hkv * hd, opt(`${p}.self_attn.k_proj.bias`));
      const va = matVec(get(w, `${p}.self_attn.v_proj.weight`), a, Hkv * hd, opt(`${p}.self_attn.v_proj.bias`));
      q.push(Array.from({ length: H }, (_, h) => qa.slice(h * hd, (h + 1) * hd)));
      k.push(Array.from({ length: Hkv }, (_, h) => ka.slice(h * hd, (h + 1) * hd)));
      v.push(Array.from({ length: Hkv }, (_, h) => va.slice(h * hd, (h + 1) * hd)));
      for (const head of q[t]) rope(head, t, freq);
      for (const head of k[t]) rope(head, t, freq);
    }
    const next: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      const ctx = new Float64Array(H * hd);
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / (H / Hkv));
        const scores = new Float64Array(t + 1);
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let i = 0; i < hd; i++) dot += q[t][h][i] * k[s][kvh][i];
          scores[s] = dot / Math.sqrt(hd);
        }
        const max = Math.max(...scores);
        const e = scores.map((z) => Math.exp(z - max));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) for (let i = 0; i < hd; i++) ctx[h * hd + i] += (e[s] / sum) * v[s][kvh][i];
      }
      const o = matVec(get(w, `${p}.self_attn.o_proj.weight`), ctx, d, opt(`${p}.self_attn.o_proj.bias`));
      const x1 = x[t].map((val, i) => val + o[i]);
      const b = rmsNorm(x1, get(w, `${p}.post_attention_layernorm.weight`), c.eps);
      const gate = matVec(get(w, `${p}.mlp.gate_proj.weight`), b, f, opt(`${p}.mlp.gate_proj.bias`));
      const up = matVec(get(w, `${p}.mlp.up_proj.weight`), b, f, opt(`${p}.mlp.up_proj.bias`));
      const m = matVec(get(w, `${p}.mlp.down_proj.weight`), gate.map((g, i) => silu(g) * up[i]), d, opt(`${p}.mlp.down_proj.bias`));
      next.push(x1.map((val, i) => val + m[i]));
    }
    x = next;
  }
  const head = c.tied ? E : get(w, "lm_head.weight");
  const out = new Float64Array(T * V);
  for (let t = 0; t < T; t++) out.set(matVec(head, rmsNorm(x[t], get(w, "model.norm.weight"), c.eps), V), t * V);
  return out;
}
