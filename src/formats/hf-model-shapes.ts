/**
 * A Hugging Face config.json → the shapes of a model's adaptable modules and its total parameter count, for the
 * parameter planner. Only sizes are read, so this is lenient where the loader (hf-config.ts) is strict: any rope
 * scaling, any architectures entry, sliding windows are all fine here.
 *
 * Families and module paths (as transformers names them in the base model):
 *   llama / mistral / qwen2   model.layers.N.self_attn.{q,k,v,o}_proj, model.layers.N.mlp.{gate,up,down}_proj, lm_head
 *   deberta-v2 (DeBERTaV3)    encoder.layer.N.attention.self.{query,key,value}_proj, encoder.layer.N.attention.output.dense,
 *                             encoder.layer.N.intermediate.dense, encoder.layer.N.output.dense
 *   dinov2                    embeddings.patch_embeddings.projection (Conv2d), encoder.layer.N.attention.attention.{query,key,value},
 *                             encoder.layer.N.attention.output.dense, encoder.layer.N.mlp.fc1, encoder.layer.N.mlp.fc2
 * Task heads (a GLUE classifier, a VTAB linear head) are not part of these base models; see the notes.
 * Pure: JSON in, plain data out. Failures are FormatErrors naming the field.
 */
import { FormatError } from "../errors.js";
import { jsonObject } from "./json-object.js";
import type { ModelShape } from "../methods/planner.js";
import type { ModuleInfo } from "../methods/record.js";

type Json = Record<string, unknown>;

/** A named model the paper uses, with its published config.json numbers. */
export type ModelPreset = {
  name: string;
  /** Hugging Face repo the numbers come from. */
  repo: string;
  aliases: string[];
  config: Json;
};

/** The paper's three model families, with the numbers from their published config.json files. */
export const MODEL_PRESETS: readonly ModelPreset[] = [
  {
    name: "DeBERTaV3-base",
    repo: "microsoft/deberta-v3-base",
    aliases: ["deberta-v3-base", "debertav3-base"],
    config: {
      model_type: "deberta-v2",
      hidden_size: 768,
      intermediate_size: 3072,
      num_attention_heads: 12,
      num_hidden_layers: 12,
      vocab_size: 128100,
      max_position_embeddings: 512,
      position_buckets: 256,
      relative_attention: true,
      pos_att_type: ["p2c", "c2p"],
      norm_rel_ebd: "layer_norm",
      share_att_key: true,
      position_biased_input: false,
      type_vocab_size: 0,
    },
  },
  {
    name: "DINOv2-large",
    repo: "facebook/dinov2-large",
    aliases: ["dinov2-large", "dinov2-l", "vit-l/14"],
    config: {
      model_type: "dinov2",
      hidden_size: 1024,
      num_hidden_layers: 24,
      num_attention_heads: 16,
      mlp_ratio: 4,
      patch_size: 14,
      image_size: 518,
      num_channels: 3,
      qkv_bias: true,
      layerscale_value: 1.0,
      use_swiglu_ffn: false,
    },
  },
  {
    name: "Llama-2-7B",
    repo: "meta-llama/Llama-2-7b-hf",
    aliases: ["llama-2-7b", "llama2-7b", "llama-2-7b-hf"],
    config: {
      model_type: "llama",
      hidden_size: 4096,
      intermediate_size: 11008,
      num_attention_heads: 32,
      num_key_value_heads: 32,
      num_hidden_layers: 32,
      vocab_size: 32000,
      max_position_embeddings: 4096,
      tie_word_embeddings: false,
      attention_bias: false,
      mlp_bias: false,
    },
  },
];

const squash = (s: string) => s.toLowerCase().replace(/[^a-z0-9]/g, "");

/** The preset called `name` (case, dashes and dots ignored; the HF repo id works too), or undefined. */
export function findModelPreset(name: string): ModelPreset | undefined {
  const key = squash(name);
  return MODEL_PRESETS.find((p) => [p.name, p.repo, ...p.aliases].some((a) => squash(a) === key));
}

/** Module shapes and parameter count from config.json (text or parsed). `source` names it in messages. */
export function modelShapeFromConfig(input: string | unknown, name: string, source = "config.json"): ModelShape {
  const c = jsonObject(input, source) as Json;
  const f = reader(c, source);
  switch (c.model_type) {
    case "llama":
    case "mistral":
    case "qwen2":
      return llamaShape(c, f, name);
    case "deberta-v2":
      return debertaShape(c, f, name, source);
    case "dinov2":
      return dinov2Shape(c, f, name, source);
    default:
      throw new FormatError(
        `${source}: model_type ${JSON.stringify(c.model_type)} is not supported by the planner. ` +
          'Supported: "llama", "mistral", "qwen2", "deberta-v2", "dinov2" (or a preset: ' +
          `${MODEL_PRESETS.map((p) => p.name).join(", ")}).`,
      );
  }
}

