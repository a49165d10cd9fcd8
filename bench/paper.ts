/**
 * `npm run paper`: the BOFT paper's claims (Liu et al., ICLR 2024), checked on a CPU.
 *   1. Expressivity (Fig. 5): Adam fits BOFT(m, b) to random 512×512 rotations (10 seeds); final ‖R − Q‖_F against
 *      trainable parameters, as a table and runs/paper/expressivity.svg (+ .json with every number).
 *   2. Parameter counts: the paper's models and settings through the planner, beside the counts the paper prints,
 *      with the target set and counting rule that reproduce each.
 *
 *   node dist/bench/paper.js [--quick] [--n 512] [--seeds 10] [--steps 200] [--lr 0.1] [--out runs/paper] [--threads N]
 *   node dist/bench/paper.js --replot runs/paper/expressivity.json      (redraw the plot from saved numbers)
 *
 * --quick: n = 64, 2 seeds, 60 steps (seconds; what the tests run). Threads: jax-js's wasm backend on N workers
 * (default: all cores; BOFT_THREADS overrides), installed before the engine loads.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cpus, loadavg } from "node:os";
import { renderTable, formatNumber } from "../cli/table.js";
import type { PlotSeries, experiments } from "boft";
type ConfigResult = experiments.ConfigResult;
type ExpressivityOptions = experiments.ExpressivityOptions;
type ExpressivityResult = experiments.ExpressivityResult;
type PaperFindings = experiments.PaperFindings;

const { values } = parseArgs({
  options: {
    quick: { type: "boolean" },
    n: { type: "string" },
    seeds: { type: "string" },
    steps: { type: "string" },
    lr: { type: "string" },
    out: { type: "string" },
    threads: { type: "string" },
    replot: { type: "string" },
  },
});
// Worker threads (boft/preload; --threads N unless BOFT_THREADS says otherwise) exist before the engine loads.
if (values.threads !== undefined && process.env.BOFT_THREADS === undefined) process.env.BOFT_THREADS = values.threads;
const { threadCount } = await import("boft/preload");
const { linePlot, MODEL_PRESETS, findModelPreset, presetModelShape, PAPER_CLAIMS, explainClaim, claimMethod, CANDIDATE_TARGETS, planParameters, experiments: exp } = await import("boft");
if (values.replot) {
  // Redraw the plot (and the tables) from a saved expressivity.json, without training again.
  const { readFileSync } = await import("node:fs");
  const saved = JSON.parse(readFileSync(values.replot, "utf8")) as ExpressivityResult;
  const { paperFindings } = exp;
  const out = values.out ?? join("runs", "paper");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "expressivity.svg"), expressivityPlot(saved));
  console.log(expressivityTable(saved));
  for (const line of expressivityChecks(saved.results, paperFindings)) console.log(line);
  console.log(`plot: ${join(out, "expressivity.svg")}`);
  process.exit(0);
}
const quick = Boolean(values.quick);
const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));
const outDir = values.out ?? join("runs", "paper");
const threads = threadCount();
const { runExpressivity, expressivityPreset, paperFindings, fullOftPreimage, boftSpecError } = exp;

const started = performance.now();
const cpu0 = process.cpuUsage();
const preset = expressivityPreset(quick ? "quick" : "full");
const n = num(values.n, preset.n);
const options: ExpressivityOptions = {
  ...preset,
  n,
  seeds: values.seeds === undefined ? preset.seeds : Array.from({ length: Number(values.seeds) }, (_, i) => i),
  // Another n keeps the grid's shapes that fit it, and full OFT becomes BOFT(1, n).
  configs: preset.configs.map((c) => (c.blockSize === preset.n ? { ...c, blockSize: n } : c)).filter((c) => boftSpecError(n, c) === null),
  steps: num(values.steps, preset.steps),
  lr: num(values.lr, preset.lr),
};
const { steps, lr } = options;
const seedCount = options.seeds.length;
console.log(`# Expressivity (paper Fig. 5): n=${n}, ${seedCount} seeds, ${steps} Adam steps, lr ${lr} (cosine to ${lr / 10}), ${threads || 1} thread(s)`);
const tty = process.stdout.isTTY === true;
const expr = await runExpressivity(options, (e) => {
  if (e.kind === "step" && tty) process.stdout.write(`\r\x1b[K  ${label(e.config)} step ${e.step}/${steps}: error ${e.meanError.toFixed(3)}`);
  if (e.kind === "result" && tty) process.stdout.write("\r\x1b[K");
  if (e.kind === "targets") console.log(`targets: ${e.seeds} Haar rotations in SO(${n}) in ${(e.ms / 1000).toFixed(1)} s (${e.flipped} O(n) draws had det −1 and were reflected)`);
  if (e.kind === "result") {
    const r = e.result;
    console.log(
      `BOFT(${r.nFactors},${r.blockSize}): ${formatNumber(r.params)} params, error ${r.mean.toFixed(3)} ± ${r.std.toFixed(3)} ` +
        `(from ${mean(r.initialError).toFixed(2)}), ${r.msPerStep.toFixed(0)} ms/step, first step ${(r.compileMs / 1000).toFixed(1)} s, ${r.seconds.toFixed(1)} s`,
    );
  }
});
console.log("");
console.log(expressivityTable(expr));
console.log("");
for (const line of expressivityChecks(expr.results, paperFindings)) console.log(line);

if (options.configs.some((c) => c.nFactors === 1 && c.blockSize === n)) {
  const { randomRotation } = exp;
  const t = performance.now();
  const pre = await fullOftPreimage(randomRotation(n, options.seeds[0]).q, n);
  const full = expr.results.find((r) => r.nFactors === 1 && r.blockSize === n)!;
  console.log(
    `  BOFT(1,${n}) is full OFT: S* = (I + Q)⁻¹(I − Q) represents seed ${options.seeds[0]}'s Q exactly (‖Cayley(S*) − Q‖_F = ${pre.error.toExponential(1)} in f64), ` +
      `but S* has max |S*_ij| = ${pre.maxAbs.toFixed(1)}, ‖S*‖_F = ${pre.frobenius.toFixed(0)} (eigenvalues of Q near −1): ` +
      `after ${steps} Adam steps from 0 the fit is at ${full.mean.toFixed(3)} (${((performance.now() - t) / 1000).toFixed(1)} s)`,
  );
}

mkdirSync(outDir, { recursive: true });
const svgPath = join(outDir, "expressivity.svg");
writeFileSync(svgPath, expressivityPlot(expr));
writeFileSync(join(outDir, "expressivity.json"), JSON.stringify(expr, null, 1) + "\n");
console.log(`\nplot: ${svgPath}   numbers: ${join(outDir, "expressivity.json")}`);

console.log("\n# Parameter counts (the planner on the paper's models)\n");
console.log(parameterSection());

const cpu = process.cpuUsage(cpu0);
console.log(
  `\nwall ${((performance.now() - started) / 1000).toFixed(1)} s, CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s (all threads), ${cpus().length} cores, load average ${loadavg()[0].toFixed(1)}`,
);
process.exit(0); // stop the worker threads

// ---------------------------------------------------------------------------------------------------------------

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

function label(r: { nFactors: number; blockSize: number }): string {
  return `BOFT(${r.nFactors},${r.blockSize})`;
}

function expressivityTable(e: ExpressivityResult): string {
  const rows = [...e.results]
    .sort((a, b) => a.params - b.params)
    .map((r) => [
      label(r),
      r.params,
      r.stored,
      r.span,
      `${r.mean.toFixed(3)} ± ${r.std.toFixed(3)}`,
      (r.mean / mean(r.initialError)).toFixed(3),
      r.orthogonalityError.toExponential(1),
      Math.round(r.msPerStep),
    ]);
  return renderTable(["config", "params ½(b−1)nm", "stored mnb", "span", "‖R−Q‖_F mean ± std", "÷ ‖I−Q‖", "max|CCᵀ−I|", "ms/step"], rows);
}

/** The paper's two statements, and the (1, b) family's ordering, checked on these results. */
function expressivityChecks(results: ConfigResult[], findings: (r: ConfigResult[]) => PaperFindings): string[] {
  const f = findings(results);
  const out: string[] = ["Paper's findings, checked:"];
  const line = (claim: string, c: { a: ConfigResult; b: ConfigResult; difference: number; standardErrors: number; holds: boolean } | null) =>
    out.push(
      c
        ? `  ${claim}: ${label(c.a)} ${c.a.mean.toFixed(3)} (${formatNumber(c.a.params)} params) vs ${label(c.b)} ${c.b.mean.toFixed(3)} ` +
            `(${formatNumber(c.b.params)}); difference ${c.difference.toFixed(3)} = ${c.standardErrors.toFixed(0)} standard errors → ${c.holds ? "holds" : "does not hold"}`
        : `  ${claim}: not run at this size`,
    );
  line("BOFT(9,2) beats BOFT(1,16) with fewer parameters", f.butterflyBeatsBlocks);
  line("BOFT(6,4) ≈ BOFT(2,16) (within 1%)", f.sixFourMatchesTwoSixteen);
  const ones = f.blockFamily.results;
  out.push(`  (1, b) family, more parameters → lower error: ${ones.map((r) => `${label(r)} ${r.mean.toFixed(2)}`).join(" > ")} → ${f.blockFamily.monotone ? "holds" : "does not hold"}`);
  return out;
}

