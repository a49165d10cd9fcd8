/**
 * The character vocabulary of data/text.ts as a Hugging Face tokenizer.json (and its tokenizer_config.json), so a
 * model trained on it (assets/brown-lm) loads, trains on text and generates through the ordinary HF tokenizer path,
 * here and in Python `tokenizers`/transformers.
 *
 * How each rule of text.ts is expressed:
 *   - ids 0..96: a BPE model with no merges over the 97 one-character tokens (" ".."~", "\n", UNK), so every
 *     character is its own token;
 *   - UNK: its token is U+FFFD (what text.ts's decode writes), and `unk_token`, so unknown characters map to it
 *     one by one (fuse_unk false);
 *   - tab → " ": a Replace normalizer;
 *   - text.ts counts UTF-16 code units, tokenizers count code points: a Replace normalizer turns each character
 *     outside the Basic Multilingual Plane (two code units) into two U+FFFD, hence two UNK ids, as text.ts gives;
 *   - decode: the Fuse decoder concatenates tokens (no spaces between them), and tokenizer_config.json turns off
 *     clean_up_tokenization_spaces, which would otherwise rewrite " ." as ".".
 * No pre-tokenizer, post-processor or special tokens: no BOS/EOS is added, as text.ts adds none.
 */
import { VOCAB_SIZE, UNK_CHAR, decode } from "./text.js";

/** tokenizer.json (the `tokenizers` library's format) for text.ts's vocabulary. */
export function charTokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  for (let id = 0; id < VOCAB_SIZE; id++) vocab[decode([id])] = id;
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Replace", pattern: { String: "\t" }, content: " " },
        { type: "Replace", pattern: { Regex: "[^\\u0000-\\uFFFF]" }, content: UNK_CHAR + UNK_CHAR },
      ],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: "Fuse" },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: UNK_CHAR,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

/** tokenizer_config.json to ship beside it: no special tokens, decode text verbatim. */
export function charTokenizerConfig(): Record<string, unknown> {
  return {
    tokenizer_class: "PreTrainedTokenizerFast",
    unk_token: UNK_CHAR,
    bos_token: null,
    eos_token: null,
    pad_token: null,
    clean_up_tokenization_spaces: false,
    model_max_length: 1_000_000_000,
  };
}
