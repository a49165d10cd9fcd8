/**
 * Text generation for the Llama family: an eager prefill over the prompt, then one token at a time, each a compiled
 * step against a KV cache of fixed capacity (SlotCache: the step feeds only the new token; its position, slot and
 * mask arrive as arrays, so every step has the same shapes).
 *
 * Sampling follows transformers' logits warpers, in their order: temperature, then top-k, then top-p; then a draw
 * from the softmax of what is left. temperature 0 is greedy (argmax; the first index wins a tie, as torch.argmax).
 * Randomness comes from one seeded host generator (src/data/rng.ts), so a seed reproduces a run exactly.
 */
import { np, jit, toHost, toHostAsync, tree, blockUntilReady, currentDevice, type Arr } from "../engine/index.js";
import { ConfigError } from "../errors.js";
import { type Rng, rng } from "../data/rng.js";
import { type AdaptedModel, type Trainable, forwardWith, trainableOf } from "./adapted.js";
import { adapterBlocks } from "../methods/adapter.js";
import type { Weights } from "./model.js";
import { type LlamaDef, type LlamaInput, type KvCache, type SlotCache, emptyKvCache, slotInputs } from "./llama.js";

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
  /**
   * Read each token's logits asynchronously even where a synchronous read is possible (wasm). Devices that cannot
   * read synchronously (WebGPU) always read asynchronously. Default false: on wasm a token's kernels are too small for
   * asynchronous dispatch to pay (SmolLM2-135M's shape: twice the CPU time per token, measured).
   */
  asyncReads?: boolean;
}

/**
 * Throws a ConfigError unless the sampling options are valid (temperature ≥ 0, integer topK ≥ 0, 0 < topP ≤ 1), so
 * a caller can refuse bad options before loading a model.
 */
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

function disposeCache(c: Pick<KvCache, "k" | "v">): void {
  tree.dispose([c.k, c.v] as never);
}

/**
 * The slot cache grows this many slots at a time. Each capacity compiles the decoding step once (0.4 s at
 * SmolLM2-135M's size), which then takes ~40 ms per token there, against 160 ms for an eager step (jax-js spends
 * most of an eager step dispatching its ~1,500 small kernels one by one).
 */
export const SLOT_CHUNK = 128;

/** The cache's keys and values in `capacity` slots (zeros past its length). Consumes the arrays. */
function inSlots(c: Pick<KvCache, "k" | "v">, capacity: number): Pick<SlotCache, "k" | "v"> {
  const pad = (x: Arr) => np.pad(x, [[0, 0], [0, 0], [0, capacity - x.shape[2]], [0, 0]]);
  return { k: c.k.map(pad), v: c.v.map(pad) };
}

type StepOut = { logits: Arr } & Pick<KvCache, "k" | "v">;
type DecodeStep = (w: Weights, t: Trainable, blocks: Record<string, Arr>, ids: Arr, slots: SlotCache) => StepOut;

/** One token through the model against a slot cache, compiled (jit retraces only when the capacity changes). */
function decodeStep(m: CausalLm, adapted: boolean): DecodeStep & { dispose(): void } {
  return jit((w: Weights, t: Trainable, blocks: Record<string, Arr>, ids: Arr, slots: SlotCache) => {
    const res = forwardWith({ ...m, weights: w }, adapted ? t : null, { ids, slots, lastOnly: true }, {}, new Map(Object.entries(blocks)));
    if (!adapted) tree.dispose(t as never);
    tree.dispose([w, blocks, slots] as never); // borrowed by the forward
    return { logits: res.logits, k: res.cache!.k, v: res.cache!.v };
  }) as never;
}

/**
 * Generates up to `maxNewTokens` tokens after `promptIds` with the model's active adapter (or the base when none is
 * active). Yields each new token id; returns them all. Borrows the model. Every read is asynchronous, so the decoding
 * steps' kernels run on jax-js's worker threads and a device that cannot read synchronously works too.
 */
