/**
 * `boft merge`: fold an adapter into a checkpoint, streaming.
 *
 * Adapted weights W (<module>.weight; Conv2d flattened to [out, in·kh·kw]) become BOFT diag(s)·W·Rotᵀ,
 * OFT W·BDᵀ, LoRA W + scaling·B·A, computed in float32 (float64 for F64 tensors) and rounded once to the
 * tensor's own dtype. Trained biases / modules_to_save replace their base tensors. Everything else is copied bit
 * for bit, metadata included. The output appears only when complete.
 *
 * Memory: every merge acts on each output row separately, so a weight is read, merged and written a block of
 * rows at a time (`chunkBytes`), and copied tensors go through one fixed buffer. Peak memory is a few chunks plus
 * the engine, whatever the size of the file or of its largest tensor.
 *
 * The base is never overwritten by accident: an --out that is the base (same path, a symlink or hard link to it,
 * its folder, or a folder inside it) is refused unless `inPlace`. In place, every merged file is written beside
 * its base file, re-read and checked (header, size, SHA-256 of every tensor as written), and only then renamed
 * over the base file.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { createHash, type Hash } from "node:crypto";
import { fromHost, toHost, sizeOf, jit, type Arr, type FloatDType } from "../engine/index.js";
import { FormatError, NonFiniteError, ShapeError } from "../errors.js";
import { decode, encode, dtypeSize } from "../formats/dtype.js";
import type { TensorEntry } from "../formats/safetensors.js";
import { baseKeyOfExtra } from "../formats/peft-adapter.js";
import { type AdapterMethod, type ModuleInfo, type LayerPlan, type LayerParams, planLayer, layerParamShapes, mergeLayer, nestLayerParams } from "../methods/adapter.js";
import { openCheckpoint, SafetensorsReader, writeSafetensors, INDEX_FILE, SINGLE_FILE, type Checkpoint, type TensorStream } from "./safetensors-file.js";
import { openAdapter, type OpenAdapter } from "./adapter-files.js";
import { writeAll, removeLeftovers } from "./atomic.js";

/**
 * What mergeCheckpoint merges: `base` a safetensors checkpoint (file, sharded index or folder), `adapter` a PEFT
 * adapter folder, `out` where the merged checkpoint goes.
 *
 * @example mergeCheckpoint({ base: "SmolLM2-135M", adapter: "runs/boft/adapter", out: "merged" })
 */
export interface MergeOptions {
  base: string;
  adapter: string;
  /** Output file or folder; with inPlace it may be left out (the base). */
  out?: string;
  /**
   * Bytes of weight rows (in the compute dtype) merged per engine call. Peak memory grows with it (the engine holds
   * several copies of a chunk); each call also recomputes the layer's rotation blocks, so very small chunks are
   * slow. Default 8 MiB (512 rows of a 4096-wide float32 layer).
   */
  chunkBytes?: number;
  /**
   * Replace the base with the merged model (`out` must then be the base or omitted). Without it, an `out` that is
   * the base, a link to it, its folder or inside its folder is refused.
   */
  inPlace?: boolean;
}

/**
 * What mergeCheckpoint did: tensor names merged with an adapter layer (`merged`), replaced by trained base
 * tensors (`replaced`), how many were copied unchanged, and the files written.
 */
export interface MergeReport {
  merged: string[];
  replaced: string[];
  copied: number;
  files: string[];
  /** What PEFT would warn about: config keys it drops, OFT block sizes it adjusts (once each). */
  warnings: string[];
  /** Temp files that an interrupted merge (a process no longer running) left beside these targets, now removed. */
  removedLeftovers: string[];
}

const DEFAULT_CHUNK_BYTES = 8 << 20;
/** Copied tensors go through a buffer of this size. */
const COPY_BYTES = 16 << 20;

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

