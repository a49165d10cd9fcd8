/**
 * `boft merge`: fold an adapter into a checkpoint, streaming tensor by tensor.
 *
 * Adapted weights W (<module>.weight; Conv2d flattened to [out, in·kh·kw]) become BOFT diag(s)·W·Rotᵀ,
 * OFT W·BDᵀ, LoRA W + scaling·B·A, computed in float32 (float64 for F64 tensors) and rounded once to the
 * tensor's own dtype. Trained biases / modules_to_save replace their base tensors. Everything else is copied bit
 * for bit, metadata included. Peak memory is about one layer; the output appears only when complete.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { fromHost, toHost, type FloatDType } from "../engine/index.js";
import { FormatError, NonFiniteError, ShapeError } from "../errors.js";
import { decode, encode, type StDType } from "../formats/dtype.js";
import { baseKeyOfExtra } from "../formats/peft-adapter.js";
import { type ModuleInfo, type LayerPlan, type LayerParams, planLayer, layerParamShapes, mergeLayer } from "../methods/adapter.js";
import { openCheckpoint, writeSafetensors, SafetensorsReader, INDEX_FILE, SINGLE_FILE, type Checkpoint, type TensorSource } from "./safetensors-file.js";
import { openAdapter, type OpenAdapter } from "./adapter-files.js";

export interface MergeOptions {
  base: string;
  adapter: string;
  out: string;
}

export interface MergeReport {
  merged: string[];
  replaced: string[];
  copied: number;
  files: string[];
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

function moduleOf(path: string, shape: number[], where: string): ModuleInfo {
  if (shape.length === 2) return { path, kind: "linear", inFeatures: shape[1], outFeatures: shape[0] };
  if (shape.length === 4) return { path, kind: "conv2d", inFeatures: shape[1], outFeatures: shape[0], kernel: [shape[2], shape[3]] };
  throw new ShapeError(`${where}: ${path}.weight has shape [${shape}]; only Linear [out, in] and Conv2d [out, in, kh, kw] weights can be merged`);
}

function checkFinite(data: Float32Array | Float64Array, what: string): void {
  for (let k = 0; k < data.length; k++) {
    if (!Number.isFinite(data[k])) throw new NonFiniteError(`${what} contains ${data[k]} at index ${k}; refusing to merge (safe merge)`);
  }
}

interface PlannedLayer {
  plan: LayerPlan;
  weightKey: string;
  params: Record<string, { shape: number[]; data: Float32Array | Float64Array }>;
}

/** Checks the adapter against the base before anything is written. */
function planMerge(ckpt: Checkpoint, adapter: OpenAdapter): { layers: Map<string, PlannedLayer>; extras: Map<string, string> } {
  const method = { kind: adapter.config.kind, config: adapter.config.config } as Parameters<typeof planLayer>[0];
  const layers = new Map<string, PlannedLayer>();
  for (const [module, keys] of adapter.groups.layers) {
    const weightKey = `${module}.weight`;
    if (!ckpt.has(weightKey)) {
      throw new FormatError(`${adapter.reader.path}: adapter targets ${module}, but the base has no tensor "${weightKey}"`);
    }
    const plan = planLayer(method, moduleOf(module, ckpt.info(weightKey).shape, ckpt.path));
    const params: PlannedLayer["params"] = {};
    for (const [suffix, shape] of layerParamShapes(plan)) {
      const key = keys.get(suffix)!;
      const entry = adapter.reader.entry(key);
      if (!sameShape(entry.shape, shape)) {
        throw new ShapeError(`${key} has shape [${entry.shape}], but base ${weightKey} [${ckpt.info(weightKey).shape}] needs [${shape}]`);
      }
      const t = adapter.reader.read(key);
      checkFinite(t.data, key);
      params[suffix] = { shape: t.shape, data: t.data };
    }
    layers.set(weightKey, { plan, weightKey, params });
  }
  const extras = new Map<string, string>(); // base key → adapter key
  for (const key of adapter.groups.extras) {
    const baseKey = baseKeyOfExtra(key);
    if (!ckpt.has(baseKey)) throw new FormatError(`${adapter.reader.path}: adapter holds ${key}, but the base has no tensor "${baseKey}"`);
    const entry = adapter.reader.entry(key);
    if (!sameShape(entry.shape, ckpt.info(baseKey).shape)) {
      throw new ShapeError(`${key} has shape [${entry.shape}], base ${baseKey} has [${ckpt.info(baseKey).shape}]`);
    }
    checkFinite(adapter.reader.read(key).data, key);
    extras.set(baseKey, key);
  }
  return { layers, extras };
}

