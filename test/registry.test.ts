/**
 * methods/registry.ts: every method record agrees with itself. The tensors it plans are the ones its init makes,
 * under the suffixes the file keys use, and reading the shape back from those tensors (boft inspect) gives the
 * same counts as planning it.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { tree, type Arr } from "../src/engine/index.js";
import { ConfigError } from "../src/errors.js";
import { METHODS, METHOD_KINDS, methodRecord, type AdapterMethod } from "../src/methods/registry.js";
import { planLayer, layerParamShapes, initAdapter, type ModuleInfo } from "../src/methods/adapter.js";
import { groupAdapterKeys, adapterKey } from "../src/formats/peft-adapter.js";
import { normalSampler } from "./helpers.js";

const linear: ModuleInfo = { path: "model.layers.0.q", kind: "linear", inFeatures: 16, outFeatures: 12 };
const conv: ModuleInfo = { path: "stem.conv", kind: "conv2d", inFeatures: 2, outFeatures: 4, kernel: [2, 2] };

const cases: Array<[string, AdapterMethod, ModuleInfo]> = [
  ["BOFT linear", { kind: "BOFT", config: METHODS.BOFT.config({ blockSize: 4, nButterflyFactor: 2, targetModules: ["q"] }) }, linear],
  ["BOFT conv", { kind: "BOFT", config: METHODS.BOFT.config({ blockSize: 4, targetModules: ["conv"] }) }, conv],
  ["OFT linear", { kind: "OFT", config: METHODS.OFT.config({ blockSize: 4, targetModules: ["q"] }) }, linear],
  ["OFT shared", { kind: "OFT", config: METHODS.OFT.config({ blockSize: 4, blockShare: true, targetModules: ["q"] }) }, linear],
  ["LoRA", { kind: "LORA", config: METHODS.LORA.config({ r: 3, targetModules: ["q"] }) }, linear],
];

describe("methods.registry", () => {
  it("maps each peft_type to its record, and refuses others naming the supported ones", () => {
    assert.deepEqual(METHOD_KINDS, ["BOFT", "OFT", "LORA"]);
    for (const k of METHOD_KINDS) assert.equal(methodRecord(k).kind, k);
    assert.throws(() => methodRecord("IA3"), (e: unknown) => e instanceof ConfigError && /peft_type "IA3" is not supported \(supported: BOFT, OFT, LORA\)/.test(e.message));
  });

  for (const [label, method, module] of cases) {
    it(`${label}: init's tensors have the planned shapes under the record's suffixes; inspect's inference counts the same`, () => {
      const rec = methodRecord(method.kind);
      const layer = planLayer(method, module);
      const planned = layerParamShapes(layer);
      assert.deepEqual(planned.map(([s]) => s), [...rec.suffixes]);
      const normal = normalSampler(3);
      const params = initAdapter({ method, layers: [layer] }, { normal, uniform: () => 0.25 })[module.path];
      const flat: Record<string, number[]> = {};
      for (const [suffix] of planned) {
        const [head, tail] = suffix.split(".");
        const node = (params as Record<string, Arr | Record<string, Arr>>)[head];
        flat[suffix] = (tail ? (node as Record<string, Arr>)[tail] : (node as Arr)).shape;
      }
      assert.deepEqual(flat, Object.fromEntries(planned));
      const inferred = rec.fromTensors(flat, method.config, "test");
      assert.deepEqual(rec.count(inferred.shape), rec.count(layer.shape));
      if (!(method.kind === "OFT" && method.config.blockShare)) assert.equal(inferred.n, layer.shape.n);
      // The file keys of these tensors group back into this one layer.
      const keys = planned.map(([s]) => adapterKey(module.path, s));
      const groups = groupAdapterKeys(method.kind, keys, "test");
      assert.deepEqual([...groups.layers.keys()], [module.path]);
      tree.dispose(params as never);
    });
  }
});