function moduleOf(path: string, shape: number[], where: string): ModuleInfo {
  if (shape.length === 2) return { path, kind: "linear", inFeatures: shape[1], outFeatures: shape[0] };
  if (shape.length === 4) return { path, kind: "conv2d", inFeatures: shape[1], outFeatures: shape[0], kernel: [shape[2], shape[3]] };
  throw new ShapeError(`${where}: ${path}.weight has shape [${shape}]; only Linear [out, in] and Conv2d [out, in, kh, kw] weights can be merged`);
}

/** Index of the first NaN or ±Inf, or −1. */
function firstNonFinite(data: Float32Array | Float64Array): number {
  for (let k = 0; k < data.length; k++) if (!Number.isFinite(data[k])) return k;
  return -1;
}

/** Adapter tensors must be finite: a merge would spread NaN/Inf into the weights (PEFT's safe_merge refuses too). */
function checkAdapterFinite(data: Float32Array | Float64Array, file: string, key: string): void {
  const k = firstNonFinite(data);
  if (k >= 0) throw new NonFiniteError(`${file}: tensor "${key}" contains ${data[k]} at index ${k}; refusing to merge (safe merge). Fix or retrain the adapter.`);
}

interface PlannedLayer {
  method: AdapterMethod;
  plan: LayerPlan;
  weightKey: string;
  /** PEFT key of each parameter, by suffix. Read when the layer is merged, so only one layer's are in memory. */
  keys: Map<string, string>;
}

type HostParams = Record<string, { shape: number[]; data: Float32Array | Float64Array }>;

/** Checks the adapter against the base before anything is written. */
function planMerge(ckpt: Checkpoint, adapter: OpenAdapter): { layers: Map<string, PlannedLayer>; extras: Map<string, string> } {
  const method = { kind: adapter.config.kind, config: adapter.config.config } as AdapterMethod;
  const layers = new Map<string, PlannedLayer>();
  for (const [module, keys] of adapter.groups.layers) {
    const weightKey = `${module}.weight`;
    if (!ckpt.has(weightKey)) {
      throw new FormatError(`${adapter.reader.path}: adapter targets ${module}, but the base has no tensor "${weightKey}"`);
    }
    const plan = planLayer(method, moduleOf(module, ckpt.info(weightKey).shape, ckpt.path));
    for (const [suffix, shape] of layerParamShapes(plan)) {
      const key = keys.get(suffix)!;
      const entry = adapter.reader.entry(key);
      if (!sameShape(entry.shape, shape)) {
        throw new ShapeError(
          `${adapter.reader.path}: tensor "${key}" has shape [${entry.shape}], but base ${weightKey} [${ckpt.info(weightKey).shape}] needs [${shape}]. The adapter was trained for another model.`,
        );
      }
      checkAdapterFinite(adapter.reader.read(key).data, adapter.reader.path, key);
    }
    layers.set(weightKey, { method, plan, weightKey, keys });
  }
  const extras = new Map<string, string>(); // base key → adapter key
  for (const key of adapter.groups.extras) {
    const baseKey = baseKeyOfExtra(key);
    if (!ckpt.has(baseKey)) throw new FormatError(`${adapter.reader.path}: adapter holds ${key}, but the base has no tensor "${baseKey}"`);
    if (layers.has(baseKey)) throw new FormatError(`${adapter.reader.path}: adapter holds ${key}, a full replacement of "${baseKey}", which it also adapts`);
    if (extras.has(baseKey)) throw new FormatError(`${adapter.reader.path}: adapter holds ${key} and ${extras.get(baseKey)}, both for "${baseKey}"`);
    const entry = adapter.reader.entry(key);
    if (!sameShape(entry.shape, ckpt.info(baseKey).shape)) {
      throw new ShapeError(`${adapter.reader.path}: tensor "${key}" has shape [${entry.shape}], but base ${baseKey} has [${ckpt.info(baseKey).shape}]. The adapter was trained for another model.`);
    }
    checkAdapterFinite(adapter.reader.read(key).data, adapter.reader.path, key);
    extras.set(baseKey, key);
  }
  return { layers, extras };
}

type MergeFn = (params: LayerParams, weight: Arr) => Arr;

