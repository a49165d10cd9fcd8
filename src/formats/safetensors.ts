/**
 * The safetensors container: an 8-byte little-endian header length N, N bytes of JSON, then the
 * tensor data. Pure (no Node APIs): parses a header from bytes and lays out a header for writing.
 * File access lives in src/node/safetensors-file.ts.
 *
 * Reading is strict: everything the reference Rust reader rejects, we reject, plus dtypes we do
 * not compute in and duplicate keys (which JSON.parse would silently collapse).
 * Writing is byte-compatible with the Python/Rust `safetensors` library.
 */
import { FormatError } from "../errors.js";
import { type StDType, ST_DTYPES, dtypeSize, isStDType } from "./dtype.js";
import { preview } from "./json-object.js";

/** Same bound as the reference reader: a larger header is a corrupt length, not a real model. */
export const MAX_HEADER_SIZE = 100_000_000;

/** One tensor of a file. `begin`/`end` are absolute file offsets (8 + N + data_offsets). */
export interface TensorEntry {
  name: string;
  dtype: StDType;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** 8 + N: where the data section starts. */
  headerSize: number;
  /** The `__metadata__` map, or null when the file has none. */
  metadata: Record<string, string> | null;
  /** In file order (ascending offsets). */
  tensors: TensorEntry[];
}

/** What a writer needs to know about a tensor before it has the bytes. */
export interface TensorSpec {
  name: string;
  dtype: StDType;
  shape: readonly number[];
}

/** Wire type of one header entry, as the file spells it. */
interface WireTensorInfo {
  dtype: unknown;
  shape: unknown;
  data_offsets: unknown;
}

function fail(fileName: string, what: string): FormatError {
  return new FormatError(`${fileName}: ${what}`);
}

const NOT_SAFETENSORS = "The file is truncated or is not a safetensors file; re-download or re-save it.";

/**
 * Reads and bounds-checks the header length N from the first 8 bytes. Returns N.
 * Readers call this before allocating N bytes, so a corrupt length cannot trigger a huge allocation.
 */
export function headerLength(prefix: Uint8Array, fileSize: number, fileName: string): number {
  if (fileSize < 8 || prefix.byteLength < 8) {
    throw fail(fileName, `file is ${fileSize} bytes, too short for the 8-byte header length. ${NOT_SAFETENSORS}`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_SIZE)) {
    throw fail(fileName, `header length ${n} exceeds the ${MAX_HEADER_SIZE}-byte limit (header_length=${n}). ${NOT_SAFETENSORS}`);
  }
  const len = Number(n);
  if (8 + len > fileSize) {
    throw fail(fileName, `header length ${len} runs past the end of the file (file_size=${fileSize}). ${NOT_SAFETENSORS}`);
  }
  return len;
}

/**
 * Parses and validates a header. `bytes` is the start of the file: at least 8 + N bytes (the whole
 * file also works). `fileSize` is the size of the whole file, needed to check the data section.
 */
