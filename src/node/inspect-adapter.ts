/**
 * `boft inspect <adapter>`: what an adapter holds, layer by layer, read from its files alone.
 * Shapes are inferred from the tensors (n = D·b for BOFT, r·b for OFT; a block_share OFT adapter does not
 * record r, so its n is unknown without the base model).
 */
import { fromHost } from "../engine/index.js";
import { FormatError } from "../errors.js";
import { cayley, cayleyNeumann, skewFromFull, skewFromPacked, orthogonalityError } from "../math/index.js";
import { boftCount, oftCount, loraCount, type ParamCount } from "../methods/param-count.js";
import type { OftConfig } from "../methods/oft/config.js";
import type { ParsedAdapterConfig } from "../formats/peft-config.js";
import { openAdapter } from "./adapter-files.js";

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

export interface InspectReport {
  path: string;
  config: ParsedAdapterConfig;
  layers: InspectedLayer[];
  extras: { key: string; shape: number[]; size: number }[];
  ignored: string[];
  totals: { stored: number; effective: number; extras: number };
}

function blockSizeFromPacked(k: number, key: string): number {
  const b = (1 + Math.sqrt(1 + 8 * k)) / 2;
  if (!Number.isInteger(b)) throw new FormatError(`${key}: last dimension ${k} is not b(b−1)/2 for any block size b`);
  return b;
}

/** The ranks and couplings PEFT's layers impose, so a malformed file gives a message instead of NaN counts. */
function checkShapes(kind: string, shapes: Record<string, number[]>, file: string, module: string): void {
  const bad = (what: string) => new FormatError(`${file}: module ${module}: ${what}`);
  const show = (k: string) => `${k} [${shapes[k]}]`;
  if (kind === "BOFT") {
    const [R, s] = [shapes.boft_R, shapes.boft_s];
    if (R.length !== 4 || R[2] !== R[3] || R.includes(0)) throw bad(`${show("boft_R")} must be [m, D, b, b] with m, D, b ≥ 1`);
    if (s.length !== 2 || (s[0] !== 1 && s[1] !== 1)) throw bad(`${show("boft_s")} must be [out, 1] (Linear) or [1, out] (Conv2d)`);
  } else if (kind === "OFT") {
    if (shapes["oft_R.weight"].length !== 2) throw bad(`${show("oft_R.weight")} must be [r, b(b−1)/2]`);
  } else {
    const [A, B] = [shapes["lora_A.weight"], shapes["lora_B.weight"]];
    if (A.length !== 2 || B.length !== 2 || A[0] !== B[1]) throw bad(`${show("lora_A.weight")} and ${show("lora_B.weight")} must be [r, in] and [out, r]`);
  }
}

export function inspectAdapter(path: string): InspectReport {
  const a = openAdapter(path);
  try {
    const layers: InspectedLayer[] = [];
    for (const [module, keys] of a.groups.layers) {
      const shapes: Record<string, number[]> = {};
      for (const [suffix, key] of keys) shapes[suffix] = a.reader.entry(key).shape;
      checkShapes(a.config.kind, shapes, a.reader.path, module);
      const read = (suffix: string) => {
        const t = a.reader.read(keys.get(suffix)!);
        return fromHost({ dtype: "float64", shape: t.shape, data: Float64Array.from(t.data) });
      };
      if (a.config.kind === "BOFT") {
        const [m, D, b] = shapes.boft_R;
        const out = shapes.boft_s[0] === 1 ? shapes.boft_s[1] : shapes.boft_s[0];
        const err = orthogonalityError(cayley(skewFromFull(read("boft_R")))).js() as number;
        layers.push({ module, shapes, n: D * b, out, blockSize: b, nFactors: m, count: boftCount({ n: D * b, out, blockSize: b, nFactors: m }), orthogonalityError: err });
      } else if (a.config.kind === "OFT") {
        const cfg = a.config.config as OftConfig;
        const [rows, k] = shapes["oft_R.weight"];
        const b = blockSizeFromPacked(k, keys.get("oft_R.weight")!);
        const skew = skewFromPacked(read("oft_R.weight"), b);
        const q = cfg.useCayleyNeumann ? cayleyNeumann(skew, cfg.numCayleyNeumannTerms) : cayley(skew);
        const err = orthogonalityError(q).js() as number;
        const n = cfg.blockShare ? null : rows * b;
        layers.push({ module, shapes, n, out: null, blockSize: b, nFactors: 1, count: oftCount({ r: rows, blockSize: b, blockShare: cfg.blockShare }), orthogonalityError: err });
      } else {
        const [r, n] = shapes["lora_A.weight"];
        const out = shapes["lora_B.weight"][0];
        layers.push({ module, shapes, n, out, blockSize: null, nFactors: 0, count: loraCount({ n, out, r }), orthogonalityError: null });
      }
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