export async function* generateIter(m: CausalLm, promptIds: readonly number[], o: GenerateOptions): AsyncGenerator<number, number[]> {
  checkSampling(o);
  if (!(Number.isInteger(o.maxNewTokens) && o.maxNewTokens >= 0)) throw new ConfigError(`generate: max-new-tokens must be a non-negative integer (maxNewTokens=${o.maxNewTokens}).`);
  if (promptIds.length === 0) throw new ConfigError("generate: the prompt has no tokens. Give a non-empty prompt.");
  const vocab = m.def.weights.find((w) => w.name === "model.embed_tokens.weight")?.shape[0] ?? Infinity;
  const bad = promptIds.find((t) => !(Number.isInteger(t) && t >= 0 && t < vocab));
  if (bad !== undefined) throw new ConfigError(`generate: prompt token ${bad} is outside the vocabulary (vocab_size=${vocab}).`);
  const stop = new Set(o.stopIds ?? []);
  const syncReads = !o.asyncReads && currentDevice() === "wasm";
  const r = rng(o.seed ?? 0);
  const out: number[] = [];
  if (o.maxNewTokens === 0) return out;
  const config = (m.def as Partial<LlamaDef>).config;
  if (!config) throw new ConfigError("generate: the model is not a Llama-family model built by llama()");
  // The adapter's rotations depend only on its parameters: computed once here, not once per token.
  const trained = m.active ? trainableOf(m) : null;
  const blocks = trained ? adapterBlocks(m.adapters[m.active!].plan, trained.adapter, { paired: true }) : new Map<string, Arr>();
  const step = decodeStep(m, trained !== null);
  const blockArgs = Object.fromEntries(blocks); // the same arrays, as a jit argument
  const ids = (tokens: readonly number[]) => np.array(Int32Array.from(tokens), { dtype: np.int32 }).reshape([1, tokens.length]);
  let cache: Pick<KvCache, "k" | "v"> = emptyKvCache();
  try {
    // The prompt in one eager pass (its own shapes, once), then one compiled step per token against a slot cache.
    // The per-layer flush is a synchronous read, which WebGPU in Node cannot do at all.
    const prefill = forwardWith(m, trained ? tree.ref(trained) : null, { ids: ids(promptIds), cache: emptyKvCache(), lastOnly: true, flush: currentDevice() === "wasm" }, {}, blocks);
    let res: StepOut = { logits: prefill.logits, ...prefill.cache! };
    let length = promptIds.length; // filled slots
    for (;;) {
      cache = { k: res.k, v: res.v };
      // [1, 1, V]: the one read per token (see GenerateOptions.asyncReads). An asynchronous read first settles the
      // cache: the next step may be traced (a new capacity), and tracing reads synchronously.
      let logits: Float32Array | Float64Array;
      if (syncReads) logits = toHost(res.logits).data;
      else {
        await blockUntilReady([...cache.k, ...cache.v]);
        logits = (await toHostAsync(res.logits)).data;
      }
      const token = sampleToken(logits, o, r);
      out.push(token);
      yield token;
      if (stop.has(token) || out.length >= o.maxNewTokens) break;
      if (length >= cache.k[0].shape[2]) cache = inSlots(cache, Math.ceil((length + 1) / SLOT_CHUNK) * SLOT_CHUNK);
      const t: Trainable = trained ? tree.ref(trained) : { adapter: {}, extras: {} };
      const at = slotInputs(config, length, cache.k[0].shape[2], m.weights["model.embed_tokens.weight"].dtype);
      res = step(tree.ref(m.weights), t, tree.ref(blockArgs), ids([token]), { ...tree.ref(cache), ...at });
      disposeCache(cache);
      length++;
    }
  } finally {
    disposeCache(cache);
    for (const q of blocks.values()) q.dispose();
    step.dispose();
    if (trained) tree.dispose(trained);
  }
  return out;
}

/** Drains generateIter: the generated ids (prompt excluded). */
export async function generate(m: CausalLm, promptIds: readonly number[], o: GenerateOptions): Promise<number[]> {
  const it = generateIter(m, promptIds, o);
  for (;;) {
    const s = await it.next();
    if (s.done) return s.value;
  }
}
