/**
 * A Hugging Face model folder's config.json → LlamaConfig, for the three Llama-family causal LMs transformers
 * builds with the same block: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM.
 *
 * Defaults are transformers' (configuration_llama.py / _mistral.py / _qwen2.py) for the fields a real config may
 * omit; the size fields (hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, vocab_size) are
 * required, since a config without them describes no checkpoint. Each failure is a FormatError naming the field.
 *
 *   llama    attention_bias → q/k/v/o biases; mlp_bias → gate/up/down biases
 *   qwen2    q/k/v biases always (o_proj none); sliding window only with use_sliding_window
 *   mistral  no biases; sliding_window (when set) is not applied here — see `slidingWindow` and the note
 *   rope     rope_scaling null / {"rope_type": "default"} / {"rope_type": "llama3", …}; also the newer
 *            `rope_parameters` spelling (which carries rope_theta). Other types (linear, dynamic, yarn, longrope)
 *            are rejected: they change the math.
 * Pure: JSON in, plain data out.
 */
import { jsonObject } from "./json-object.js";
import { FormatError } from "../errors.js";
import type { LlamaConfig, RopeScaling } from "../models/llama.js";

export type HfModelType = LlamaConfig["modelType"];

/** The architectures class each supported model_type is saved with. */
export const HF_ARCHITECTURES: Readonly<Record<HfModelType, string>> = {
  llama: "LlamaForCausalLM",
  mistral: "MistralForCausalLM",
  qwen2: "Qwen2ForCausalLM",
};

/** transformers' defaults for the optional fields, per model_type. */
const DEFAULTS: Readonly<Record<HfModelType, { rmsNormEps: number; ropeTheta: number; maxPositionEmbeddings: number }>> = {
  llama: { rmsNormEps: 1e-6, ropeTheta: 10000, maxPositionEmbeddings: 2048 },
  mistral: { rmsNormEps: 1e-6, ropeTheta: 10000, maxPositionEmbeddings: 4096 * 32 },
  qwen2: { rmsNormEps: 1e-6, ropeTheta: 10000, maxPositionEmbeddings: 32768 },
};

export interface HfModelConfig {
  config: LlamaConfig;
  /** The architectures entry, e.g. "Qwen2ForCausalLM". */
  architecture: string;
  /**
   * Sliding-window attention the checkpoint was trained with but our forward does not apply (null: none). The
   * forward is exact for sequences of at most this many tokens; callers should cap lengths at it.
   */
  slidingWindow: number | null;
  /** torch_dtype / dtype as written ("bfloat16", …), for information; weights are computed in f32 regardless. */
  torchDtype: string | null;
  bosTokenId: number | null;
  /** eos_token_id may be an int or a list in transformers configs; always a list here (possibly empty). */
  eosTokenIds: number[];
  /** Things the user should know that do not stop loading (the sliding window, ignored fields). */
  notes: string[];
}

