/**
 * `boft merge` never destroys its input (issue 16, case 2): an --out that is the base — the same path, another
 * spelling, a symlink or hard link to it, its folder, a folder inside it — is refused, leaving every file as it was;
 * `--in-place` replaces the base only with a complete, verified merged file (the same bytes a merge to another path
 * writes), through symlinks, leaving no temp files.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { normalSampler } from "./helpers.js";
import { tempDir, tensor, randomValues, writeCheckpoint, writeAdapterDir } from "./merge-helpers.js";
import { BIN } from "./cli-helpers.js";

const boft = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });

const root = tempDir("boft-merge-in-place-");
after(() => fs.rmSync(root, { recursive: true, force: true }));
const at = (...p: string[]) => path.join(root, ...p);
const UP = "model.layers.0.mlp.up_proj";

/** Every file under root (symlinks as their target) with a hash of its bytes. */
function snapshot(): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isSymbolicLink()) out[path.relative(root, p)] = `-> ${fs.readlinkSync(p)}`;
      else if (e.isDirectory()) walk(p);
      else out[path.relative(root, p)] = createHash("sha256").update(new Uint8Array(fs.readFileSync(p))).digest("hex");
    }
  };
  walk(root);
  return out;
}
const bytes = (p: string) => new Uint8Array(fs.readFileSync(p));

before(() => {
  const normal = normalSampler(5);
  const tensors = [tensor(`${UP}.weight`, "F32", [24, 16], normal), tensor("model.norm.weight", "F32", [16], normal)];
  fs.mkdirSync(at("model"));
  writeCheckpoint(at("model", "model.safetensors"), tensors);
  fs.writeFileSync(at("model", "config.json"), '{"model_type": "llama"}');
  writeCheckpoint(at("base.safetensors"), tensors);
  writeAdapterDir(at("adapter"), { peft_type: "BOFT", boft_block_size: 4, boft_n_butterfly_factor: 2, target_modules: ["up_proj"] }, [
    { key: `base_model.model.${UP}.boft_R`, shape: [2, 4, 4, 4], data: randomValues([2, 4, 4, 4], normal, { std: 0.3, dtype: "F32" }) },
    { key: `base_model.model.${UP}.boft_s`, shape: [24, 1], data: randomValues([24, 1], normal, { mean: 1, std: 0.2, dtype: "F32" }) },
  ]);
  fs.symlinkSync(at("base.safetensors"), at("symlink.safetensors"));
  fs.linkSync(at("base.safetensors"), at("hardlink.safetensors"));
  fs.symlinkSync(at("model"), at("model-link"));
  // What a merge into a fresh path writes: the in-place result must be these bytes.
  for (const [base, out] of [["model", "expected-model"], ["base.safetensors", "expected.safetensors"]]) {
    const r = boft("merge", "--base", at(base), "--adapter", at("adapter"), "--out", at(out));
    assert.equal(r.status, 0, r.stderr);
  }
});

describe("boft merge refuses an --out that is its base", () => {
  const cases: [string, string, RegExp][] = [
    ["model", "model", /model: is the base model's folder/],
    ["model", "model/", /is the base model's folder/],
    ["model", "model/model.safetensors", /writing .*model\/model\.safetensors would overwrite the base checkpoint/],
    ["model", "model/merged", /model\/merged: is inside the base model's folder/],
    ["model", "model-link", /model-link: is the base model's folder/],
    ["model-link", "model", /model: is the base model's folder/],
    ["base.safetensors", "base.safetensors", /would overwrite the base checkpoint/],
    ["base.safetensors", "model/../base.safetensors", /would overwrite the base checkpoint/],
    ["base.safetensors", "symlink.safetensors", /writing .*symlink\.safetensors would overwrite the base checkpoint/],
    ["base.safetensors", "hardlink.safetensors", /writing .*hardlink\.safetensors would overwrite the base checkpoint/],
    ["symlink.safetensors", "base.safetensors", /writing .*base\.safetensors would overwrite the base checkpoint/],
  ];
  for (const [base, out, error] of cases) {
    it(`--base ${base} --out ${out}`, () => {
      const before = snapshot();
      const r = boft("merge", "--base", at(base), "--adapter", at("adapter"), "--out", at(out));
      assert.equal(r.status, 1, r.stderr);
      assert.equal(r.stdout, "");
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], /^boft merge: /);
      assert.match(lines[0], error);
      assert.match(lines[0], /Give another --out, or --in-place to replace the base with the merged model\.$/);
      assert.deepEqual(snapshot(), before, "no file changed, none created");
    });
  }

  it("--in-place with an --out elsewhere is refused; --out missing without --in-place is a usage error", () => {
    const before = snapshot();
    const r = boft("merge", "--base", at("model"), "--adapter", at("adapter"), "--in-place", "--out", at("elsewhere"));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--in-place replaces the base .*; --out .*elsewhere is somewhere else/);
    assert.equal(boft("merge", "--base", at("model"), "--adapter", at("adapter")).status, 2);
    assert.deepEqual(snapshot(), before);
  });
});

describe("boft merge --in-place", () => {
  it("replaces a model folder's weights with the verified merge; config.json stays; no temp file is left", () => {
    const config = bytes(at("model", "config.json"));
    const r = boft("merge", "--base", at("model"), "--adapter", at("adapter"), "--in-place");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /replaced .*model\/model\.safetensors \(verified before replacing\)/);
    assert.deepEqual(bytes(at("model", "model.safetensors")), bytes(at("expected-model", "model.safetensors")));
    assert.deepEqual(bytes(at("model", "config.json")), config);
    assert.deepEqual(fs.readdirSync(at("model")).sort(), ["config.json", "model.safetensors"]);
  });

  it("through a symlink, replaces the file it points to and keeps the link", () => {
    const r = boft("merge", "--base", at("symlink.safetensors"), "--adapter", at("adapter"), "--in-place");
    assert.equal(r.status, 0, r.stderr);
    assert.ok(fs.lstatSync(at("symlink.safetensors")).isSymbolicLink());
    assert.deepEqual(bytes(at("base.safetensors")), bytes(at("expected.safetensors")));
    assert.ok(!fs.readdirSync(root).some((f) => /\.(merge|tmp)-\d+$/.test(f)), fs.readdirSync(root).join(" "));
  });
});

describe("boft merge cleans up after a killed merge", () => {
  it("removes the temp files a dead merge left beside its targets, and keeps a running one's and unrelated ones", () => {
    const dead = spawnSync(process.execPath, ["-e", "0"]).pid!; // exited: its pid names no running process
    const live = process.pid; // this test's process, running while the merge runs
    fs.mkdirSync(at("leftovers"));
    const left = {
      deadShard: at("leftovers", `model.safetensors.merge-${dead}`),
      deadCompanion: at("leftovers", `config.json.merge-${dead}`),
      liveShard: at("leftovers", `model.safetensors.merge-${live}`),
      unrelated: at("leftovers", `notes.txt.merge-${dead}`),
    };
    for (const f of Object.values(left)) fs.writeFileSync(f, "partial");
    const r = boft("merge", "--base", at("expected-model"), "--adapter", at("adapter"), "--out", at("leftovers"));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.match(/note: removed .* left by an interrupted merge/g)?.length, 2, r.stderr);
    assert.deepEqual([left.deadShard, left.deadCompanion, left.liveShard, left.unrelated].map((f) => fs.existsSync(f)), [false, false, true, true]);
  });
});
