/**
 * Character-level tokenizer and language-model batching over host arrays.
 *
 * The vocabulary is fixed (printable ASCII plus newline), not learned from a corpus, so token ids mean
 * the same thing in every run, every genre and every checkpoint: a model pretrained on one Brown genre
 * can be adapted to another without remapping its embedding. Anything else maps to one UNK id.
 */
import { ConfigError } from "../errors.js";
import type { Rng } from "./rng.js";

const FIRST_PRINTABLE = 32; // " "
const LAST_PRINTABLE = 126; // "~"
/** Id of "\n": right after the 95 printable characters. */
export const NEWLINE_ID = LAST_PRINTABLE - FIRST_PRINTABLE + 1; // 95
/** Id every character outside the vocabulary maps to. */
export const UNK_ID = NEWLINE_ID + 1; // 96
/** Number of token ids, UNK included. */
export const VOCAB_SIZE = UNK_ID + 1; // 97
/** What decode writes for UNK. */
export const UNK_CHAR = "\uFFFD";

/** Token id of one UTF-16 code unit: " ".."~" → 0..94, "\n" → 95, tab → " ", anything else → UNK. */
export function charToId(code: number): number {
  if (code >= FIRST_PRINTABLE && code <= LAST_PRINTABLE) return code - FIRST_PRINTABLE;
  if (code === 10) return NEWLINE_ID;
  if (code === 9) return 0; // a tab is whitespace, not an unknown symbol
  return UNK_ID;
}

/** Text → token ids [len]. */
export function encode(text: string): Int32Array {
  const ids = new Int32Array(text.length);
  for (let i = 0; i < text.length; i++) ids[i] = charToId(text.charCodeAt(i));
  return ids;
}

/** Token ids → text. Throws RangeError on an id outside [0, VOCAB_SIZE). */
export function decode(ids: ArrayLike<number>): string {
  let out = "";
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= VOCAB_SIZE) {
      throw new RangeError(`decode: token id ${id} at position ${i} is outside [0, ${VOCAB_SIZE})`);
    }
    out += id === NEWLINE_ID ? "\n" : id === UNK_ID ? UNK_CHAR : String.fromCharCode(id + FIRST_PRINTABLE);
  }
  return out;
}

/** One LM batch, row-major: targets[b, t] = inputs[b, t + 1] in the source stream. */
export type TokenBatch = {
  /** [batchSize · seqLen] token ids. */
  inputs: Int32Array;
  /** [batchSize · seqLen] next-token ids. */
  targets: Int32Array;
  batchSize: number;
  seqLen: number;
};

export type BatchOpts = {
  /** Rows per batch (B). */
  batchSize: number;
  /** Tokens per row (T); each row reads T + 1 consecutive tokens. */
  seqLen: number;
};

/** Throws ConfigError unless batchSize and seqLen are positive integers and `n` tokens hold a window of seqLen + 1. */
export function checkBatchOpts(where: string, n: number, o: BatchOpts): void {
  const { batchSize, seqLen } = o;
  if (!Number.isInteger(batchSize) || batchSize < 1 || !Number.isInteger(seqLen) || seqLen < 1) {
    throw new ConfigError(`${where}: batchSize and seqLen must be positive integers (batchSize=${batchSize}, seqLen=${seqLen})`);
  }
  if (n < seqLen + 1) {
    throw new ConfigError(`${where}: need at least seqLen + 1 = ${seqLen + 1} tokens, got ${n}. Use a shorter seqLen or more text.`);
  }
}

function windowsAt(tokens: ArrayLike<number>, starts: ArrayLike<number>, seqLen: number): TokenBatch {
  const batchSize = starts.length;
  const inputs = new Int32Array(batchSize * seqLen);
  const targets = new Int32Array(batchSize * seqLen);
  for (let b = 0; b < batchSize; b++) {
    const s = starts[b];
    for (let t = 0; t < seqLen; t++) {
      inputs[b * seqLen + t] = tokens[s + t];
      targets[b * seqLen + t] = tokens[s + t + 1];
    }
  }
  return { inputs, targets, batchSize, seqLen };
}

/**
 * A training batch of `batchSize` windows of T + 1 tokens at uniform random offsets (nanoGPT `get_batch`).
 * Advances `r` by exactly batchSize draws from nextInt, so a restored RNG state replays the same batches.
 */
export function randomBatch(tokens: ArrayLike<number>, r: Pick<Rng, "nextInt">, opts: BatchOpts): TokenBatch {
  const { batchSize, seqLen } = opts;
  checkBatchOpts("randomBatch", tokens.length, opts);
  const starts = new Int32Array(batchSize);
  for (let b = 0; b < batchSize; b++) starts[b] = r.nextInt(tokens.length - seqLen);
  return windowsAt(tokens, starts, seqLen);
}

/**
 * Non-overlapping windows in order, for evaluation: every token is predicted at most once, the same
 * tokens every time. The last batch may have fewer rows; a tail shorter than T + 1 is dropped.
 */
export function* sequentialBatches(tokens: ArrayLike<number>, opts: BatchOpts): Generator<TokenBatch> {
  const { batchSize, seqLen } = opts;
  checkBatchOpts("sequentialBatches", tokens.length, opts);
  const nWindows = Math.floor((tokens.length - 1) / seqLen);
  for (let w = 0; w < nWindows; w += batchSize) {
    const rows = Math.min(batchSize, nWindows - w);
    const starts = Int32Array.from({ length: rows }, (_, i) => (w + i) * seqLen);
    yield windowsAt(tokens, starts, seqLen);
  }
}

/**
 * At most `windows` of sequentialBatches' non-overlapping windows, evenly spaced over the whole stream (window
 * ⌊i·N/windows⌋ of N), so a split made of several texts is read in all of them, not just from its start.
 * Deterministic: the same tokens every time. All N windows when `windows` ≥ N.
 */
export function* spreadBatches(tokens: ArrayLike<number>, opts: BatchOpts & { windows: number }): Generator<TokenBatch> {
  const { batchSize, seqLen, windows } = opts;
  checkBatchOpts("spreadBatches", tokens.length, opts);
  if (!(Number.isInteger(windows) && windows >= 1)) throw new ConfigError(`spreadBatches: windows must be a positive integer (windows=${windows})`);
  const nWindows = Math.floor((tokens.length - 1) / seqLen);
  const count = Math.min(windows, nWindows);
  const all = Int32Array.from({ length: count }, (_, i) => Math.floor((i * nWindows) / count) * seqLen);
  for (let w = 0; w < count; w += batchSize) yield windowsAt(tokens, all.subarray(w, Math.min(count, w + batchSize)), seqLen);
}

/** Splits a token stream at `trainFraction` into [train, val] views (contiguous, so no window straddles both). */
export function splitTokens<T extends Int32Array | Uint8Array>(tokens: T, trainFraction: number): [T, T] {
  if (!(trainFraction > 0 && trainFraction < 1)) {
    throw new ConfigError(`splitTokens: trainFraction must be in (0, 1) (trainFraction=${trainFraction})`);
  }
  const cut = Math.floor(tokens.length * trainFraction);
  return [tokens.subarray(0, cut) as T, tokens.subarray(cut) as T];
}