/** Parses config.json text (or an already-parsed object). `source` names the file in messages. */
export function parseHfConfig(input: string | unknown, source = "config.json"): HfModelConfig {
  const c = jsonObject(input, source);
  const f = fieldReader(c, source);
  const notes: string[] = [];

  const modelType = c.model_type;
  if (modelType !== "llama" && modelType !== "mistral" && modelType !== "qwen2") {
    throw new FormatError(
      `${source}: model_type ${JSON.stringify(modelType)} is not supported (model_type=${JSON.stringify(modelType)}). ` +
        `Supported: "llama", "mistral", "qwen2" (${Object.values(HF_ARCHITECTURES).join(", ")}).`,
    );
  }
  const architecture = HF_ARCHITECTURES[modelType];
  if (c.architectures !== undefined && c.architectures !== null) {
    const a = c.architectures;
    if (!Array.isArray(a) || a.length === 0 || a[0] !== architecture) {
      throw new FormatError(
        `${source}: architectures must name ${architecture} for model_type "${modelType}" (architectures=${JSON.stringify(a)}). ` +
          "Only causal-LM checkpoints can be loaded.",
      );
    }
  }
  const act = c.hidden_act ?? "silu";
  if (act !== "silu") throw new FormatError(`${source}: hidden_act must be "silu" for a ${architecture} (hidden_act=${JSON.stringify(act)}).`);

  const hiddenSize = f.posInt("hidden_size");
  const intermediateSize = f.posInt("intermediate_size");
  const numHiddenLayers = f.posInt("num_hidden_layers");
  const numAttentionHeads = f.posInt("num_attention_heads");
  const vocabSize = f.posInt("vocab_size");
  const numKeyValueHeads = f.posInt("num_key_value_heads", numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    throw new FormatError(
      `${source}: num_attention_heads must be a multiple of num_key_value_heads (num_attention_heads=${numAttentionHeads}, num_key_value_heads=${numKeyValueHeads}).`,
    );
  }
  let headDim: number;
  if (c.head_dim === undefined || c.head_dim === null) {
    if (hiddenSize % numAttentionHeads !== 0) {
      throw new FormatError(
        `${source}: hidden_size must be divisible by num_attention_heads when head_dim is not given (hidden_size=${hiddenSize}, num_attention_heads=${numAttentionHeads}). Set head_dim.`,
      );
    }
    headDim = hiddenSize / numAttentionHeads;
  } else {
    headDim = f.posInt("head_dim");
  }
  if (headDim % 2 !== 0) throw new FormatError(`${source}: head_dim must be even for rotary embeddings (head_dim=${headDim}).`);

  const d = DEFAULTS[modelType];
  const rmsNormEps = f.posNum("rms_norm_eps", d.rmsNormEps);
  const maxPositionEmbeddings = f.posInt("max_position_embeddings", d.maxPositionEmbeddings);
  const tieWordEmbeddings = f.bool("tie_word_embeddings", false);

  const { ropeTheta, ropeScaling } = readRope(c, source, d.ropeTheta);

  let attentionBias = false;
  let oProjBias = false;
  let mlpBias = false;
  if (modelType === "llama") {
    attentionBias = oProjBias = f.bool("attention_bias", false);
    mlpBias = f.bool("mlp_bias", false);
  } else if (modelType === "qwen2") {
    attentionBias = true;
  }

  let slidingWindow: number | null = null;
  const window = c.sliding_window;
  const usesWindow = modelType === "mistral" ? window !== undefined && window !== null : c.use_sliding_window === true;
  if (usesWindow) {
    slidingWindow = f.posInt("sliding_window");
    notes.push(
      `${source}: sliding_window=${slidingWindow} is not applied; attention is full causal, which equals the checkpoint's ` +
        `attention for sequences of at most ${slidingWindow} tokens.`,
    );
  }
  if (Array.isArray(c.layer_types) && c.layer_types.some((t) => t !== "full_attention") && !usesWindow) {
    notes.push(`${source}: layer_types lists non-full attention layers, but no sliding window is enabled; all layers use full attention.`);
  }

  const torchDtype = typeof c.torch_dtype === "string" ? c.torch_dtype : typeof c.dtype === "string" ? c.dtype : null;
  const bosTokenId = c.bos_token_id === undefined || c.bos_token_id === null ? null : f.tokenId("bos_token_id", c.bos_token_id);
  const eos = c.eos_token_id;
  const eosTokenIds =
    eos === undefined || eos === null ? [] : Array.isArray(eos) ? eos.map((v) => f.tokenId("eos_token_id", v)) : [f.tokenId("eos_token_id", eos)];

  const config: LlamaConfig = {
    modelType,
    vocabSize,
    hiddenSize,
    intermediateSize,
    numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    rmsNormEps,
    ropeTheta,
    ropeScaling,
    tieWordEmbeddings,
    maxPositionEmbeddings,
    attentionBias,
    oProjBias,
    mlpBias,
  };
  return { config, architecture, slidingWindow, torchDtype, bosTokenId, eosTokenIds, notes };
}

