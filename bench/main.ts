/**
 * `npm run bench [-- --json] [-- --quick] [-- --no-torch]`: BOFT/OFT cost against the frozen layer, in one run.
 *
 * For each shape (A 768², 512 tokens, b=8, m=2; B 1024², 512 tokens, b=16, m=4; C 4096², 128 tokens, b=32, m=4;
 * OFT 4096², 128 tokens, b=32, Neumann-5 and exact): forward+backward of the adapted Linear (gradients for the
 * adapter and x, W frozen) and of the plain Linear (gradient for x) in the same engine, their ratio, the
 * rotation-building time alone, and the process's peak RSS; plus a 4096×4096 merge and dense matmul throughput.
 * With python3 + torch present, bench/torch_baseline.py times nn.Linear and PEFT's dense method on the same shapes in
 * the same run. Medians after warm-up; the machine is shared, so compare within one run.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as nodePath from "node:path";
// Threads and heap (boft/preload) must exist before jax-js is evaluated, so the engine is imported after it.
import { threadCount, shutdownThreads } from "boft/preload";

const args = process.argv.slice(2);
const asJson = args.includes("--json");
const quick = args.includes("--quick");
const { jax, layers, median } = await import("boft");
const { numpy: np, jit, valueAndGrad, blockUntilReady, tree } = jax;
const { boftLinear, boftBlocks, boftMerge, oftLinear, oftBlocks, linear } = layers;
const { renderTable } = await import("../cli/table.js");
type Arr = import("boft").jax.Array;

const root = nodePath.resolve(nodePath.dirname(new URL(import.meta.url).pathname), "../..");


function randn(shape: number[], scale: number, seed: number): Arr {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  return np.array(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => next() * scale)).reshape(shape);
}

/** Median ms of `run()` (which returns arrays to wait for and free) after warm-up, within a time budget. */
async function time(run: () => unknown, o: { warmup?: number; reps?: number; budgetMs?: number } = {}): Promise<number> {
  const { warmup = 2, reps = quick ? 3 : 7, budgetMs = quick ? 4000 : 15000 } = o;
  for (let i = 0; i < warmup; i++) tree.dispose(await blockUntilReady(run() as never));
  const times: number[] = [];
  const start = performance.now();
  while (times.length < reps && (times.length < 3 || performance.now() - start < budgetMs)) {
    const t0 = performance.now();
    const out = await blockUntilReady(run() as never);
    times.push(performance.now() - t0);
    tree.dispose(out);
  }
  return median(times);
}

const peakMiB = () => Math.round(process.resourceUsage().maxRSS / 1024);

interface CaseResult {
  boft_ms: number;
  linear_ms: number;
  overhead: number;
  rotation_ms: number;
  peak_rss_mib: number;
  peft_dense_ms: number | null;
  speedup_vs_peft: number | null;
}

/** Plain Linear forward+backward, gradient for x (W frozen): the cost BOFT is measured against. */
async function linearCost(n: number, out: number, T: number): Promise<number> {
  const w = randn([out, n], 1 / Math.sqrt(n), 1);
  const x = randn([T, n], 1, 2);
  const g = randn([T, out], 1, 3);
  const f = jit((x: Arr, w: Arr, g: Arr) => valueAndGrad((x: Arr, w: Arr, g: Arr) => linear(x, { weight: w }).mul(g).sum(), { argnums: [0] })(x, w, g));
  const ms = await time(() => f(x.ref, w.ref, g.ref));
  f.dispose();
  tree.dispose([w, x, g]);
  return ms;
}

async function boftCase(n: number, T: number, b: number, m: number): Promise<Omit<CaseResult, "peft_dense_ms" | "speedup_vs_peft">> {
  const shape = { kind: "linear" as const, n, out: n, nFactors: m, blockNum: n / b, blockSize: b };
  const w = randn([n, n], 1 / Math.sqrt(n), 1);
  const x = randn([T, n], 1, 2);
  const g = randn([T, n], 1, 3);
  const p = { boft_R: randn([m, n / b, b, b], 0.05, 4), boft_s: np.ones([n, 1]) };
  type P = typeof p;
  const loss = (p: P, x: Arr, w: Arr, g: Arr) => boftLinear(shape, p, { weight: w }, x, { training: true }).mul(g).sum();
  const f = jit((p: P, x: Arr, w: Arr, g: Arr) => valueAndGrad(loss, { argnums: [0, 1] })(p, x, w, g));
  const boftMs = await time(() => f(tree.ref(p), x.ref, w.ref, g.ref));
  f.dispose();
  const rot = jit((r: Arr) => boftBlocks(r));
  const rotationMs = await time(() => rot(p.boft_R.ref));
  rot.dispose();
  tree.dispose([w, x, g, p]);
  const linearMs = await linearCost(n, n, T);
  return { boft_ms: boftMs, linear_ms: linearMs, overhead: boftMs / linearMs, rotation_ms: rotationMs, peak_rss_mib: peakMiB() };
}

