/**
 * Tiny random Hugging Face model folders, in the exact layout transformers saves (config.json fields, state-dict
 * names and shapes, safetensors dtypes, sharded index, tokenizer.json / tokenizer_config.json /
 * generation_config.json), plus the same weights as float64 maps for the reference in test/reference/llama-ref.ts.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { saveSafetensors } from "../src/node/safetensors-file.js";
import { roundTo, dtypeSize, type StDType } from "../src/formats/dtype.js";
import type { RefConfig, RefWeights } from "./reference/llama-ref.js";
import { normalSampler } from "./helpers.js";

export interface TinySpec {
  modelType: "llama" | "qwen2" | "mistral";
  heads: number;
  kvHeads: number;
  /** Explicit head_dim (written to config.json); default hidden / heads (not written). */
  headDim?: number;
  tied: boolean;
  /** Tied checkpoints usually omit lm_head.weight; true stores it again (equal). */
  storeTiedHead?: boolean;
  dtype: StDType;
  sharded: boolean;
  llama3?: boolean;
  /** Llama's attention_bias (q/k/v/o biases). Qwen2 always has q/k/v biases. */
  attentionBias?: boolean;
  slidingWindow?: number;
  seed?: number;
  hidden?: number;
  layers?: number;
}

export const TINY = { hidden: 32, intermediate: 48, layers: 2, vocab: 288 };

// ---- tokenizer: byte-level BPE as GPT-2 / Llama 3 / Qwen2 save it -------------------------------------------

/** GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards. */
function byteChars(): string[] {
  const keep = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(keep(b) ? b : 256 + n++);
  return out;
}

