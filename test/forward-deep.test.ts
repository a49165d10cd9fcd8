/**
 * The public forward() of a deep model (12 decoder layers: its layer-by-layer strategy is preferred) runs one compiled
 * layer at a time; its logits must equal the eager whole-model forward's, with an adapter and for the base.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as nodePath from "node:path";
import { loadCausalLm, getPeftModel, disableAdapters, forward, savePretrained, tensor } from "boft/node";
import { np, toHost } from "../src/engine/index.js";
import { adaptedModel, forwardWith, trainableOf } from "../src/models/adapted.js";
import { loadHfModel } from "../src/node/hf-model.js";
import { loadAdapter } from "../src/node/model-adapter.js";
import { writeTinyModel, TINY } from "./hf-fixture.js";

test("forward() of a 12-layer Llama (layer by layer, compiled) = the eager whole-model forward, adapter and base", async () => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "boft-forward-deep-"));
  const model = nodePath.join(dir, "model");
  writeTinyModel(model, { modelType: "llama", heads: 4, kvHeads: 2, tied: true, dtype: "F32", sharded: false, layers: 12, seed: 3 });
  const lm = await loadCausalLm(model);
  const peft = getPeftModel(lm, { peftType: "BOFT", blockSize: 4, nButterflyFactor: 2, targetModules: ["q_proj", "v_proj"], initWeights: false });
  const ids = Int32Array.from({ length: 2 * 9 }, (_, i) => (i * 37 + 5) % TINY.vocab);
  const got = await forward(peft, tensor(ids, [2, 9], "int32"));
  const adapter = nodePath.join(dir, "adapter");
  await savePretrained(peft, adapter);

  // The reference: the same weights and adapter through the eager forward (no layer-by-layer strategy involved).
  const hf = loadHfModel(model, { tokenizer: false });
  const m = loadAdapter(adaptedModel(hf.def, hf.weights), adapter).model;
  const idsArr = () => np.array(ids, { dtype: np.int32 }).reshape([2, 9]);
  const want = toHost(forwardWith(m, trainableOf(m), { ids: idsArr() }).logits);
  const wantBase = toHost(forwardWith(m, null, { ids: idsArr() }).logits);
  disableAdapters(peft);
  const gotBase = await forward(peft, tensor(ids, [2, 9], "int32"));

  for (const [g, w, what] of [[got, want, "adapter"], [gotBase, wantBase, "base"]] as const) {
    assert.deepEqual(g.shape, [2, 9, TINY.vocab], what);
    const scale = Math.max(...Array.from(w.data, Math.abs));
    const diff = Array.from(g.data).reduce((mx, v, i) => Math.max(mx, Math.abs(v - w.data[i])), 0);
    assert.ok(diff <= 1e-5 * scale, `${what}: max |Δ| ${diff} (scale ${scale})`);
  }
  // The adapter changes the logits, so the comparison above could fail for the wrong adapter or none.
  assert.ok(Array.from(got.data).some((v, i) => Math.abs(v - gotBase.data[i]) > 1e-4), "the adapter changes the logits");
  fs.rmSync(dir, { recursive: true, force: true });
});
