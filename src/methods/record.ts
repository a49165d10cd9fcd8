/**
 * What a method is, as one record: PEFT's names for it, its config checks, how it shapes itself on a module,
 * its parameters (shapes, init, the PEFT key suffixes they are saved under), the adapted Linear/Conv2d forward,
 * merge and unmerge, and its parameter counts. methods/registry.ts maps peft_type to the record; everything
 * method-generic (the adapter plan, the planner, file keys, inspection) goes through it, so a new method is
 * one folder (methods/<m>/{config,layer,index}.ts) and one registry line.
 */
import type { Arr, FloatDType } from "../engine/index.js";
import { ConfigError } from "../errors.js";
import type { LinearWeights, Conv2dGeometry } from "./base-layers.js";
import type { ParamCount } from "./param-count.js";
import type { RotationSide } from "./side.js";
import type { TargetFields } from "./targets.js";

/** A module a model offers for adaptation: a Linear (in → out features) or a Conv2d (in → out channels, kernel). */
export interface ModuleInfo {
  path: string;
  kind: "linear" | "conv2d";
  /** in_features, or in_channels for a Conv2d. */
  inFeatures: number;
  /** out_features, or out_channels for a Conv2d. */
  outFeatures: number;
  /** Conv2d only: [kh, kw]. */
  kernel?: [number, number];
  /** Conv2d only: stride, padding, dilation, groups (default: PyTorch's). */
  geometry?: Conv2dGeometry;
  /** Whether the base module has a bias (the planner counts it when the config trains biases). */
  bias?: boolean;
}

/**
 * Rotation / LoRA input size n of a module: in_features, or in_channels·kh·kw for a Conv2d (PEFT flattens the
 * kernel; it uses in·k0², the same for square kernels). Throws ConfigError for a Conv2d without its kernel.
 */
export function rotationDim(m: ModuleInfo): number {
  if (m.kind === "linear") return m.inFeatures;
  if (!m.kernel) throw new ConfigError(`${m.path}: a conv2d module shape needs its kernel`);
  return m.inFeatures * m.kernel[0] * m.kernel[1];
}

/** The fields every method's config has besides its own: targets, which biases train, modules saved in full. */
export type MethodConfigBase = TargetFields & { bias: string; modulesToSave: string[] | null };

/** The geometry every method's resolved layer shape has. */
export interface LayerShapeBase {
  kind: "linear" | "conv2d";
  /** Rotation / LoRA input size (rotationDim of the module). */
  n: number;
  out: number;
}

/** One module's resolved shape, as PEFT's update_layer settles it. */
export interface ResolvedLayer<S> {
  shape: S;
  /** Dropout rate of the adapter on this layer (0: none); its masks are drawn on the host while tracing. */
  dropout: number;
  /** PEFT's auto-adjust warnings for this layer (OFT only). */
  warnings: string[];
}

export interface InitOptions {
  dtype?: FloatDType;
  /** Standard-normal and uniform [0,1) sources (seeded by the caller, so runs are reproducible). */
  normal: () => number;
  uniform: () => number;
}

export interface ApplyOptions {
  training?: boolean;
  /** Uniform [0,1) source for dropout (BOFT's block dropout, LoRA's input dropout). */
  random?: () => number;
  side?: RotationSide | "auto";
}

/** What a layer's forward needs besides its params, base weights and input. */
export interface LayerApplyOptions extends ApplyOptions {
  /** The layer's dropout rate (from the plan). */
  dropout: number;
  /** Conv2d geometry (PyTorch's defaults for a Linear, where it is unused). */
  geometry: Conv2dGeometry;
  /** This layer's Cayley blocks already computed from its params (adapterBlocks); consumed. */
  blocks?: Arr;
}

/** A layer's shape as far as its saved tensors tell it, for `boft inspect`. */
export interface InferredLayer<S> {
  shape: S;
  /** n and out when the tensors record them (a block_share OFT layer does not record n, nor OFT out). */
  n: number | null;
  out: number | null;
  blockSize: number | null;
  /** Butterfly factors (1 for OFT, 0 for a method without rotations). */
  nFactors: number;
}

/**
 * One adapter method. `K` is PEFT's peft_type, `C` the camelCase config, `S` a module's resolved shape, `P` one
 * layer's parameter tree (named as PEFT's state dict). Functions taking Arrays consume them unless they say
 * "borrows".
 */
export interface MethodRecord<K extends string = string, C extends MethodConfigBase = MethodConfigBase, S extends LayerShapeBase = LayerShapeBase, P = unknown> {
  /** PEFT's peft_type. */
  kind: K;
  /** PEFT's config class, for messages that quote PEFT ("BOFTConfig"). */
  className: string;
  /** PEFT key suffixes of one adapted layer's tensors, in the order paramShapes gives their shapes. */
  suffixes: readonly string[];
  /** Keys of PEFT layers this method does not implement (embedding adapters): a file holding them is refused. */
  unsupportedSuffixes: readonly string[];
  /** Keys PEFT itself ignores on load (BOFT's boft_P buffers from PEFT ≤ 0.12). */
  ignoredSuffixes: readonly string[];
  /** Defaults plus `partial`, checked as PEFT's __post_init__ does. Throws ConfigError. */
  config(partial?: Partial<C>): C;
  /** PEFT's update_layer: the module's resolved shape, n = rotationDim(module). Throws ConfigError. */
  resolve(config: C, module: ModuleInfo, n: number): ResolvedLayer<S>;
  /** The shapes of the layer's tensors, aligned with `suffixes`. */
  paramShapes(shape: S): number[][];
  /** A short human-readable shape, e.g. "m=2 D=96 b=8" or "r=8". */
  describe(shape: S): string;
  count(shape: S): ParamCount;
  /** Fresh parameters (identity at init unless the config says otherwise). */
  init(shape: S, config: C, o: InitOptions): P;
  /** The adapted Linear or Conv2d forward, adapter unmerged. Consumes params, base, x and o.blocks. */
  apply(shape: S, params: P, base: LinearWeights, x: Arr, o: LayerApplyOptions): Arr;
  /** The base weight with the adapter merged in. Consumes params and weight. */
  merge(shape: S, params: P, weight: Arr): Arr;
  /** Undo merge. Consumes params and weight. */
  unmerge(shape: S, params: P, weight: Arr): Arr;
  /**
   * Rotation methods: the skew blocks [..., b, b] whose Cayley transforms are the layer's blocks, and which
   * transform: `terms` of PEFT's Neumann series, or null for the exact one. Consumes params.
   */
  skew?(shape: S, params: P): { skew: Arr; terms: number | null; blockSize: number };
  /**
   * When the skew blocks are an elementwise function of one parameter tensor [..., b, b] (BOFT: ½(R − Rᵀ)), that
   * tensor (`skewSource`, consumes params) and the function (`skewOf`, consumes its argument), so adapterBlocks can
   * stack every layer's parameter and take the skew once: a skew per layer is a kernel per layer, forward and back.
   */
  skewSource?(shape: S, params: P): Arr;
  skewOf?(source: Arr): Arr;
  /** What PEFT holds in the parameter after a forward (COFT projects in place). Consumes params. */
  project?(shape: S, params: P): P;
  /** The layer's shape from its saved tensor shapes (by suffix). Throws FormatError naming `where` when they cannot be a layer. */
  fromTensors(shapes: Record<string, number[]>, config: C, where: string): InferredLayer<S>;
}