export function parseHeader(bytes: Uint8Array, fileSize: number, fileName: string): SafetensorsHeader {
  const n = headerLength(bytes, fileSize, fileName);
  const headerSize = 8 + n;
  if (bytes.byteLength < headerSize) {
    throw fail(fileName, `got ${bytes.byteLength} bytes of a ${headerSize}-byte header. ${NOT_SAFETENSORS}`);
  }
  let text: string;
  try {
    // ignoreBOM keeps a BOM in the text, so JSON.parse rejects it as the Rust reader does.
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, headerSize));
  } catch {
    throw fail(fileName, `header is not valid UTF-8. ${NOT_SAFETENSORS}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw fail(fileName, `header is not valid JSON (${(e as Error).message}). ${NOT_SAFETENSORS}`);
  }
  if (!isPlainObject(json)) {
    throw fail(fileName, `header must be a JSON object, got ${describe(json)}. ${NOT_SAFETENSORS}`);
  }
  const dup = findDuplicateKey(text);
  if (dup) {
    throw dup.path.length === 0
      ? fail(fileName, `duplicate tensor name "${dup.key}" in the header. Each tensor may appear once.`)
      : fail(fileName, `duplicate key "${dup.key}" in header entry "${dup.path.join(".")}".`);
  }

  const dataSize = fileSize - headerSize;
  let metadata: Record<string, string> | null = null;
  const tensors: TensorEntry[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === "__metadata__") {
      metadata = parseMetadata(value, fileName);
      continue;
    }
    const e = parseEntry(name, value, fileName, dataSize);
    tensors.push({ ...e, begin: e.begin + headerSize, end: e.end + headerSize });
  }
  checkLayout(tensors, headerSize, fileSize, fileName);
  return { headerSize, metadata, tensors };
}

function parseMetadata(value: unknown, fileName: string): Record<string, string> | null {
  if (value === null) return null; // the Rust reader reads `null` as "no metadata"
  if (!isPlainObject(value)) {
    throw fail(fileName, `__metadata__ must be an object of strings, got ${describe(value)}.`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") {
      throw fail(fileName, `__metadata__ values must be strings (__metadata__.${k}=${preview(v)}).`);
    }
    setOwn(out, k, v);
  }
  return out;
}

/** Validates one entry; offsets returned relative to the data section. */
function parseEntry(name: string, value: unknown, fileName: string, dataSize: number): TensorEntry {
  const where = `tensor "${name}"`;
  if (!isPlainObject(value)) throw fail(fileName, `${where}: entry must be an object, got ${describe(value)}.`);
  const { dtype, shape, data_offsets } = value as unknown as WireTensorInfo;
  if (!isStDType(dtype)) {
    if (typeof dtype === "string") {
      throw fail(fileName, `unsupported dtype ${dtype} for ${where}; boft reads ${ST_DTYPES.join(", ")}. Convert the tensor to a float dtype first.`);
    }
    throw fail(fileName, `${where}: dtype must be a string (dtype=${preview(dtype)}).`);
  }
  if (!Array.isArray(shape) || !shape.every(isIndex)) {
    throw fail(fileName, `${where}: shape must be a list of non-negative integers (shape=${preview(shape)}).`);
  }
  if (!Array.isArray(data_offsets) || data_offsets.length !== 2 || !data_offsets.every(isIndex)) {
    throw fail(fileName, `${where}: data_offsets must be two non-negative integers (data_offsets=${preview(data_offsets)}).`);
  }
  const [begin, end] = data_offsets as number[];
  if (begin > end) throw fail(fileName, `${where}: data_offsets begin after they end (data_offsets=[${begin},${end}]).`);
  if (end > dataSize) {
    throw fail(fileName, `${where}: data_offsets end past the data section (data_offsets=[${begin},${end}], data section is ${dataSize} bytes). ${NOT_SAFETENSORS}`);
  }
  const count = (shape as number[]).reduce((a, b) => a * b, 1);
  const nbytes = count * dtypeSize(dtype);
  if (nbytes !== end - begin) {
    throw fail(fileName, `${where}: shape ${preview(shape)} of ${dtype} needs ${nbytes} bytes but data_offsets=[${begin},${end}] span ${end - begin}.`);
  }
  return { name, dtype, shape: shape.slice() as number[], begin, end };
}

/** Sorts `tensors` in place by offset and checks they tile the data section exactly. */
function checkLayout(tensors: TensorEntry[], headerSize: number, fileSize: number, fileName: string): void {
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = headerSize;
  let prev: TensorEntry | undefined;
  const rel = (t: TensorEntry) => `[${t.begin - headerSize},${t.end - headerSize}]`;
  for (const t of tensors) {
    if (t.begin > at) {
      throw fail(fileName, `gap in the data section: bytes [${at - headerSize},${t.begin - headerSize}) before tensor "${t.name}" belong to no tensor. Tensors must be contiguous.`);
    }
    if (t.begin < at && prev) {
      throw fail(fileName, `tensor "${t.name}" (data_offsets=${rel(t)}) overlaps tensor "${prev.name}" (data_offsets=${rel(prev)}).`);
    }
    at = t.end;
    prev = t;
  }
  if (at !== fileSize) {
    throw fail(fileName, `${fileSize - at} bytes after the last tensor belong to no tensor (file_size=${fileSize}). The data must end at the end of the file.`);
  }
}

/**
 * Finds the first key that appears twice in one object of well-formed JSON text.
 * `path` names the enclosing object ([] = top level). JSON.parse keeps only the last duplicate,
 * so a second tensor with the same name would otherwise vanish without a word.
 */
export function findDuplicateKey(text: string): { path: string[]; key: string } | null {
  interface Frame {
    keys: Set<string> | null; // null for arrays
    expectKey: boolean;
    key: string;
  }
  const stack: Frame[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const top = stack[stack.length - 1];
    if (c === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      while (text.charCodeAt(j) !== 0x22) {
        if (text.charCodeAt(j) === 0x5c /* \ */) {
          escaped = true;
          j++;
        }
        j++;
      }
      if (top?.keys && top.expectKey) {
        const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        if (top.keys.has(key)) return { path: stack.slice(0, -1).map((f) => (f.keys ? f.key : "[]")), key };
        top.keys.add(key);
        top.expectKey = false;
        // Stored on the frame so nested frames can report where they sit.
        top.key = key;
      }
      i = j;
    } else if (c === 0x7b /* { */) {
      stack.push({ keys: new Set(), expectKey: true, key: "" });
    } else if (c === 0x5b /* [ */) {
      stack.push({ keys: null, expectKey: false, key: "" });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */ && top?.keys) {
      top.expectKey = true;
    }
  }
  return null;
}

// ---- writing ---------------------------------------------------------------------------------

/** Layout order of the reference writer: descending dtype alignment, then name. */
const DTYPE_RANK: Record<StDType, number> = { F64: 0, F32: 1, BF16: 2, F16: 3 };

/** Orders strings by code point, i.e. by UTF-8 bytes, as Rust's `String` ordering does. */
export function compareNames(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return (x.done ? 0 : 1) - (y.done ? 0 : 1);
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

/**
 * Lays out a file: the header bytes (8-byte length + JSON padded with spaces to a multiple of 8)
 * and where each tensor goes. Byte-identical to Python `safetensors.save_file`: tensors ordered by
 * descending dtype size (F64, F32, BF16, F16), then by name; `__metadata__` first; compact JSON.
 * Metadata keys are sorted (Python's order there is a Rust HashMap's, i.e. arbitrary).
 * `layout` lists tensors in file order, with absolute offsets. When `data` is given, its length is checked.
 */
export function serialize(
  tensors: readonly (TensorSpec & { data?: Uint8Array })[],
  metadata?: Record<string, string> | null,
  fileName = "<safetensors serialize>",
): { header: Uint8Array; totalSize: number; layout: TensorEntry[] } {
  const seen = new Set<string>();
  for (const t of tensors) {
    const where = `tensor "${t.name}"`;
    if (t.name === "__metadata__") throw fail(fileName, `"__metadata__" is reserved and cannot name a tensor.`);
    if (seen.has(t.name)) throw fail(fileName, `duplicate tensor name "${t.name}". Each tensor may appear once.`);
    seen.add(t.name);
    if (!isStDType(t.dtype)) throw fail(fileName, `unsupported dtype ${String(t.dtype)} for ${where}; boft writes ${ST_DTYPES.join(", ")}.`);
    if (!t.shape.every(isIndex)) throw fail(fileName, `${where}: shape must be non-negative integers (shape=[${t.shape}]).`);
    if (t.data) {
      const need = byteLength(t);
      if (t.data.byteLength !== need) {
        throw fail(fileName, `${where}: shape [${t.shape}] of ${t.dtype} needs ${need} bytes, got ${t.data.byteLength}.`);
      }
    }
  }
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw fail(fileName, `metadata values must be strings (${k}=${JSON.stringify(v)}).`);
    }
  }

  const ordered = [...tensors].sort((a, b) => DTYPE_RANK[a.dtype] - DTYPE_RANK[b.dtype] || compareNames(a.name, b.name));
  const parts: string[] = [];
  if (metadata) {
    const keys = Object.keys(metadata).sort(compareNames);
    parts.push(`"__metadata__":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(",")}}`);
  }
  const relative: [number, number][] = [];
  let offset = 0;
  for (const t of ordered) {
    const end = offset + byteLength(t);
    relative.push([offset, end]);
    parts.push(`${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(",")}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  // Padding to 8 keeps every tensor's data 8-byte aligned when the file is mapped into memory.
  const n = Math.ceil(json.byteLength / 8) * 8;
  if (n > MAX_HEADER_SIZE) throw fail(fileName, `header would be ${n} bytes, over the ${MAX_HEADER_SIZE}-byte limit readers accept.`);
  const header = new Uint8Array(8 + n).fill(0x20, 8 + json.byteLength);
  new DataView(header.buffer).setBigUint64(0, BigInt(n), true);
  header.set(json, 8);
  const layout = ordered.map((t, i) => ({
    name: t.name,
    dtype: t.dtype,
    shape: [...t.shape],
    begin: header.byteLength + relative[i][0],
    end: header.byteLength + relative[i][1],
  }));
  return { header, totalSize: header.byteLength + offset, layout };
}

/** A whole file in memory. For small files; large ones go through the streaming writer. */
export function encodeFile(
  tensors: readonly (TensorSpec & { data: Uint8Array })[],
  metadata?: Record<string, string> | null,
): Uint8Array {
  const { header, totalSize, layout } = serialize(tensors, metadata);
  const out = new Uint8Array(totalSize);
  out.set(header, 0);
  const byName = new Map(tensors.map((t) => [t.name, t.data]));
  for (const e of layout) out.set(byName.get(e.name)!, e.begin);
  return out;
}

// ---- helpers ---------------------------------------------------------------------------------

function byteLength(t: TensorSpec): number {
  return t.shape.reduce((a, b) => a * b, 1) * dtypeSize(t.dtype);
}

function isIndex(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function describe(x: unknown): string {
  return x === null ? "null" : Array.isArray(x) ? "an array" : typeof x;
}

/** Assigns without invoking the `__proto__` setter, so a key named "__proto__" stays a key. */
function setOwn(obj: Record<string, string>, key: string, value: string): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}
