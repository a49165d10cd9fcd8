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

/**
 * How a config field is typed in adapter_config.json: "num" is an int when integral, else a float (lora_alpha may
 * become one); "names" a string, a list of strings or null; "layers" an int, a list of ints or null; "init" a
 * boolean or a string.
 */
export type WireType = "int" | "float" | "num" | "bool" | "str" | "names" | "strList" | "layers" | "init";

/** The camelCase keys of a config, or of any config in a union (a field names one method's key). */
type ConfigKey<C> = C extends unknown ? keyof C & string : never;

/** One adapter_config.json field: PEFT's snake_case name, the config's camelCase key, and its wire type. */
export type ConfigField<C> = readonly [wire: string, key: ConfigKey<C>, type: WireType];

/** A JSON value, as a default written to adapter_config.json. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * Fields PEFT's config class has that boft does not model, each with the default PEFT writes. A file where one
 * differs is refused when the field changes the adapter's math or structure ("refuse"), or has it dropped with a
 * warning when it only steers initialisation ("ignore").
 */
export interface UnmodelledFields {
  fields: readonly {
    wire: string;
    default: JsonValue;
    otherwise: "refuse" | "ignore";
    /** false: a field of a newer PEFT than the one boft writes for; read and checked, never written. Default true. */
    written?: boolean;
  }[];
  /** How messages name the method's options ("LoRA" gives "LoRA option use_dora=true is not supported by boft."). */
  label: string;
  /** The refusal's second sentence: what can be loaded. */
  refuseHint: string;
  /** The warning's reason for dropping an "ignore" field. */
  ignoreHint: string;
}

/**
 * PEFT's check_kwargs guards on the file's raw keys, run before the config is built: a key whose absence marks an
 * incompatible older format, and a key whose value was written with another meaning before some PEFT version.
 */
export interface FileGuards {
  required?: readonly { wire: string; message: string }[];
  /** Warns when `wire` is written as `value` by a PEFT older than `before` (a missing peft_version is 0.0.0). */
  changedIn?: readonly { wire: string; value: JsonValue; before: string; warning: string }[];
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
  /**
   * The method's own adapter_config.json fields (formats/peft-config.ts adds the target fields every method has,
   * and reads and writes them all).
   */
  configFields: readonly ConfigField<C>[];
  /** PEFT config fields this method does not model (written with their defaults, checked on load). */
  unmodelledFields?: UnmodelledFields;
  /** PEFT's guards on the raw adapter_config.json, run before the config is built. */
  fileGuards?: FileGuards;
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
