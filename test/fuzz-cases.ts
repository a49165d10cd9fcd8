/**
 * Mutation fuzzing of the file readers: the safetensors header parser (bytes in memory), the safetensors file
 * reader, adapter_config.json parsing and opening a whole adapter folder. Each case starts from a valid file and
 * mutates it (bit flips, byte overwrites, truncation, extension, a lying header length, JSON token edits, huge
 * dims and offsets, deep nesting). The only allowed outcomes are a BoftError or a parse that checks out against
 * the bytes; anything else (TypeError, RangeError, a slow case) is a finding.
 *
 * Deterministic: case i of seed s is the same on every run, so a finding is reproduced with its seed and index.
 * Used by test/fuzz.test.ts (a fixed seed, in CI) and test/fuzz-main.ts (`npm run fuzz`, any seed and count).
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { BoftError } from "../src/errors.js";
import { type Rng, rng } from "../src/data/rng.js";
import { type StDType, ST_DTYPES, dtypeSize, decode } from "../src/formats/dtype.js";
import { encodeFile, parseHeader, MAX_HEADER_SIZE, type SafetensorsHeader } from "../src/formats/safetensors.js";
import { parseAdapterConfig, toAdapterConfigJson } from "../src/formats/peft-config.js";
import type { AdapterMethod } from "../src/methods/method.js";
import { boftConfig } from "../src/methods/boft/config.js";
import { oftConfig } from "../src/methods/oft/config.js";
import { loraConfig } from "../src/methods/lora/config.js";
import { SafetensorsReader } from "../src/node/safetensors-file.js";
import { openAdapter, ADAPTER_CONFIG, ADAPTER_WEIGHTS } from "../src/node/adapter-files.js";

export type Target = "bytes" | "file" | "config" | "folder";
export const TARGETS: readonly Target[] = ["bytes", "file", "config", "folder"];

/** What one case did: parsed (ok), was refused with a typed error, or broke the rules (finding). */
export interface Outcome {
  target: Target;
  index: number;
  mutation: string;
  result: "ok" | "refused" | "finding";
  /** For a finding: what went wrong (the error's class and message, or the inconsistency). */
  detail?: string;
  ms: number;
}

/** A case slower than this is a finding (a hang in the making): every input is at most a few kB. */
export const SLOW_MS = 1000;

// ---- valid inputs ----------------------------------------------------------------------------

const pick = <T>(r: Rng, xs: readonly T[]): T => xs[r.nextInt(xs.length)];

function validSafetensors(r: Rng): Uint8Array {
  const count = r.nextInt(4) + (r.nextInt(8) === 0 ? 0 : 1);
  const tensors = [];
  for (let i = 0; i < count; i++) {
    const dtype = pick(r, ST_DTYPES);
    const rank = r.nextInt(4);
    const shape = Array.from({ length: rank }, () => r.nextInt(5) + (r.nextInt(6) === 0 ? 0 : 1));
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Uint8Array(n * dtypeSize(dtype));
    for (let k = 0; k < data.length; k++) data[k] = r.nextInt(256);
    const name = r.nextInt(5) === 0 ? `base_model.model.layers.${i}.mlp.up_proj.boft_R` : `t${i}${pick(r, ["", ".weight", "/mu", "é", "\u{1F600}"])}`;
    tensors.push({ name, dtype, shape, data });
  }
  const metadata = r.nextInt(3) === 0 ? null : { format: "pt", ...(r.nextInt(2) ? { note: "x\"y" } : {}) };
  return encodeFile(tensors, metadata);
}

const TARGETS_CHOICES = [null, "q_proj", ["q_proj", "v_proj"], ["up_proj"], ".*\\.mlp\\..*"];

