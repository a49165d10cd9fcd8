import { inspectAdapter } from "../../src/node/inspect-adapter.js";
import { type Command, UsageError } from "../command.js";
import { renderTable, formatNumber } from "../table.js";

export const inspectCommand: Command = {
  name: "inspect",
  summary: "show an adapter's method, config, layers, parameter counts and orthogonality",
  usage: "boft inspect <adapter folder | adapter_model.safetensors> [--json]",
  options: {
    json: { type: "boolean", description: "print the report as one JSON object" },
  },
  run(values, positionals) {
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
