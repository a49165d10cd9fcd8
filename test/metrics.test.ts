import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { FormatError } from "../src/errors.js";
import { lossCurves, parseJsonLine, parseJsonLines, toJsonLine, type TrainEvent } from "../src/train/metrics.js";

const events: TrainEvent[] = [
  { kind: "step", step: 1, totalSteps: 3, loss: 4.5, lr: 1e-4, items: 2048, elapsedMs: 812 },
  { kind: "step", step: 2, totalSteps: 3, loss: NaN, lr: 2e-4, gradNorm: Infinity, elapsedMs: 1300 },
  { kind: "eval", step: 2, split: "val-romance", loss: 3.9, metrics: { perplexity: 49.4 } },
  { kind: "checkpoint", step: 2, path: "runs/a/step-2" },
  { kind: "step", step: 3, totalSteps: 3, loss: 3.7, lr: 1e-4, elapsedMs: 1800 },
  { kind: "done", step: 3, elapsedMs: 1900, finalLoss: 3.7 },
];

describe("train.toJsonLine()", () => {
  it("writes one line per event with kind first", () => {
    const line = toJsonLine(events[0]);
    assert.equal(line, '{"kind":"step","step":1,"totalSteps":3,"loss":4.5,"lr":0.0001,"items":2048,"elapsedMs":812}');
    assert.ok(events.map(toJsonLine).every((l) => !l.includes("\n") && l.startsWith('{"kind":')));
  });

  it("keeps non-finite numbers as strings and restores them on parse", () => {
    const line = toJsonLine(events[1]);
    assert.ok(line.includes('"loss":"NaN"') && line.includes('"gradNorm":"Infinity"'));
    const back = parseJsonLine(line);
    assert.ok(back.kind === "step" && Number.isNaN(back.loss) && back.gradNorm === Infinity);
  });

  it("round-trips every event kind", () => {
    const text = events.map(toJsonLine).join("\n") + "\n";
    assert.deepEqual(parseJsonLines(text), events);
  });

  it("rejects lines that are not events", () => {
    assert.throws(() => parseJsonLine("{oops"), FormatError);
    assert.throws(() => parseJsonLine('{"kind":"epoch","step":1}'), /not a training event/);
  });
});

describe("train.lossCurves()", () => {
  it("collects train loss and one curve per eval split", () => {
    const curves = lossCurves(events);
    assert.deepEqual(curves.map((c) => c.name), ["train", "val-romance"]);
    assert.deepEqual(curves[0].points.map((p) => p[0]), [1, 2, 3]);
    assert.deepEqual(curves[1].points, [[2, 3.9]]);
  });
});
