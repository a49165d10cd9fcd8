/**
 * `npm run demo [-- vision] [-- --quick]`: finetune a small pretrained model on a domain shift with BOFT, OFT,
 * LoRA and full finetuning, and print one table: trainable parameters, wall time, step time and its ratio to full
 * finetuning's, quality on the new domain, and quality kept on the old one (forgetting).
 *   text (default): a Llama-style character LM pretrained on non-fiction Brown genres (assets/brown-lm, made by
 *                   `npm run pretrain`), adapted to romance fiction; perplexity on both.
 *   vision:         a CNN pretrained on upright MNIST (assets/mnist-cnn.safetensors), adapted to digits rotated 60°;
 *                   accuracy on both.
 * Each method trains once per seed (`--seeds N`, default 3; --quick: 1): the table gives the mean over seeds and
 * their standard deviation, so a difference smaller than the spread reads as noise. Each evaluation split is scored
 * on windows spread over every genre it names (text: 512 windows of 64 characters ≈ 32k tokens per split).
 * Each run writes a normal run folder (run.json, metrics.jsonl, loss.svg, adapter/) under runs/demo/<task>/
 * (<method>/ for the first seed, <method>-seed<k>/ for the others).
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { readRunConfig, runTraining, evaluateRun, linePlot, median, type EvalEvent } from "boft/node";
import { createProgress } from "../cli/progress.js";
import { renderTable } from "../cli/table.js";

const root = nodePath.resolve(nodePath.dirname(new URL(import.meta.url).pathname), "../..");
const args = process.argv.slice(2);
const quick = args.includes("--quick");
const seedsAt = args.indexOf("--seeds");
const seedCount = seedsAt >= 0 ? Number(args[seedsAt + 1]) : quick ? 1 : 3;
if (!(Number.isInteger(seedCount) && seedCount >= 1)) {
  console.error(`demo: --seeds must be a positive integer (got ${args[seedsAt + 1]})`);
  process.exit(2);
}
const task = args.includes("vision") ? "vision" : "text";
const outRoot = nodePath.join(root, "runs", "demo", quick ? `${task}-quick` : task);

const targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

/** Per method: the PEFT config (null: full finetuning) and its learning rate. */
const methods: { name: string; method: Record<string, unknown>; lr: number }[] =
  task === "text"
    ? [
        { name: "BOFT m=2 b=8", method: { peft_type: "BOFT", boft_block_size: 8, boft_n_butterfly_factor: 2, target_modules: targets }, lr: 4e-3 },
        { name: "OFT b=16", method: { peft_type: "OFT", oft_block_size: 16, r: 0, use_cayley_neumann: false, target_modules: targets }, lr: 4e-3 },
        { name: "LoRA r=4", method: { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: targets }, lr: 4e-3 },
        { name: "full", method: { peft_type: "FULL" }, lr: 1e-3 },
      ]
    : [
        { name: "BOFT m=2 b=8", method: { peft_type: "BOFT", boft_block_size: 8, boft_n_butterfly_factor: 2, target_modules: ["conv1", "fc"] }, lr: 5e-3 },
        // Not conv1: PEFT's unmerged OFT forward on a k×k conv (k > 1) is not a rotation of the conv and wrecks the
        // pretrained model from the first step (README, "Where PEFT is odd"); OFT adapts the classifier only.
        { name: "OFT b=8", method: { peft_type: "OFT", oft_block_size: 8, r: 0, use_cayley_neumann: false, target_modules: ["fc"] }, lr: 5e-3 },
        { name: "LoRA r=4", method: { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["fc"] }, lr: 5e-3 },
        { name: "full", method: { peft_type: "FULL" }, lr: 1e-3 },
      ];

function runJson(method: Record<string, unknown>, lr: number, seed = 0): Record<string, unknown> {
  const steps = quick ? 3 : task === "text" ? 80 : 60;
  // Evaluations during training only draw the first seed's curves.
  const train = { steps, lr, warmupSteps: quick ? 1 : 10, maxGradNorm: 1, evalEvery: quick || task === "vision" || seed > 0 ? 0 : 40, seed };
  if (task === "text") {
    return {
      model: { hf: nodePath.join(root, "assets", "brown-lm") },
      data: {
        kind: "brown",
        train: ["romance"],
        eval: { old: ["news", "learned"], new: ["romance"] },
        seqLen: 64,
        batchSize: quick ? 4 : 16,
        // 512 windows × 64 = 32,768 tokens per split, spread over all of it (both genres of "old"). At 4,096 tokens
        // the methods' differences were within the sampling noise.
        evalWindows: quick ? 4 : 512,
      },
      method,
      train,
    };
  }
  return {
    model: { arch: "cnn", config: { channels: [16, 32], classes: 10, size: 28 }, weights: nodePath.join(root, "assets", "mnist-cnn.safetensors") },
    data: { kind: "mnist", transform: "rotate:60", evalTransforms: { old: "none", new: "rotate:60" }, batchSize: quick ? 8 : 64, trainLimit: quick ? 256 : 20000, evalLimit: quick ? 64 : 1000 },
    method,
    train,
  };
}

