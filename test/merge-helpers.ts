/** Builders shared by the merge and CLI tests: random checkpoints and PEFT adapter folders, written as real files. */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { type StDType, roundTo, decode, encode } from "../src/formats/dtype.js";
import { SafetensorsReader, saveSafetensors } from "../src/node/safetensors-file.js";

export interface NamedTensor {
  name: string;
  dtype: StDType;
  shape: number[];
  /** Exactly the values the file holds (already rounded to dtype). */
  data: Float64Array;
}

export interface AdapterTensor {
  key: string;
  shape: number[];
  data: Float64Array;
}

export const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** mean + std·N(0,1) values, rounded to `dtype` so that what a file stores is exactly `data`. */
export function randomValues(shape: readonly number[], normal: () => number, o: { mean?: number; std?: number; dtype?: StDType } = {}): Float64Array {
  const { mean = 0, std = 1, dtype = "F64" } = o;
  const a = Float64Array.from({ length: size(shape) }, () => mean + std * normal());
  return Float64Array.from(roundTo(dtype, a));
}

export function tensor(name: string, dtype: StDType, shape: number[], normal: () => number, std = 1): NamedTensor {
  return { name, dtype, shape, data: randomValues(shape, normal, { std, dtype }) };
}

export function writeCheckpoint(file: string, tensors: readonly NamedTensor[], metadata: Record<string, string> | null = { format: "pt" }): void {
  saveSafetensors(file, tensors, metadata);
}

/**
 * An adapter folder as PEFT leaves it: adapter_config.json (`config` holds the snake_case fields; PEFT's defaults
 * fill the rest on load) and adapter_model.safetensors with metadata {"format": "pt"}.
 */
export function writeAdapterDir(dir: string, config: Record<string, unknown>, tensors: readonly AdapterTensor[], dtype: StDType = "F32"): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify({ peft_version: "0.20.0", ...config }, null, 2));
  saveSafetensors(
    path.join(dir, "adapter_model.safetensors"),
    tensors.map((t) => ({ name: t.key, dtype, shape: t.shape, data: t.data })),
    { format: "pt" },
  );
}

export interface FileTensor {
  dtype: StDType;
  shape: number[];
  raw: Uint8Array;
  data: Float64Array;
}

/** Every tensor of a safetensors file (raw bytes and values) plus its metadata. */
export function readFile(file: string): { metadata: Record<string, string> | null; tensors: Map<string, FileTensor> } {
  const r = new SafetensorsReader(file);
  try {
    const tensors = new Map<string, FileTensor>();
    for (const e of r.header.tensors) {
      const raw = r.readRaw(e.name);
      tensors.set(e.name, { dtype: e.dtype, shape: e.shape, raw, data: Float64Array.from(decode(e.dtype, raw.slice())) });
    }
    return { metadata: r.header.metadata, tensors };
  } finally {
    r.close();
  }
}

/** Bytes of `values` as a file of `dtype` stores them. */
export const bytesOf = (dtype: StDType, values: Float64Array): Uint8Array => encode(dtype, values);

/** A safetensors file from a hand-written header and data section, for malformed-file tests. */
export function rawSafetensors(header: unknown, data: Uint8Array, o: { lengthOverride?: number } = {}): Uint8Array {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(o.lengthOverride ?? json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}
