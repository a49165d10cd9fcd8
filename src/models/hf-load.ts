/**
 * A Hugging Face causal-LM (Llama, Mistral, Qwen2) from its files → our model: config, weights, tokenizer. Browser-clean:
 * the files come through `HfFiles` (a folder on disk in src/node/hf-model.ts, a map of bytes in the public API).
 *
 *   config.json                     → LlamaConfig (formats/hf-config.ts)
 *   model.safetensors | model.safetensors.index.json + shards
 *                                   → Weights, computed in f32 (bf16 / f16 widen exactly; f64 rounds once)
 *   tokenizer.json (+ tokenizer_config.json, chat_template.jinja)
 *                                   → TextTokenizer with its chat template (formats/hf-tokenizer.ts)
 *   generation_config.json          → extra end-of-sequence ids
 *
 * Every tensor is checked against the config's layout (names and shapes) before any is read, as transformers'
 * from_pretrained would report them: missing or unexpected tensors are errors (never random init). Tied embeddings:
 * lm_head.weight may be absent, or present and equal to model.embed_tokens.weight. Old checkpoints'
 * `rotary_emb.inv_freq` buffers are skipped, as transformers skips them.
 */
import { fromHost, tree, type Arr, type FloatDType } from "../engine/index.js";
import { FormatError, ShapeError } from "../errors.js";
import { type HfModelConfig, type HfModelType, parseHfConfig } from "../formats/hf-config.js";
import { type TextTokenizer, hfTokenizer } from "../formats/hf-tokenizer.js";
import { jsonObject } from "../formats/json-object.js";
import type { TensorStore } from "../formats/tensor-store.js";
import { type LlamaConfig, type LlamaInput, type KvCache, llama } from "./llama.js";
import type { ModelDef, Weights } from "./model.js";

export type LlamaOutput = { logits: Arr; cache?: KvCache };

export interface HfModel {
  /** The folder as given (what PEFT writes as base_model_name_or_path for a local model). */
  folder: string;
  modelType: HfModelType;
  config: LlamaConfig;
  /** Everything else config.json said: architecture, sliding window, token ids, notes. */
  info: HfModelConfig;
  def: ModelDef<LlamaInput, LlamaOutput>;
  /** Frozen base weights by state-dict name, in the compute dtype. The caller owns them (tree.dispose). */
  weights: Weights;
  /** null only when loaded with `tokenizer: false`. */
  tokenizer: TextTokenizer | null;
  chatTemplate: string | null;
  /** Ids that end generation: generation_config.json's eos_token_id, then config.json's (deduplicated). */
  eosTokenIds: number[];
  /** Non-fatal findings (sliding window not applied, skipped buffers, …), for the CLI to print. */
  notes: string[];
}

export interface LoadHfModelOptions {
  /** Compute dtype (default float32, whatever the files hold). */
  dtype?: FloatDType;
  /** Load tokenizer.json (default true; a folder without one is then an error). */
  tokenizer?: boolean;
}

export const CONFIG_FILE = "config.json";
export const TOKENIZER_FILE = "tokenizer.json";
export const TOKENIZER_CONFIG_FILE = "tokenizer_config.json";
export const CHAT_TEMPLATE_FILE = "chat_template.jinja";
export const GENERATION_CONFIG_FILE = "generation_config.json";

/** A model's files, by name (config.json, tokenizer.json, …), wherever they are. */
export interface HfFiles {
  /** Where the files are, for messages (a folder path, or a name the caller chose). */
  readonly where: string;
  /** The text of a file, or null when there is no such file. */
  text(name: string): string | null;
  /** The weights: model.safetensors, or the index and its shards. */
  weights(): TensorStore & { close?(): void };
}

/** Buffers some checkpoints carry that transformers ignores on load. */
const IGNORED = /(^|\.)rotary_emb\.inv_freq$/;

function readJson(files: HfFiles, name: string): Record<string, unknown> | null {
  const text = files.text(name);
  return text === null ? null : jsonObject(text, `${files.where}/${name}`);
}

/** config.json, parsed and validated. */
export function readHfConfig(files: HfFiles): HfModelConfig {
  const config = readJson(files, CONFIG_FILE);
  if (!config) throw new FormatError(`${files.where}: no ${CONFIG_FILE}. Point --model at a Hugging Face model folder.`);
  return parseHfConfig(config, `${files.where}/${CONFIG_FILE}`);
}

/** The model's tokenizer: tokenizer.json, with tokenizer_config.json and chat_template.jinja when present. */
export function loadHfTokenizer(files: HfFiles): TextTokenizer {
  const json = readJson(files, TOKENIZER_FILE);
  if (!json) {
    throw new FormatError(
      `${files.where}: no ${TOKENIZER_FILE}. boft reads the fast-tokenizer file; a folder with only a SentencePiece tokenizer.model must be converted first (transformers: AutoTokenizer.from_pretrained(...).save_pretrained(...)).`,
    );
  }
  const config = readJson(files, TOKENIZER_CONFIG_FILE) ?? {};
  const chatTemplate = files.text(CHAT_TEMPLATE_FILE) ?? undefined;
  return hfTokenizer(json, config, { chatTemplate, source: `${files.where}/${TOKENIZER_FILE}` });
}

