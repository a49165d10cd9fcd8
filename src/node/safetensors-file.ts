/**
 * Safetensors on disk: a reader that loads only the header and fetches tensors with positioned
 * reads, a streaming atomic writer, and sharded-checkpoint opening (HF `*.index.json`).
 * A multi-GB file is never held in memory whole; peak memory is about one tensor.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { FormatError } from "../errors.js";
import { type StDType, decode, encode } from "../formats/dtype.js";
import {
  type SafetensorsHeader,
  type TensorEntry,
  type TensorSpec,
  compareNames,
  findDuplicateKey,
  headerLength,
  parseHeader,
  serialize,
} from "../formats/safetensors.js";
import { preview } from "../formats/json-object.js";
import { IO_CHUNK, writeAll, writeAtomically } from "./atomic.js";

/** A tensor read from a file. F16/BF16 arrive as Float32Array (exactly), F64 as Float64Array. */
export interface StTensor {
  dtype: StDType;
  shape: number[];
  data: Float32Array | Float64Array;
}

/** One open safetensors file. Holds a file descriptor until `close()`. */
export class SafetensorsReader {
  readonly path: string;
  readonly fileSize: number;
  readonly header: SafetensorsHeader;
  private fd: number | undefined;
  private readonly byName: Map<string, TensorEntry>;

