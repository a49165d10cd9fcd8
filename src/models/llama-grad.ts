/**
 * Loss and gradients of a Llama-family model's trainables, one decoder layer at a time.
 *
 * Why: one valueAndGrad (or jit) over the whole model builds one lazy graph whose every intermediate stays
 * allocated until the step is read, and jax-js hands each new array the set of all unsubmitted kernels upstream,
 * so time and memory grow faster than the depth (measured at SmolLM2-135M's width, T = 64: 8 layers 3.6 s and
 * 1.2 GB per step, 16 layers 13.6 s and 3.0 GB; 30 layers at T = 256 passes jax-js's 4 GiB wasm heap). Here the
 * layers run one after another, each to completion, and the backward pass walks them in reverse: time and memory
 * are linear in depth.
 *
 * Three ways, the same numbers up to float32 rounding (test/hf-model.test.ts checks each against valueAndGrad of the
 * whole forward):
 * - compiled (the default): every decoder layer is seen under layer 0's names, so one jitted layer serves all layers
 *   (compiled once per distinct layer structure). Then either
 *   - residuals kept (the default when they fit the heap, residualBytes): the vjp of the jitted layer, run per
 *     layer. jax-js splits it into a compiled forward that also returns what the backward needs and a compiled
 *     backward (patch 02 makes both cheap: docs/engine-notes.md). No layer is computed twice; or
 *   - recomputed: only the layers' inputs are kept, and a jitted "recompute the layer, then its vjp" runs in the
 *     backward: one more layer forward per layer, for memory that does not grow with the intermediates.
 *   SmolLM2-135M's shape, BOFT on q/v, B = 1, T = 256, 2 threads, CPU time per step (busy
 *   machine, docs/engine-notes.md): 8.75 s keeping residuals, 11.1 s recomputing; peak RSS 2.4 and 1.6 GiB.
 * - eager: one vjp per layer, its closure kept until the backward pass (9.6 s and 2.7 GB per step there, measured
 *   by bench/hf-135m.ts). Used when an adapter has dropout, whose masks are drawn on the host while tracing (a
 *   compiled layer would reuse them).
 * Call it outside jit.
 */
import { np, tree, vjp, jit, blockUntilReady, HEAP_BUDGET_BYTES, type Arr } from "../engine/index.js";
import { type AdapterParams, type AdapterPlan, type ApplyOptions, planUsesDropout } from "../methods/adapter.js";
import { type AdaptedModel, type Trainable, layerFn } from "./adapted.js";
import { type LlamaConfig, type LlamaInput, type KvCache, decoderLayer, lmHead } from "./llama.js";
import type { Weights, LayerwiseStrategy } from "./model.js";

type LlamaOutput = { logits: Arr; cache?: KvCache };
type LlamaModel = AdaptedModel<LlamaInput, LlamaOutput>;
type Grads = [AdapterParams, Record<string, Arr>, Arr]; // adapter, trained base tensors, input cotangent
type Back = ((ct: Arr) => unknown[]) & { dispose(): void };

/** How the decoder layers run: forward one layer (keeping what its backward needs), then backward one layer. */
interface LayerSteps {
  forward(i: number, h: Arr): Promise<Arr>;
  backward(i: number, ct: Arr): Promise<Grads>;
}

function pick<T>(record: Record<string, T>, keep: (k: string) => boolean): Record<string, T> {
  return Object.fromEntries(Object.entries(record).filter(([k]) => keep(k)));
}

const EMBED = "model.embed_tokens.weight";
const layerPrefix = (i: number) => `model.layers.${i}.`;
const inLayer = (i: number) => (k: string) => k.startsWith(layerPrefix(i));
const inHead = (k: string) => !k.startsWith("model.layers.");

/** How layerwiseValueAndGrad runs the layers. */
export interface LayerwiseOptions {
  /** One compiled forward and backward per layer structure (default), or one eager vjp per layer. */
  compiled?: boolean;
  /**
   * Compiled only: keep each layer's residuals from the forward for its backward (no recompute), or keep only its
   * input and recompute the layer in the backward. Default: keep them when the step still fits the heap with them
   * (residualBytes), which is the faster way by one layer forward per layer.
   */
  keepResiduals?: boolean;
}

