// A Hugging Face Llama folder with BOFT: train on your text, save the adapter (PEFT's files), load it back, merge it,
// generate. Usage: node llama-folder.js <model folder> <adapter output folder>
import "boft/preload"; // worker threads and the wasm heap, before the engine loads
import { loadCausalLm, getPeftModel, finetune, causalLmDataset, savePretrained, fromPretrained, mergeAndUnload, generate } from "boft/node";

const [folder = "assets/brown-lm", out = "runs/example-adapter"] = process.argv.slice(2);
const lm = await loadCausalLm(folder); // config.json, model.safetensors, tokenizer.json
const text = [
  "The old house stood at the end of the lane, and nobody had lived in it for years.",
  "Every evening the wind came down from the hills and rattled its windows.",
  "One autumn a family moved in, and the lane was never quiet again.",
].join("\n");
const data = causalLmDataset(lm.tokenizer!.encode(text), { seqLen: 32 }); // next-token windows

const peft = getPeftModel(lm, { peftType: "BOFT", blockSize: 4, nButterflyFactor: 2, targetModules: ["q_proj", "v_proj"] });
for await (const e of finetune(peft, data, { steps: 20, lr: 0.02, batchSize: 4 })) {
  if (e.kind === "step" && e.step % 5 === 0) console.log(`step ${e.step}: loss ${e.loss.toFixed(4)}`);
}
await savePretrained(peft, out); // loads in PEFT: PeftModel.from_pretrained(model, out)

const reloaded = await fromPretrained(await loadCausalLm(folder), out);
const merged = mergeAndUnload(reloaded);
const ids: number[] = [];
process.stdout.write("The old ");
for await (const t of generate(merged, "The old ", { maxNewTokens: 40 })) {
  ids.push(t.id);
  process.stdout.write(t.text);
}
process.stdout.write("\n");
const viaAdapter: number[] = [];
for await (const t of generate(reloaded, "The old ", { maxNewTokens: 40 })) viaAdapter.push(t.id);
if (ids.join() !== viaAdapter.join()) throw new Error("the merged model writes other tokens than the adapter");
console.log(`adapter in ${out}; merged and adapter agree on ${ids.length} tokens`);