async function oftCase(n: number, T: number, b: number, neumann: boolean): Promise<Omit<CaseResult, "peft_dense_ms" | "speedup_vs_peft">> {
  const shape = { kind: "linear" as const, n, out: n, r: n / b, blockSize: b, blockShare: false, coft: false, eps: 6e-5, useCayleyNeumann: neumann, numCayleyNeumannTerms: 5 };
  const w = randn([n, n], 1 / Math.sqrt(n), 1);
  const x = randn([T, n], 1, 2);
  const g = randn([T, n], 1, 3);
  const p = { oft_R: { weight: randn([n / b, (b * (b - 1)) / 2], 0.01, 4) } };
  type P = typeof p;
  const loss = (p: P, x: Arr, w: Arr, g: Arr) => oftLinear(shape, p, { weight: w }, x, { training: true }).mul(g).sum();
  const f = jit((p: P, x: Arr, w: Arr, g: Arr) => valueAndGrad(loss, { argnums: [0, 1] })(p, x, w, g));
  const ms = await time(() => f(tree.ref(p), x.ref, w.ref, g.ref));
  f.dispose();
  const rot = jit((p: P) => oftBlocks(shape, p));
  const rotationMs = await time(() => rot(tree.ref(p)));
  rot.dispose();
  tree.dispose([w, x, g, p]);
  const linearMs = await linearCost(n, n, T);
  return { boft_ms: ms, linear_ms: linearMs, overhead: ms / linearMs, rotation_ms: rotationMs, peak_rss_mib: peakMiB() };
}

async function mergeCost(): Promise<number> {
  const n = 4096;
  const shape = { kind: "linear" as const, n, out: n, nFactors: 4, blockNum: n / 32, blockSize: 32 };
  const w = randn([n, n], 1 / Math.sqrt(n), 1);
  const params = { boft_R: randn([4, n / 32, 32, 32], 0.05, 4), boft_s: np.ones([n, 1]) };
  const f = jit((p: typeof params, w: Arr) => boftMerge(shape, p, w));
  const ms = await time(() => f(tree.ref(params), w.ref), { reps: 3 });
  f.dispose();
  tree.dispose([w, params]);
  return ms;
}

/** GFLOP/s of a 512×1024 · 1024×1024 product, with the right operand stored [K, N] ("nn") and [N, K] ("nt"). */
async function matmulGflops(): Promise<{ nn: number; nt: number }> {
  const [M, K, N] = [512, 1024, 1024];
  const a = randn([M, K], 1, 1);
  const b = randn([K, N], 1, 2);
  const bt = randn([N, K], 1, 3);
  const nn = jit((a: Arr, b: Arr) => np.matmul(a, b));
  const nt = jit((a: Arr, b: Arr) => np.matmul(a, np.matrixTranspose(b))); // a Linear layer's x·Wᵀ
  const gflops = (ms: number) => (2 * M * K * N) / (ms * 1e-3) / 1e9;
  const r = { nn: gflops(await time(() => nn(a.ref, b.ref), { reps: 9 })), nt: gflops(await time(() => nt(a.ref, bt.ref), { reps: 9 })) };
  nn.dispose();
  nt.dispose();
  tree.dispose([a, b, bt]);
  return r;
}

type TorchResult = Record<string, { linear_ms?: number; peft_dense_ms?: number | null; peft_ms?: number }> & {
  available?: boolean;
  reason?: string;
  matmul_gflops?: number;
  matmul_nt_gflops?: number;
  merge_4096_ms?: number;
  torch_version?: string;
  blas?: string;
};

/** The torch timings, or why there are none. */
function torchBaseline(): TorchResult | { skipped: string } {
  if (args.includes("--no-torch")) return { skipped: "--no-torch" };
  const script = nodePath.join(root, "bench", "torch_baseline.py");
  const python = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  const r = spawnSync(python, [script, ...(quick ? ["--quick"] : [])], { encoding: "utf8", timeout: 15 * 60_000 });
  const line = (r.stdout ?? "").trim().split("\n").pop() ?? "";
  try {
    const parsed = JSON.parse(line) as TorchResult & { reason?: string };
    if (parsed.available === false) return { skipped: `${python} has no usable torch (${parsed.reason ?? "unknown"}); bench/setup-torch.sh installs it` };
    return parsed;
  } catch {
    return { skipped: `${python} ${nodePath.relative(root, script)} failed: ${(r.error?.message ?? r.stderr ?? "").trim().split("\n").pop() || `exit ${r.status}`}` };
  }
}

