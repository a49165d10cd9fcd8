/**
 * Large merge: `boft merge` on a synthetic checkpoint of ≥ 2 GB, reporting wall time, output size and peak RSS.
 *
 *   node dist/bench/merge-large.js [--gb 2.1] [--dtype F32|BF16] [--chunk-mib 8] [--dir /tmp]
 *
 * Builds L layers of 4096×4096 q/k/v/o projections (F32: 64 MiB each, 32 tensors ≈ 2.15 GB) plus an embedding
 * and norms, a BOFT adapter (b = 32, m = 2) on q_proj and v_proj (half the big tensors), then runs the merge in a
 * child process so its peak RSS (process.resourceUsage().maxRSS) covers the merge alone. Streaming means the
 * peak is about one layer plus the engine, not the file. Everything lives in a temp folder, removed at the end.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as nodePath from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { StDType } from "boft/node";

const defaults = {
  gb: 2.1, // target checkpoint size in GB (10^9 bytes); rounded up to whole layers of 4 projections
  dtype: "F32" as StDType, // F32 or BF16
  dim: 4096, // hidden size: every projection is dim×dim
  blockSize: 32, // BOFT b
  nFactors: 2, // BOFT m
  chunkMib: 8, // rows merged per engine call, in MiB of float32 (mergeCheckpoint's chunkBytes)
  dir: os.tmpdir(),
};

function parse(argv: string[]): typeof defaults {
  const o = { ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === "--gb") o.gb = Number(v);
    else if (k === "--dtype") o.dtype = v as StDType;
    else if (k === "--dim") o.dim = Number(v);
    else if (k === "--dir") o.dir = v;
    else if (k === "--chunk-mib") o.chunkMib = Number(v);
    else throw new Error(`merge-large: unknown option ${k} (use --gb N, --dtype F32|BF16, --dim N, --chunk-mib N, --dir PATH)`);
  }
  if (!(o.gb > 0) || !(o.dim > 0) || (o.dtype !== "F32" && o.dtype !== "BF16")) throw new Error("merge-large: bad options");
  return o;
}

/** Fast deterministic fill, ~N(0, 0.02²)-ish values (sum of two uniforms), so merges do real arithmetic. */
function filler(seed: number): (n: number) => Float32Array {
  let s = seed >>> 0;
  return (n) => {
    const a = new Float32Array(n);
    for (let k = 0; k < n; k++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      const u = (s >>> 0) / 4294967296;
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      a[k] = 0.02 * (u + (s >>> 0) / 4294967296 - 1);
    }
    return a;
  };
}

const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(0);