/**
 * [loss, gradients] of `loss(logits)` for the model's active adapter, where `t` holds the values to differentiate
 * (trainableOf(m) or the trainer's current ones). Consumes `t` and `ids`; borrows the model. `loss` consumes the
 * logits [B, T, V] and returns a scalar (close over the targets). The returned loss is already computed.
 * Every step is awaited asynchronously, so jax-js's worker threads take the kernels.
 */
export async function layerwiseValueAndGrad(
  m: LlamaModel,
  c: LlamaConfig,
  t: Trainable,
  ids: Arr,
  loss: (logits: Arr) => Arr,
  o: ApplyOptions & LayerwiseOptions = {},
): Promise<[Arr, Trainable]> {
  const plan: AdapterPlan | null = m.active ? m.adapters[m.active].plan : null;
  const keep = () => o.keepResiduals ?? residualsFit(m, c, t, ids);
  const steps = (o.compiled ?? true) && !planUsesDropout(plan) ? compiledSteps(m, c, t, plan, o, true, keep()) : eagerSteps(m, c, t, plan, o);
  const L = c.numHiddenLayers;
  // A trained embedding (full finetuning) gets two gradients: through the head when tied (the head's vjp) and
  // through the lookup, which is the input cotangent scattered into its rows (an eager vjp of take, at the end).
  const trainedEmbed: Arr | undefined = t.extras[EMBED];
  const extrasOrder = Object.keys(t.extras);
  const lookup = trainedEmbed ? { table: trainedEmbed.ref, ids: ids.ref } : null;
  let h = np.take((trainedEmbed ?? m.weights[EMBED]).ref, ids, 0); // [B, T, d]
  for (let i = 0; i < L; i++) h = await steps.forward(i, h);

  const head = piece(m, plan, o, inHead, (w, lf, x) => loss(lmHead(c, w, lf, x)));
  const [value, backHead] = vjp(head as never, [pick(t.adapter, inHead), pick(t.extras, inHead), h] as never) as unknown as [Arr, Back];
  await blockUntilReady(value);
  let [ga, ge, g] = backHead(np.ones([], { dtype: value.dtype })) as Grads;
  backHead.dispose();
  // Settled before any compiled backward is traced: tracing realises constants synchronously, which jax-js refuses
  // while async work is in flight.
  await blockUntilReady([ga, ge, g]);
  const gAdapter: AdapterParams = { ...ga };
  const gExtras: Record<string, Arr> = { ...ge };
  for (let i = L - 1; i >= 0; i--) {
    [ga, ge, g] = await steps.backward(i, g);
    Object.assign(gAdapter, ga);
    Object.assign(gExtras, ge);
  }
  if (lookup) {
    const [rows, back] = vjp(((table: Arr) => np.take(table, lookup.ids, 0)) as never, [lookup.table] as never) as unknown as [Arr, Back];
    rows.dispose();
    const [gTable] = back(g) as [Arr];
    back.dispose();
    gExtras[EMBED] = gExtras[EMBED] ? gExtras[EMBED].add(gTable) : gTable;
    await blockUntilReady(gExtras[EMBED]);
  } else g.dispose(); // d loss / d embeddings of the batch: not trained.
  // Every leaf of t went into exactly one vjp, which consumed it.
  // The same key order as the trainables, so optimizer state built from them lines up.
  const order = (keys: string[], from: Record<string, unknown>) => Object.fromEntries(keys.map((k) => [k, from[k]]));
  return [value, { adapter: order(Object.keys(gAdapter).sort(byKeyOf(plan)), gAdapter) as AdapterParams, extras: order(extrasOrder, gExtras) as Record<string, Arr> }];
}

/**
 * Deep Llama models train and evaluate layer by layer: one compiled step over the whole model grows faster than its
 * depth in jax-js (16 layers at 576 wide: 13.6 s and 3 GB per step; 30 layers do not fit the 4 GiB wasm heap), while
 * one layer at a time is linear in depth. Shallow models keep the faster compiled whole-model step.
 */
export const LAYERWISE_FROM_LAYERS = 12;

/** The layer-by-layer loss and gradients as the model's training strategy (ModelDef.layerwise). */
export function llamaLayerwise(c: LlamaConfig): LayerwiseStrategy<LlamaInput, LlamaOutput> {
  return {
    preferred: c.numHiddenLayers >= LAYERWISE_FROM_LAYERS,
    valueAndGrad: (m, t, input, loss, o) => layerwiseValueAndGrad(m, c, t, input.ids, (logits) => loss({ logits }), o),
    loss: (m, t, input, loss) => layerwiseLoss(m, c, t, input.ids, (logits) => loss({ logits })),
    stepBytes: (tokens, seqLen, weightCount, trainedCount) => layerwiseStepBytes(c, tokens, seqLen, weightCount, trainedCount),
    microBatches: (batchSize, seqLen, weightCount, trainedCount) => microBatches(c, batchSize, seqLen, weightCount, trainedCount),
  };
}

