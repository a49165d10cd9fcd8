import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createProgress, formatDuration, formatRate } from "../cli/progress.js";

function sink(isTTY: boolean) {
  const writes: string[] = [];
  return { out: { isTTY, write: (s: string) => writes.push(s) }, writes };
}

describe("cli.createProgress() without a TTY", () => {
  it("prints plain lines: first step, every interval, last step", () => {
    const { out, writes } = sink(false);
    let t = 0;
    const p = createProgress({ total: 100, unit: "tok", out, now: () => t, intervalMs: 10_000 });
    for (let s = 1; s <= 100; s++) {
      t += 500; // 0.5 s per step of 1024 tokens
      p.update(s, { loss: 5 - s / 50, items: 1024 });
    }
    p.done("best val loss 2.9000");
    const lines = writes.join("").split("\n").filter(Boolean);
    assert.ok(writes.every((w) => !w.includes("\r") && !w.includes("\x1b")), "no control characters");
    // Step 1, then every 20 steps (10 s), then the summary; step 100 is both due and last.
    assert.deepEqual(lines.map((l) => /step (\d+)\//.exec(l)?.[1] ?? l), ["1", "21", "41", "61", "81", "100", "best val loss 2.9000"]);
    assert.equal(lines[1], "train step 21/100 (21%)  loss 4.5800  2.0k tok/s  ETA 40s  elapsed 11s");
    assert.equal(lines[5], "train step 100/100 (100%)  loss 3.0000  2.0k tok/s  elapsed 50s");
  });

  it("can print every N steps, and prints the final state on done when it was not printed", () => {
    const { out, writes } = sink(false);
    let t = 0;
    const p = createProgress({ total: 10, label: "oft", out, now: () => t, everySteps: 4 });
    for (let s = 1; s <= 6; s++) {
      t += 1000;
      p.update(s, { loss: 1 });
    }
    p.done();
    const steps = writes.join("").split("\n").filter(Boolean).map((l) => /step (\d+)\//.exec(l)?.[1]);
    assert.deepEqual(steps, ["1", "5", "6"]);
    assert.match(writes[0], /^oft step 1\/10 \(10%\)  loss 1\.0000  1\.00 it\/s  ETA 9s/);
  });

  it("log() prints a plain line", () => {
    const { out, writes } = sink(false);
    const p = createProgress({ total: 3, out, now: () => 0 });
    p.log("eval val loss 1.23");
    assert.deepEqual(writes, ["eval val loss 1.23\n"]);
  });
});

describe("cli.createProgress() on a TTY", () => {
  it("redraws one line with a bar and ends with a newline", () => {
    const { out, writes } = sink(true);
    let t = 0;
    const p = createProgress({ total: 4, unit: "samples", out, now: () => t });
    for (let s = 1; s <= 4; s++) {
      t += 1000;
      p.update(s, { loss: 0.5, items: 64 });
      if (s === 2) p.log("checkpoint written");
    }
    p.done();
    const text = writes.join("");
    assert.ok(writes.slice(0, -1).every((w) => w.startsWith("\r")));
    assert.ok(text.endsWith("\n"));
    assert.ok(text.includes("\r\x1b[Kcheckpoint written\n"));
    assert.ok(text.includes("train [######------------------] 1/4  25%  loss 0.5000  64 samples/s  ETA 3s"));
    assert.ok(text.includes("[########################] 4/4 100%"));
  });

  it("truncates to the terminal width", () => {
    const writes: string[] = [];
    const p = createProgress({ total: 2, out: { isTTY: true, columns: 40, write: (s: string) => writes.push(s) }, now: () => 0 });
    p.update(1, { loss: 1, extra: "x".repeat(100) });
    assert.equal(writes[0].replace("\r", "").replace("\x1b[K", "").length, 39);
  });
});

describe("cli progress formatting", () => {
  it("formats durations and rates", () => {
    assert.deepEqual([3, 65, 3720, NaN].map(formatDuration), ["3s", "1m05s", "1h02m", "?"]);
    assert.deepEqual([0.5, 42, 1234, 45678, 2.5e6].map((r) => formatRate(r, "tok")), ["0.50 tok/s", "42 tok/s", "1.2k tok/s", "46k tok/s", "2.5M tok/s"]);
  });
});
