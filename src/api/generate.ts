/** Text generation for the Llama family as an async iterator of tokens (src/models/generate.ts does the decoding). */
import { ConfigError } from "../errors.js";
import { adaptedModel } from "../models/adapted.js";
import { type GenerateOptions as EngineGenerateOptions, type CausalLm, generateIter } from "../models/generate.js";
import { type Model, modelState } from "./model.js";
import { type PeftModel, peftState, activeRecord, isPeftModel } from "./peft.js";

/** Sampling and stopping. transformers' defaults: greedy, no top-k/top-p; stops at the model's end-of-sequence ids. */
export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 (default): greedy. */
  temperature?: number;
  /** Keep only the k most likely tokens (0, default: off). */
  topK?: number;
  /** Nucleus sampling mass (1, default: off). */
  topP?: number;
  /** Seed of the sampler (default 0): a seed reproduces a run exactly. */
  seed?: number;
  /** Ids that end generation (included in the output). Default: the model's eosTokenIds. */
  stopIds?: readonly number[];
  /** A string prompt: wrap it as one user message with the model's chat template. */
  chat?: boolean;
}

/**
 * Why generation ended (transformers' finish_reason, plus one): "stop" at a stop id, "length" after maxNewTokens,
 * "maxPositions" at the model's max_position_embeddings, which it has no positions past.
 */
export type FinishReason = "stop" | "length" | "maxPositions";

/** What generate returns when it ends: the generated ids and their text, the prompt's ids, and why it ended. */
export interface GenerateResult {
  ids: number[];
  text: string;
  promptIds: number[];
  finishReason: FinishReason;
}

/** One generated token: its id, and the text it completes (whole characters only; "" while a character is split). */
export interface GeneratedToken {
  id: number;
  text: string;
}

/**
 * Generates after `prompt` (text, tokenized with the model's tokenizer, or token ids) with the active adapter, one
 * token at a time; returns all generated ids and their text. Every read is asynchronous. Generation stops at the
 * model's max_position_embeddings (finishReason "maxPositions"); a prompt that already fills it is a ConfigError.
 *
 * @example
 * for await (const t of generate(peft, "Once upon a time", { maxNewTokens: 20 })) process.stdout.write(t.text);
 */
export async function* generate(m: PeftModel | Model, prompt: string | readonly number[], o: GenerateOptions): AsyncGenerator<GeneratedToken, GenerateResult> {
  const peft = isPeftModel(m) ? m : null;
  const base = peft ? peft.baseModel : (m as Model);
  if (!base.config) throw new ConfigError("generate: the model is not a Llama-family causal LM");
  const tok = base.tokenizer;
  let promptIds: number[];
  if (typeof prompt === "string") {
    if (!tok) throw new ConfigError("generate: a text prompt needs the model's tokenizer (load it with tokenizer.json, or give token ids)");
    const text = o.chat ? tok.applyChatTemplate([{ role: "user", content: prompt }], { addGenerationPrompt: true }) : prompt;
    // A rendered chat template already holds its special tokens (transformers: add_special_tokens=False).
    promptIds = tok.encode(text, { addSpecialTokens: !o.chat });
  } else promptIds = [...prompt];
  const maxPositions = base.config.maxPositionEmbeddings;
  if (promptIds.length >= maxPositions) {
    throw new ConfigError(`the prompt is ${promptIds.length} tokens; the model takes at most max_position_embeddings = ${maxPositions} in all`);
  }
  const budget = Math.min(o.maxNewTokens, maxPositions - promptIds.length);
  const stopIds = o.stopIds ?? base.eosTokenIds;
  const st = modelState(base);
  const record = (peft ? activeRecord(peftState(peft)) : adaptedModel(st.def, st.weights)) as CausalLm;
  const opts: EngineGenerateOptions = { maxNewTokens: budget, temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed, stopIds };
  const ids: number[] = [];
  let shown = "";
  for await (const id of generateIter(record, promptIds, opts)) {
    ids.push(id);
    let text = "";
    if (tok) {
      // Whole characters only: a byte-level token can end inside a UTF-8 sequence.
      const now = tok.decode(ids, { skipSpecialTokens: true });
      if (!now.endsWith("\uFFFD") && now.startsWith(shown)) {
        text = now.slice(shown.length);
        shown = now;
      }
    }
    yield { id, text };
  }
  const last = ids.at(-1);
  const finishReason: FinishReason = last !== undefined && stopIds.includes(last) ? "stop" : budget < o.maxNewTokens ? "maxPositions" : "length";
  return { ids, text: tok ? tok.decode(ids, { skipSpecialTokens: true }) : "", promptIds, finishReason };
}