function validMethod(r: Rng): AdapterMethod {
  const targetModules = pick(r, TARGETS_CHOICES) as string | string[] | null;
  switch (r.nextInt(3)) {
    case 0:
      return { kind: "BOFT", config: boftConfig({ blockSize: pick(r, [2, 4, 8]), nButterflyFactor: r.nextInt(3) + 1, dropout: pick(r, [0, 0.1]), targetModules }) };
    case 1:
      return { kind: "OFT", config: oftConfig({ blockSize: pick(r, [4, 8]), r: 0, coft: r.nextInt(2) === 0, useCayleyNeumann: r.nextInt(2) === 0, targetModules }) };
    default:
      return { kind: "LORA", config: loraConfig({ r: pick(r, [1, 4, 8]), loraAlpha: pick(r, [1, 8, 16.5]), useRslora: r.nextInt(2) === 0, targetModules }) };
  }
}

function validConfigText(r: Rng): string {
  return toAdapterConfigJson(validMethod(r), { baseModelNameOrPath: pick(r, [null, "HuggingFaceTB/SmolLM2-135M"]), taskType: pick(r, [null, "CAUSAL_LM"]) });
}

/** Tensors an adapter of this method would hold for two small Linear layers (keys right; shapes plausible). */
function adapterWeights(r: Rng, method: AdapterMethod): Uint8Array {
  const modules = ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"];
  const suffixes = method.kind === "BOFT" ? [["boft_R", [1, 2, 4, 4]], ["boft_s", [8, 1]]] : method.kind === "OFT" ? [["oft_R.weight", [2, 6]]] : [["lora_A.weight", [4, 8]], ["lora_B.weight", [8, 4]]];
  const tensors = modules.flatMap((m) =>
    suffixes.map(([s, shape]) => {
      const n = (shape as number[]).reduce((a, b) => a * b, 1);
      const data = new Uint8Array(4 * n);
      for (let k = 0; k < data.length; k++) data[k] = r.nextInt(256);
      return { name: `base_model.model.${m}.${s as string}`, dtype: "F32" as StDType, shape: shape as number[], data };
    }),
  );
  return encodeFile(tensors, { format: "pt" });
}

// ---- mutations -------------------------------------------------------------------------------

const INTERESTING_BYTES = [0x00, 0xff, 0x7f, 0x80, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x30, 0x39, 0x2d, 0x65, 0x2e, 0x20];
const INTERESTING_NUMBERS = [
  "0", "-0", "1", "-1", "2", "7", "1.5", "1e-7", "-1e-7", "0.0", "1e308", "-1e308", "1e400",
  "4294967295", "4294967296", "9007199254740991", "9007199254740992", "9007199254740993",
  "1125899906842624" /* 2^50 */, "33554432" /* 2^25 */, "100000000", "18446744073709551615", "NaN", "Infinity",
];
const INTERESTING_STRINGS = [
  '""', '"F32"', '"F16"', '"BF16"', '"F64"', '"I8"', '"U8"', '"F8_E4M3"', '"__metadata__"', '"__proto__"', '"constructor"',
  '"shape"', '"dtype"', '"data_offsets"', '"peft_type"', '"BOFT"', '"OFT"', '"LORA"', '"\\ud800"', '"\\u0000"', '"é"',
  '"target_modules"', '"boft_block_size"', '"oft_block_size"', '"r"', '"CAUSAL_LM"', '"0.13.0"', '"0.20.0"',
];
const OTHER_TOKENS = ["null", "true", "false", "[]", "{}", "[0]", "[1,2]", '{"a":1}', "[[[[[[[[[[]]]]]]]]]]", ","];

