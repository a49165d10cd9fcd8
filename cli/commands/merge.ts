import { mergeCheckpoint } from "boft/node";
import { type Command, UsageError, requireString } from "../command.js";

export const mergeCommand: Command = {
  name: "merge",
  summary: "merge a PEFT adapter (BOFT, OFT or LoRA) into a safetensors checkpoint, streaming",
  usage: "boft merge --base <file.safetensors | model folder> --adapter <adapter folder> (--out <file.safetensors | folder> | --in-place)",
  options: {
    base: { type: "string", description: "base checkpoint: a .safetensors file, or a folder (single file or sharded)", valueName: "path" },
    adapter: { type: "string", description: "PEFT adapter folder (adapter_config.json + adapter_model.safetensors)", valueName: "dir" },
    out: { type: "string", description: "output .safetensors file, or a folder (keeps shards and companion files); never the base", valueName: "path" },
    "in-place": { type: "boolean", description: "replace the base with the merged model, once it is written and verified" },
  },
  run(values) {
    const started = performance.now();
    const base = requireString(values, "base");
    const adapter = requireString(values, "adapter");
    const inPlace = values["in-place"] === true;
    if (!inPlace && (typeof values.out !== "string" || values.out === "")) throw new UsageError("missing --out (or --in-place to replace the base)");
    const out = typeof values.out === "string" ? values.out : undefined;
    const r = mergeCheckpoint({ base, adapter, out, inPlace });
    const secs = ((performance.now() - started) / 1000).toFixed(2);
    for (const w of r.warnings) console.error(`boft merge: warning: ${w}`);
    for (const f of r.removedLeftovers) console.error(`boft merge: note: removed ${f}, left by an interrupted merge`);
    console.log(`merged ${r.merged.length} weights, replaced ${r.replaced.length} trained tensors, copied ${r.copied} unchanged, in ${secs} s`);
    for (const f of r.files) console.log(`${inPlace ? "replaced" : "wrote"} ${f}${inPlace ? " (verified before replacing)" : ""}`);
    return 0;
  },
};