/**
 * `loss(logits)` alone, one compiled decoder layer at a time: how deep models are evaluated (a compiled forward of
 * the whole model keeps every layer's intermediates and passes the 4 GiB heap at SmolLM2-135M's shape, B = 4,
 * T = 256). `t` null evaluates the base model. Consumes `t` and `ids`; borrows the model. Call it outside jit.
 */
export async function layerwiseLoss(m: LlamaModel, c: LlamaConfig, t: Trainable | null, ids: Arr, loss: (logits: Arr) => Arr): Promise<Arr> {
  const base = t === null ? { ...m, active: null } : m;
  const trainables: Trainable = t ?? { adapter: {}, extras: {} };
  const plan: AdapterPlan | null = base.active ? base.adapters[base.active].plan : null;
  const steps = compiledSteps(base, c, trainables, plan, {}, false);
  const embed = trainables.extras["model.embed_tokens.weight"] ?? m.weights["model.embed_tokens.weight"]; // trained when finetuned in full
  let h = np.take(embed.ref, ids, 0); // [B, T, d]
  for (let i = 0; i < c.numHiddenLayers; i++) h = await steps.forward(i, h);
  const head = piece(base, plan, {}, inHead, (w, lf, x) => loss(lmHead(c, w, lf, x)));
  const value = head(pick(trainables.adapter, inHead), pick(trainables.extras, inHead), h);
  await blockUntilReady(value);
  const notHead = (k: string) => !inHead(k);
  tree.dispose([pick(trainables.adapter, notHead), pick(trainables.extras, notHead)] as never); // the layers only borrowed them
  return value;
}

/** The forward of one piece (a layer or the head) with its own trainables as explicit inputs; consumes them. */
function piece(m: LlamaModel, plan: AdapterPlan | null, o: ApplyOptions, keep: (k: string) => boolean, run: (w: Weights, lf: ReturnType<typeof layerFn>, h: Arr) => Arr) {
  const sp = plan ? { ...plan, layers: plan.layers.filter((l) => keep(l.module.path)) } : null;
  return (params: AdapterParams, extras: Record<string, Arr>, h: Arr): Arr => {
    const w: Weights = { ...m.weights, ...extras };
    const lf = layerFn(m.def as never, w, sp ? { plan: sp, params } : null, o);
    const out = run(w, lf, h);
    tree.dispose([params, extras] as never);
    return out;
  };
}

/** One eager vjp per layer; its closure (and so every intermediate of the layer) is kept for the backward. */
function eagerSteps(m: LlamaModel, c: LlamaConfig, t: Trainable, plan: AdapterPlan | null, o: ApplyOptions): LayerSteps {
  const backs: Back[] = [];
  return {
    async forward(i, h) {
      const f = piece(m, plan, o, inLayer(i), (w, lf, x) => decoderLayer(c, w, lf, i, x));
      const [next, back] = vjp(f as never, [pick(t.adapter, inLayer(i)), pick(t.extras, inLayer(i)), h] as never) as unknown as [Arr, Back];
      backs[i] = back;
      await blockUntilReady(next);
      return next;
    },
    async backward(i, ct) {
      const grads = backs[i](ct) as Grads;
      backs[i].dispose();
      await blockUntilReady(grads);
      return grads;
    },
  };
}

const LAYER0 = layerPrefix(0);
const renameKeys = <T>(r: Record<string, T>, from: string, to: string): Record<string, T> =>
  Object.fromEntries(Object.entries(r).map(([k, v]) => [k.startsWith(from) ? to + k.slice(from.length) : k, v]));

type Compiled = { (...a: unknown[]): unknown; dispose(): void };
/**
 * Per model (its weights), the compiled forward and recompute-and-vjp of each distinct layer structure (under layer
 * 0's names) and the options they were traced with. Never disposed: they live as long as the weights (a handful).
 */
const compiledCache = new WeakMap<Weights, Map<string, { fwd: Compiled; bwd: Compiled }>>();