/** The ModelShape of a preset. */
export function presetModelShape(p: ModelPreset): ModelShape {
  return modelShapeFromConfig(p.config, p.name, `preset ${p.name}`);
}

type Reader = { int(field: string, dflt?: number): number; num(field: string, dflt?: number): number; bool(field: string, dflt: boolean): boolean };

function reader(c: Json, source: string): Reader {
  const get = (field: string, dflt: unknown): unknown => (c[field] === undefined || c[field] === null ? dflt : c[field]);
  return {
    int(field, dflt) {
      const v = get(field, dflt);
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
        throw new FormatError(`${source}: ${field} must be a non-negative integer (${field}=${JSON.stringify(c[field])}).`);
      }
      return v;
    },
    num(field, dflt) {
      const v = get(field, dflt);
      if (typeof v !== "number" || !Number.isFinite(v)) throw new FormatError(`${source}: ${field} must be a number (${field}=${JSON.stringify(c[field])}).`);
      return v;
    },
    bool(field, dflt) {
      const v = get(field, dflt);
      if (typeof v !== "boolean") throw new FormatError(`${source}: ${field} must be true or false (${field}=${JSON.stringify(c[field])}).`);
      return v;
    },
  };
}

const lin = (path: string, n: number, out: number, bias: boolean): ModuleInfo => ({ path, kind: "linear", inFeatures: n, outFeatures: out, bias });
const weights = (m: ModuleInfo) => m.inFeatures * m.outFeatures * (m.kernel ? m.kernel[0] * m.kernel[1] : 1) + (m.bias ? m.outFeatures : 0);

/** Llama, Mistral, Qwen2: the same block; biases per family (Qwen2 q/k/v, Llama attention_bias/mlp_bias). */
function llamaShape(c: Json, f: Reader, name: string): ModelShape {
  const d = f.int("hidden_size");
  const ff = f.int("intermediate_size");
  const L = f.int("num_hidden_layers");
  const H = f.int("num_attention_heads");
  const Hkv = f.int("num_key_value_heads", H);
  const hd = f.int("head_dim", Math.floor(d / H));
  const V = f.int("vocab_size");
  const tied = f.bool("tie_word_embeddings", false);
  const qkvBias = c.model_type === "qwen2" ? true : c.model_type === "llama" ? f.bool("attention_bias", false) : false;
  const oBias = c.model_type === "llama" ? f.bool("attention_bias", false) : false;
  const mlpBias = c.model_type === "llama" ? f.bool("mlp_bias", false) : false;
  const modules: ModuleInfo[] = [];
  for (let i = 0; i < L; i++) {
    const a = `model.layers.${i}.self_attn`;
    const m = `model.layers.${i}.mlp`;
    modules.push(lin(`${a}.q_proj`, d, H * hd, qkvBias), lin(`${a}.k_proj`, d, Hkv * hd, qkvBias), lin(`${a}.v_proj`, d, Hkv * hd, qkvBias));
    modules.push(lin(`${a}.o_proj`, H * hd, d, oBias));
    modules.push(lin(`${m}.gate_proj`, d, ff, mlpBias), lin(`${m}.up_proj`, d, ff, mlpBias), lin(`${m}.down_proj`, ff, d, mlpBias));
  }
  const head = lin("lm_head", d, V, false);
  modules.push(head);
  // Embeddings, every linear, two RMSNorms per layer and the final one (RMSNorm has no bias).
  const totalParams = V * d + modules.reduce((a, m) => a + (m === head && tied ? 0 : weights(m)), 0) + (2 * L + 1) * d;
  const notes = tied ? ["lm_head shares the embedding matrix (tie_word_embeddings): counted once."] : [];
  return { name, modelType: String(c.model_type), modules, totalParams, otherBiasParams: 0, notes };
}

/**
 * DeBERTa-v2/v3 (DebertaV2Model): 6 linears per layer with biases; embeddings (+ LayerNorm), relative position
 * embeddings (2·position_buckets rows) with their LayerNorm when norm_rel_ebd has "layer_norm".
 */
