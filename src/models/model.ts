/**
 * What every model is: a pure forward over a flat weight record named like the Hugging Face state dict, that
 * routes each Linear/Conv2d through a `LayerFn`. The LayerFn decides base vs adapted (src/models/adapted.ts),
 * so models never know about adapter methods.
 */
import type { Arr } from "../engine/index.js";
import type { ModuleInfo, ApplyOptions } from "../methods/adapter.js";
import type { AdaptedModel, Trainable } from "./adapted.js";

/** Weights by state-dict name, e.g. "model.layers.0.self_attn.q_proj.weight". */
export type Weights = Record<string, Arr>;

/** Applies the Linear or Conv2d at `path` to x. Consumes x; borrows the weights it reads. */
export type LayerFn = (path: string, x: Arr) => Arr;

/** One weight a model declares: its state-dict name, its shape, and how a freshly built model fills it. */
export interface WeightSpec {
  name: string;
  shape: number[];
  /** How a fresh model initialises it (PyTorch's defaults for the layer type). */
  init: "zeros" | "ones" | { uniform: number } | { normal: number };
}

/** A model family instance: its adaptable modules, its weights' layout, and its forward. */
export interface ModelDef<Input, Output = Arr> {
  /** transformers' model_type, or our own name ("mlp", "cnn"); selects PEFT's default target modules. */
  type: string;
  modules: ModuleInfo[];
  weights: WeightSpec[];
  /** Weights stored under another name (tied embeddings: "lm_head.weight" → "model.embed_tokens.weight"). */
  aliases?: Record<string, string>;
  /** Forward pass. Borrows `w` (reads with .ref); consumes `input`'s arrays. */
  apply(w: Weights, layer: LayerFn, input: Input): Output;
  /**
   * The model's own way to compute a loss and its gradients piece by piece, for models too deep for one
   * whole-model step (Llama: one decoder layer at a time). Trainer and tasks use it when asked to (`layerwise`).
   */
  layerwise?: LayerwiseStrategy<Input, Output>;
}

/**
 * Loss, and loss with gradients, computed by the model itself instead of one valueAndGrad over `apply`. Same
 * numbers as the whole-model forward, less memory. Call outside jit.
 */
export interface LayerwiseStrategy<Input, Output> {
  /** Whether the model recommends it over the whole-model step (e.g. a Llama of 12 layers or more). */
  preferred: boolean;
  /**
   * [loss, gradients w.r.t. t] of `loss(output)` for the model's active adapter. Consumes t and input; borrows the
   * model. `loss` consumes the output and returns a scalar. The loss is already computed when this resolves.
   */
  valueAndGrad(m: AdaptedModel<Input, Output>, t: Trainable, input: Input, loss: (out: Output) => Arr, o?: ApplyOptions): Promise<[Arr, Trainable]>;
  /** `loss(output)` alone; `t` null evaluates the base model. Consumes t and input; borrows the model. */
  loss(m: AdaptedModel<Input, Output>, t: Trainable | null, input: Input, loss: (out: Output) => Arr): Promise<Arr>;
  /** Estimated engine heap bytes of one training step over `tokens` tokens (sequences of seqLen), given the model's and the trained values' counts. */
  stepBytes?(tokens: number, seqLen: number, weightCount: number, trainedCount: number): number;
  /** How many micro-batches a batch of `batchSize` sequences must be split into for each step to fit the heap. */
  microBatches?(batchSize: number, seqLen: number, weightCount: number, trainedCount: number): number;
}
