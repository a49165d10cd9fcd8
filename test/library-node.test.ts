/**
 * The done-when program through `boft/node` on assets/brown-lm: load the folder, train a BOFT adapter on a few
 * strings, save a folder that `boft inspect` reads, load it back, merge, and generate with it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as nodePath from "node:path";
import { fileURLToPath } from "node:url";
import { loadCausalLm, getPeftModel, finetune, causalLmDataset, savePretrained, fromPretrained, inspectAdapter, generate, mergeAndUnload, type Model, type PeftModel } from "boft/node";

const BROWN_LM = nodePath.join(process.cwd(), "assets", "brown-lm");
const CLI = nodePath.join(nodePath.dirname(fileURLToPath(import.meta.url)), "..", "cli", "main.js");

const strings = [
  "The cat sat on the mat and looked at the rain.",
  "A small boat drifted down the quiet river at dawn.",
  "She opened the old letter and read it twice.",
  "The train was late, so they walked home through the park.",
];

async function tokens(m: Model | PeftModel, prompt: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for await (const t of generate(m, prompt, { maxNewTokens: n })) out.push(t.id);
  return out;
}

test("brown-lm: BOFT on a few strings through boft/node; the saved folder inspects, reloads, merges and generates", async () => {
  const lm = await loadCausalLm(BROWN_LM);
  assert.ok(lm.tokenizer, "brown-lm ships tokenizer.json");
  assert.equal(lm.nameOrPath, BROWN_LM);
  const data = causalLmDataset(lm.tokenizer.encode(strings.join("\n")), { seqLen: 32 });
  const peft = getPeftModel(lm, { peftType: "BOFT", blockSize: 4, nButterflyFactor: 2 }); // q_proj, v_proj: PEFT's llama default
  const losses: number[] = [];
  for await (const e of finetune(peft, data, { steps: 12, lr: 0.02, batchSize: 4 })) if (e.kind === "step") losses.push(e.loss);
  assert.ok(losses[11] < losses[0], `loss ${losses[0]} → ${losses[11]}`);

  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "boft-lib-"));
  try {
    const adapter = nodePath.join(dir, "adapter");
    await savePretrained(peft, adapter);
    const config = JSON.parse(fs.readFileSync(nodePath.join(adapter, "adapter_config.json"), "utf8"));
    assert.deepEqual([config.peft_type, config.task_type, config.base_model_name_or_path], ["BOFT", "CAUSAL_LM", BROWN_LM]);
    assert.deepEqual(config.target_modules, ["q_proj", "v_proj"]);

    const report = inspectAdapter(adapter);
    assert.equal(report.layers.length, 2 * lm.config!.numHiddenLayers);
    assert.ok(report.layers.every((l) => l.orthogonalityError !== null && l.orthogonalityError < 1e-5));
    const cli = spawnSync(process.execPath, [CLI, "inspect", adapter], { encoding: "utf8" });
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, /BOFT adapter/);

    const prompt = "The cat";
    const trained = await tokens(peft, prompt, 16);
    assert.equal(trained.length, 16);
    assert.notDeepEqual(trained, await tokens(lm, prompt, 16), "the adapter changes what the model writes");
    const again = await fromPretrained(await loadCausalLm(BROWN_LM), adapter);
    assert.deepEqual(await tokens(again, prompt, 16), trained);
    assert.deepEqual(await tokens(mergeAndUnload(again), prompt, 16), trained);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("generate ends at the model's max_position_embeddings and says why; a prompt that fills it is refused", async () => {
  const lm = await loadCausalLm(BROWN_LM);
  const max = lm.config!.maxPositionEmbeddings; // 256
  const prompt = Array.from({ length: max - 3 }, (_, i) => 65 + (i % 26));
  const it = generate(lm, prompt, { maxNewTokens: 10, stopIds: [] });
  let r = await it.next();
  let n = 0;
  for (; !r.done; r = await it.next()) n++;
  assert.equal(n, 3);
  assert.deepEqual([r.value.ids.length, r.value.finishReason], [3, "maxPositions"]);

  const short = generate(lm, prompt.slice(0, 8), { maxNewTokens: 4, stopIds: [] });
  let s = await short.next();
  while (!s.done) s = await short.next();
  assert.deepEqual([s.value.ids.length, s.value.finishReason], [4, "length"]);
  const stop = generate(lm, prompt.slice(0, 8), { maxNewTokens: 4, stopIds: [s.value.ids[1]] });
  let t = await stop.next();
  while (!t.done) t = await stop.next();
  assert.deepEqual([t.value.ids, t.value.finishReason], [s.value.ids.slice(0, 2), "stop"]);

  await assert.rejects(generate(lm, Array.from({ length: max }, () => 65), { maxNewTokens: 1 }).next(), /the prompt is 256 tokens; the model takes at most max_position_embeddings = 256 in all/);
});
