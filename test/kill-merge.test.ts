/**
 * `boft merge` killed with SIGKILL while it writes: the base and an earlier output are byte-identical afterwards,
 * nothing partial appears under the final name (temporary files stay under `<out>.merge-<pid>[.tmp-<pid>]`, which
 * are not cleaned up but never read: a later merge ignores them), and a merge run after the kills is correct.
 * Half the kills come at a random moment, half the moment the temporary output file appears (inside the write).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { rng } from "../src/data/rng.js";
import { normalSampler } from "./helpers.js";
import { tempDir, tensor, randomValues, writeCheckpoint, writeAdapterDir } from "./merge-helpers.js";
import { BIN } from "./cli-helpers.js";

const KILLS = 8;
const TEMP = /\.merge-\d+(\.tmp-\d+)?$/;

function merge(args: string[], killWhen?: (kill: () => void) => () => void): Promise<{ code: number | null; signal: string | null; stderr: string; ms: number }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, "merge", ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const disarm = killWhen?.(() => child.kill("SIGKILL")) ?? (() => {});
  return new Promise((resolve) => child.on("exit", (code, signal) => (disarm(), resolve({ code, signal, stderr, ms: performance.now() - t0 }))));
}

const bytes = (f: string) => fs.readFileSync(f, "latin1");

test(`boft merge killed ${KILLS} times during its write: base and earlier output intact, nothing partial under the final name`, { timeout: 300_000 }, async (t) => {
  const root = tempDir("boft-kill-merge-");
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const at = (...p: string[]) => nodePath.join(root, ...p);
  const normal = normalSampler(5);
  const modules = [0, 1, 2, 3].map((i) => `model.layers.${i}.mlp.up_proj`);
  // ~17 MB: 4 adapted [512, 512] weights and a copied [1024, 2048] one, so writing takes a while.
  const base = [...modules.map((m) => tensor(`${m}.weight`, "F32", [512, 512], normal)), tensor("model.embed_tokens.weight", "F32", [1024, 2048], normal)];
  fs.mkdirSync(at("model"));
  writeCheckpoint(at("model", "model.safetensors"), base);
  fs.writeFileSync(at("model", "config.json"), '{"model_type": "llama"}');
  const adapter = (dir: string, std: number) =>
    writeAdapterDir(dir, { peft_type: "BOFT", boft_block_size: 8, boft_n_butterfly_factor: 2, target_modules: ["up_proj"] }, modules.flatMap((m) => [
      { key: `base_model.model.${m}.boft_R`, shape: [2, 64, 8, 8], data: randomValues([2, 64, 8, 8], normal, { std, dtype: "F32" }) },
      { key: `base_model.model.${m}.boft_s`, shape: [512, 1], data: randomValues([512, 1], normal, { mean: 1, std: 0.1, dtype: "F32" }) },
    ]));
  adapter(at("old-adapter"), 0.05);
  adapter(at("adapter"), 0.2);

  // Earlier outputs: a file and a folder, from merging the old adapter; then the reference result of the new one.
  for (const out of [at("merged.safetensors"), at("merged")]) assert.equal((await merge(["--base", at("model"), "--adapter", at("old-adapter"), "--out", out])).code, 0);
  const whole = await merge(["--base", at("model"), "--adapter", at("adapter"), "--out", at("want.safetensors")]);
  assert.equal(whole.code, 0, whole.stderr);
  const snapshot = () => ({
    base: bytes(at("model", "model.safetensors")),
    file: bytes(at("merged.safetensors")),
    folder: fs.readdirSync(at("merged")).sort().map((f) => [f, bytes(at("merged", f))]),
  });
  const before = snapshot();
  assert.notEqual(before.file, bytes(at("want.safetensors")), "the old and new merges differ, so a replaced output would show");

  const r = rng(3);
  let inWrite = 0;
  for (let k = 0; k < KILLS; k++) {
    const out = k % 4 < 2 ? at("merged.safetensors") : at("merged");
    const watchDir = out.endsWith(".safetensors") ? root : out;
    const tempsBefore = new Set(fs.readdirSync(watchDir).filter((n) => TEMP.test(n)));
    const duringWrite = k % 2 === 1;
    const e = await merge(["--base", at("model"), "--adapter", at("adapter"), "--out", out], (kill) => {
      const timer = setTimeout(kill, r.nextFloat() * whole.ms * (duringWrite ? 1.5 : 0.9));
      if (!duringWrite) return () => clearTimeout(timer);
      const watcher = fs.watch(watchDir, (_, name) => name && TEMP.test(name) && !tempsBefore.has(name) && kill());
      return () => (clearTimeout(timer), watcher.close());
    });
    if (e.code === 0) {
      // Finished before the kill: the output is the new merge, whole. Put the earlier output back for the next kill.
      assert.equal(bytes(out.endsWith(".safetensors") ? out : nodePath.join(out, "model.safetensors")), bytes(at("want.safetensors")));
      fs.rmSync(at("merged.safetensors"), { force: true });
      fs.rmSync(at("merged"), { recursive: true, force: true });
      for (const o of [at("merged.safetensors"), at("merged")]) assert.equal((await merge(["--base", at("model"), "--adapter", at("old-adapter"), "--out", o])).code, 0);
      continue;
    }
    assert.equal(e.signal, "SIGKILL", e.stderr);
    const now = snapshot();
    assert.equal(now.base, before.base, `kill ${k + 1}: base changed`);
    assert.equal(now.file, before.file, `kill ${k + 1}: earlier output file changed`);
    assert.deepEqual(now.folder.filter(([f]) => !TEMP.test(f as string)), before.folder, `kill ${k + 1}: earlier output folder changed`);
    if ([...fs.readdirSync(watchDir)].some((n) => TEMP.test(n) && !tempsBefore.has(n))) inWrite++;
    // Whatever is not the earlier output is under a temporary name.
    const extra = fs.readdirSync(root).filter((n) => !["model", "adapter", "old-adapter", "merged", "merged.safetensors", "want.safetensors"].includes(n));
    assert.ok(extra.every((n) => TEMP.test(n)), `kill ${k + 1}: ${extra.join(", ")}`);
  }
  // A merge after the kills, with their temporary files still there, writes the right result and only it.
  for (const out of [at("merged.safetensors"), at("merged")]) {
    const e = await merge(["--base", at("model"), "--adapter", at("adapter"), "--out", out]);
    assert.equal(e.code, 0, e.stderr);
  }
  assert.equal(bytes(at("merged.safetensors")), bytes(at("want.safetensors")));
  assert.equal(bytes(at("merged", "model.safetensors")), bytes(at("want.safetensors")));
  assert.deepEqual(fs.readdirSync(at("merged")).filter((f) => !TEMP.test(f)).sort(), ["config.json", "model.safetensors"]);
  assert.equal(bytes(at("model", "model.safetensors")), before.base);
  t.diagnostic(`${KILLS} kills, ${inWrite} left a temporary output behind (inside the write); uninterrupted merge ${(whole.ms / 1000).toFixed(1)} s`);
  assert.ok(inWrite >= 1, "at least one kill landed inside the write");
});
