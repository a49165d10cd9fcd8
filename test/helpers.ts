/** Shared test helpers: PEFT fixture loading and tolerance checks against reference values. */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fromHost, toHost, type Arr, type FloatDType } from "../src/engine/index.js";

export const fixtureDir = join(process.cwd(), "test", "fixtures", "peft");

export interface RefTensor {
  shape: number[];
  dtype: string;
  data: number[];
}

export interface PeftCase {
  name: string;
  method: "BOFT" | "OFT";
  layer: "linear" | "conv2d";
  geometry: Record<string, number | boolean>;
  config: Record<string, unknown>;
  derived: Record<string, unknown>;
  tensors: Record<string, RefTensor | null>;
  checks: Record<string, number>;
}

export function caseNames(prefix: string): string[] {
  return readdirSync(fixtureDir)
    .filter((f) => f.startsWith(prefix) && f.endsWith(".json") && !f.startsWith("validation"))
    .map((f) => f.slice(0, -5))
    .sort();
}

export function loadCase(name: string): PeftCase {
  return JSON.parse(readFileSync(join(fixtureDir, `${name}.json`), "utf8")) as PeftCase;
}

export function ref(c: PeftCase, key: string): RefTensor {
  const t = c.tensors[key];
  if (!t) throw new Error(`${c.name}: no tensor ${key}`);
  return t;
}

export function arr(t: RefTensor, dtype: FloatDType): Arr {
  const data = dtype === "float64" ? Float64Array.from(t.data) : Float32Array.from(t.data);
  return fromHost({ dtype, shape: t.shape, data });
}

/** Max |a − ref| divided by max |ref| (the values' scale). Consumes a. */
export function maxRelErr(a: Arr, want: RefTensor): number {
  const got = toHost(a);
  assertShape(got.shape, want.shape);
  let err = 0;
  let scale = 0;
  for (let k = 0; k < want.data.length; k++) {
    err = Math.max(err, Math.abs(got.data[k] - want.data[k]));
    scale = Math.max(scale, Math.abs(want.data[k]));
  }
  return err / Math.max(scale, Number.MIN_VALUE);
}

/** ‖a − ref‖_F / ‖ref‖_F. Consumes a. */
export function frobRelErr(a: Arr, want: RefTensor): number {
  const got = toHost(a);
  assertShape(got.shape, want.shape);
  let num = 0;
  let den = 0;
  for (let k = 0; k < want.data.length; k++) {
    num += (got.data[k] - want.data[k]) ** 2;
    den += want.data[k] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), Number.MIN_VALUE);
}

function assertShape(got: number[], want: number[]): void {
  if (got.length !== want.length || got.some((v, i) => v !== want[i])) {
    throw new Error(`shape [${got}] differs from reference [${want}]`);
  }
}

/** The tolerance each precision must meet: float64 max-abs relative to scale, float32 relative Frobenius. */
export const tolerance = {
  float64: { value: 1e-9, grad: 1e-9 },
  float32: { value: 1e-5, grad: 1e-4 },
} as const;

export function errFor(dtype: FloatDType): (a: Arr, want: RefTensor) => number {
  return dtype === "float64" ? maxRelErr : frobRelErr;
}

/** Deterministic standard-normal samples (Box–Muller over mulberry32) for tests that need random data. */
export function normalSampler(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}
