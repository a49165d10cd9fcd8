import { readRunConfig } from "../../src/node/run-config.js";
import { runTraining } from "../../src/node/run.js";
import type { TrainEvent } from "../../src/train/trainer.js";
import { type Command, requireString } from "../command.js";
import { createProgress } from "../progress.js";
import { renderTable } from "../table.js";

export const trainCommand: Command = {
  name: "train",
  summary: "train an adapter (BOFT, OFT, LoRA) or the full model from a run.json; writes PEFT adapter files",
  usage: "boft train --config <run.json> [--resume]",
  options: {
    config: { type: "string", description: "the run configuration (model, data, method, train, output)", valueName: "run.json" },
    resume: { type: "boolean", description: "continue from the newest checkpoint in the run's output folder" },
  },
  async run(values) {
    const cfg = readRunConfig(requireString(values, "config"));
    for (const w of cfg.methodWarnings) console.error(`warning: ${w}`);
    const progress = createProgress({ total: cfg.train.steps, label: cfg.method?.kind.toLowerCase() ?? "full", unit: cfg.data.kind === "mnist" ? "samples" : "tok" });
    const onEvent = (e: TrainEvent) => {
      if (e.kind === "step") progress.update(e.step, { loss: e.loss, items: e.items, extra: `lr ${e.lr.toExponential(1)}` });
      else if (e.kind === "eval") progress.log(`step ${e.step} eval ${e.split}: loss ${e.loss.toFixed(4)} ${Object.entries(e.metrics ?? {}).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`).join(" ")}`);
      else if ((e as { kind: string }).kind === "checkpoint") progress.log(`checkpoint: ${(e as unknown as { path: string }).path}`);
    };
    const r = await runTraining(cfg, { resume: values.resume === true, onEvent, onNote: (n) => progress.log(`note: ${n}`) });
    const peakMiB = Math.round(process.resourceUsage().maxRSS / 1024);
    progress.done(`trained ${r.trainableParams.toLocaleString("en-US")} parameters in ${r.seconds.toFixed(1)} s, peak memory ${peakMiB} MiB`);
    console.log(renderTable(["split", "loss", ...Object.keys(r.finalEval[0]?.metrics ?? {})], r.finalEval.map((e) => [e.split, e.loss, ...Object.values(e.metrics ?? {})])));
    console.log(`adapter: ${r.adapterDir}\nmetrics: ${cfg.output}/metrics.jsonl\nplot: ${cfg.output}/loss.svg`);
    return 0;
  },
};