const results: Record<string, CaseResult> = {};
const shapes: [string, number, number, number, number][] = [
  ["A", 768, 512, 8, 2],
  ["B", 1024, 512, 16, 4],
  ["C", 4096, 128, 32, 4],
];
const log = (s: string) => (asJson ? process.stderr.write(s + "\n") : console.log(s));
log(`boft bench: jax-js wasm, ${threadCount()} thread(s)${quick ? ", quick" : ""}`);
for (const [name, n, T, b, m] of shapes) {
  results[name] = { ...(await boftCase(n, T, b, m)), peft_dense_ms: null, speedup_vs_peft: null };
  log(`  ${name} done: BOFT ${results[name].boft_ms.toFixed(1)} ms, linear ${results[name].linear_ms.toFixed(1)} ms`);
}
results.oft = { ...(await oftCase(4096, 128, 32, true)), peft_dense_ms: null, speedup_vs_peft: null };
results.oft_exact = { ...(await oftCase(4096, 128, 32, false)), peft_dense_ms: null, speedup_vs_peft: null };
const mergeMs = await mergeCost();
const gflops = await matmulGflops();
log("  engine cases done; timing PyTorch (PEFT's dense method) if available…");
const baseline = torchBaseline();
const torch = "skipped" in baseline ? null : baseline;
if (torch) {
  for (const k of ["A", "B", "C"]) {
    const d = torch[k]?.peft_dense_ms ?? null;
    results[k].peft_dense_ms = d;
    results[k].speedup_vs_peft = d === null ? null : d / results[k].boft_ms;
  }
  for (const [k, t] of [["oft", "oft_neumann"], ["oft_exact", "oft_exact"]] as const) {
    const d = torch[t]?.peft_ms ?? null;
    results[k].peft_dense_ms = d;
    results[k].speedup_vs_peft = d === null ? null : d / results[k].boft_ms;
  }
}

const fmt = (x: number | null, d = 1) => (x === null ? "-" : x.toFixed(d));
const rows = Object.entries(results).map(([k, r]) => [
  k,
  fmt(r.boft_ms),
  fmt(r.linear_ms),
  fmt(r.overhead, 2),
  fmt(r.rotation_ms, 2),
  fmt(r.peft_dense_ms),
  r.speedup_vs_peft === null ? "-" : `${r.speedup_vs_peft.toFixed(1)}×`,
  r.peak_rss_mib,
]);
log("\nforward+backward, ms (median); overhead = adapted / frozen linear in the same engine");
log(renderTable(["case", "boft/oft", "linear", "overhead", "rotation", "PEFT dense (torch)", "speedup", "peak RSS MiB"], rows));
log(`\nmerge 4096×4096 (BOFT b=32 m=4): ${mergeMs.toFixed(1)} ms${torch?.merge_4096_ms ? `   torch dense W·Rotᵀ: ${torch.merge_4096_ms.toFixed(1)} ms` : ""}`);
const ourBest = Math.max(gflops.nn, gflops.nt);
const nativeBest = torch?.matmul_gflops ? Math.max(torch.matmul_gflops, torch.matmul_nt_gflops ?? 0) : null;
log(
  `dense matmul 512×1024·1024×1024, GFLOP/s: ${gflops.nn.toFixed(1)} (B stored K×N), ${gflops.nt.toFixed(1)} (B stored N×K, a Linear's layout)` +
    (torch?.matmul_gflops ? `; torch+${torch.blas}: ${torch.matmul_gflops} / ${torch.matmul_nt_gflops ?? "-"}; best vs best: ${(ourBest / nativeBest!).toFixed(2)}` : ""),
);
if ("skipped" in baseline) log(`(PyTorch comparison skipped: ${baseline.skipped})`);
const pick = (r: CaseResult) => ({ boft_ms: r.boft_ms, linear_ms: r.linear_ms, overhead: r.overhead, rotation_ms: r.rotation_ms, peak_rss_mib: r.peak_rss_mib, peft_dense_ms: r.peft_dense_ms, speedup_vs_peft: r.speedup_vs_peft });
if (asJson) {
  console.log(
    JSON.stringify({
      A: pick(results.A),
      B: pick(results.B),
      C: pick(results.C),
      oft: pick(results.oft),
      oft_exact: pick(results.oft_exact),
      merge_4096_ms: mergeMs,
      threads: threadCount(),
      matmul_gflops: ourBest,
      native_gflops: nativeBest,
      matmul_layouts: { ours: gflops, torch: torch?.matmul_gflops ? { nn: torch.matmul_gflops, nt: torch.matmul_nt_gflops ?? null } : null },
    }),
  );
}
await shutdownThreads();
