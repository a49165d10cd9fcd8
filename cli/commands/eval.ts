import { readRunConfig } from "../../src/node/run-config.js";
import { prepareRun, evaluatePrepared, type Prepared } from "../../src/node/run.js";
import { loadAdapter } from "../../src/node/model-adapter.js";
import { adapterPlanWarnings } from "../../src/node/run-guard.js";
import { trainableOf, type AdaptedModel } from "../../src/models/adapted.js";
import { type Command, requireString } from "../command.js";
import { renderTable } from "../table.js";

export const evalCommand: Command = {
  name: "eval",
  summary: "evaluate a run's model on its evaluation splits, with or without an adapter",
  usage: "boft eval --config <run.json> [--adapter <adapter folder> | --base]",
  options: {
    config: { type: "string", description: "the run configuration (its model and data are used)", valueName: "run.json" },
    adapter: { type: "string", description: "adapter to evaluate (default: the run's output/adapter)", valueName: "dir" },
    base: { type: "boolean", description: "evaluate the base model alone" },
  },
  async run(values) {
    const cfg = readRunConfig(requireString(values, "config"));
    const p = await prepareRun({ ...cfg, method: null });
    let model = p.model as AdaptedModel<unknown, unknown>;
    if (!values.base) {
      const dir = typeof values.adapter === "string" ? values.adapter : `${cfg.output}/adapter`;
      const loaded = loadAdapter(model, dir);
      model = loaded.model;
      for (const w of [...loaded.warnings, ...adapterPlanWarnings(model)]) console.error(`warning: ${w}`);
    }
    const events = await evaluatePrepared({ ...p, model } as Prepared, model.active ? trainableOf(model) : null);
    console.log(renderTable(["split", "loss", ...Object.keys(events[0]?.metrics ?? {})], events.map((e) => [e.split, e.loss, ...Object.values(e.metrics ?? {})])));
    return 0;
  },
};
