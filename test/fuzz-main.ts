/**
 * `npm run fuzz [-- --cases N] [-- --seed S] [-- --target bytes,file,config,folder]`: the reader fuzzer of
 * test/fuzz-cases.ts with more cases than the test suite runs. Prints progress with rate and ETA, then the totals
 * and every finding with its seed, target and index (re-run one with --only <target>:<index>). Exit 1 on findings.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as nodePath from "node:path";
import { parseArgs } from "node:util";
import { fuzz, runCase, TARGETS, type Target } from "./fuzz-cases.js";
import { createProgress } from "../cli/progress.js";

const { values } = parseArgs({
  options: {
    cases: { type: "string", default: "100000" },
    seed: { type: "string", default: String(Date.now() % 2 ** 20) },
    target: { type: "string", default: TARGETS.join(",") },
    only: { type: "string" },
  },
});
const seed = Number(values.seed);
const cases = Number(values.cases);
const targets = (values.target ?? "").split(",") as Target[];
const bad = targets.filter((t) => !TARGETS.includes(t));
if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 20 || !Number.isInteger(cases) || cases < 1 || bad.length) {
  console.error(`fuzz: --seed must be an integer in [0, 2^20), --cases a positive integer, --target a list of ${TARGETS.join(", ")}${bad.length ? ` (got ${bad.join(", ")})` : ""}`);
  process.exit(2);
}
const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "boft-fuzz-"));
try {
  if (values.only) {
    const [target, index] = values.only.split(":");
    const out = runCase(target as Target, seed, Number(index), dir);
    console.log(JSON.stringify(out, null, 2));
    process.exit(out.result === "finding" ? 1 : 0);
  }
  console.log(`fuzz: seed ${seed}, ${cases} cases over ${targets.join(", ")}`);
  const progress = createProgress({ total: cases, label: "fuzz", unit: "cases", intervalMs: 5000 });
  const s = fuzz({ seed, cases, dir, targets, onProgress: (done) => progress.update(done, { items: 500 }) });
  progress.done();
  for (const t of targets) {
    const c = s.byTarget[t];
    console.log(`${t.padEnd(7)} parsed ${c.ok}, refused with a typed error ${c.refused}, findings ${c.finding}`);
  }
  console.log(`slowest case ${s.slowestMs.toFixed(1)} ms; ${s.seconds.toFixed(1)} s in all`);
  for (const f of s.findings.slice(0, 50)) console.log(`FINDING --seed ${seed} --only ${f.target}:${f.index} (${f.mutation}): ${f.detail}`);
  if (s.findings.length > 50) console.log(`… and ${s.findings.length - 50} more`);
  process.exitCode = s.findings.length ? 1 : 0;
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
