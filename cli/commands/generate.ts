import { loadCausalLm, fromPretrained, mergeAndUnload, generate, checkSampling, type Model, type PeftModel } from "boft/node";
import { type Command, UsageError, requireString, optionalNumber } from "../command.js";

function intOption(values: Record<string, unknown>, name: string, fallback: number | undefined): number | undefined {
  const v = optionalNumber(values, name) ?? fallback;
  if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) throw new UsageError(`--${name} must be a non-negative integer (got ${String(values[name])})`);
  return v;
}

export const generateCommand: Command = {
  name: "generate",
  summary: "generate text with a Hugging Face Llama / Mistral / Qwen2 folder, optionally through a PEFT adapter",
  usage:
    "boft generate --model <folder> [--adapter <folder>] [--merge] --prompt <text> --max-new-tokens N " +
    "[--temperature T] [--top-k K] [--top-p P] [--seed S] [--chat] [--json]",
  options: {
    model: { type: "string", description: "Hugging Face model folder (config.json, safetensors, tokenizer.json)", valueName: "folder" },
    adapter: { type: "string", description: "PEFT adapter folder to apply (BOFT, OFT or LoRA)", valueName: "folder" },
    merge: { type: "boolean", description: "merge the adapter into the weights first (same tokens, faster)" },
    prompt: { type: "string", description: "the prompt text", valueName: "text" },
    "max-new-tokens": { type: "string", description: "how many tokens to generate at most (generation stops at the model's max_position_embeddings)", valueName: "N" },
    temperature: { type: "string", description: "sampling temperature; 0 (default) is greedy", valueName: "T" },
    "top-k": { type: "string", description: "sample from the K most likely tokens only (default 0: off)", valueName: "K" },
    "top-p": { type: "string", description: "nucleus sampling mass (default 1: off)", valueName: "P" },
    seed: { type: "string", description: "seed of the sampler (default 0)", valueName: "S" },
    chat: { type: "boolean", description: "wrap the prompt as one user message with the model's chat template" },
    json: { type: "boolean", description: 'print {"prompt_ids", "output_ids", "text"} as the last line instead of streaming' },
  },
  async run(values) {
    const folder = requireString(values, "model");
    const prompt = values.prompt;
    if (typeof prompt !== "string") throw new UsageError("missing --prompt");
    const maxNewTokens = intOption(values, "max-new-tokens", undefined);
    if (maxNewTokens === undefined) throw new UsageError("missing --max-new-tokens");
    const sampling = {
      temperature: optionalNumber(values, "temperature") ?? 0,
      topK: intOption(values, "top-k", 0),
      topP: optionalNumber(values, "top-p") ?? 1,
    };
    const seed = intOption(values, "seed", 0);
    checkSampling(sampling);
    const adapterDir = values.adapter;
    if (values.merge && typeof adapterDir !== "string") throw new UsageError("--merge needs --adapter");

    const started = performance.now();
    const base = await loadCausalLm(folder);
    for (const n of base.notes) console.error(`note: ${n}`);
    let m: Model | PeftModel = base;
    if (typeof adapterDir === "string") {
      const peft = await fromPretrained(base, adapterDir, { onWarning: (w) => console.error(`warning: ${w}`) });
      m = values.merge ? mergeAndUnload(peft) : peft;
    }
    const tok = base.tokenizer!;
    const text = values.chat ? tok.applyChatTemplate([{ role: "user", content: prompt }], { addGenerationPrompt: true }) : prompt;
    // A rendered chat template already holds its special tokens (transformers: add_special_tokens=False).
    const promptIds = tok.encode(text, { addSpecialTokens: !values.chat });
    const loadedMs = performance.now() - started;

    const it = generate(m, promptIds, { ...sampling, seed, maxNewTokens });
    const out: number[] = [];
    let shown = "";
    const t0 = performance.now();
    let r = await it.next();
    for (; !r.done; r = await it.next()) {
      out.push(r.value.id);
      if (values.json || !r.value.text) continue;
      process.stdout.write(r.value.text);
      shown += r.value.text;
    }
    const { text: textOut, finishReason } = r.value;
    const secs = (performance.now() - t0) / 1000;
    if (values.json) {
      console.log(JSON.stringify({ prompt_ids: promptIds, output_ids: out, text: textOut }));
    } else {
      if (textOut.startsWith(shown)) process.stdout.write(textOut.slice(shown.length));
      process.stdout.write("\n");
    }
    if (finishReason === "maxPositions") {
      const maxPositions = base.config!.maxPositionEmbeddings;
      console.error(`note: stopped after ${out.length} new tokens, at max_position_embeddings = ${maxPositions} (prompt ${promptIds.length} + ${maxNewTokens} asked would pass it)`);
    }
    console.error(
      `${out.length} tokens in ${secs.toFixed(2)} s (${(out.length / Math.max(secs, 1e-9)).toFixed(1)} tokens/s; prompt ${promptIds.length} tokens; load ${(loadedMs / 1000).toFixed(2)} s)`,
    );
    return 0;
  },
};