/**
 * mergeLayer for one plan, compiled with jit once per distinct plan (a layer shape and chunk height). Eagerly, the
 * engine reserves a buffer for every intermediate until the result is read: the Cayley blocks alone (Gauss–Jordan,
 * one column per step) then hold ~250 MB for b = 32 and take seconds; compiled, a 512-row chunk of a 4096-wide
 * BOFT layer needs ~150 MB in all and is ~4× faster.
 * float64 stays eager: jax-js 0.1.25's jit turns JS number constants into float32 (x·0.005 is off by 7e-8
 * relative), which would cost COFT's eps, LoRA's scaling etc. their float64 accuracy.
 */
class MergeKernels {
  private readonly fns = new Map<string, MergeFn & { dispose(): void }>();
  get(plan: LayerPlan, dtype: FloatDType, weightShape: number[]): MergeFn {
    if (dtype === "float64") return (p, w) => mergeLayer(plan, p, w);
    const key = JSON.stringify([plan.method, plan.shape, weightShape]);
    let f = this.fns.get(key);
    if (!f) {
      f = jit((p: LayerParams, w: Arr) => mergeLayer(plan, p, w)) as unknown as MergeFn & { dispose(): void };
      this.fns.set(key, f);
    }
    return f;
  }
  dispose(): void {
    for (const f of this.fns.values()) f.dispose();
    this.fns.clear();
  }
}

/**
 * Rows [r0, r1) of the merged weight, from those rows of the base weight (`values`, row-major). The layer is
 * re-planned with out = r1 − r0; parameters indexed by output row (BOFT boft_s, LoRA lora_B) are sliced, the
 * others (the rotation) are used whole.
 */
function mergeRows(
  kernels: MergeKernels,
  layer: PlannedLayer,
  hostParams: HostParams,
  values: Float32Array | Float64Array,
  r0: number,
  r1: number,
  shape: number[],
): Float32Array | Float64Array {
  const cd: FloatDType = values instanceof Float64Array ? "float64" : "float32"; // F64 decodes to Float64Array, the rest to Float32Array
  const cast = (d: Float32Array | Float64Array) => (cd === "float64" ? Float64Array.from(d) : Float32Array.from(d));
  const out = layer.plan.module.outFeatures;
  const rows = r1 - r0;
  const plan = rows === out ? layer.plan : planLayer(layer.method, { ...layer.plan.module, outFeatures: rows });
  const params: Record<string, Arr> = {};
  for (const [suffix, want] of layerParamShapes(plan)) {
    const t = hostParams[suffix];
    let data = t.data;
    if (!sameShape(want, t.shape)) {
      const perRow = t.data.length / out; // an out-indexed parameter holds perRow values per output row, contiguous
      data = t.data.subarray(r0 * perRow, r1 * perRow);
    }
    params[suffix] = fromHost({ dtype: cd, shape: want, data: cast(data) });
  }
  const wShape = [rows, ...shape.slice(1)];
  const w = fromHost({ dtype: cd, shape: wShape, data: values });
  return toHost(kernels.get(plan, cd, wShape)(nestLayerParams(params), w)).data;
}

type TensorWriter = TensorStream["write"];

/** Small companion files of a model folder (config.json, tokenizer files, …) to carry over. */
function companionFiles(folder: string): string[] {
  return fs
    .readdirSync(folder)
    .filter((f) => !f.endsWith(".safetensors") && !f.endsWith(".safetensors.index.json") && !/\.(merge|tmp)-\d+$/.test(f) && fs.statSync(nodePath.join(folder, f)).isFile());
}