  /** Opens `path` and reads its 8-byte length and header; throws FormatError on a bad header. */
  constructor(path: string) {
    this.path = path;
    const fd = fs.openSync(path, "r");
    try {
      this.fileSize = fs.fstatSync(fd).size;
      const prefix = new Uint8Array(8);
      readExactly(fd, prefix, 0, path, Math.min(8, this.fileSize));
      const n = headerLength(prefix, this.fileSize, path);
      const headerBytes = new Uint8Array(8 + n);
      headerBytes.set(prefix);
      readExactly(fd, headerBytes.subarray(8), 8, path);
      this.header = parseHeader(headerBytes, this.fileSize, path);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    this.fd = fd;
    this.byName = new Map(this.header.tensors.map((t) => [t.name, t]));
  }

  /** Tensor names in file order. */
  names(): string[] {
    return this.header.tensors.map((t) => t.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  entry(name: string): TensorEntry {
    const e = this.byName.get(name);
    if (!e) throw missingTensor(this.path, name, this.names());
    return e;
  }

  /** The tensor's bytes as stored (little-endian), in a fresh 8-byte-aligned buffer. */
  readRaw(name: string): Uint8Array {
    const e = this.entry(name);
    return this.readRange(e.begin, e.end - e.begin, undefined, `reading tensor "${name}"`);
  }

  /**
   * `length` bytes at absolute file `position` (callers stream a part of a tensor, inside an entry's [begin, end)),
   * into `into` or a fresh 8-byte-aligned buffer. A file shorter than that is a FormatError.
   */
  readRange(position: number, length: number, into?: Uint8Array, what = "reading"): Uint8Array {
    if (this.fd === undefined) throw new FormatError(`${this.path}: reader is closed (${what}).`);
    const out = into ? into.subarray(0, length) : new Uint8Array(new ArrayBuffer(length));
    readExactly(this.fd, out, position, this.path);
    return out;
  }

  read(name: string): StTensor {
    const e = this.entry(name);
    // readRaw's buffer is fresh and aligned, so decode views it instead of copying.
    return { dtype: e.dtype, shape: e.shape.slice(), data: decode(e.dtype, this.readRaw(name)) };
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** A tensor to write; `produce` is called once, when the writer reaches it. */
export interface TensorSource extends TensorSpec {
  produce: () => Uint8Array;
}

/** A tensor written by its own code, in as many pieces as it likes: `write` appends its bytes at the fd's position and returns how many. */
export interface TensorStream extends TensorSpec {
  write: (fd: number) => number;
}

/**
 * Streams a safetensors file to `path` atomically (temp file + rename). Each tensor is asked for once, in file
 * order (F64, F32, BF16, F16 tensors, each group by name), and written before the next is asked for. A tensor of
 * the wrong size is an error. If anything throws, no file is left at the temp path and an existing file at `path`
 * is unchanged.
 */
export function writeSafetensors(path: string, entries: readonly (TensorSource | TensorStream)[], metadata?: Record<string, string> | null): void {
  const { header, layout } = serialize(entries, metadata, path);
  const byName = new Map(entries.map((e) => [e.name, e]));
  writeAtomically(path, (fd) => {
    writeAll(fd, header);
    for (const e of layout) {
      const source = byName.get(e.name)!;
      const size = (n: number, verb: string) => {
        if (n !== e.end - e.begin) throw new FormatError(`${path}: tensor "${e.name}" ${verb} ${n} bytes, but shape [${e.shape}] of ${e.dtype} needs ${e.end - e.begin}.`);
      };
      if ("write" in source) size(source.write(fd), "wrote");
      else {
        const bytes = source.produce();
        size(bytes.byteLength, "produced"); // before writing: a wrong-sized tensor never reaches the file
        writeAll(fd, bytes);
      }
    }
  });
}

/** Writes float values, encoding (and rounding) each tensor to its dtype only when it is written. */
export function saveSafetensors(
  path: string,
  tensors: readonly (TensorSpec & { data: Float32Array | Float64Array })[],
  metadata?: Record<string, string> | null,
): void {
  writeSafetensors(
    path,
    tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, produce: () => encode(t.dtype, t.data) })),
    metadata,
  );
}

// ---- checkpoints -----------------------------------------------------------------------------

export interface CheckpointTensorInfo {
  name: string;
  dtype: StDType;
  shape: number[];
  /** Path of the shard that holds it. */
  file: string;
}

/** One or more safetensors files seen as one set of tensors. Close it to release the files. */
export interface Checkpoint {
  /** What was opened: a .safetensors file, an index file, or a folder. */
  readonly path: string;
  /** Shard paths, in the order the index first names them. */
  readonly files: string[];
  /** The open shards, in the order of `files` (for streaming reads of parts of tensors). */
  readonly shards: readonly SafetensorsReader[];
  /** A single file's `__metadata__`, or an index's `metadata` object; null when absent. */
  readonly metadata: Record<string, unknown> | null;
  /** Sorted by name. */
  readonly tensors: CheckpointTensorInfo[];
  names(): string[];
  has(name: string): boolean;
  info(name: string): CheckpointTensorInfo;
  read(name: string): StTensor;
  readRaw(name: string): Uint8Array;
  close(): void;
}

export const SINGLE_FILE = "model.safetensors";
export const INDEX_FILE = "model.safetensors.index.json";

/**
 * Opens a checkpoint: a `.safetensors` file, a `*.index.json` file, or a folder holding
 * `model.safetensors` or `model.safetensors.index.json` (the single file wins, as in transformers).
 * A sharded checkpoint is validated up front: every shard exists and holds exactly the tensors the
 * index assigns to it.
 */
export function openCheckpoint(pathOrFolder: string): Checkpoint {
  const stat = fs.statSync(pathOrFolder, { throwIfNoEntry: false });
  if (!stat) throw new FormatError(`${pathOrFolder}: no such file or folder.`);
  if (stat.isDirectory()) {
    const single = nodePath.join(pathOrFolder, SINGLE_FILE);
    if (fs.existsSync(single)) return fromReaders(pathOrFolder, [new SafetensorsReader(single)], null);
    const index = nodePath.join(pathOrFolder, INDEX_FILE);
    if (fs.existsSync(index)) return openIndexed(pathOrFolder, index);
    throw new FormatError(`${pathOrFolder}: folder has neither ${SINGLE_FILE} nor ${INDEX_FILE}. Point at the checkpoint folder or a .safetensors file.`);
  }
  if (pathOrFolder.endsWith(".json")) return openIndexed(pathOrFolder, pathOrFolder);
  return fromReaders(pathOrFolder, [new SafetensorsReader(pathOrFolder)], null);
}

function openIndexed(opened: string, indexPath: string): Checkpoint {
  const { metadata, weightMap } = parseIndex(fs.readFileSync(indexPath, "utf8"), indexPath);
  const folder = nodePath.dirname(indexPath);
  const expected = new Map<string, string[]>(); // shard → tensor names the index puts there
  for (const [tensor, shard] of weightMap) {
    const list = expected.get(shard);
    if (list) list.push(tensor);
    else expected.set(shard, [tensor]);
  }
  const readers: SafetensorsReader[] = [];
  try {
    for (const [shard, names] of expected) {
      const file = nodePath.resolve(folder, shard);
      const rel = nodePath.relative(folder, file);
      // Shard names come from a downloaded file; keep them from reaching outside the checkpoint.
      if (rel === ".." || rel.startsWith(`..${nodePath.sep}`) || nodePath.isAbsolute(rel)) {
        throw new FormatError(`${indexPath}: shard "${shard}" (for tensor "${names[0]}") is outside the checkpoint folder.`);
      }
      if (!fs.existsSync(file)) {
        throw new FormatError(`${indexPath}: shard "${shard}" (for ${names.length} tensors, e.g. "${names[0]}") does not exist in ${folder}. Download the missing shard.`);
      }
      const reader = new SafetensorsReader(file);
      readers.push(reader);
      for (const name of names) {
        if (!reader.has(name)) throw new FormatError(`${indexPath}: index puts tensor "${name}" in shard "${shard}", but ${file} has no such tensor.`);
      }
      for (const name of reader.names()) {
        const listed = weightMap.get(name);
        if (listed === undefined) throw new FormatError(`${indexPath}: shard "${shard}" holds tensor "${name}", which the index does not list.`);
        if (listed !== shard) throw new FormatError(`${indexPath}: shard "${shard}" holds tensor "${name}", which the index puts in "${listed}".`);
      }
    }
  } catch (e) {
    for (const r of readers) r.close();
    throw e;
  }
  return fromReaders(opened, readers, metadata);
}

/** The index's wire form: `{ "metadata": {...}, "weight_map": { tensor: shardFile } }`. */
function parseIndex(text: string, indexPath: string): { metadata: Record<string, unknown> | null; weightMap: Map<string, string> } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FormatError(`${indexPath}: index is not valid JSON (${(e as Error).message}).`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new FormatError(`${indexPath}: index must be a JSON object with a "weight_map".`);
  }
  const dup = findDuplicateKey(text);
  if (dup) throw new FormatError(`${indexPath}: duplicate key "${dup.key}"${dup.path.length ? ` in "${dup.path.join(".")}"` : ""}.`);
  const { metadata, weight_map } = json as { metadata?: unknown; weight_map?: unknown };
  if (typeof weight_map !== "object" || weight_map === null || Array.isArray(weight_map)) {
    throw new FormatError(`${indexPath}: "weight_map" must be an object mapping tensor names to shard files.`);
  }
  const weightMap = new Map<string, string>();
  for (const [name, shard] of Object.entries(weight_map)) {
    if (typeof shard !== "string") throw new FormatError(`${indexPath}: weight_map entry for tensor "${name}" must be a file name (got ${preview(shard)}).`);
    weightMap.set(name, shard);
  }
  if (metadata !== undefined && metadata !== null && (typeof metadata !== "object" || Array.isArray(metadata))) {
    throw new FormatError(`${indexPath}: "metadata" must be an object.`);
  }
  return { metadata: (metadata as Record<string, unknown> | undefined) ?? null, weightMap };
}

function fromReaders(opened: string, readers: SafetensorsReader[], indexMetadata: Record<string, unknown> | null): Checkpoint {
  const where = new Map<string, SafetensorsReader>();
  const tensors: CheckpointTensorInfo[] = [];
  for (const r of readers) {
    for (const t of r.header.tensors) {
      where.set(t.name, r);
      tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, file: r.path });
    }
  }
  tensors.sort((a, b) => compareNames(a.name, b.name));
  const infos = new Map(tensors.map((t) => [t.name, t]));
  const names = tensors.map((t) => t.name);
  const readerOf = (name: string): SafetensorsReader => {
    const r = where.get(name);
    if (!r) throw missingTensor(opened, name, names);
    return r;
  };
  return {
    path: opened,
    files: readers.map((r) => r.path),
    shards: readers,
    metadata: readers.length === 1 && indexMetadata === null ? readers[0].header.metadata : indexMetadata,
    tensors,
    names: () => names.slice(),
    has: (name) => where.has(name),
    info: (name) => {
      const info = infos.get(name);
      if (!info) throw missingTensor(opened, name, names);
      return info;
    },
    read: (name) => readerOf(name).read(name),
    readRaw: (name) => readerOf(name).readRaw(name),
    close: () => readers.forEach((r) => r.close()),
  };
}

// ---- helpers ---------------------------------------------------------------------------------

/** Fills `target` from `position`; a short read means the file shrank or lied about its size. */
function readExactly(fd: number, target: Uint8Array, position: number, fileName: string, length = target.byteLength): void {
  let done = 0;
  while (done < length) {
    const got = fs.readSync(fd, target, done, Math.min(length - done, IO_CHUNK), position + done);
    if (got === 0) {
      throw new FormatError(`${fileName}: file ended at byte ${position + done}, expected ${length - done} more bytes. The file is truncated or was changed while open.`);
    }
    done += got;
  }
}

function missingTensor(where: string, name: string, names: string[]): FormatError {
  const some = names.slice(0, 5).map((n) => `"${n}"`).join(", ");
  return new FormatError(`${where}: no tensor named "${name}" (it has ${names.length} tensors${names.length ? `, e.g. ${some}` : ""}).`);
}
