/**
 * Safetensors files held in memory (browser-clean): one file, or an HF index (`model.safetensors.index.json`) with
 * its shards, seen as one set of tensors. The same read interface as a checkpoint on disk (src/node/safetensors-file.ts),
 * so model and adapter loading is written once for both.
 */
import { FormatError } from "../errors.js";
import { type StDType, decode } from "./dtype.js";
import { type TensorEntry, compareNames, parseHeader } from "./safetensors.js";

/** A tensor read from safetensors: F16/BF16 arrive as Float32Array (exactly), F64 as Float64Array. */
export interface StoredTensor {
  dtype: StDType;
  shape: number[];
  data: Float32Array | Float64Array;
}

/** What loaders read tensors through: a checkpoint folder on disk, or files in memory. */
export interface TensorStore {
  /** What was opened, for messages. */
  readonly path: string;
  /** Sorted by name. */
  readonly tensors: { name: string; dtype: StDType; shape: number[] }[];
  names(): string[];
  has(name: string): boolean;
  info(name: string): { name: string; dtype: StDType; shape: number[] };
  read(name: string): StoredTensor;
  /** The stored bytes (little-endian). */
  readRaw(name: string): Uint8Array;
}

/** One safetensors file's bytes as a TensorStore. `name` is used in messages. */
export function bytesStore(bytes: Uint8Array, name: string): TensorStore {
  return multiStore(name, [[name, bytes]]);
}

function multiStore(path: string, files: [string, Uint8Array][]): TensorStore {
  const where = new Map<string, { bytes: Uint8Array; entry: TensorEntry }>();
  const tensors: { name: string; dtype: StDType; shape: number[] }[] = [];
  for (const [file, bytes] of files) {
    const header = parseHeader(bytes, bytes.byteLength, file);
    for (const e of header.tensors) {
      if (where.has(e.name)) throw new FormatError(`${path}: tensor "${e.name}" is stored twice (in ${file} too).`);
      where.set(e.name, { bytes, entry: e });
      tensors.push({ name: e.name, dtype: e.dtype, shape: e.shape });
    }
  }
  tensors.sort((a, b) => compareNames(a.name, b.name));
  const names = tensors.map((t) => t.name);
  const get = (name: string) => {
    const t = where.get(name);
    if (!t) throw new FormatError(`${path}: no tensor named "${name}" (it has ${names.length} tensors${names.length ? `, e.g. "${names[0]}"` : ""}).`);
    return t;
  };
  const raw = (name: string) => {
    const { bytes, entry } = get(name);
    return bytes.slice(entry.begin, entry.end); // a fresh, aligned copy
  };
  return {
    path,
    tensors,
    names: () => names.slice(),
    has: (name) => where.has(name),
    info: (name) => {
      const { entry } = get(name);
      return { name: entry.name, dtype: entry.dtype, shape: entry.shape.slice() };
    },
    read: (name) => {
      const { entry } = get(name);
      return { dtype: entry.dtype, shape: entry.shape.slice(), data: decode(entry.dtype, raw(name)) };
    },
    readRaw: raw,
  };
}

export const SINGLE_FILE = "model.safetensors";
export const INDEX_FILE = "model.safetensors.index.json";

/**
 * A model's weights from its files by name: `model.safetensors`, or `model.safetensors.index.json` and the shards it
 * names (all of which must be given, holding exactly the tensors the index assigns them).
 */
export function filesStore(files: ReadonlyMap<string, Uint8Array>, where: string): TensorStore {
  const single = files.get(SINGLE_FILE);
  if (single) return bytesStore(single, `${where}/${SINGLE_FILE}`);
  const index = files.get(INDEX_FILE);
  if (!index) throw new FormatError(`${where}: neither ${SINGLE_FILE} nor ${INDEX_FILE} is among the files (${[...files.keys()].join(", ")}).`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(index));
  } catch (e) {
    throw new FormatError(`${where}/${INDEX_FILE}: not valid JSON (${(e as Error).message}).`);
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) throw new FormatError(`${where}/${INDEX_FILE}: "weight_map" must map tensor names to shard files.`);
  const shards = new Map<string, string[]>();
  for (const [tensor, shard] of Object.entries(map)) {
    if (typeof shard !== "string") throw new FormatError(`${where}/${INDEX_FILE}: weight_map entry for "${tensor}" must be a file name.`);
    shards.set(shard, [...(shards.get(shard) ?? []), tensor]);
  }
  const opened: [string, Uint8Array][] = [];
  for (const [shard, names] of shards) {
    const bytes = files.get(shard);
    if (!bytes) throw new FormatError(`${where}/${INDEX_FILE}: shard "${shard}" (for ${names.length} tensors, e.g. "${names[0]}") is not among the files.`);
    opened.push([shard, bytes]);
  }
  const store = multiStore(`${where}/${INDEX_FILE}`, opened);
  for (const t of store.tensors) {
    const listed = (map as Record<string, string>)[t.name];
    if (listed === undefined) throw new FormatError(`${where}/${INDEX_FILE}: a shard holds tensor "${t.name}", which the index does not list.`);
  }
  for (const [shard, names] of shards) {
    for (const n of names) if (!store.has(n)) throw new FormatError(`${where}/${INDEX_FILE}: index puts tensor "${n}" in shard "${shard}", which has no such tensor.`);
  }
  return store;
}
