/** The public entry point works on plain data only: PEFT fixtures through mergeWeight / boftRotation / oftBlocks. */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as boft from "../src/index.js";
import { loadCase, ref, type RefTensor } from "./helpers.js";

const host = (t: RefTensor): boft.HostTensor => ({ dtype: "float64", shape: t.shape, data: Float64Array.from(t.data) });
const maxDiff = (a: boft.HostTensor, b: RefTensor) => {
  assert.deepEqual(a.shape, b.shape);
  return Array.from(a.data).reduce((m, v, i) => Math.max(m, Math.abs(v - b.data[i])), 0);
};

test("mergeWeight and boftRotation reproduce PEFT's merged weight and rotation (float64)", async () => {
  const c = loadCase("boft_lin_in32_out24_b8_m2_bias");
  const method = { kind: "BOFT" as const, config: boft.boftConfig({ blockSize: 8, nButterflyFactor: 2, targetModules: ["lin"] }) };
  const merged = await boft.mergeWeight(method, { path: "lin", kind: "linear", inFeatures: 32, outFeatures: 24 }, { boft_R: host(ref(c, "boft_R")), boft_s: host(ref(c, "boft_s")) }, host(ref(c, "base_weight")));
  assert.ok(maxDiff(merged, ref(c, "merged_weight")) < 1e-12);
  const module = { path: "lin", kind: "linear" as const, inFeatures: 32, outFeatures: 24 };
  const rot = await boft.boftRotation(await boft.rotationBlocks(method, module, { boft_R: host(ref(c, "boft_R")), boft_s: host(ref(c, "boft_s")) }));
  assert.ok(maxDiff(rot, ref(c, "rotation")) < 1e-12);
  assert.ok((await boft.orthogonality(rot)) < 1e-12);
  const perms = boft.butterflyPerms({ n: 32, blockNum: 4, blockSize: 8, nFactors: 2 });
  assert.deepEqual([...perms[0], ...perms[1]], ref(c, "perm").data);
});

test("rotationBlocks reproduces PEFT's OFT Neumann blocks", async () => {
  const c = loadCase("oft_lin_in16_out12_b4_neumann5_bias");
  const method = { kind: "OFT" as const, config: boft.oftConfig({ blockSize: 4, useCayleyNeumann: true, numCayleyNeumannTerms: 5, targetModules: ["lin"] }) };
  const module = { path: "lin", kind: "linear" as const, inFeatures: 16, outFeatures: 12 };
  const blocks = await boft.rotationBlocks(method, module, { "oft_R.weight": host(ref(c, "oft_R_weight_before_forward")) });
  assert.ok(maxDiff(blocks, ref(c, "rotation_blocks")) < 1e-12);
});
