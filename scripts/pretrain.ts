/**
 * `npm run pretrain [-- text|vision|tokenizer] [-- --steps N]`: makes the small pretrained bases the demo finetunes,
 * and writes them to assets/ (committed, so the demo only finetunes):
 *   assets/brown-lm/             config.json + model.safetensors, Hugging Face Llama layout (97-symbol char vocab),
 *                                trained on the non-fiction genres of the Brown corpus, and tokenizer.json +
 *                                tokenizer_config.json: that vocabulary (src/data/text.ts) as a Hugging Face tokenizer,
 *                                so `boft train` on "kind": "text" data and `boft generate` work on it;
 *   assets/mnist-cnn.safetensors the demo CNN trained on upright MNIST digits.
 * It is an ordinary `boft train` run of examples/pretrain-*.json (full finetuning from random init).
 * `tokenizer` only (re)writes brown-lm's tokenizer files: they depend on the vocabulary, not on the weights.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { charTokenizerJson, charTokenizerConfig, readRunConfig, runTraining, atomicWriteFile } from "boft/node";
import { createProgress } from "../cli/progress.js";

const root = nodePath.resolve(nodePath.dirname(new URL(import.meta.url).pathname), "../..");
const args = process.argv.slice(2);
const which = args.filter((a) => a === "text" || a === "vision" || a === "tokenizer");
const stepsArg = args.indexOf("--steps");
const steps = stepsArg >= 0 ? Number(args[stepsArg + 1]) : undefined;

async function pretrain(name: string, example: string, exportTo: (modelDir: string) => void): Promise<void> {
  const cfg = readRunConfig(nodePath.join(root, "examples", example));
  if (steps !== undefined) cfg.train.steps = steps;
  const progress = createProgress({ total: cfg.train.steps, label: `pretrain ${name}`, unit: cfg.data.kind === "mnist" ? "samples" : "tok" });
  const r = await runTraining(cfg, {
    overwrite: true, // regenerating the assets replaces the earlier pretraining run
    onEvent: (e) => {
      if (e.kind === "step") progress.update(e.step, { loss: e.loss, items: e.items });
      if (e.kind === "eval") progress.log(`step ${e.step} ${e.split}: loss ${e.loss.toFixed(4)} ${JSON.stringify(e.metrics)}`);
    },
  });
  progress.done(`${r.trainableParams.toLocaleString("en-US")} parameters in ${r.seconds.toFixed(0)} s`);
  for (const e of r.finalEval) console.log(`${name} ${e.split}: loss ${e.loss.toFixed(4)} ${JSON.stringify(e.metrics)}`);
  exportTo(r.adapterDir);
}

/** brown-lm's tokenizer.json + tokenizer_config.json, from the character vocabulary it is trained on. */
function writeBrownTokenizer(): void {
  const out = nodePath.join(root, "assets", "brown-lm");
  fs.mkdirSync(out, { recursive: true });
  for (const [name, json] of [["tokenizer.json", charTokenizerJson()], ["tokenizer_config.json", charTokenizerConfig()]] as const) {
    atomicWriteFile(nodePath.join(out, name), JSON.stringify(json, null, 2) + "\n");
    console.log(`wrote ${nodePath.join(out, name)}`);
  }
}

if (which.includes("tokenizer")) writeBrownTokenizer();
if (which.length === 0 || which.includes("text")) {
  await pretrain("brown-lm", "pretrain-brown-lm.json", (modelDir) => {
    const out = nodePath.join(root, "assets", "brown-lm");
    fs.mkdirSync(out, { recursive: true });
    const cfg = JSON.parse(fs.readFileSync(nodePath.join(root, "examples", "pretrain-brown-lm.json"), "utf8")) as { model: { config: object } };
    fs.writeFileSync(nodePath.join(out, "config.json"), JSON.stringify({ ...cfg.model.config, torch_dtype: "float32" }, null, 2) + "\n");
    fs.copyFileSync(nodePath.join(modelDir, "model.safetensors"), nodePath.join(out, "model.safetensors"));
    console.log(`wrote ${out}`);
  });
  if (!which.includes("tokenizer")) writeBrownTokenizer();
}
if (which.length === 0 || which.includes("vision")) {
  await pretrain("mnist-cnn", "pretrain-mnist-cnn.json", (modelDir) => {
    const out = nodePath.join(root, "assets", "mnist-cnn.safetensors");
    fs.mkdirSync(nodePath.dirname(out), { recursive: true });
    fs.copyFileSync(nodePath.join(modelDir, "model.safetensors"), out);
    console.log(`wrote ${out}`);
  });
}