/**
 * Layer i runs as layer 0 (its weights, trainables and plan renamed), so the compiled functions are shared by every
 * layer of the same structure. With `keepResiduals` the forward is the vjp of the compiled layer and keeps what its
 * backward needs; otherwise it keeps only the layer's input and the backward recomputes the layer.
 */
function compiledSteps(m: LlamaModel, c: LlamaConfig, t: Trainable, plan: AdapterPlan | null, o: ApplyOptions, keepInputs = true, keepResiduals = false): LayerSteps {
  let cache = compiledCache.get(m.weights);
  if (!cache) compiledCache.set(m.weights, (cache = new Map()));
  const inputs: Arr[] = [];

  /** Layer i under layer 0's names: its frozen weights (refs) and the compiled pair for its structure. */
  const view = (i: number) => {
    const pre = layerPrefix(i);
    const frozen: Weights = {};
    for (const [k, v] of Object.entries(m.weights)) if (k.startsWith(pre) && !(k in t.extras)) frozen[LAYER0 + k.slice(pre.length)] = v.ref;
    const layers = (plan?.layers ?? []).filter((l) => l.module.path.startsWith(pre)).map((l) => ({ ...l, module: { ...l.module, path: LAYER0 + l.module.path.slice(pre.length) } }));
    const key = JSON.stringify([layers.map((l) => [l.module.path, l.method, l.shape]), Object.keys(frozen).sort(), o.training ?? false, o.side ?? "auto"]);
    let fns = cache!.get(key);
    if (!fns) {
      const sp: AdapterPlan | null = plan ? { ...plan, layers } : null;
      const run = (frozen: Weights, params: AdapterParams, extras: Record<string, Arr>, h: Arr): Arr => {
        const w: Weights = { ...frozen, ...extras };
        const out = decoderLayer(c, w, layerFn(m.def as never, w, sp ? { plan: sp, params } : null, o), 0, h);
        tree.dispose([frozen, params, extras] as never);
        return out;
      };
      const recomputeAndVjp = (frozen: Weights, params: AdapterParams, extras: Record<string, Arr>, h: Arr, ct: Arr) => {
        const layer = (p: AdapterParams, e: Record<string, Arr>, x: Arr) => run(tree.ref(frozen) as Weights, p, e, x);
        const [out, back] = vjp(layer as never, [params, extras, h] as never) as unknown as [Arr, Back];
        out.dispose();
        const grads = back(ct);
        back.dispose();
        tree.dispose(frozen as never);
        return grads;
      };
      fns = { fwd: jit(run as never) as unknown as Compiled, bwd: jit(recomputeAndVjp as never) as unknown as Compiled };
      cache!.set(key, fns);
    }
    return { frozen, fns, pre };
  };
  /** Layer i's trainables under layer 0's names (the same arrays as t's leaves). */
  const own = (i: number) => {
    const pre = layerPrefix(i);
    return { params: renameKeys(pick(t.adapter, inLayer(i)), pre, LAYER0), extras: renameKeys(pick(t.extras, inLayer(i)), pre, LAYER0) };
  };
  const backs: Back[] = [];
  return {
    async forward(i, h) {
      const { frozen, fns } = view(i);
      const { params, extras } = own(i);
      if (keepInputs && keepResiduals) {
        // vjp of the compiled layer: jax-js partially evaluates the jit into a compiled forward that also returns
        // the residuals, and transposes the rest into a compiled backward (both cached with patch 02).
        const layer = (p: AdapterParams, e: Record<string, Arr>, x: Arr) => fns.fwd(frozen, p, e, x) as Arr;
        const [next, back] = vjp(layer as never, [tree.ref(params), tree.ref(extras), h] as never) as unknown as [Arr, Back];
        backs[i] = back;
        await blockUntilReady(next);
        return next;
      }
      if (keepInputs) inputs[i] = h.ref;
      const next = fns.fwd(frozen, tree.ref(params), tree.ref(extras), h) as Arr; // t's leaves are kept for the backward
      await blockUntilReady(next);
      return next;
    },
    async backward(i, ct) {
      const pre = layerPrefix(i);
      if (backs[i]) {
        const [ga, ge, g] = backs[i](ct) as Grads;
        backs[i].dispose();
        delete backs[i];
        tree.dispose([pick(t.adapter, inLayer(i)), pick(t.extras, inLayer(i))] as never); // the forward borrowed refs of them
        await blockUntilReady([ga, ge, g]);
        return [renameKeys(ga, LAYER0, pre), renameKeys(ge, LAYER0, pre), g];
      }
      const { frozen, fns } = view(i);
      const { params, extras } = own(i);
      const [ga, ge, g] = fns.bwd(frozen, params, extras, inputs[i], ct) as Grads;
      await blockUntilReady([ga, ge, g]);
      return [renameKeys(ga, LAYER0, pre), renameKeys(ge, LAYER0, pre), g];
    },
  };
}

