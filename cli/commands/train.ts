import { readRunConfig, runTraining, prepareRun, RunInterrupted, adapterPlanWarnings, type RunEvent } from "boft/node";
import { type Command, UsageError, requireString } from "../command.js";
import { createProgress } from "../progress.js";
import { renderTable } from "../table.js";

/** Exit code of a run ended by Ctrl-C (128 + SIGINT), as shells report it. */
const INTERRUPTED = 130;

export const trainCommand: Command = {
  name: "train",
  summary: "train an adapter (BOFT, OFT, LoRA) or the full model from a run.json; writes PEFT adapter files",
  usage: "boft train --config <run.json> [--resume | --overwrite]",
  options: {
    config: { type: "string", description: "the run configuration (model, data, method, train, output)", valueName: "run.json" },
    resume: { type: "boolean", description: "continue from the newest checkpoint in the run's output folder (same run.json)" },
    overwrite: { type: "boolean", description: "start over in an output folder that holds an earlier run (its files are removed)" },
  },
  async run(values) {
    const file = requireString(values, "config");
    if (values.resume && values.overwrite) throw new UsageError("--resume continues the run in the output folder and --overwrite replaces it: give one of them");
    const cfg = readRunConfig(file);
    for (const w of cfg.methodWarnings) console.error(`warning: ${w}`);
    const prepared = await prepareRun(cfg);
    for (const w of adapterPlanWarnings(prepared.model)) console.error(`warning: ${w}`);
    const progress = createProgress({ total: cfg.train.steps, label: cfg.method?.kind.toLowerCase() ?? "full", unit: cfg.data.kind === "mnist" ? "samples" : "tok" });
    const onEvent = (e: RunEvent) => {
      if (e.kind === "step") progress.update(e.step, { loss: e.loss, items: e.items, extra: `lr ${e.lr.toExponential(1)}` });
      else if (e.kind === "eval") progress.log(`step ${e.step} eval ${e.split}: loss ${e.loss.toFixed(4)} ${Object.entries(e.metrics ?? {}).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`).join(" ")}`);
      else if (e.kind === "checkpoint") progress.log(`checkpoint: ${e.path}`);
      else if (e.kind === "resume") progress.log(`resuming from step ${e.step} of ${cfg.train.steps} (${e.path})`);
    };
    // Ctrl-C ends the run after the current step, with a checkpoint; a second Ctrl-C quits at once.
    const stop = new AbortController();
    const onSigint = () => {
      if (stop.signal.aborted) process.exit(INTERRUPTED);
      stop.abort();
      console.error("\nboft train: stopping after this step to write a checkpoint (Ctrl-C again to quit without one)");
    };
    process.on("SIGINT", onSigint);
    try {
      const r = await runTraining(cfg, { resume: values.resume === true, overwrite: values.overwrite === true, onEvent, prepared, signal: stop.signal, onNote: (n) => progress.log(`note: ${n}`) });
      const peakMiB = Math.round(process.resourceUsage().maxRSS / 1024);
      progress.done(`trained ${r.trainableParams.toLocaleString("en-US")} parameters in ${r.seconds.toFixed(1)} s, peak memory ${peakMiB} MiB`);
      console.log(renderTable(["split", "loss", ...Object.keys(r.finalEval[0]?.metrics ?? {})], r.finalEval.map((e) => [e.split, e.loss, ...Object.values(e.metrics ?? {})])));
      console.log(`adapter: ${r.adapterDir}\nmetrics: ${cfg.output}/metrics.jsonl\nplot: ${cfg.output}/loss.svg`);
      return 0;
    } catch (e) {
      if (!(e instanceof RunInterrupted)) throw e;
      console.error(`boft train: interrupted after step ${e.step} of ${cfg.train.steps}; checkpoint: ${e.checkpoint}`);
      console.error(`resume with: boft train --config ${file} --resume`);
      return INTERRUPTED;
    } finally {
      process.off("SIGINT", onSigint);
    }
  },
};
