/**
 * `npm run demo [-- vision] [-- --quick]`: finetune a small pretrained model on a domain shift with BOFT, OFT,
 * LoRA and full finetuning, and print one table: trainable parameters, wall time, step time and its ratio to full
 * finetuning's, quality on the new domain, and quality kept on the old one (forgetting).
 *   text (default): a Llama-style character LM pretrained on non-fiction Brown genres (assets/brown-lm, made by
 *                   `npm run pretrain`), adapted to romance fiction; perplexity on both.
 *   vision:         a CNN pretrained on upright MNIST (assets/mnist-cnn.safetensors), adapted to digits rotated 60°;
 *                   accuracy on both.
 * Each method writes a normal run folder (run.json, metrics.jsonl, loss.svg, adapter/) under runs/demo/<task>/.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { readRunConfig, runTraining, evaluateRun, linePlot, median, type EvalEvent } from "boft/node";
import { createProgress } from "../cli/progress.js";
import { renderTable } from "../cli/table.js";

const root = nodePath.resolve(nodePath.dirname(new URL(import.meta.url).pathname), "../..");
const args = process.argv.slice(2);
const quick = args.includes("--quick");
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

function runJson(method: Record<string, unknown>, lr: number): Record<string, unknown> {
  // Sized so each task finishes in ≤ 5 minutes on 2 cores (measured: text 2 min 50 s, vision 2 min).
  const steps = quick ? 3 : task === "text" ? 80 : 60;
  const train = { steps, lr, warmupSteps: quick ? 1 : 10, maxGradNorm: 1, evalEvery: quick || task === "vision" ? 0 : 40, seed: 0 };
  if (task === "text") {
    return {
      model: { hf: nodePath.join(root, "assets", "brown-lm") },
      data: {
        kind: "brown",
        train: ["romance"],
        eval: { old: ["news", "learned"], new: ["romance"] },
        seqLen: 64,
        batchSize: quick ? 4 : 16,
        evalWindows: quick ? 4 : 64,
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

async function main(): Promise<void> {
  fs.mkdirSync(outRoot, { recursive: true });
  const quality = task === "text" ? "perplexity (lower is better)" : "accuracy";
  console.log(`boft demo (${task}${quick ? ", quick" : ""}): adapt to the new domain, measure what the old one keeps; ${quality}`);

  // The base model, before any finetuning.
  const baseDir = nodePath.join(outRoot, "base");
  fs.mkdirSync(baseDir, { recursive: true });
  fs.writeFileSync(nodePath.join(baseDir, "run.json"), JSON.stringify({ ...runJson({ peft_type: "FULL" }, 1e-3), output: "." }, null, 2));
  const base = await evaluateRun(readRunConfig(nodePath.join(baseDir, "run.json")), { adapter: null });
  const rows: (string | number)[][] = [["base (no finetuning)", 0, 0, "-", "-", "-", metricOf(base, "new"), metricOf(base, "old")]];
  const stepMs: number[] = []; // per method, the median training step (evaluations excluded)
  const curves: { name: string; points: [number, number][] }[] = [];

  for (const m of methods) {
    const dir = nodePath.join(outRoot, m.name.split(" ")[0].toLowerCase());
    fs.mkdirSync(dir, { recursive: true });
    const file = nodePath.join(dir, "run.json");
    fs.writeFileSync(file, JSON.stringify({ ...runJson(m.method, m.lr), output: "." }, null, 2) + "\n");
    const cfg = readRunConfig(file);
    const progress = createProgress({ total: cfg.train.steps, label: m.name, unit: task === "text" ? "tok" : "samples" });
    const points: [number, number][] = [[0, base.find((e) => e.split === "new")!.loss]];
    const steps: number[] = [];
    let last: number | null = null;
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
    if (points[points.length - 1][0] !== cfg.train.steps) points.push([cfg.train.steps, r.finalEval.find((e) => e.split === "new")!.loss]);
    curves.push({ name: m.name, points });
    stepMs.push(median(steps.length > 0 ? steps : [r.seconds * 1000]));
    rows.push([m.name, r.trainableParams, r.effectiveParams, r.seconds.toFixed(1), stepMs[stepMs.length - 1].toFixed(0), "", metricOf(r.finalEval, "new"), metricOf(r.finalEval, "old")]);
  }
  // Step time ÷ full finetuning's (the last method): what an adapter saves, or costs, per step.
  const fullMs = stepMs[stepMs.length - 1];
  for (let i = 0; i < stepMs.length; i++) rows[i + 1][5] = (stepMs[i] / fullMs).toFixed(2);

  const header = ["method", "stored params", "effective params", "time (s)", "step (ms)", "step ÷ full", task === "text" ? "new-domain ppl" : "new-domain acc", task === "text" ? "old-domain ppl" : "old-domain acc"];
  const table = renderTable(header, rows);
  console.log(`\n${table}\n`);
  fs.writeFileSync(nodePath.join(outRoot, "results.txt"), table + "\n");
  fs.writeFileSync(nodePath.join(outRoot, "results.json"), JSON.stringify({ task, quick, header, rows }, null, 2) + "\n");
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