/** Both paths exist and are one file (same device and inode: symlinks followed, hard links caught). */
function sameFile(a: string, b: string): boolean {
  try {
    const x = fs.statSync(a);
    const y = fs.statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/** realpath of `p`, or of its nearest existing parent joined with the rest (for a path not created yet). */
function realPathOf(p: string): string {
  const abs = nodePath.resolve(p);
  if (fs.existsSync(abs)) return fs.realpathSync(abs);
  const parent = nodePath.dirname(abs);
  return parent === abs ? abs : nodePath.join(realPathOf(parent), nodePath.basename(abs));
}

const isInside = (child: string, parent: string) => child === parent || child.startsWith(parent.endsWith(nodePath.sep) ? parent : parent + nodePath.sep);

/**
 * Throws unless `out` leaves the base untouched: not a base file (by dev/ino), not the base's folder or a folder
 * inside it. `targets` are the files the merge would write.
 */
function checkOutIsNotBase(out: string, baseFiles: readonly string[], baseDir: string | null, targets: readonly string[]): void {
  const hit = targets.find((t) => baseFiles.some((b) => sameFile(t, b)));
  const outReal = realPathOf(out);
  const inBase = baseDir !== null && isInside(outReal, fs.realpathSync(baseDir));
  if (hit || inBase) {
    throw new FormatError(
      `${out}: ${inBase && !(hit && realPathOf(hit) === outReal) ? `is ${outReal === fs.realpathSync(baseDir!) ? "" : "inside "}the base model's folder` : `writing ${hit} would overwrite the base checkpoint`}. Give another --out, or --in-place to replace the base with the merged model.`,
    );
  }
}

/** Re-reads a written safetensors file: same tensors, dtypes, shapes and size as planned, same bytes (SHA-256) as written. */
function verifyWritten(file: string, planned: readonly TensorEntry[], hashes: ReadonlyMap<string, string>, buf: Uint8Array): void {
  const r = new SafetensorsReader(file);
  try {
    const got = r.header.tensors;
    const sameLayout = got.length === planned.length && planned.every((e) => {
      const g = r.header.tensors.find((t) => t.name === e.name);
      return g !== undefined && g.dtype === e.dtype && sameShape(g.shape, e.shape) && g.end - g.begin === e.end - e.begin;
    });
    if (!sameLayout) throw new FormatError(`${file}: the merged file's header does not list the planned tensors; the base was not replaced.`);
    const dataBytes = got.reduce((n, t) => n + (t.end - t.begin), 0);
    const end = got.length ? Math.max(...got.map((t) => t.end)) : r.fileSize;
    const begin = got.length ? Math.min(...got.map((t) => t.begin)) : r.fileSize;
    if (r.fileSize !== end || end - begin !== dataBytes) {
      throw new FormatError(`${file}: the merged file is ${r.fileSize} bytes, not what its header describes; the base was not replaced.`);
    }
    for (const t of got) {
      const h = createHash("sha256");
      for (let at = t.begin; at < t.end; at += buf.byteLength) h.update(r.readRange(at, Math.min(buf.byteLength, t.end - at), buf));
      if (h.digest("hex") !== hashes.get(t.name)) throw new FormatError(`${file}: tensor "${t.name}" reads back different from what was written; the base was not replaced.`);
    }
  } finally {
    r.close();
  }
}

/**
 * Merges a PEFT adapter (BOFT, OFT or LoRA) into a safetensors checkpoint (a file, or a folder single-file or
 * sharded), streaming tensor by tensor, and writes the merged checkpoint to `o.out` (what `boft merge` does).
 * Everything is checked before the first byte is written; files are written under temporary names and renamed.
 */
export function mergeCheckpoint(o: MergeOptions): MergeReport {
  const chunkBytes = o.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!(chunkBytes > 0)) throw new RangeError(`mergeCheckpoint: chunkBytes must be positive (got ${chunkBytes})`);
  const ckpt = openCheckpoint(o.base);
  const kernels = new MergeKernels();
  let adapter: OpenAdapter | undefined;
  try {
    adapter = openAdapter(o.adapter);
    const { layers, extras } = planMerge(ckpt, adapter);
    const sharded = ckpt.files.length > 1;
    // The model folder whose companion files (config.json, tokenizer, …) and index go along; none for a lone file.
    const baseDir = fs.statSync(o.base).isDirectory() ? o.base : o.base.endsWith(".json") ? nodePath.dirname(o.base) : null;
    const indexPath = o.base.endsWith(".json") ? o.base : nodePath.join(o.base, INDEX_FILE);
    const baseFiles = [...ckpt.files, ...(sharded ? [indexPath] : [])];
    if (o.inPlace) {
      const at = baseDir ?? o.base;
      if (o.out !== undefined && !sameFile(o.out, at)) throw new FormatError(`--in-place replaces the base (${at}); --out ${o.out} is somewhere else. Leave out --out, or drop --in-place.`);
    } else if (o.out === undefined) throw new FormatError("give --out (or --in-place to replace the base)");
    // In place, the merged files go where the base's real files are (through any symlink) and replace them.
    const out = o.inPlace ? (baseDir !== null ? fs.realpathSync(baseDir) : fs.realpathSync(o.base)) : o.out!;
    const toFile = o.inPlace ? baseDir === null : out.endsWith(".safetensors");
    if (sharded && ckpt.files.some((f) => nodePath.dirname(f) !== nodePath.resolve(baseDir!))) {
      throw new FormatError(`${indexPath}: shards in sub-folders are not supported; the index must name files beside it`);
    }
    if (toFile && fs.existsSync(out) && fs.statSync(out).isDirectory()) throw new FormatError(`${out}: is a folder; give a file name or a folder without the .safetensors ending`);
    if (!toFile && fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new FormatError(`${out}: exists and is not a folder`);
    if (toFile && !fs.existsSync(nodePath.dirname(nodePath.resolve(out)))) throw new FormatError(`${out}: the folder ${nodePath.dirname(out)} does not exist`);
    if (toFile && sharded) {
      throw new FormatError(`${o.base} is sharded (${ckpt.files.length} files); give --out a folder to keep its shards`);
    }
    const shardOf = (file: string) => (toFile ? out : nodePath.join(out, sharded ? nodePath.basename(file) : SINGLE_FILE));
    const copyCompanions = !toFile && baseDir !== null && !o.inPlace;
    const companionTargets = copyCompanions ? [...companionFiles(baseDir), ...(sharded ? [INDEX_FILE] : [])].map((f) => nodePath.join(out, f)) : [];
    if (!o.inPlace) checkOutIsNotBase(out, baseFiles, baseDir, [...ckpt.files.map(shardOf), ...companionTargets]);
    if (!toFile && fs.existsSync(out)) {
      // A stale checkpoint file beside the new one would be loaded instead of it (model.safetensors wins over an index).
      const ours = new Set([...ckpt.files.map((f) => nodePath.basename(shardOf(f))), ...(sharded ? [INDEX_FILE] : [])]);
      const stale = fs.readdirSync(out).filter((f) => (f.endsWith(".safetensors") || f === INDEX_FILE) && !ours.has(f));
      if (stale.length) throw new FormatError(`${out}: already holds ${stale.join(", ")}, which the merged checkpoint would not replace. Use an empty folder.`);
    }
    const copyBuf = new Uint8Array(Math.min(COPY_BYTES, Math.max(1, ...ckpt.tensors.map((t) => sizeOf(t.shape) * dtypeSize(t.dtype)))));
    const planWarnings = [...layers.values()].flatMap((l) => l.plan.warnings);
    const report: MergeReport = { merged: [], replaced: [], copied: 0, files: [], warnings: [...new Set([...adapter.config.warnings, ...planWarnings])], removedLeftovers: [] };

    // In place, every tensor's bytes are hashed as written, to check the file before it replaces the base.
    type Put = (fd: number, bytes: Uint8Array) => void;
    const hashing = (h: Hash | null): Put => (h ? (fd, bytes) => (h.update(bytes), writeAll(fd, bytes)) : writeAll);
    const copyWriter = (shard: SafetensorsReader, e: TensorEntry, put: Put): TensorWriter => (fd) => {
      for (let at = e.begin; at < e.end; at += copyBuf.byteLength) put(fd, shard.readRange(at, Math.min(copyBuf.byteLength, e.end - at), copyBuf));
      return e.end - e.begin;
    };
    const mergeWriter = (shard: SafetensorsReader, e: TensorEntry, layer: PlannedLayer, put: Put): TensorWriter => (fd) => {
      const out = e.shape[0];
      const rowBytes = (e.end - e.begin) / out;
      const rowValues = sizeOf(e.shape.slice(1));
      const rowsPer = Math.max(1, Math.floor(chunkBytes / (rowValues * (e.dtype === "F64" ? 8 : 4))));
      const hostParams: HostParams = {};
      for (const [suffix, key] of layer.keys) hostParams[suffix] = adapter!.reader.read(key);
      let written = 0;
      for (let r0 = 0; r0 < out; r0 += rowsPer) {
        const r1 = Math.min(out, r0 + rowsPer);
        const values = decode(e.dtype, shard.readRange(e.begin + r0 * rowBytes, (r1 - r0) * rowBytes));
        const merged = mergeRows(kernels, layer, hostParams, values, r0, r1, e.shape);
        const bad = firstNonFinite(merged);
        if (bad >= 0) {
          const row = r0 + Math.floor(bad / rowValues);
          throw new NonFiniteError(
            `${shard.path}: merging "${e.name}" gives ${merged[bad]} in row ${row}; refusing to merge (safe merge). Check that row of the base weight and the adapter for NaN, Inf or huge values.`,
          );
        }
        const bytes = encode(e.dtype, merged);
        put(fd, bytes);
        written += bytes.byteLength;
      }
      return written;
    };

    // Everything goes to temp names first; the renames at the end are the only step that touches out.
    const staged: [string, string][] = [];
    let createdDir: string | undefined; // the first folder this run created, removed again on failure
    try {
      if (!toFile) createdDir = fs.mkdirSync(out, { recursive: true });
      // A killed merge leaves its temp files (possibly whole checkpoints) under temp names; this merge replaces them.
      report.removedLeftovers = removeLeftovers([...ckpt.files.map(shardOf), ...companionTargets], ["merge"]);
      for (const shard of ckpt.shards) {
        const target = shardOf(shard.path);
        const tmp = `${target}.merge-${process.pid}`;
        const hashes = new Map<string, Hash>();
        const tensors = shard.header.tensors.map((e) => {
          const layer = layers.get(e.name);
          const extra = extras.get(e.name);
          const h = o.inPlace ? createHash("sha256") : null;
          if (h) hashes.set(e.name, h);
          const put = hashing(h);
          let write: TensorWriter;
          if (layer) {
            report.merged.push(e.name);
            write = mergeWriter(shard, e, layer, put);
          } else if (extra) {
            report.replaced.push(e.name);
            write = (fd) => {
              const bytes = encode(e.dtype, adapter!.reader.read(extra).data);
              put(fd, bytes);
              return bytes.byteLength;
            };
          } else {
            report.copied++;
            write = copyWriter(shard, e, put);
          }
          return { name: e.name, dtype: e.dtype, shape: e.shape, write };
        });
        staged.push([tmp, target]);
        writeSafetensors(tmp, tensors, shard.header.metadata);
        if (o.inPlace) verifyWritten(tmp, shard.header.tensors, new Map([...hashes].map(([k, h]) => [k, h.digest("hex")])), copyBuf);
      }
      if (copyCompanions) {
        const copies: [string, string][] = companionFiles(baseDir!).map((f) => [nodePath.join(baseDir!, f), f]);
        if (sharded) copies.push([indexPath, INDEX_FILE]); // unchanged: same tensors, same shards, same dtypes
        for (const [from, name] of copies) {
          const target = nodePath.join(out, name);
          const tmp = `${target}.merge-${process.pid}`;
          staged.push([tmp, target]);
          fs.copyFileSync(from, tmp);
        }
      }
      for (const [tmp, target] of staged) {
        fs.renameSync(tmp, target);
        report.files.push(target);
      }
      report.merged.sort();
      report.replaced.sort();
      return report;
    } catch (e) {
      for (const [tmp] of staged) fs.rmSync(tmp, { force: true });
      if (createdDir) fs.rmSync(createdDir, { recursive: true, force: true });
      throw e;
    }
  } finally {
    kernels.dispose();
    adapter?.close();
    ckpt.close();
  }
}
