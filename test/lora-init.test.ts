/**
 * LoRA's init_lora_weights (methods/lora/layer.ts loraInit): true, false and "gaussian" are implemented; every other
 * PEFT value is refused with one line naming it and the supported ones, instead of training with the default init.
 * A saved adapter whose config records such an init still loads (its tensors are the file's).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as nodePath from "node:path";
import { np, toHost, type Arr } from "../src/engine/index.js";
import { ConfigError } from "../src/errors.js";
import { rng } from "../src/data/rng.js";
import { mlp } from "../src/models/mlp.js";
import { adaptedModel, addAdapter, initWeights, forward, gaussian, type AdaptedModel } from "../src/models/adapted.js";
import { loraConfig, type LoraInit } from "../src/methods/lora/config.js";
import { loraInit } from "../src/methods/lora/layer.js";
import { saveModelAdapter, loadAdapter } from "../src/node/model-adapter.js";

const shape = { kind: "linear" as const, n: 512, out: 16, r: 4, scaling: 2 };

function stats(a: Arr): { mean: number; std: number } {
  const d = Array.from(toHost(a).data as ArrayLike<number>);
  const mean = d.reduce((s, v) => s + v, 0) / d.length;
  return { mean, std: Math.sqrt(d.reduce((s, v) => s + (v - mean) ** 2, 0) / d.length) };
}

test('loraInit() "gaussian": A ~ N(0, (1/r)²) as PEFT, B = 0', () => {
  const r = rng(5);
  const p = loraInit(shape, { init: "gaussian", uniform: () => r.nextFloat(), normal: () => gaussian(r) });
  const a = stats(p.lora_A.weight); // 2048 samples: the std's standard error is ~1.6%
  assert.ok(Math.abs(a.std - 1 / shape.r) < 0.06 / shape.r, `std ${a.std}, want ${1 / shape.r}`);
  assert.ok(Math.abs(a.mean) < 0.05 / shape.r, `mean ${a.mean}`);
  assert.ok(toHost(p.lora_B.weight).data.every((v) => v === 0));
});

test("loraInit() true keeps PEFT's kaiming-uniform A (bound 1/√in), unlike gaussian", () => {
  const r = rng(5);
  const p = loraInit(shape, { init: true, uniform: () => r.nextFloat(), normal: () => gaussian(r) });
  const a = Array.from(toHost(p.lora_A.weight.ref).data as ArrayLike<number>);
  assert.ok(a.every((v) => Math.abs(v) <= 1 / Math.sqrt(shape.n)));
  // U(−c, c) has std c/√3.
  assert.ok(Math.abs(stats(p.lora_A.weight).std - 1 / Math.sqrt(3 * shape.n)) < 0.06 / Math.sqrt(3 * shape.n));
  p.lora_B.weight.dispose();
});

const np8 = () => np.array(Float32Array.from({ length: 16 }, (_, i) => Math.cos(i))).reshape([2, 8]);

const model = (init: LoraInit): AdaptedModel<Arr, Arr> => {
  const def = mlp({ sizes: [8, 16, 4] });
  const method = { kind: "LORA" as const, config: loraConfig({ r: 2, targetModules: ["lin0"], initLoraWeights: init }) };
  return addAdapter(adaptedModel(def, initWeights(def.weights, rng(1))), "default", method, { rng: rng(2) });
};

for (const init of ["pissa", "pissa_niter_4", "olora", "eva", "corda", "orthogonal"] as LoraInit[]) {
  test(`a new LoRA adapter with init_lora_weights=${JSON.stringify(init)} is refused, naming it and the supported inits`, () => {
    assert.throws(
      () => model(init),
      (e: unknown) => e instanceof ConfigError && e.message === `loraInit: init_lora_weights=${JSON.stringify(init)} is not implemented (supported: true, false, "gaussian").`,
    );
  });
}

test('a saved LoRA adapter whose config says init_lora_weights="pissa" loads, with its own tensors', async () => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "boft-lora-init-"));
  const trained = model(false); // random B: the adapter is not the identity
  await saveModelAdapter(trained, dir);
  const cfgPath = nodePath.join(dir, "adapter_config.json");
  fs.writeFileSync(cfgPath, fs.readFileSync(cfgPath, "utf8").replace('"init_lora_weights": false', '"init_lora_weights": "pissa"'));
  const def = mlp({ sizes: [8, 16, 4] });
  const base = adaptedModel(def, initWeights(def.weights, rng(1)));
  const { model: loaded } = loadAdapter(base, dir);
  assert.equal(loaded.adapters.default.method.config.bias, "none");
  assert.equal((loaded.adapters.default.method.config as { initLoraWeights: unknown }).initLoraWeights, "pissa");
  assert.deepEqual(toHost(forward(loaded, np8())).data, toHost(forward(trained, np8())).data);
  fs.rmSync(dir, { recursive: true, force: true });
});