function debertaShape(c: Json, f: Reader, name: string, source: string): ModelShape {
  const d = f.int("hidden_size");
  const ff = f.int("intermediate_size");
  const L = f.int("num_hidden_layers");
  const V = f.int("vocab_size");
  const P = f.int("max_position_embeddings", 512);
  const embeddingSize = f.int("embedding_size", d);
  if (c.conv_kernel_size !== undefined && c.conv_kernel_size !== null && c.conv_kernel_size !== 0) {
    throw new FormatError(`${source}: conv_kernel_size (DeBERTa-v2 xlarge's convolution layer) is not modelled by the planner.`);
  }
  const modules: ModuleInfo[] = [];
  for (let i = 0; i < L; i++) {
    const p = `encoder.layer.${i}`;
    modules.push(lin(`${p}.attention.self.query_proj`, d, d, true), lin(`${p}.attention.self.key_proj`, d, d, true));
    modules.push(lin(`${p}.attention.self.value_proj`, d, d, true), lin(`${p}.attention.output.dense`, d, d, true));
    modules.push(lin(`${p}.intermediate.dense`, d, ff, true), lin(`${p}.output.dense`, ff, d, true));
  }
  const positionBiased = f.bool("position_biased_input", true);
  const typeVocab = f.int("type_vocab_size", 0);
  const relative = f.bool("relative_attention", false);
  // transformers: position_buckets (default −1) rows ×2 if > 0, else max_relative_positions (< 1: max_position_embeddings) ×2.
  const buckets = typeof c.position_buckets === "number" && c.position_buckets > 0 ? f.int("position_buckets") : 0;
  const maxRel = typeof c.max_relative_positions === "number" ? c.max_relative_positions : -1;
  const relRows = relative ? 2 * (buckets > 0 ? buckets : maxRel < 1 ? P : maxRel) : 0;
  const relNorm = relative && String(c.norm_rel_ebd ?? "none").includes("layer_norm");
  let embeddings = V * embeddingSize + (positionBiased ? P * embeddingSize : 0) + typeVocab * embeddingSize + 2 * d;
  if (embeddingSize !== d) embeddings += embeddingSize * d; // embed_proj (no bias)
  const layerNorms = L * 2 * 2 * d + (relNorm ? 2 * d : 0); // weight + bias each
  const totalParams = embeddings + modules.reduce((a, m) => a + weights(m), 0) + layerNorms + relRows * d;
  const lnBiases = d + L * 2 * d + (relNorm ? d : 0);
  return {
    name,
    modelType: "deberta-v2",
    modules,
    totalParams,
    otherBiasParams: lnBiases,
    notes: [
      `A sequence classifier adds a pooler (dense ${d}→${d}: ${(d * d + d).toLocaleString("en-US")} values) and a classifier (${d}→k: ${d}·k + k); PEFT trains ` +
        "the classifier as a module to save, and neither is in these counts.",
    ],
  };
}

/** DINOv2 (Dinov2Model): patch embedding conv, cls/mask tokens, position embeddings, and ViT blocks with LayerScale. */
function dinov2Shape(c: Json, f: Reader, name: string, source: string): ModelShape {
  const d = f.int("hidden_size");
  const L = f.int("num_hidden_layers");
  const ratio = f.num("mlp_ratio", 4);
  const patch = f.int("patch_size", 14);
  const image = f.int("image_size", 518);
  const channels = f.int("num_channels", 3);
  const qkvBias = f.bool("qkv_bias", true);
  if (f.bool("use_swiglu_ffn", false)) throw new FormatError(`${source}: use_swiglu_ffn (DINOv2-giant's MLP) is not modelled by the planner.`);
  const hidden = Math.floor(d * ratio);
  const modules: ModuleInfo[] = [
    { path: "embeddings.patch_embeddings.projection", kind: "conv2d", inFeatures: channels, outFeatures: d, kernel: [patch, patch], bias: true },
  ];
  for (let i = 0; i < L; i++) {
    const p = `encoder.layer.${i}`;
    modules.push(lin(`${p}.attention.attention.query`, d, d, qkvBias), lin(`${p}.attention.attention.key`, d, d, qkvBias));
    modules.push(lin(`${p}.attention.attention.value`, d, d, qkvBias), lin(`${p}.attention.output.dense`, d, d, true));
    modules.push(lin(`${p}.mlp.fc1`, d, hidden, true), lin(`${p}.mlp.fc2`, hidden, d, true));
  }
  const positions = (image / patch) ** 2 + 1;
  const perLayerOther = 2 * 2 * d + 2 * d; // two LayerNorms (weight + bias), two LayerScale vectors
  const totalParams = 2 * d + positions * d + modules.reduce((a, m) => a + weights(m), 0) + L * perLayerOther + 2 * d;
  return {
    name,
    modelType: "dinov2",
    modules,
    totalParams,
    otherBiasParams: L * 2 * d + d,
    notes: [`A linear classification head (${d}→k, or ${2 * d}→k on [cls, mean patch]) is not in these counts.`],
  };
}