function computeDType(dtype: StDType): FloatDType {
  return dtype === "F64" ? "float64" : "float32";
}

function mergedBytes(layer: PlannedLayer, dtype: StDType, weight: Uint8Array, shape: number[]): Uint8Array {
  const cd = computeDType(dtype);
  const cast = (d: Float32Array | Float64Array) => (cd === "float64" ? Float64Array.from(d) : Float32Array.from(d));
  const params: Record<string, unknown> = {};
  for (const [suffix, t] of Object.entries(layer.params)) {
    const arr = fromHost({ dtype: cd, shape: t.shape, data: cast(t.data) });
    const [head, tail] = suffix.split(".");
    if (tail) params[head] = { [tail]: arr };
    else params[head] = arr;
  }
  const w = fromHost({ dtype: cd, shape, data: cast(decode(dtype, weight)) });
  const merged = toHost(mergeLayer(layer.plan, params as LayerParams, w)).data;
  checkFinite(merged, `merged ${layer.weightKey}`);
  return encode(dtype, merged);
}

/** Small companion files of a model folder (config.json, tokenizer files, …) to carry over. */
function companionFiles(folder: string): string[] {
  return fs
    .readdirSync(folder)
    .filter((f) => !f.endsWith(".safetensors") && f !== INDEX_FILE && fs.statSync(nodePath.join(folder, f)).isFile());
}

export function mergeCheckpoint(o: MergeOptions): MergeReport {
  const ckpt = openCheckpoint(o.base);
  const adapter = openAdapter(o.adapter);
  try {
    const { layers, extras } = planMerge(ckpt, adapter);
    const toFile = o.out.endsWith(".safetensors");
    const baseIsFolder = fs.statSync(o.base).isDirectory();
    if (!toFile && fs.existsSync(o.out) && !fs.statSync(o.out).isDirectory()) throw new FormatError(`${o.out}: exists and is not a folder`);
    if (toFile && ckpt.files.length > 1) {
      throw new FormatError(`${o.base} is sharded (${ckpt.files.length} files); give --out a folder to keep its shards`);
    }
    const shardOf = (file: string) => (toFile ? o.out : nodePath.join(o.out, ckpt.files.length > 1 ? nodePath.basename(file) : SINGLE_FILE));
    // Everything goes to temp names first; the renames at the end are the only step that touches o.out.
    const staged: [string, string][] = [];
    const report: MergeReport = { merged: [], replaced: [], copied: 0, files: [] };
    const createdDir = !toFile && !fs.existsSync(o.out);
    try {
      if (createdDir) fs.mkdirSync(o.out, { recursive: true });
      for (const file of ckpt.files) {
        const target = shardOf(file);
        const tmp = `${target}.merge-${process.pid}`;
        const meta = new SafetensorsReader(file);
        const metadata = meta.header.metadata;
        meta.close();
        const entries: TensorSource[] = ckpt.tensors
          .filter((t) => t.file === file)
          .map((t) => ({
            name: t.name,
            dtype: t.dtype,
            shape: t.shape,
            produce: () => {
              const layer = layers.get(t.name);
              if (layer) {
                report.merged.push(t.name);
                return mergedBytes(layer, t.dtype, ckpt.readRaw(t.name), t.shape);
              }
              const extra = extras.get(t.name);
              if (extra) {
                report.replaced.push(t.name);
                return encode(t.dtype, adapter.reader.read(extra).data);
              }
              report.copied++;
              return ckpt.readRaw(t.name);
            },
          }));
        writeSafetensors(tmp, entries, metadata);
        staged.push([tmp, target]);
      }
      if (!toFile && baseIsFolder) {
        const baseDir = fs.existsSync(nodePath.join(o.base, INDEX_FILE)) || fs.existsSync(nodePath.join(o.base, SINGLE_FILE)) ? o.base : nodePath.dirname(o.base);
        const names = companionFiles(baseDir);
        if (ckpt.files.length > 1) names.push(INDEX_FILE);
        for (const name of names) {
          const target = nodePath.join(o.out, name);
          const tmp = `${target}.merge-${process.pid}`;
          fs.copyFileSync(nodePath.join(baseDir, name), tmp);
          staged.push([tmp, target]);
        }
      }
      for (const [tmp, target] of staged) {
        fs.renameSync(tmp, target);
        report.files.push(target);
      }
      return report;
    } catch (e) {
      for (const [tmp] of staged) fs.rmSync(tmp, { force: true });
      if (createdDir) fs.rmSync(o.out, { recursive: true, force: true });
      throw e;
    }
  } finally {
    adapter.close();
    ckpt.close();
  }
}
