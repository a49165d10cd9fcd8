/**
 * Text generation for the Llama family: a prefill over the prompt, then one token at a time with the KV cache
 * (each step feeds only the new token; positions and the causal mask continue from the cache).
 *
 * Sampling follows transformers' logits warpers, in their order: temperature, then top-k, then top-p; then a draw
 * from the softmax of what is left. temperature 0 is greedy (argmax; the first index wins a tie, as torch.argmax).
 * Randomness comes from one seeded host generator (src/data/rng.ts), so a seed reproduces a run exactly.
 */
import { np, toHost, tree, type Arr } from "../engine/index.js";
import { ConfigError } from "../errors.js";
import { type Rng, rng } from "../data/rng.js";
import { type AdaptedModel, forwardWith, trainableOf } from "./adapted.js";
import { adapterBlocks } from "../methods/adapter.js";
import { type LlamaInput, type KvCache, emptyKvCache } from "./llama.js";

export type CausalLm = AdaptedModel<LlamaInput, { logits: Arr; cache?: KvCache }>;

export interface SamplingOptions {
  /** 0: greedy. Default 0. */
  temperature?: number;
  /** Keep only the k most likely tokens (0: off). Default 0. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1: off). Default 1. */
  topP?: number;
}

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Seed of the sampling generator. Default 0. */
  seed?: number;
  /** Generation stops after emitting one of these (it is included in the output, as transformers does). */
  stopIds?: readonly number[];
}

export function checkSampling(o: SamplingOptions): void {
  const { temperature = 0, topK = 0, topP = 1 } = o;
  if (!(Number.isFinite(temperature) && temperature >= 0)) throw new ConfigError(`generate: temperature must be ≥ 0 (temperature=${temperature}). Use 0 for greedy.`);
  if (!(Number.isInteger(topK) && topK >= 0)) throw new ConfigError(`generate: top-k must be a non-negative integer (topK=${topK}). Use 0 to turn it off.`);
  if (!(topP > 0 && topP <= 1)) throw new ConfigError(`generate: top-p must be in (0, 1] (topP=${topP}). Use 1 to turn it off.`);
}

/** Picks the next token from one position's logits [V]. Pure host code; `r` is advanced only when sampling. */
export function sampleToken(logits: Float32Array | Float64Array, o: SamplingOptions, r: Rng): number {
  const { temperature = 0, topK = 0, topP = 1 } = o;
  const V = logits.length;
  if (temperature === 0) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  const scores = Float64Array.from(logits, (v) => v / temperature);
  // Candidates by descending score (stable: lower id first among equals).
  let order = Array.from({ length: V }, (_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
  if (topK > 0 && topK < V) {
    const kth = scores[order[topK - 1]];
    order = order.filter((i) => scores[i] >= kth); // ties with the k-th stay, as in TopKLogitsWarper
  }
  const max = scores[order[0]];
  const weights = order.map((i) => Math.exp(scores[i] - max));
  const total = weights.reduce((s, w) => s + w, 0);
  let keep = order.length;
  if (topP < 1) {
    // TopPLogitsWarper: drop a token when the mass ranked above it already reaches top_p (the top one always stays).
    let above = 0;
    for (let j = 0; j < order.length; j++) {
      if (above >= topP * total && j > 0) {
        keep = j;
        break;
      }
      above += weights[j];
    }
  }
  const kept = weights.slice(0, keep);
  const mass = kept.reduce((s, w) => s + w, 0);
  let u = r.nextFloat() * mass;
  for (let j = 0; j < keep; j++) {
    u -= kept[j];
    if (u < 0) return order[j];
  }
  return order[keep - 1];
}

function disposeCache(c: KvCache): void {
  tree.dispose([c.k, c.v] as never);
}

/**
 * Generates up to `maxNewTokens` tokens after `promptIds` with the model's active adapter (or the base when none is
 * active). Yields each new token id; returns them all. Borrows the model.
 */
export function* generateIter(m: CausalLm, promptIds: readonly number[], o: GenerateOptions): Generator<number, number[]> {
  checkSampling(o);
  if (!(Number.isInteger(o.maxNewTokens) && o.maxNewTokens >= 0)) throw new ConfigError(`generate: max-new-tokens must be a non-negative integer (maxNewTokens=${o.maxNewTokens}).`);
  if (promptIds.length === 0) throw new ConfigError("generate: the prompt has no tokens. Give a non-empty prompt.");
  const vocab = m.def.weights.find((w) => w.name === "model.embed_tokens.weight")?.shape[0] ?? Infinity;
  const bad = promptIds.find((t) => !(Number.isInteger(t) && t >= 0 && t < vocab));
  if (bad !== undefined) throw new ConfigError(`generate: prompt token ${bad} is outside the vocabulary (vocab_size=${vocab}).`);
  const stop = new Set(o.stopIds ?? []);
  const r = rng(o.seed ?? 0);
  const out: number[] = [];
  let cache = emptyKvCache();
  let next: readonly number[] = promptIds;
  // The adapter's rotations depend only on its parameters: computed once here, not once per token.
  const trained = m.active ? trainableOf(m) : null;
  const blocks = trained ? adapterBlocks(m.adapters[m.active!].plan, trained.adapter) : undefined;
  try {
    while (out.length < o.maxNewTokens) {
      const ids = np.array(Int32Array.from(next), { dtype: np.int32 }).reshape([1, next.length]);
      const res = forwardWith(m, trained ? tree.ref(trained) : null, { ids, cache, lastOnly: true, flush: true }, {}, blocks);
      disposeCache(cache);
      cache = res.cache!;
      const logits = toHost(res.logits).data; // [1, 1, V]: the one sync point per token
      const token = sampleToken(logits, o, r);
      out.push(token);
      yield token;
      if (stop.has(token)) break;
      next = [token];
    }
  } finally {
    disposeCache(cache);
    if (blocks) for (const q of blocks.values()) q.dispose();
    if (trained) tree.dispose(trained);
  }
  return out;
}

/** Drains generateIter: the generated ids (prompt excluded). */
export function generate(m: CausalLm, promptIds: readonly number[], o: GenerateOptions): number[] {
  const it = generateIter(m, promptIds, o);
  for (;;) {
    const s = it.next();
    if (s.done) return s.value;
  }
}
