/**
 * What every model is: a pure forward over a flat weight record named like the Hugging Face state dict, that
 * routes each Linear/Conv2d through a `LayerFn`. The LayerFn decides base vs adapted (src/models/adapted.ts),
 * so models never know about adapter methods.
 */
import type { Arr } from "../engine/index.js";
import type { ModuleInfo } from "../methods/adapter.js";

/** Weights by state-dict name, e.g. "model.layers.0.self_attn.q_proj.weight". */
export type Weights = Record<string, Arr>;

/** Applies the Linear or Conv2d at `path` to x. Consumes x; borrows the weights it reads. */
export type LayerFn = (path: string, x: Arr) => Arr;

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
}
