import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "../src/errors.js";
import { lrAt, validateSchedule } from "../src/train/schedule.js";

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-15, `${a} vs ${b}`);

describe("train.lrAt()", () => {
  const cfg = { lr: 1e-3, warmupSteps: 10, totalSteps: 110, minLr: 1e-4 };

  it("ramps linearly during warm-up, reaching the peak on the last warm-up step", () => {
    close(lrAt(0, cfg), 1e-4);
    close(lrAt(4, cfg), 5e-4);
    close(lrAt(9, cfg), 1e-3);
  });

  it("follows the cosine from the peak to the floor", () => {
    close(lrAt(10, cfg), 1e-3); // t = 0
    close(lrAt(60, cfg), 1e-4 + 0.5 * 9e-4); // t = ½: halfway
    close(lrAt(35, cfg), 1e-4 + 0.5 * 9e-4 * (1 + Math.SQRT1_2)); // t = ¼
    assert.ok(lrAt(109, cfg) > 1e-4 && lrAt(109, cfg) < 1.01e-4);
  });

  it("stays at the floor from totalSteps on", () => {
    assert.equal(lrAt(110, cfg), 1e-4);
    assert.equal(lrAt(10_000, cfg), 1e-4);
  });

  it("decreases monotonically after warm-up", () => {
    for (let s = 10; s < 120; s++) assert.ok(lrAt(s + 1, cfg) <= lrAt(s, cfg));
  });

  it("defaults to no warm-up and a floor of lr/10", () => {
    assert.equal(lrAt(0, { lr: 0.5, totalSteps: 4 }), 0.5);
    close(lrAt(4, { lr: 0.5, totalSteps: 4 }), 0.05);
  });

  it("handles warm-up that fills the whole run", () => {
    close(lrAt(4, { lr: 1, totalSteps: 5, warmupSteps: 5 }), 1);
    close(lrAt(5, { lr: 1, totalSteps: 5, warmupSteps: 5, minLr: 0.2 }), 0.2);
  });

  it("rejects impossible schedules with ConfigError naming the field", () => {
    assert.throws(() => validateSchedule({ lr: 1, totalSteps: 10, warmupSteps: 11 }), /warmupSteps=11/);
    assert.throws(() => validateSchedule({ lr: 1, totalSteps: 10, minLr: 2 }), ConfigError);
    assert.throws(() => validateSchedule({ lr: 1, totalSteps: 0 }), /totalSteps=0/);
    assert.throws(() => lrAt(-1, { lr: 1, totalSteps: 10 }), RangeError);
  });
});
