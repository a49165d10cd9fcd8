/** `npm run demo -- vision --quick` end to end: every method trains, the table and files come out. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";

test("vision demo, quick: table of base + 4 methods, per-method PEFT adapters, plot", () => {
  const r = spawnSync(process.execPath, ["dist/scripts/demo.js", "vision", "--quick"], { encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = "runs/demo/vision-quick";
  const results = JSON.parse(fs.readFileSync(`${out}/results.json`, "utf8")) as { header: string[]; rows: (string | number)[][] };
  assert.deepEqual(results.rows.map((row) => row[0]), ["base (no finetuning)", "BOFT m=2 b=8", "OFT b=8", "LoRA r=4", "full"]);
  // Stored parameters, hand-computed: BOFT on conv1 (n = 16·3·3 = 144, out 32) and fc (n = 1568, out 10), m=2, b=8:
  // m·n·b + out per layer; OFT b=8 on fc: 196 blocks · 28; LoRA r=4 on fc: 4·(1568 + 10); full: every weight.
  assert.equal(results.rows[1][1], 2 * 144 * 8 + 32 + 2 * 1568 * 8 + 10);
  assert.equal(results.rows[2][1], 196 * 28);
  assert.equal(results.rows[3][1], 4 * (1568 + 10));
  assert.equal(results.rows[4][1], 16 * 9 + 16 + 32 * 16 * 9 + 32 + 1568 * 10 + 10);
  for (const row of results.rows) for (const v of row.slice(-2)) assert.ok(typeof v === "number" && v >= 0 && v <= 1, `accuracy ${v}`);
  for (const m of ["boft", "oft", "lora"]) {
    const config = JSON.parse(fs.readFileSync(`${out}/${m}/adapter/adapter_config.json`, "utf8")) as { peft_type: string };
    assert.equal(config.peft_type, m.toUpperCase());
    assert.ok(fs.statSync(`${out}/${m}/adapter/adapter_model.safetensors`).size > 0);
  }
  assert.match(fs.readFileSync(`${out}/loss.svg`, "utf8"), /<svg[\s\S]*<\/svg>/);
  assert.match(r.stdout, /method\s+stored params\s+effective params/);
});
