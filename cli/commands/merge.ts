import { mergeCheckpoint } from "boft/node";
import { type Command, requireString } from "../command.js";

export const mergeCommand: Command = {
  name: "merge",
  summary: "merge a PEFT adapter (BOFT, OFT or LoRA) into a safetensors checkpoint, streaming",
  usage: "boft merge --base <file.safetensors | model folder> --adapter <adapter folder> --out <file.safetensors | folder>",
  options: {
    base: { type: "string", description: "base checkpoint: a .safetensors file, or a folder (single file or sharded)", valueName: "path" },
    adapter: { type: "string", description: "PEFT adapter folder (adapter_config.json + adapter_model.safetensors)", valueName: "dir" },
    out: { type: "string", description: "output .safetensors file, or a folder (keeps shards and companion files)", valueName: "path" },
  },
  run(values) {
    const started = performance.now();
    const r = mergeCheckpoint({ base: requireString(values, "base"), adapter: requireString(values, "adapter"), out: requireString(values, "out") });
    const secs = ((performance.now() - started) / 1000).toFixed(2);
    for (const w of r.warnings) console.error(`boft merge: warning: ${w}`);
    console.log(`merged ${r.merged.length} weights, replaced ${r.replaced.length} trained tensors, copied ${r.copied} unchanged, in ${secs} s`);
    for (const f of r.files) console.log(`wrote ${f}`);
    return 0;
  },
};
