/**
 * A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) and its chat template, behind one small type.
 *
 * Tokenization is @huggingface/tokenizers (Hugging Face's pure-JS port of `tokenizers`, the one transformers.js
 * uses; no dependencies, no downloads). Chat templates render with @huggingface/jinja, transformers.js's Jinja
 * subset, given what transformers' apply_chat_template passes: messages, add_generation_prompt and the special
 * tokens' text (bos_token, eos_token, unk_token, pad_token). Pure: parsed JSON in, a tokenizer out.
 */
import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";
import { FormatError } from "../errors.js";

/** One turn of a chat for applyChatTemplate, as transformers takes it: `role` "system" / "user" / "assistant". */
export interface ChatMessage {
  role: string;
  content: string;
}

/**
 * A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) as a language model uses it: text ↔ ids and
 * the chat template. A causal LM loaded by loadCausalLm carries one.
 */
export interface TextTokenizer {
  /** Token ids of `text`; with `addSpecialTokens` (default true) the post-processor's BOS/EOS are added. */
  encode(text: string, o?: { addSpecialTokens?: boolean }): number[];
  /** Text of `ids`; `skipSpecialTokens` (default false) drops special tokens first. */
  decode(ids: readonly number[], o?: { skipSpecialTokens?: boolean }): string;
  /** The id of a token string (vocabulary or added tokens), if any. */
  tokenId(token: string): number | undefined;
  /** Number of ids the tokenizer can produce (largest id + 1). */
  size: number;
  /** Special tokens' text from tokenizer_config.json (null when absent). */
  bosToken: string | null;
  eosToken: string | null;
  /** The raw Jinja chat template, or null when the model has none. */
  chatTemplate: string | null;
  /** The prompt text for `messages`, rendered as transformers' apply_chat_template(tokenize=False) does. */
  applyChatTemplate(messages: readonly ChatMessage[], o?: { addGenerationPrompt?: boolean }): string;
}

/** A special token in tokenizer_config.json: a string, or an AddedToken object with `content`. */
function tokenText(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return null;
}

/** tokenizer_config.json's chat_template: a string, or a list of {name, template} (the "default" one is used). */
export function chatTemplateOf(config: Record<string, unknown>, source: string): string | null {
  const t = config.chat_template;
  if (t === undefined || t === null) return null;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    const named = t as { name?: unknown; template?: unknown }[];
    const def = named.find((x) => x && x.name === "default") ?? named[0];
    if (def && typeof def.template === "string") return def.template;
  }
  throw new FormatError(`${source}: chat_template must be a string or a list of {name, template} (chat_template=${JSON.stringify(t).slice(0, 60)}).`);
}

/**
 * Builds the tokenizer. `tokenizerJson` is tokenizer.json parsed; `config` is tokenizer_config.json parsed ({} if the
 * folder has none); `chatTemplate` overrides the config's (a chat_template.jinja file, as newer transformers save).
 */
export function hfTokenizer(tokenizerJson: unknown, config: Record<string, unknown> = {}, o: { chatTemplate?: string | null; source?: string } = {}): TextTokenizer {
  const source = o.source ?? "tokenizer.json";
  if (!tokenizerJson || typeof tokenizerJson !== "object" || !("model" in tokenizerJson)) {
    throw new FormatError(`${source}: not a tokenizers JSON file (it has no "model"). Point at the model folder's tokenizer.json.`);
  }
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(tokenizerJson, config);
  } catch (e) {
    throw new FormatError(`${source}: cannot build the tokenizer (${(e as Error).message}).`);
  }
  const vocab = tok.get_vocab(true);
  let size = 0;
  for (const id of vocab.values()) size = Math.max(size, id + 1);
  const chatTemplate = o.chatTemplate !== undefined ? o.chatTemplate : chatTemplateOf(config, `${source} config`);
  const special = {
    bos_token: tokenText(config.bos_token),
    eos_token: tokenText(config.eos_token),
    unk_token: tokenText(config.unk_token),
    pad_token: tokenText(config.pad_token),
  };
  let template: Template | null = null;
  return {
    encode: (text, { addSpecialTokens = true } = {}) => tok.encode(text, { add_special_tokens: addSpecialTokens }).ids,
    decode: (ids, { skipSpecialTokens = false } = {}) => (ids.length === 0 ? "" : tok.decode([...ids], { skip_special_tokens: skipSpecialTokens })),
    tokenId: (token) => tok.token_to_id(token),
    size,
    bosToken: special.bos_token,
    eosToken: special.eos_token,
    chatTemplate,
    applyChatTemplate(messages, { addGenerationPrompt = true } = {}) {
      if (chatTemplate === null) {
        throw new FormatError(`${source}: this tokenizer has no chat template (no chat_template in tokenizer_config.json, no chat_template.jinja).`);
      }
      try {
        template ??= new Template(chatTemplate);
        return template.render({ messages: messages.map((m) => ({ ...m })), add_generation_prompt: addGenerationPrompt, ...special });
      } catch (e) {
        throw new FormatError(`${source}: the chat template failed to render (${(e as Error).message}).`);
      }
    },
  };
}
