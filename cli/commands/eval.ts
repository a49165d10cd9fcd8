import { readRunConfig, evaluateRun } from "boft/node";
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
    const events = await evaluateRun(cfg, { adapter: values.base ? null : typeof values.adapter === "string" ? values.adapter : `${cfg.output}/adapter`, onWarning: (w) => console.error(`warning: ${w}`) });
    console.log(renderTable(["split", "loss", ...Object.keys(events[0]?.metrics ?? {})], events.map((e) => [e.split, e.loss, ...Object.values(e.metrics ?? {})])));
    return 0;
  },
};