/** rope_theta and rope_scaling, from the classic fields or transformers ≥ 5's `rope_parameters`. */
function readRope(c: Record<string, unknown>, source: string, defaultTheta: number): { ropeTheta: number; ropeScaling: RopeScaling | null } {
  const params = c.rope_parameters;
  const scalingField = params !== undefined && params !== null ? "rope_parameters" : "rope_scaling";
  const s = scalingField === "rope_parameters" ? params : c.rope_scaling;
  let ropeTheta = defaultTheta;
  if (c.rope_theta !== undefined && c.rope_theta !== null) ropeTheta = fieldReader(c, source).posNum("rope_theta");
  if (s === undefined || s === null) return { ropeTheta, ropeScaling: null };
  if (typeof s !== "object" || Array.isArray(s)) {
    throw new FormatError(`${source}: ${scalingField} must be an object or null (${scalingField}=${JSON.stringify(s)}).`);
  }
  const o = s as Record<string, unknown>;
  const r = fieldReader(o, `${source} ${scalingField}`);
  if (scalingField === "rope_parameters" && o.rope_theta !== undefined) ropeTheta = r.posNum("rope_theta");
  const type = o.rope_type ?? o.type ?? "default";
  if (type === "default") return { ropeTheta, ropeScaling: null };
  if (type !== "llama3") {
    throw new FormatError(
      `${source}: rope scaling type ${JSON.stringify(type)} is not supported (${scalingField}.rope_type=${JSON.stringify(type)}). ` +
        'Supported: none, "default" and "llama3".',
    );
  }
  const ropeScaling: RopeScaling = {
    ropeType: "llama3",
    factor: r.posNum("factor"),
    lowFreqFactor: r.posNum("low_freq_factor"),
    highFreqFactor: r.posNum("high_freq_factor"),
    originalMaxPositionEmbeddings: r.posInt("original_max_position_embeddings"),
  };
  if (!(ropeScaling.highFreqFactor > ropeScaling.lowFreqFactor)) {
    throw new FormatError(
      `${source}: ${scalingField}.high_freq_factor must exceed low_freq_factor (high_freq_factor=${ropeScaling.highFreqFactor}, low_freq_factor=${ropeScaling.lowFreqFactor}).`,
    );
  }
  return { ropeTheta, ropeScaling };
}

function fieldReader(c: Record<string, unknown>, source: string) {
  const get = (name: string, fallback: number | boolean | undefined): unknown => {
    const v = c[name];
    if (v === undefined || v === null) {
      if (fallback === undefined) throw new FormatError(`${source}: missing required field "${name}".`);
      return fallback;
    }
    return v;
  };
  return {
    posInt(name: string, fallback?: number): number {
      const v = get(name, fallback);
      if (!Number.isSafeInteger(v) || (v as number) <= 0) throw new FormatError(`${source}: ${name} must be a positive integer (${name}=${JSON.stringify(v)}).`);
      return v as number;
    },
    posNum(name: string, fallback?: number): number {
      const v = get(name, fallback);
      if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw new FormatError(`${source}: ${name} must be a positive number (${name}=${JSON.stringify(v)}).`);
      return v;
    },
    bool(name: string, fallback?: boolean): boolean {
      const v = get(name, fallback);
      if (typeof v !== "boolean") throw new FormatError(`${source}: ${name} must be true or false (${name}=${JSON.stringify(v)}).`);
      return v;
    },
    tokenId(name: string, v: unknown): number {
      if (!Number.isSafeInteger(v) || (v as number) < 0) throw new FormatError(`${source}: ${name} must be a token id or a list of them (${name}=${JSON.stringify(v)}).`);
      return v as number;
    },
  };
}