/** Splits JSON text into tokens (strings, numbers, literals, punctuation, whitespace), keeping every character. */
function tokens(text: string): string[] {
  return text.match(/"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|\s+|[{}[\]:,]|[^]/g) ?? [];
}

type Bytes = Uint8Array;
interface Mutated {
  bytes: Bytes;
  mutation: string;
}

function flipBits(r: Rng, b: Bytes): Bytes {
  const out = b.slice();
  const k = r.nextInt(4) + 1;
  // Half the flips land in the first 64 bytes (length field and the start of the JSON), where they matter most.
  for (let i = 0; i < k && out.length; i++) {
    const at = r.nextInt(2) ? r.nextInt(Math.min(64, out.length)) : r.nextInt(out.length);
    out[at] ^= 1 << r.nextInt(8);
  }
  return out;
}

function overwriteBytes(r: Rng, b: Bytes): Bytes {
  const out = b.slice();
  const k = r.nextInt(4) + 1;
  for (let i = 0; i < k && out.length; i++) out[r.nextInt(out.length)] = r.nextInt(2) ? pick(r, INTERESTING_BYTES) : r.nextInt(256);
  return out;
}

function truncate(r: Rng, b: Bytes): Bytes {
  return b.slice(0, r.nextInt(b.length + 1));
}

function extend(r: Rng, b: Bytes): Bytes {
  const extra = new Uint8Array(r.nextInt(3) === 0 ? r.nextInt(4096) : r.nextInt(16) + 1);
  if (r.nextInt(2)) for (let k = 0; k < extra.length; k++) extra[k] = r.nextInt(256);
  const out = new Uint8Array(b.length + extra.length);
  out.set(b);
  out.set(extra, b.length);
  return out;
}

/** Sets the header-length field to a lie: near the truth, zero, huge, or just under/over the limit and the file. */
function lieLength(r: Rng, b: Bytes): Bytes {
  const out = b.length >= 8 ? b.slice() : extend(r, b);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  if (out.length < 8) return out;
  const n = view.getBigUint64(0, true);
  const choices = [
    0n, 1n, 7n, n - 1n, n + 1n, n - 8n, n + 8n, BigInt(out.length - 8), BigInt(out.length - 7), BigInt(out.length),
    BigInt(MAX_HEADER_SIZE), BigInt(MAX_HEADER_SIZE) + 1n, 2n ** 32n, 2n ** 50n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n,
    BigInt(r.nextUint32()) | (BigInt(r.nextUint32()) << 32n),
  ];
  view.setBigUint64(0, BigInt.asUintN(64, pick(r, choices)), true);
  return out;
}

/** A JSON text with one token replaced, deleted, duplicated, or wrapped in deep nesting. */
function mutateJsonText(r: Rng, text: string): string {
  const ts = tokens(text);
  const rounds = r.nextInt(3) + 1;
  for (let k = 0; k < rounds; k++) {
    const at = r.nextInt(ts.length);
    const t = ts[at];
    switch (r.nextInt(6)) {
      case 0:
        ts[at] = /^-?\d/.test(t) || r.nextInt(2) ? pick(r, INTERESTING_NUMBERS) : t;
        break;
      case 1:
        ts[at] = t.startsWith('"') || r.nextInt(3) === 0 ? pick(r, INTERESTING_STRINGS) : pick(r, OTHER_TOKENS);
        break;
      case 2:
        ts.splice(at, 1);
        break;
      case 3:
        ts.splice(at, 0, t);
        break;
      case 4: {
        // Deep nesting: JSON.parse copes, but recursive code after it (clone, stringify) may not.
        const depth = pick(r, [64, 1000, 100_000]);
        ts[at] = "[".repeat(depth) + (/^[\s:,{}[\]]/.test(t) ? "1" : t) + "]".repeat(depth);
        break;
      }
      default:
        ts[at] = pick(r, OTHER_TOKENS);
    }
  }
  return ts.join("");
}

/** The header JSON of a safetensors file (or null if there is none to speak of). */
function headerText(b: Bytes): string | null {
  if (b.length < 8) return null;
  const n = Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true));
  if (n > b.length - 8) return null;
  return new TextDecoder().decode(b.subarray(8, 8 + n));
}

/** Rebuilds a file from new header text and the old data section, with a truthful length field. */
function withHeader(b: Bytes, text: string): Bytes {
  const n = Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true));
  const json = new TextEncoder().encode(text);
  const data = b.subarray(8 + n);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Semantic edits of the header object: huge dims, offsets past the end or overlapping, lost or extra tensors. */