/**
 * Error against parameters (log x): one line per block size b (m growing along it), the m = 1 frontier, θ = 0.
 * Two panels side by side in one SVG: every configuration, and the small-parameter region without full OFT, whose
 * far lower error would otherwise flatten the rest.
 */
function expressivityPlot(e: ExpressivityResult): string {
  const { n } = e.options;
  const panel = (results: ConfigResult[], title: string, id: string, withIdentity: boolean): string => {
    const bySize = new Map<number, ConfigResult[]>();
    for (const r of results) bySize.set(r.blockSize, [...(bySize.get(r.blockSize) ?? []), r]);
    const series: PlotSeries[] = [...bySize.entries()]
      .sort(([a], [b]) => a - b)
      .map(([b, rs]) => {
        const sorted = [...rs].sort((x, y) => x.params - y.params);
        const points = sorted.map((r) => [r.params, r.mean] as [number, number]);
        return { name: `b=${b} (m=${sorted.map((r) => r.nFactors).join(", ")})`, points, mode: "both" as const };
      });
    const ones = results.filter((r) => r.nFactors === 1).sort((x, y) => x.params - y.params);
    if (ones.length > 1) series.push({ name: "m = 1 (block-diagonal OFT)", points: ones.map((r) => [r.params, r.mean] as [number, number]), dashed: true, color: "#222222" });
    if (withIdentity) {
      const xs = results.map((r) => r.params);
      const init = mean(results.flatMap((r) => r.initialError));
      series.push({ name: "identity (θ = 0)", points: [[Math.min(...xs), init], [Math.max(...xs), init]], dashed: true, color: "#888888" });
    }
    return linePlot(series, { title, id, xLabel: "trainable parameters ½(b−1)·n·m (log scale)", yLabel: "‖R − Q‖_F, mean over seeds", logX: true, width: W, height: H });
  };
  const W = 720;
  const H = 480;
  const all = panel(e.results, `Fitting random ${n}×${n} rotations: ${e.options.seeds.length} seeds, ${e.options.steps} Adam steps`, "all", true);
  const partial = e.results.filter((r) => r.span < n || r.nFactors > 1);
  const zoom = partial.length > 1 && partial.length < e.results.length ? panel(partial, "The same without full OFT (span < n or m > 1)", "zoom", false) : null;
  if (!zoom) return all;
  const inner = (svg: string, x: number) => svg.replace(/^<svg /, `<svg x="${x}" y="0" `);
  return [`<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H}" viewBox="0 0 ${2 * W} ${H}">`, inner(all, 0), inner(zoom, W), "</svg>", ""].join("\n");
}

