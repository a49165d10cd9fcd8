/** `npm run demo -- vision --quick --seeds 2` end to end: every method trains per seed, the table and files come out. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";

test("vision demo, quick, 2 seeds: table of base + 4 methods with mean and spread, per-method PEFT adapters, plot", () => {
  const r = spawnSync(process.execPath, ["dist/scripts/demo.js", "vision", "--quick", "--seeds", "2"], { encoding: "utf8", timeout: 240_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = "runs/demo/vision-quick";
  const results = JSON.parse(fs.readFileSync(`${out}/results.json`, "utf8")) as { header: string[]; rows: (string | number)[][]; perSeed: { method: string; new: number[]; old: number[] }[] };
  assert.deepEqual(results.rows.map((row) => row[0]), ["base (no finetuning)", "BOFT m=2 b=8", "OFT b=8", "LoRA r=4", "full"]);
  // Stored parameters, hand-computed: BOFT on conv1 (n = 16·3·3 = 144, out 32) and fc (n = 1568, out 10), m=2, b=8:
  // m·n·b + out per layer; OFT b=8 on fc: 196 blocks · 28; LoRA r=4 on fc: 4·(1568 + 10); full: every weight.
  assert.equal(results.rows[1][1], 2 * 144 * 8 + 32 + 2 * 1568 * 8 + 10);
  assert.equal(results.rows[2][1], 196 * 28);
  assert.equal(results.rows[3][1], 4 * (1568 + 10));
  assert.equal(results.rows[4][1], 16 * 9 + 16 + 32 * 16 * 9 + 32 + 1568 * 10 + 10);
  assert.deepEqual(results.header.slice(-4), ["new-domain acc", "± sd", "old-domain acc", "± sd"]);
  for (const row of results.rows) for (const v of [row[6], row[8]]) assert.ok(typeof v === "number" && v >= 0 && v <= 1, `accuracy ${v}`);
  // Each method's cells are the mean and sample standard deviation of its per-seed results.
  assert.equal(results.perSeed.length, 4);
  for (const [i, p] of results.perSeed.entries()) {
    const row = results.rows[i + 1];
    assert.equal(row[0], p.method);
    for (const [values, at] of [[p.new, 6], [p.old, 8]] as const) {
      assert.equal(values.length, 2);
      const m = (values[0] + values[1]) / 2;
      assert.ok(Math.abs((row[at] as number) - m) < 1e-12, `${p.method}: mean ${row[at]} vs ${m}`);
      assert.ok(Math.abs((row[at + 1] as number) - Math.abs(values[0] - values[1]) / Math.SQRT2) < 1e-12, `${p.method}: sd ${row[at + 1]}`);
    }
  }
  assert.match(r.stdout, /mean over 2 seeds/);
  for (const m of ["boft", "oft", "lora", "boft-seed1", "lora-seed1"]) {
    const config = JSON.parse(fs.readFileSync(`${out}/${m}/adapter/adapter_config.json`, "utf8")) as { peft_type: string };
    assert.equal(config.peft_type, m.split("-")[0].toUpperCase());
    assert.ok(fs.statSync(`${out}/${m}/adapter/adapter_model.safetensors`).size > 0);
  }
  assert.match(fs.readFileSync(`${out}/loss.svg`, "utf8"), /<svg[\s\S]*<\/svg>/);
  assert.match(r.stdout, /method\s+stored params\s+effective params/);
});
