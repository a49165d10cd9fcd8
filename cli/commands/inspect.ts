import { inspectAdapter } from "boft/node";
import { type Command, UsageError } from "../command.js";
import { renderTable, formatNumber } from "../table.js";
import { runPlan } from "../plan-report.js";

export const inspectCommand: Command = {
  name: "inspect",
  summary: "show an adapter's method, config, layers, parameter counts and orthogonality; or plan one (--model)",
  usage:
    "boft inspect <adapter folder | adapter_model.safetensors> [--json]\n" +
    "       boft inspect --model <config.json | model folder | preset> --method boft|oft|lora [--block-size B] [--factors M] [--rank R] [--target a,b] [--bias none|boft_only|…] [--json]",
  options: {
    json: { type: "boolean", description: "print the report as one JSON object" },
    model: { type: "string", valueName: "config.json|preset", description: "plan an adapter on this model instead (presets: DeBERTaV3-base, DINOv2-large, Llama-2-7B)" },
    method: { type: "string", valueName: "boft|oft|lora", description: "with --model: the method (default boft)" },
    "block-size": { type: "string", valueName: "b", description: "with --model: BOFT/OFT block size" },
    "block-num": { type: "string", valueName: "D", description: "with --model: BOFT block count (OFT: r, the number of blocks) instead of a size" },
    factors: { type: "string", valueName: "m", description: "with --model: BOFT butterfly factors (default 1)" },
    rank: { type: "string", valueName: "r", description: "with --model: LoRA rank (default 8)" },
    target: { type: "string", valueName: "a,b,…", description: "with --model: target_modules (default: PEFT's for the model type)" },
    bias: { type: "string", valueName: "mode", description: "with --model: none (default), <method>_only or all: count trainable biases" },
    "per-module": { type: "boolean", description: "with --model: one row per module instead of per module name" },
  },
  run(values, positionals) {
    if (values.model !== undefined) {
      if (positionals.length !== 0) throw new UsageError("--model plans an adapter; give no adapter path with it");
      return runPlan(values);
    }
    if (positionals.length !== 1) throw new UsageError("give one adapter folder or .safetensors file");
    const r = inspectAdapter(positionals[0]);
    if (values.json) {
      console.log(JSON.stringify(r));
      return 0;
    }
    const c = r.config;
    console.log(`${r.path}: ${c.kind} adapter${c.baseModelNameOrPath ? ` for ${c.baseModelNameOrPath}` : ""}${c.taskType ? ` (${c.taskType})` : ""}`);
    const cfg = Object.entries(c.config)
      .filter(([, v]) => v !== null && v !== false && !(Array.isArray(v) && v.length === 0))
      .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : String(v)}`);
    console.log(`config: ${cfg.join(" ")}`);
    for (const w of c.warnings) console.log(`warning: ${w}`);
    console.log("");
    const rows = r.layers.map((l) => [
      l.module,
      Object.entries(l.shapes).map(([k, s]) => `${k}[${s.join(",")}]`).join(" "),
      l.n ?? "?",
      l.count.stored,
      l.count.effective,
      l.orthogonalityError === null ? "-" : l.orthogonalityError.toExponential(1),
    ]);
    console.log(renderTable(["module", "tensors", "n", "stored", "effective", "max|QQᵀ−I|"], rows));
    console.log("");
    if (r.extras.length) console.log(`extra trained tensors (biases, modules_to_save): ${r.extras.length}, ${formatNumber(r.totals.extras)} values`);
    if (r.ignored.length) console.log(`ignored keys (PEFT ignores them too): ${r.ignored.join(", ")}`);
    console.log(`layers: ${r.layers.length}   stored parameters: ${formatNumber(r.totals.stored)}   effective (degrees of freedom): ${formatNumber(r.totals.effective)}`);
    return 0;
  },
};
