/**
 * Loss and gradients of a Llama-family model's trainables, one decoder layer at a time.
 *
 * Why: one valueAndGrad (or jit) over the whole model builds one lazy graph whose every intermediate stays
 * allocated until the step is read, and jax-js hands each new array the set of all unsubmitted kernels upstream,
 * so time and memory grow faster than the depth (measured at SmolLM2-135M's width, T = 64: 8 layers 3.6 s and
 * 1.2 GB per step, 16 layers 13.6 s and 3.0 GB; 30 layers at T = 256 passes jax-js's 4 GiB wasm heap). Here each
 * layer is its own vjp, run to completion before the next, and the backward pass walks the layers in reverse: time
 * and memory are linear in depth (SmolLM2-135M's shape, BOFT on q/v, B = 1, T = 256: ~23 s CPU per step, peak RSS
 * 3.8 GB; bench/hf-135m.ts).
 *
 * The numbers equal valueAndGrad of the whole forward (same ops, same order within a layer); test/hf-model.test.ts
 * checks it. Eager only: call it outside jit.
 */
import { np, tree, vjp, blockUntilReady, type Arr } from "../engine/index.js";
import { ConfigError } from "../errors.js";
import type { AdapterParams, AdapterPlan, ApplyOptions } from "../methods/adapter.js";
import { type AdaptedModel, type Trainable, layerFn } from "./adapted.js";
import { type LlamaConfig, type LlamaInput, type KvCache, decoderLayer, lmHead } from "./llama.js";
import type { Weights } from "./model.js";

type LlamaModel = AdaptedModel<LlamaInput, { logits: Arr; cache?: KvCache }>;

/**
 * Runs every queued kernel up to `a`, so finished intermediates are freed. Asynchronous, so that jax-js's worker
 * threads take the kernels (a synchronous read runs them all on the main thread). Borrows a.
 */
async function force(a: Arr): Promise<void> {
  await blockUntilReady(a);
}

function pick<T>(record: Record<string, T>, keep: (k: string) => boolean): Record<string, T> {
  return Object.fromEntries(Object.entries(record).filter(([k]) => keep(k)));
}

/**
 * [loss, gradients] of `loss(logits)` for the model's active adapter, where `t` holds the values to differentiate
 * (trainableOf(m) or the trainer's current ones). Consumes `t` and `ids`; borrows the model. `loss` consumes the
 * logits [B, T, V] and returns a scalar (close over the targets). The returned loss is already computed.
 */
export async function layerwiseValueAndGrad(m: LlamaModel, c: LlamaConfig, t: Trainable, ids: Arr, loss: (logits: Arr) => Arr, o: ApplyOptions = {}): Promise<[Arr, Trainable]> {
  const plan: AdapterPlan | null = m.active ? m.adapters[m.active].plan : null;
  if ("model.embed_tokens.weight" in t.extras) {
    tree.dispose([t, ids] as never);
    throw new ConfigError("layerwiseValueAndGrad: training model.embed_tokens.weight is not supported layer by layer; use the trainer's full-model step");
  }
  const inLayer = (i: number) => (k: string) => k.startsWith(`model.layers.${i}.`);
  const inHead = (k: string) => !k.startsWith("model.layers.");
  const subPlan = (keep: (k: string) => boolean): AdapterPlan | null => (plan ? { ...plan, layers: plan.layers.filter((l) => keep(l.module.path)) } : null);

  /** The forward of one piece (a layer or the head) with its own trainables as explicit inputs. */
  const piece = (keep: (k: string) => boolean, run: (w: Weights, lf: ReturnType<typeof layerFn>, h: Arr) => Arr) => {
    const sp = subPlan(keep);
    return (params: AdapterParams, extras: Record<string, Arr>, h: Arr): Arr => {
      const w: Weights = { ...m.weights, ...extras };
      const lf = layerFn(m.def as never, w, sp ? { plan: sp, params } : null, o);
      const out = run(w, lf, h);
      tree.dispose([params, extras] as never);
      return out;
    };
  };

  let h = np.take(m.weights["model.embed_tokens.weight"].ref, ids, 0); // [B, T, d]
  const backs: ReturnType<typeof vjp>[1][] = [];
  const L = c.numHiddenLayers;
  for (let i = 0; i < L; i++) {
    const f = piece(inLayer(i), (w, lf, x) => decoderLayer(c, w, lf, i, x));
    const [next, back] = vjp(f as never, [pick(t.adapter, inLayer(i)), pick(t.extras, inLayer(i)), h] as never) as unknown as [Arr, (ct: Arr) => unknown[] & { dispose(): void }];
    await force(next);
    backs.push(back as never);
    h = next;
  }
  const head = piece(inHead, (w, lf, x) => loss(lmHead(c, w, lf, x)));
  const [value, backHead] = vjp(head as never, [pick(t.adapter, inHead), pick(t.extras, inHead), h] as never) as unknown as [Arr, ((ct: Arr) => unknown[]) & { dispose(): void }];
  await force(value); // every leaf of t went into exactly one vjp above, which consumed it

  const gAdapter: AdapterParams = {};
  const gExtras: Record<string, Arr> = {};
  const collect = (ga: AdapterParams, ge: Record<string, Arr>) => {
    Object.assign(gAdapter, ga);
    Object.assign(gExtras, ge);
  };
  let [ga, ge, g] = backHead(np.ones([], { dtype: value.dtype })) as [AdapterParams, Record<string, Arr>, Arr];
  backHead.dispose();
  await force(g);
  collect(ga, ge);
  for (let i = L - 1; i >= 0; i--) {
    const back = backs[i] as unknown as ((ct: Arr) => unknown[]) & { dispose(): void };
    [ga, ge, g] = back(g) as [AdapterParams, Record<string, Arr>, Arr];
    back.dispose();
    await force(g);
    collect(ga, ge);
  }
  g.dispose(); // d loss / d embeddings of the batch: not trained
  // The same key order as the trainables, so optimizer state built from them lines up.
  const order = (keys: string[], from: Record<string, unknown>) => Object.fromEntries(keys.map((k) => [k, from[k]]));
  return [value, { adapter: order(Object.keys(gAdapter).sort(byKeyOf(plan)), gAdapter) as AdapterParams, extras: order(Object.keys(gExtras).sort(), gExtras) as Record<string, Arr> }];
}

/** Orders module paths as the plan lists them (the order trainableOf uses). */
function byKeyOf(plan: AdapterPlan | null): (a: string, b: string) => number {
  const rank = new Map((plan?.layers ?? []).map((l, i) => [l.module.path, i]));
  return (a, b) => (rank.get(a) ?? 0) - (rank.get(b) ?? 0);
}