export const SPECIAL = { bos: "<|begin_of_text|>", eos: "<|end_of_text|>", imStart: "<|im_start|>", imEnd: "<|im_end|>" };
const MERGES = ["Ġ t", "h e", "Ġt he", "t he", "Ġ c", "a t", "Ġc at", "i n", "Ġ s", "Ġs at", "Ġ m", "Ġm at", "Ġ o", "Ġo n"];
export const CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export function tinyTokenizerFiles(): { tokenizer: object; config: object; size: number; bosId: number; eosId: number; imEndId: number } {
  const vocab: Record<string, number> = {};
  byteChars().forEach((c, b) => (vocab[c] = b));
  let next = 256;
  for (const m of MERGES) vocab[m.replace(" ", "")] = next++;
  const specials = [SPECIAL.bos, SPECIAL.eos, SPECIAL.imStart, SPECIAL.imEnd];
  const ids = Object.fromEntries(specials.map((s, i) => [s, next + i]));
  const added = specials.map((content) => ({ id: ids[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: pattern }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: SPECIAL.bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: SPECIAL.bos, type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: SPECIAL.bos, type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { [SPECIAL.bos]: { id: SPECIAL.bos, ids: [ids[SPECIAL.bos]], tokens: [SPECIAL.bos] } },
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: MERGES,
    },
  };
  const config = {
    added_tokens_decoder: Object.fromEntries(added.map((a) => [String(a.id), { ...a, id: undefined }])),
    bos_token: SPECIAL.bos,
    chat_template: CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: SPECIAL.eos,
    model_max_length: 2048,
    tokenizer_class: "PreTrainedTokenizerFast",
  };
  return { tokenizer, config, size: next + specials.length, bosId: ids[SPECIAL.bos], eosId: ids[SPECIAL.eos], imEndId: ids[SPECIAL.imEnd] };
}

// ---- config.json ---------------------------------------------------------------------------------------------

const ARCH = { llama: "LlamaForCausalLM", qwen2: "Qwen2ForCausalLM", mistral: "MistralForCausalLM" } as const;

export function tinyConfigJson(s: TinySpec, bosId: number, eosId: number): Record<string, unknown> {
  const hidden = s.hidden ?? TINY.hidden;
  const torchDtype = { BF16: "bfloat16", F16: "float16", F32: "float32", F64: "float64" }[s.dtype];
  const c: Record<string, unknown> = {
    architectures: [ARCH[s.modelType]],
    attention_dropout: 0.0,
    bos_token_id: bosId,
    eos_token_id: eosId,
    hidden_act: "silu",
    hidden_size: hidden,
    initializer_range: 0.02,
    intermediate_size: TINY.intermediate,
    max_position_embeddings: 2048,
    model_type: s.modelType,
    num_attention_heads: s.heads,
    num_hidden_layers: s.layers ?? TINY.layers,
    num_key_value_heads: s.kvHeads,
    rms_norm_eps: 1e-5,
    rope_theta: s.llama3 ? 500000.0 : 10000.0,
    tie_word_embeddings: s.tied,
    torch_dtype: torchDtype,
    transformers_version: "4.46.0",
    use_cache: true,
    vocab_size: TINY.vocab,
  };
  if (s.headDim !== undefined) c.head_dim = s.headDim;
  if (s.modelType === "llama") {
    Object.assign(c, { attention_bias: s.attentionBias ?? false, mlp_bias: false, pretraining_tp: 1 });
    c.rope_scaling = s.llama3
      ? { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 64, rope_type: "llama3" }
      : null;
  } else if (s.modelType === "qwen2") {
    Object.assign(c, { max_window_layers: 28, sliding_window: s.slidingWindow ?? 32768, use_sliding_window: false, rope_scaling: null });
  } else {
    c.sliding_window = s.slidingWindow ?? null;
  }
  return c;
}

export function refConfigOf(s: TinySpec): RefConfig {
  const hidden = s.hidden ?? TINY.hidden;
  return {
    vocab: TINY.vocab,
    hidden,
    intermediate: TINY.intermediate,
    layers: s.layers ?? TINY.layers,
    heads: s.heads,
    kvHeads: s.kvHeads,
    headDim: s.headDim ?? hidden / s.heads,
    eps: 1e-5,
    ropeTheta: s.llama3 ? 500000 : 10000,
    llama3: s.llama3 ? { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 } : null,
    tied: s.tied,
  };
}

// ---- weights -------------------------------------------------------------------------------------------------

/** The state dict transformers would save for the spec, with random values (scaled so attention is not uniform). */
export function tinyStateDict(s: TinySpec): { name: string; shape: number[]; data: Float32Array }[] {
  const c = refConfigOf(s);
  const normal = normalSampler(s.seed ?? 7);
  const out: { name: string; shape: number[]; data: Float32Array }[] = [];
  const add = (name: string, shape: number[], f: () => number) => {
    const n = shape.reduce((a, b) => a * b, 1);
    out.push({ name, shape, data: Float32Array.from({ length: n }, f) });
  };
  const lin = (name: string, o: number, i: number, gain = 1) => add(name, [o, i], () => (gain * normal()) / Math.sqrt(i));
  const qkvBias = s.modelType === "qwen2" || s.attentionBias === true;
  add("model.embed_tokens.weight", [c.vocab, c.hidden], () => normal());
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}`;
    lin(`${p}.self_attn.q_proj.weight`, c.heads * c.headDim, c.hidden, 2);
    lin(`${p}.self_attn.k_proj.weight`, c.kvHeads * c.headDim, c.hidden, 2);
    lin(`${p}.self_attn.v_proj.weight`, c.kvHeads * c.headDim, c.hidden);
    lin(`${p}.self_attn.o_proj.weight`, c.hidden, c.heads * c.headDim);
    if (qkvBias) {
      add(`${p}.self_attn.q_proj.bias`, [c.heads * c.headDim], () => 0.2 * normal());
      add(`${p}.self_attn.k_proj.bias`, [c.kvHeads * c.headDim], () => 0.2 * normal());
      add(`${p}.self_attn.v_proj.bias`, [c.kvHeads * c.headDim], () => 0.2 * normal());
    }
    if (s.modelType === "llama" && s.attentionBias) add(`${p}.self_attn.o_proj.bias`, [c.hidden], () => 0.2 * normal());
    lin(`${p}.mlp.gate_proj.weight`, c.intermediate, c.hidden);
    lin(`${p}.mlp.up_proj.weight`, c.intermediate, c.hidden);
    lin(`${p}.mlp.down_proj.weight`, c.hidden, c.intermediate);
    add(`${p}.input_layernorm.weight`, [c.hidden], () => 1 + 0.1 * normal());
    add(`${p}.post_attention_layernorm.weight`, [c.hidden], () => 1 + 0.1 * normal());
  }
  add("model.norm.weight", [c.hidden], () => 1 + 0.1 * normal());
  if (!s.tied) lin("lm_head.weight", c.vocab, c.hidden);
  else if (s.storeTiedHead) out.push({ name: "lm_head.weight", shape: out[0].shape, data: out[0].data });
  return out;
}

/** Writes model.safetensors, or two shards plus model.safetensors.index.json, as save_pretrained does. */
export function writeWeights(dir: string, tensors: { name: string; shape: number[]; data: Float32Array | Float64Array }[], dtype: StDType, sharded: boolean): void {
  const specs = tensors.map((t) => ({ ...t, dtype }));
  if (!sharded) {
    saveSafetensors(nodePath.join(dir, "model.safetensors"), specs, { format: "pt" });
    return;
  }
  const half = Math.ceil(specs.length / 2);
  const shards = [specs.slice(0, half), specs.slice(half)];
  const weightMap: Record<string, string> = {};
  let total = 0;
  shards.forEach((part, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    saveSafetensors(nodePath.join(dir, file), part, { format: "pt" });
    for (const t of part) {
      weightMap[t.name] = file;
      total += t.data.length * dtypeSize(dtype);
    }
  });
  fs.writeFileSync(nodePath.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
}

/** A complete tiny model folder. Returns the reference's view of the same model. */
export function writeTinyModel(dir: string, s: TinySpec): { ref: RefConfig; weights: RefWeights } {
  fs.mkdirSync(dir, { recursive: true });
  const tok = tinyTokenizerFiles();
  fs.writeFileSync(nodePath.join(dir, "config.json"), JSON.stringify(tinyConfigJson(s, tok.bosId, tok.eosId), null, 2));
  fs.writeFileSync(nodePath.join(dir, "generation_config.json"), JSON.stringify({ bos_token_id: tok.bosId, eos_token_id: [tok.eosId, tok.imEndId], transformers_version: "4.46.0" }, null, 2));
  fs.writeFileSync(nodePath.join(dir, "tokenizer.json"), JSON.stringify(tok.tokenizer, null, 2));
  fs.writeFileSync(nodePath.join(dir, "tokenizer_config.json"), JSON.stringify(tok.config, null, 2));
  const state = tinyStateDict(s);
  writeWeights(dir, state, s.dtype, s.sharded);
  const weights: RefWeights = new Map(state.map((t) => [t.name, { shape: t.shape, data: Float64Array.from(roundTo(s.dtype, t.data)) }]));
  return { ref: refConfigOf(s), weights };
}