/** Every paper claim with the rules that reproduce it, and the three methods on each preset's full linear set. */
function parameterSection(): string {
  const lines: string[] = [];
  const claimRows = PAPER_CLAIMS.map((c) => {
    const model = presetModelShape(findModelPreset(c.model)!);
    const cands = explainClaim(c, model);
    const peft = cands.find((x) => x.targets === CANDIDATE_TARGETS[model.modelType].at(-1)!.label && (x.rule === "stored (PEFT file)" || x.rule === "A + B"))!;
    const hits = cands.filter((x) => x.matches);
    return [
      `${c.model} ${c.benchmark}`,
      c.label,
      c.reported,
      `${formatNumber(peft.count)} (${peft.percent.toFixed(3)}%)`,
      hits.map((h) => `${h.targets}, ${h.rule}: ${formatNumber(h.count)} (${h.percent.toFixed(3)}%)`).join("; ") || "none",
    ];
  });
  lines.push(renderTable(["model / benchmark", "setting", "paper", "PEFT stores (all linear)", "reproduced by (targets, rule: count)"], claimRows));
  lines.push("");
  lines.push("Rules: stored = what PEFT saves (BOFT m·n·b + out, LoRA r·(n+out)); skew only = ½(b−1)·n·m; + s = plus the");
  lines.push("per-output scale; + bias = plus the adapted layers' biases (bias=boft_only). OFT rows are the paper's BOFT code with m = 1.");
  lines.push("");
  const rows: Array<Array<string | number>> = [];
  for (const p of MODEL_PRESETS) {
    const model = presetModelShape(p);
    const all = CANDIDATE_TARGETS[model.modelType].at(-1)!;
    for (const c of [
      { label: "BOFT m=2 b=8", method: "BOFT" as const, blockSize: 8, nFactors: 2 },
      { label: "OFT b=16 (BOFT m=1)", method: "OFT" as const, blockSize: 16, nFactors: 1 },
      { label: "LoRA r=8", method: "LORA" as const, r: 8 },
    ]) {
      const plan = planParameters(model, claimMethod({ ...c, model: p.name, benchmark: "", reported: "", source: "" }, all.targets));
      rows.push([p.name, all.label, c.label, plan.totals.stored, plan.totals.effective, `${plan.percent.effective.toFixed(3)}%`, plan.totals.modules]);
    }
  }
  lines.push(`Each preset, every linear layer of every block (${MODEL_PRESETS.map((p) => `${p.name} ${formatNumber(presetModelShape(p).totalParams)}`).join(", ")} parameters):`);
  lines.push(renderTable(["model", "targets", "setting", "stored", "effective (skew + s)", "effective %", "modules"], rows));
  return lines.join("\n");
}
