/**
 * `boft inspect <adapter>`: what an adapter holds, layer by layer, read from its files alone.
 * Each method's record infers the layer's shape from its tensors (n = D·b for BOFT, r·b for OFT; a block_share
 * OFT adapter does not record r, so its n is unknown without the base model).
 */
import { fromHost } from "../engine/index.js";
import { cayleySolve, cayleyNeumann, orthogonalityError } from "../math/index.js";
import { methodRecord } from "../methods/registry.js";
import { nestLayerParams } from "../methods/adapter.js";
import type { ParamCount } from "../methods/param-count.js";
import type { ParsedAdapterConfig } from "../formats/peft-config.js";
import { openAdapter } from "./adapter-files.js";

/** One adapted module of an inspected adapter: its tensors' shapes, the layer shape they imply, and its counts. */
export interface InspectedLayer {
  module: string;
  shapes: Record<string, number[]>;
  n: number | null;
  out: number | null;
  blockSize: number | null;
  nFactors: number;
  count: ParamCount;
  /** max |QQᵀ − I| over the layer's blocks; null for LoRA */
  orthogonalityError: number | null;
}

/** What `boft inspect` reports about an adapter folder: its config, layers, extra trained tensors and totals. */
export interface InspectReport {
  path: string;
  config: ParsedAdapterConfig;
  layers: InspectedLayer[];
  extras: { key: string; shape: number[]; size: number }[];
  ignored: string[];
  totals: { stored: number; effective: number; extras: number };
}

/**
 * Reads an adapter folder (ours or PEFT's) without a model: the shape of each layer from its tensors, parameter
 * counts, and for BOFT/OFT how orthogonal its blocks are (exact Cayley in float64). Throws FormatError on a bad file.
 *
 * @example inspectAdapter("runs/boft/adapter").layers[0].orthogonalityError // ≈ 1e-7 for a float32 adapter
 */
export function inspectAdapter(path: string): InspectReport {
  const a = openAdapter(path);
  try {
    const rec = methodRecord(a.config.kind);
    const layers: InspectedLayer[] = [];
    for (const [module, keys] of a.groups.layers) {
      const shapes: Record<string, number[]> = {};
      for (const [suffix, key] of keys) shapes[suffix] = a.reader.entry(key).shape;
      const read = (suffix: string) => {
        const t = a.reader.read(keys.get(suffix)!);
        return fromHost({ dtype: "float64", shape: t.shape, data: Float64Array.from(t.data) });
      };
      const inferred = rec.fromTensors(shapes, a.config.config, `${a.reader.path}: module ${module}`);
      let err: number | null = null;
      if (rec.skew) {
        // Exact Cayley by the pivoted solve, in float64: the check should not share the training path's rounding.
        const { skew, terms } = rec.skew(inferred.shape, nestLayerParams(Object.fromEntries([...keys.keys()].map((s) => [s, read(s)]))));
        err = orthogonalityError(terms === null ? cayleySolve(skew) : cayleyNeumann(skew, terms)).js() as number;
      }
      const { n, out, blockSize, nFactors } = inferred;
      layers.push({ module, shapes, n, out, blockSize, nFactors, count: rec.count(inferred.shape), orthogonalityError: err });
    }
    const extras = a.groups.extras.map((key) => {
      const shape = a.reader.entry(key).shape;
      return { key, shape, size: shape.reduce((x, y) => x * y, 1) };
    });
    const extraTotal = extras.reduce((s, e) => s + e.size, 0);
    return {
      path,
      config: a.config,
      layers,
      extras,
      ignored: a.groups.ignored,
      totals: {
        stored: layers.reduce((s, l) => s + l.count.stored, 0) + extraTotal,
        effective: layers.reduce((s, l) => s + l.count.effective, 0) + extraTotal,
        extras: extraTotal,
      },
    };
  } finally {
    a.close();
  }
}