function metricOf(events: EvalEvent[], split: string): number {
  const e = events.find((x) => x.split === split);
  if (!e) throw new Error(`no ${split} evaluation`);
  return task === "text" ? e.metrics!.perplexity : e.metrics!.accuracy;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
/** Sample standard deviation; "-" for one value. */
function spread(xs: number[]): number | string {
  if (xs.length < 2) return "-";
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

async function main(): Promise<void> {
  fs.mkdirSync(outRoot, { recursive: true });
  const quality = task === "text" ? "perplexity (lower is better)" : "accuracy";
  console.log(`boft demo (${task}${quick ? ", quick" : ""}, ${seedCount} seed${seedCount > 1 ? "s" : ""}): adapt to the new domain, measure what the old one keeps; ${quality}`);

  // The base model, before any finetuning.
  const baseDir = nodePath.join(outRoot, "base");
  fs.mkdirSync(baseDir, { recursive: true });
  fs.writeFileSync(nodePath.join(baseDir, "run.json"), JSON.stringify({ ...runJson({ peft_type: "FULL" }, 1e-3), output: "." }, null, 2));
  const base = await evaluateRun(readRunConfig(nodePath.join(baseDir, "run.json")), { adapter: null });
  // The base is evaluated once: its numbers do not depend on a training seed.
  const base0: (string | number)[] = ["base (no finetuning)", 0, 0, "-", "-", "-", metricOf(base, "new"), "-", metricOf(base, "old"), "-"];
  const curves: { name: string; points: [number, number][] }[] = [];

  // Seed by seed, every method, so the table (written after each seed) is complete for the seeds done so far.
  const acc = methods.map(() => ({ news: [] as number[], olds: [] as number[], seconds: [] as number[], steps: [] as number[], params: [0, 0] as [number, number] }));
  const q = task === "text" ? "ppl" : "acc";
  const header = ["method", "stored params", "effective params", "time (s)", "step (ms)", "step ÷ full", `new-domain ${q}`, "± sd", `old-domain ${q}`, "± sd"];
  for (let seed = 0; seed < seedCount; seed++) {
    for (const [i, m] of methods.entries()) {
      const a = acc[i];
      const dir = nodePath.join(outRoot, m.name.split(" ")[0].toLowerCase() + (seed > 0 ? `-seed${seed}` : ""));
      fs.mkdirSync(dir, { recursive: true });
      const file = nodePath.join(dir, "run.json");
      fs.writeFileSync(file, JSON.stringify({ ...runJson(m.method, m.lr, seed), output: "." }, null, 2) + "\n");
      const cfg = readRunConfig(file);
      const label = seedCount > 1 ? `${m.name} seed ${seed}` : m.name;
      const progress = createProgress({ total: cfg.train.steps, label, unit: task === "text" ? "tok" : "samples" });
      const points: [number, number][] = [[0, base.find((e) => e.split === "new")!.loss]];
      let last: number | null = null;
      const steps: number[] = [];
      const r = await runTraining(cfg, {
        overwrite: true, // each demo run replaces the previous one
        evaluateBase: false, // the table already evaluates the base once, for every method
        onEvent: (e) => {
          if (e.kind === "step") {
            progress.update(e.step, { loss: e.loss, items: e.items });
            // A step's own time: from the previous step's event, unless an evaluation ran in between (then unknown).
            if (last !== null) steps.push(e.elapsedMs - last);
            last = e.elapsedMs;
          } else last = null;
          if (e.kind === "eval" && e.split === "new") points.push([e.step, e.loss]);
        },
      });
      progress.done();
      if (seed === 0) {
        if (points[points.length - 1][0] !== cfg.train.steps) points.push([cfg.train.steps, r.finalEval.find((e) => e.split === "new")!.loss]);
        curves.push({ name: m.name, points });
      }
      a.news.push(metricOf(r.finalEval, "new"));
      a.olds.push(metricOf(r.finalEval, "old"));
      a.seconds.push(r.seconds);
      a.steps.push(...(steps.length ? steps : [r.seconds * 1000]));
      a.params = [r.trainableParams, r.effectiveParams];
    }
    // Step time ÷ full finetuning's (the last method): what an adapter saves, or costs, per step.
    const stepMs = acc.map((a) => median(a.steps));
    const fullMs = stepMs[stepMs.length - 1];
    const rows = [base0, ...methods.map((m, i) => {
      const a = acc[i];
      return [m.name, ...a.params, median(a.seconds).toFixed(1), stepMs[i].toFixed(0), (stepMs[i] / fullMs).toFixed(2), mean(a.news), spread(a.news), mean(a.olds), spread(a.olds)];
    })];
    const done = seed + 1;
    const table = renderTable(header, rows);
    const note = done > 1 ? `mean over ${done} seeds (training data order and adapter init); ± sd: standard deviation across them; time: median run` : "one seed: no spread measured";
    console.log(`\n${table}\n${note}\n`);
    fs.writeFileSync(nodePath.join(outRoot, "results.txt"), `${table}\n${note}\n`);
    const perSeed = methods.map((m, i) => ({ method: m.name, new: acc[i].news, old: acc[i].olds }));
    fs.writeFileSync(nodePath.join(outRoot, "results.json"), JSON.stringify({ task, quick, seeds: done, header, rows, perSeed }, null, 2) + "\n");
  }
  const plot = linePlot(curves.map((c) => ({ name: c.name, points: c.points, mode: "both" as const })), {
    title: `${task} demo: new-domain loss`,
    xLabel: "step",
    yLabel: "eval loss (new domain)",
    logY: true,
  });
  fs.writeFileSync(nodePath.join(outRoot, "loss.svg"), plot);
  console.log(`plots: ${nodePath.join(outRoot, "loss.svg")} and each method's loss.svg; runs in ${outRoot}`);
}

await main();