function mutateHeaderObject(r: Rng, b: Bytes): { bytes: Bytes; what: string } {
  const text = headerText(b)!;
  const obj = JSON.parse(text) as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
  const names = Object.keys(obj).filter((k) => k !== "__metadata__");
  const name = names.length ? pick(r, names) : "t";
  const e = obj[name] ?? (obj[name] = { dtype: "F32", shape: [1], data_offsets: [0, 4] });
  const HUGE = [2 ** 25, 2 ** 31, 2 ** 32, 2 ** 50, 2 ** 53 - 1, 1e15];
  const what = pick(r, ["huge-dims", "huge-offsets", "shift-offsets", "swap-offsets", "drop-tensor", "extra-tensor", "dtype", "shape-rank", "metadata"]);
  switch (what) {
    case "huge-dims":
      // Claims ~2^50 elements (or more) while data_offsets stay small, or grow to match the claim.
      e.shape = Array.from({ length: r.nextInt(3) + 1 }, () => pick(r, HUGE));
      if (r.nextInt(2)) e.data_offsets = [e.data_offsets[0], e.data_offsets[0] + e.shape.reduce((a, c) => a * c, 1) * 4];
      break;
    case "huge-offsets":
      e.data_offsets = [pick(r, [0, e.data_offsets[0], ...HUGE]), pick(r, HUGE)];
      break;
    case "shift-offsets": {
      const d = pick(r, [-8, -4, -2, -1, 1, 2, 4, 8]);
      e.data_offsets = e.data_offsets.map((x) => x + d);
      break;
    }
    case "swap-offsets":
      e.data_offsets = [e.data_offsets[1], e.data_offsets[0]];
      break;
    case "drop-tensor":
      delete obj[name];
      break;
    case "extra-tensor":
      obj[`${name}.copy`] = { ...e, data_offsets: [...e.data_offsets] };
      break;
    case "dtype":
      e.dtype = pick(r, ["F32", "F16", "BF16", "F64", "I32", "bool", ""]);
      break;
    case "shape-rank":
      e.shape = r.nextInt(2) ? [...e.shape, 1] : [];
      break;
    default:
      (obj as Record<string, unknown>).__metadata__ = pick(r, [null, {}, { a: 1 }, [], "x", { __proto__: "p" }]);
  }
  return { bytes: withHeader(b, JSON.stringify(obj)), what };
}

function mutateSafetensors(r: Rng, valid: Bytes): Mutated {
  const kinds = ["bitflip", "overwrite", "truncate", "extend", "length-lie", "json-token", "header-object", "stacked"] as const;
  const kind = pick(r, kinds);
  switch (kind) {
    case "bitflip":
      return { bytes: flipBits(r, valid), mutation: kind };
    case "overwrite":
      return { bytes: overwriteBytes(r, valid), mutation: kind };
    case "truncate":
      return { bytes: truncate(r, valid), mutation: kind };
    case "extend":
      return { bytes: extend(r, valid), mutation: kind };
    case "length-lie":
      return { bytes: lieLength(r, valid), mutation: kind };
    case "json-token":
      return { bytes: withHeader(valid, mutateJsonText(r, headerText(valid)!)), mutation: kind };
    case "header-object": {
      const m = mutateHeaderObject(r, valid);
      return { bytes: m.bytes, mutation: `header-object:${m.what}` };
    }
    default: {
      // Two mutations in a row: a semantic one, then a byte-level one.
      const m = mutateHeaderObject(r, valid);
      return { bytes: pick(r, [flipBits, overwriteBytes, truncate, extend, lieLength])(r, m.bytes), mutation: `stacked:${m.what}` };
    }
  }
}

function mutateConfigText(r: Rng, text: string): { text: string; mutation: string } {
  switch (r.nextInt(5)) {
    case 0:
      return { text: new TextDecoder().decode(flipBits(r, new TextEncoder().encode(text))), mutation: "bitflip" };
    case 1:
      return { text: text.slice(0, r.nextInt(text.length + 1)), mutation: "truncate" };
    case 2: {
      // A valid value of the wrong type or range for one key: the most likely human edit.
      const obj = JSON.parse(text) as Record<string, unknown>;
      const key = pick(r, Object.keys(obj));
      obj[key] = pick(r, [null, 0, -1, 2 ** 53, 1e308, 1.5, "", "x", true, [], {}, ["a", 1], [[["q"]]], { a: "b" }, 2 ** 50, -0]);
      return { text: JSON.stringify(obj, null, 2), mutation: `value:${key}` };
    }
    default:
      return { text: mutateJsonText(r, text), mutation: "json-token" };
  }
}