/** Orders module paths as the plan lists them (the order trainableOf uses). */
function byKeyOf(plan: AdapterPlan | null): (a: string, b: string) => number {
  const rank = new Map((plan?.layers ?? []).map((l, i) => [l.module.path, i]));
  return (a, b) => (rank.get(a) ?? 0) - (rank.get(b) ?? 0);
}

/**
 * Bytes of jax-js heap a layer-by-layer training step takes at most, estimated: the weights, four copies of the
 * trained values (their current values apart from the frozen ones, the gradient, AdamW's two moments; the trainer
 * updates them a group at a time), every layer's kept input, one layer's recompute, and the head, whose
 * [tokens, vocab] logits have about ten live copies in the loss and its backward. Calibrated on SmolLM2-135M's shape
 * with BOFT on q/v (measured peaks 1.6 GB at 1×256, 3.0 GB at 4×256; this says 1.2 and 3.0 GB of heap).
 */
export function layerwiseStepBytes(c: LlamaConfig, tokens: number, seqLen: number, weightCount: number, trainedCount: number): number {
  const { hiddenSize: d, intermediateSize: f, numHiddenLayers: L, numAttentionHeads: H, vocabSize: V } = c;
  const perToken = 10 * V + 2 * L * d + 30 * (d + f) + 4 * H * seqLen;
  return 4 * (weightCount + 4 * trainedCount + tokens * perToken);
}


/**
 * Bytes of jax-js heap the kept residuals of every decoder layer take, estimated: per token and layer, about six
 * copies of its attention row (heads × sequence), eight of the MLP's width and twelve of the model's. Calibrated on
 * SmolLM2-135M's shape, B = 1, T = 256 (peak RSS 1.6 → 2.5 GiB with them kept; this says 1.0 GB).
 */
export function residualBytes(c: LlamaConfig, tokens: number, seqLen: number): number {
  const { hiddenSize: d, intermediateSize: f, numHiddenLayers: L, numAttentionHeads: H } = c;
  return 4 * tokens * L * (6 * H * seqLen + 8 * f + 12 * d);
}

/**
 * Whether a step keeping every layer's residuals fits the heap budget (else the backward recomputes each layer). The
 * residuals count half again: jax-js's wasm allocator reuses a freed buffer only for the same size class and never
 * merges free space, so the residuals' sizes add to the peak beyond their live bytes. At SmolLM2-135M's shape this
 * keeps them at 1 × 256 tokens and recomputes from 2 × 256 on.
 */
export function keepsResiduals(c: LlamaConfig, batchSize: number, seqLen: number, weightCount: number, trainedCount: number, budget = HEAP_BUDGET_BYTES): boolean {
  const tokens = batchSize * seqLen;
  return layerwiseStepBytes(c, tokens, seqLen, weightCount, trainedCount) + 1.5 * residualBytes(c, tokens, seqLen) <= budget;
}

function residualsFit(m: LlamaModel, c: LlamaConfig, t: Trainable, ids: Arr): boolean {
  const count = (xs: Arr[]) => xs.reduce((n, a) => n + a.size, 0);
  const [B, T] = ids.shape;
  return keepsResiduals(c, B, T, count(Object.values(m.weights)), count(tree.leaves(t as never) as Arr[]));
}

/**
 * The number of micro-batches to split a batch of `batchSize` sequences into, so that each fits the heap: the
 * smallest divisor k of batchSize whose micro-batch (batchSize / k sequences) fits, or batchSize when none does.
 */
export function microBatches(c: LlamaConfig, batchSize: number, seqLen: number, weightCount: number, trainedCount: number, budget = HEAP_BUDGET_BYTES): number {
  for (let k = 1; k <= batchSize; k++) {
    if (batchSize % k === 0 && layerwiseStepBytes(c, (batchSize / k) * seqLen, seqLen, weightCount, trainedCount) <= budget) return k;
  }
  return batchSize;
}