function runChild(base: string, adapter: string, out: string, chunkMib: number): void {
  // Child: the merge alone, so maxRSS is the merge's.
  const baseline = process.memoryUsage().rss;
  void import("boft/node").then(({ mergeCheckpoint }) => {
    const afterLoad = process.memoryUsage().rss;
    const t0 = performance.now();
    const r = mergeCheckpoint({ base, adapter, out, chunkBytes: chunkMib * 2 ** 20 });
    const seconds = (performance.now() - t0) / 1000;
    const peak = process.resourceUsage().maxRSS * 1024;
    console.log(JSON.stringify({ seconds, merged: r.merged.length, copied: r.copied, baseline, afterLoad, peak, rssEnd: process.memoryUsage().rss }));
  });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === "--child") return runChild(argv[1], argv[2], argv[3], Number(argv[4]));
  // Loaded here, not at the top: the child measures its memory from before the library (and engine) load.
  const { writeSafetensors, SafetensorsReader, saveAdapter, encodeDType: encode, boftConfig, tensor } = await import("boft/node");
  const o = parse(argv);
  const bytesPer = o.dtype === "F32" ? 4 : 2;
  const tensorBytes = o.dim * o.dim * bytesPer;
  const layers = Math.ceil((o.gb * 1e9) / (4 * tensorBytes));
  const dir = fs.mkdtempSync(nodePath.join(o.dir, "boft-merge-large-"));
  try {
    const base = nodePath.join(dir, "base.safetensors");
    const fill = filler(1234);
    const names: string[] = [];
    for (let l = 0; l < layers; l++) for (const p of ["q", "k", "v", "o"]) names.push(`model.layers.${l}.self_attn.${p}_proj.weight`);
    const small = [
      { name: "model.embed_tokens.weight", shape: [1000, o.dim] },
      { name: "model.norm.weight", shape: [o.dim] },
      ...Array.from({ length: layers }, (_, l) => ({ name: `model.layers.${l}.input_layernorm.weight`, shape: [o.dim] })),
    ];
    let t0 = performance.now();
    writeSafetensors(
      base,
      [
        ...names.map((name) => ({ name, dtype: o.dtype, shape: [o.dim, o.dim], produce: () => encode(o.dtype, fill(o.dim * o.dim)) })),
        ...small.map((t) => ({ name: t.name, dtype: o.dtype, shape: t.shape, produce: () => encode(o.dtype, fill(t.shape.reduce((a, b) => a * b, 1))) })),
      ],
      { format: "pt" },
    );
    const baseSize = fs.statSync(base).size;
    console.log(`base: ${layers} layers × 4 projections of ${o.dim}×${o.dim} ${o.dtype}, ${(baseSize / 1e9).toFixed(2)} GB, written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // BOFT on q_proj and v_proj: R ~ N(0, 0.1²)-ish, s ≈ 1, so every adapted weight really changes.
    const adapterDir = nodePath.join(dir, "adapter");
    const targets = names.filter((n) => /\.(q|v)_proj\.weight$/.test(n)).map((n) => n.slice(0, -".weight".length));
    const D = o.dim / o.blockSize;
    const afill = filler(99);
    const tensors = Object.fromEntries(targets.flatMap((m) => [
      [`base_model.model.${m}.boft_R`, tensor(afill(o.nFactors * D * o.blockSize * o.blockSize).map((x) => 5 * x), [o.nFactors, D, o.blockSize, o.blockSize])],
      [`base_model.model.${m}.boft_s`, tensor(afill(o.dim).map((x) => 1 + x), [o.dim, 1])],
    ]));
    const method = { kind: "BOFT" as const, config: boftConfig({ blockSize: o.blockSize, nButterflyFactor: o.nFactors, targetModules: ["q_proj", "v_proj"] }) };
    saveAdapter(adapterDir, method, tensors);

    const out = nodePath.join(dir, "merged.safetensors");
    t0 = performance.now();
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--child", base, adapterDir, out, String(o.chunkMib)], { encoding: "utf8" });
    const wall = (performance.now() - t0) / 1000;
    if (child.status !== 0) throw new Error(`merge child failed (exit ${child.status}): ${child.stderr}`);
    const r = JSON.parse(child.stdout.trim().split("\n").pop()!) as { seconds: number; merged: number; copied: number; baseline: number; afterLoad: number; peak: number; rssEnd: number };
    const outSize = fs.statSync(out).size;

    // Spot check: a copied tensor is bit-identical, a merged one changed.
    const a = new SafetensorsReader(base);
    const b = new SafetensorsReader(out);
    const same = (name: string) => Buffer.compare(a.readRaw(name), b.readRaw(name)) === 0;
    const copiedOk = same(names[1]) && same("model.norm.weight");
    const mergedChanged = !same(names[0]);
    a.close();
    b.close();

    console.log(`adapter: BOFT b=${o.blockSize} m=${o.nFactors} on ${targets.length} of ${names.length} projections`);
    console.log(`merge (${o.chunkMib} MiB chunks): ${r.merged} merged, ${r.copied} copied in ${r.seconds.toFixed(1)} s (child wall ${wall.toFixed(1)} s, ${(baseSize / 1e9 / r.seconds).toFixed(2)} GB/s)`);
    console.log(`output: ${(outSize / 1e9).toFixed(2)} GB (${outSize === baseSize ? "same size as base" : `base ${baseSize}`}); copied tensors identical: ${copiedOk}; merged tensor changed: ${mergedChanged}`);
    console.log(`RSS: after engine load ${mb(r.afterLoad)} MiB, peak ${mb(r.peak)} MiB = ${((100 * r.peak) / baseSize).toFixed(1)}% of the checkpoint (one tensor is ${mb(tensorBytes)} MiB)`);
    console.log(JSON.stringify({ dtype: o.dtype, layers, chunkMib: o.chunkMib, baseBytes: baseSize, outBytes: outSize, mergeSeconds: r.seconds, peakRssBytes: r.peak, afterLoadRssBytes: r.afterLoad, copiedOk, mergedChanged }));
    if (!copiedOk || !mergedChanged) process.exitCode = 1;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