function generationEosIds(files: HfFiles): number[] {
  const g = readJson(files, GENERATION_CONFIG_FILE) as { eos_token_id?: unknown } | null;
  if (!g) return [];
  const eos = g.eos_token_id;
  const list = Array.isArray(eos) ? eos : eos === undefined || eos === null ? [] : [eos];
  if (!list.every((v) => Number.isSafeInteger(v) && (v as number) >= 0)) {
    throw new FormatError(`${files.where}/${GENERATION_CONFIG_FILE}: eos_token_id must be a token id or a list of them (eos_token_id=${JSON.stringify(eos)}).`);
  }
  return list as number[];
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

function list(names: string[]): string {
  return names.slice(0, 5).map((n) => `"${n}"`).join(", ") + (names.length > 5 ? `, … (${names.length} in all)` : "");
}

/**
 * Checks the checkpoint's tensors against the model's layout; returns the names to read. Throws FormatError or
 * ShapeError before anything is read.
 */
function planWeights(ckpt: TensorStore, def: ModelDef<LlamaInput, LlamaOutput>, config: LlamaConfig, notes: string[]): string[] {
  const expected = new Map(def.weights.map((w) => [w.name, w.shape]));
  const missing = def.weights.filter((w) => !ckpt.has(w.name)).map((w) => w.name);
  const unexpected: string[] = [];
  const ignored: string[] = [];
  for (const t of ckpt.tensors) {
    const shape = expected.get(t.name);
    if (shape) {
      if (!sameShape(shape, t.shape)) {
        throw new ShapeError(`${ckpt.path}: tensor "${t.name}" is [${t.shape}], but config.json implies [${shape}]. The config and the weights do not belong together.`);
      }
    } else if (t.name === "lm_head.weight" && config.tieWordEmbeddings) {
      if (!sameShape(t.shape, [config.vocabSize, config.hiddenSize])) {
        throw new ShapeError(`${ckpt.path}: tensor "lm_head.weight" is [${t.shape}], expected [${config.vocabSize},${config.hiddenSize}].`);
      }
    } else if (IGNORED.test(t.name)) {
      ignored.push(t.name);
    } else {
      unexpected.push(t.name);
    }
  }
  if (missing.length) {
    throw new FormatError(
      `${ckpt.path}: ${missing.length} tensor(s) the ${config.modelType} config needs are missing: ${list(missing)}.` +
        (missing.includes("lm_head.weight") ? " (tie_word_embeddings is false, so lm_head.weight must be stored.)" : ""),
    );
  }
  if (unexpected.length) {
    throw new FormatError(`${ckpt.path}: ${unexpected.length} tensor(s) do not belong to a ${config.modelType} model with this config: ${list(unexpected)}.`);
  }
  if (ignored.length) notes.push(`${ckpt.path}: skipped ${ignored.length} rotary_emb.inv_freq buffer(s) (recomputed from the config).`);
  return def.weights.map((w) => w.name);
}

/** A tied checkpoint that also stores lm_head.weight must store the embedding again, unchanged. */
function checkTiedHead(ckpt: TensorStore): void {
  if (!ckpt.has("lm_head.weight")) return;
  const head = ckpt.info("lm_head.weight");
  const emb = ckpt.info("model.embed_tokens.weight");
  let equal: boolean;
  if (head.dtype === emb.dtype) {
    const a = ckpt.readRaw("lm_head.weight");
    const b = ckpt.readRaw("model.embed_tokens.weight");
    equal = a.length === b.length && a.every((v, k) => v === b[k]);
  } else {
    const a = ckpt.read("lm_head.weight").data;
    const b = ckpt.read("model.embed_tokens.weight").data;
    equal = a.length === b.length && a.every((v, k) => v === b[k]);
  }
  if (!equal) {
    throw new FormatError(
      `${ckpt.path}: tie_word_embeddings is true, but lm_head.weight differs from model.embed_tokens.weight. Set tie_word_embeddings to false in config.json if the head is separate.`,
    );
  }
}

/** Reads the checkpoint's weights in the compute dtype. Consumes nothing; the caller owns the result. */
export function loadWeights(ckpt: TensorStore, def: ModelDef<LlamaInput, LlamaOutput>, config: LlamaConfig, o: { dtype?: FloatDType; notes?: string[] } = {}): Weights {
  const dtype = o.dtype ?? "float32";
  const names = planWeights(ckpt, def, config, o.notes ?? []);
  if (config.tieWordEmbeddings) checkTiedHead(ckpt);
  const weights: Weights = {};
  try {
    for (const name of names) {
      const t = ckpt.read(name);
      const data =
        dtype === "float64" ? (t.data instanceof Float64Array ? t.data : Float64Array.from(t.data)) : t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
      weights[name] = fromHost({ dtype, shape: t.shape, data });
    }
  } catch (e) {
    tree.dispose(weights);
    throw e;
  }
  return weights;
}

/** Loads a model from its files. See the file comment for what is read and checked. */
export function loadHfFiles(files: HfFiles, o: LoadHfModelOptions = {}): HfModel {
  const { dtype = "float32", tokenizer: withTokenizer = true } = o;
  const folder = files.where;
  const info = readHfConfig(files);
  const notes = [...info.notes];
  const tokenizer = withTokenizer ? loadHfTokenizer(files) : null;
  if (tokenizer && tokenizer.size > info.config.vocabSize) {
    notes.push(`${folder}: the tokenizer has ${tokenizer.size} ids but vocab_size is ${info.config.vocabSize}; ids ≥ ${info.config.vocabSize} cannot be fed to the model.`);
  }
  const eosTokenIds = [...new Set([...generationEosIds(files), ...info.eosTokenIds])];
  const def = llama(info.config) as ModelDef<LlamaInput, LlamaOutput>;
  const ckpt = files.weights();
  try {
    const weights = loadWeights(ckpt, def, info.config, { dtype, notes });
    return {
      folder,
      modelType: info.config.modelType,
      config: info.config,
      info,
      def,
      weights,
      tokenizer,
      chatTemplate: tokenizer?.chatTemplate ?? null,
      eosTokenIds,
      notes,
    };
  } finally {
    ckpt.close?.();
  }
}