// ---- checks ----------------------------------------------------------------------------------

/** Throws if a successfully parsed header does not describe the bytes it came from. */
function checkHeader(h: SafetensorsHeader, size: number): void {
  let at = h.headerSize;
  const seen = new Set<string>();
  for (const t of h.tensors) {
    if (seen.has(t.name)) throw new Error(`tensor "${t.name}" listed twice`);
    seen.add(t.name);
    if (t.begin !== at) throw new Error(`tensor "${t.name}" begins at ${t.begin}, expected ${at}`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new Error(`tensor "${t.name}" has shape [${t.shape}]`);
    if (n * dtypeSize(t.dtype) !== t.end - t.begin) throw new Error(`tensor "${t.name}" spans ${t.end - t.begin} bytes for shape [${t.shape}]`);
    at = t.end;
  }
  if (at !== size) throw new Error(`tensors end at ${at}, file is ${size} bytes`);
}

/** Runs `body` and classifies what happened. A non-BoftError exception is a finding, as is a slow case. */
function classify(target: Target, index: number, mutation: string, body: () => void): Outcome {
  const t0 = performance.now();
  let result: Outcome["result"] = "ok";
  let detail: string | undefined;
  try {
    body();
  } catch (e) {
    if (e instanceof BoftError && !(e instanceof InconsistentParse)) result = "refused";
    else {
      result = "finding";
      detail = e instanceof Error ? `${e.name}: ${e.message.slice(0, 300)}` : String(e);
    }
  }
  const ms = performance.now() - t0;
  if (result !== "finding" && ms > SLOW_MS) {
    result = "finding";
    detail = `took ${ms.toFixed(0)} ms`;
  }
  return { target, index, mutation, result, detail, ms };
}

/** A parse that succeeded but does not agree with its input. Not a BoftError's meaning, so it counts as a finding. */
class InconsistentParse extends Error {}

function consistent(what: string, f: () => void): void {
  try {
    f();
  } catch (e) {
    throw new InconsistentParse(`${what}: ${(e as Error).message}`);
  }
}

// ---- one case per target ---------------------------------------------------------------------

/** Parse the mutated bytes in memory; on success, the tensors tile the data and every one decodes. */
function bytesCase(r: Rng, index: number): Outcome {
  const m = mutateSafetensors(r, validSafetensors(r));
  return classify("bytes", index, m.mutation, () => {
    const h = parseHeader(m.bytes, m.bytes.length, "fuzz.safetensors");
    consistent("parsed header", () => {
      checkHeader(h, m.bytes.length);
      for (const t of h.tensors) decode(t.dtype, m.bytes.subarray(t.begin, t.end));
    });
  });
}

/** The same through a file on disk; on success the reader's bytes equal the in-memory parse's. */
function fileCase(r: Rng, index: number, dir: string): Outcome {
  const m = mutateSafetensors(r, validSafetensors(r));
  const file = nodePath.join(dir, "fuzz.safetensors");
  fs.writeFileSync(file, m.bytes);
  return classify("file", index, m.mutation, () => {
    const reader = new SafetensorsReader(file);
    try {
      consistent("file reader", () => {
        checkHeader(reader.header, m.bytes.length);
        for (const t of reader.header.tensors) {
          const got = reader.readRaw(t.name);
          const want = m.bytes.subarray(t.begin, t.end);
          if (got.length !== want.length || got.some((x, k) => x !== want[k])) throw new Error(`tensor "${t.name}" bytes differ from the file`);
          reader.read(t.name);
        }
      });
    } finally {
      reader.close();
    }
  });
}

/** parseAdapterConfig; on success, writing the config back and reading it again gives the same method. */
function configCase(r: Rng, index: number): Outcome {
  const m = mutateConfigText(r, validConfigText(r));
  return classify("config", index, m.mutation, () => {
    const parsed = parseAdapterConfig(m.text, "adapter_config.json");
    consistent("config round trip", () => {
      const method = { kind: parsed.kind, config: parsed.config } as AdapterMethod;
      const again = parseAdapterConfig(toAdapterConfigJson(method, { ...parsed, peftVersion: null }), "rewritten");
      const a = JSON.stringify(again.config);
      const b = JSON.stringify(parsed.config);
      if (a !== b) throw new Error(`re-read config differs: ${b} → ${a}`);
    });
  });
}

/** openAdapter on a folder whose config, weights or both are mutated; on success the groups name real tensors. */
function folderCase(r: Rng, index: number, dir: string): Outcome {
  const method = validMethod(r);
  let config = toAdapterConfigJson(method);
  let weights = adapterWeights(r, method);
  const which = pick(r, ["config", "weights", "both"] as const);
  const mutations: string[] = [];
  if (which !== "weights") {
    const m = mutateConfigText(r, config);
    config = m.text;
    mutations.push(`config:${m.mutation}`);
  }
  if (which !== "config") {
    const m = mutateSafetensors(r, weights);
    weights = m.bytes;
    mutations.push(`weights:${m.mutation}`);
  }
  fs.writeFileSync(nodePath.join(dir, ADAPTER_CONFIG), config);
  fs.writeFileSync(nodePath.join(dir, ADAPTER_WEIGHTS), weights);
  return classify("folder", index, mutations.join("+"), () => {
    const a = openAdapter(dir);
    try {
      consistent("open adapter", () => {
        checkHeader(a.reader.header, weights.length);
        for (const keys of a.groups.layers.values()) for (const key of keys.values()) a.reader.read(key);
        for (const key of a.groups.extras) a.reader.read(key);
      });
    } finally {
      a.close();
    }
  });
}

/**
 * Case `index` of `seed` for `target`. Each case has its own generator (seed, target, index), so any case can be
 * re-run alone. `dir` is a scratch folder for the file and folder targets.
 */
export function runCase(target: Target, seed: number, index: number, dir: string): Outcome {
  if (!(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 20)) throw new RangeError(`fuzz seed must be an integer in [0, 2^20) (got ${seed})`);
  if (!(Number.isInteger(index) && index >= 0 && index < 2 ** 30)) throw new RangeError(`fuzz case index must be in [0, 2^30) (got ${index})`);
  const r = rng(seed * 2 ** 32 + index * 4 + TARGETS.indexOf(target));
  switch (target) {
    case "bytes":
      return bytesCase(r, index);
    case "file":
      return fileCase(r, index, dir);
    case "config":
      return configCase(r, index);
    case "folder":
      return folderCase(r, index, dir);
  }
}

/** Totals of a fuzz run; `findings` lists every case that broke the rules. */
export interface FuzzSummary {
  cases: number;
  byTarget: Record<Target, { ok: number; refused: number; finding: number }>;
  findings: Outcome[];
  slowestMs: number;
  seconds: number;
}

/**
 * `cases` cases of `seed`, spread evenly over `targets` (case i goes to targets[i % targets.length], as its
 * index i / targets.length within that target). `onProgress(done)` is called now and then.
 */
export function fuzz(o: { seed: number; cases: number; dir: string; targets?: readonly Target[]; onProgress?: (done: number) => void }): FuzzSummary {
  const targets = o.targets ?? TARGETS;
  const t0 = performance.now();
  const byTarget = Object.fromEntries(TARGETS.map((t) => [t, { ok: 0, refused: 0, finding: 0 }])) as FuzzSummary["byTarget"];
  const findings: Outcome[] = [];
  let slowestMs = 0;
  for (let i = 0; i < o.cases; i++) {
    const target = targets[i % targets.length];
    const out = runCase(target, o.seed, Math.floor(i / targets.length), o.dir);
    byTarget[target][out.result]++;
    if (out.result === "finding") findings.push(out);
    slowestMs = Math.max(slowestMs, out.ms);
    if (o.onProgress && (i + 1) % 500 === 0) o.onProgress(i + 1);
  }
  if (o.cases % 500 !== 0) o.onProgress?.(o.cases);
  return { cases: o.cases, byTarget, findings, slowestMs, seconds: (performance.now() - t0) / 1000 };
}
