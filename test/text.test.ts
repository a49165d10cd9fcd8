import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "../src/errors.js";
import { rng, rngFromState } from "../src/data/rng.js";
import {
  NEWLINE_ID,
  UNK_CHAR,
  UNK_ID,
  VOCAB_SIZE,
  decode,
  encode,
  randomBatch,
  sequentialBatches,
  spreadBatches,
  splitTokens,
} from "../src/data/text.js";

describe("data.encode() / data.decode()", () => {
  it("round-trips printable ASCII and newlines", () => {
    let all = "";
    for (let c = 32; c <= 126; c++) all += String.fromCharCode(c);
    const text = `The jury said "no".\n${all}\n`;
    assert.equal(decode(encode(text)), text);
  });

  it("has fixed ids, independent of any corpus", () => {
    assert.equal(VOCAB_SIZE, 97);
    assert.deepEqual(Array.from(encode(" A~\n")), [0, 33, 94, NEWLINE_ID]);
  });

  it("maps characters outside the vocabulary to UNK, and tabs to spaces", () => {
    assert.deepEqual(Array.from(encode("é\t€")), [UNK_ID, 0, UNK_ID]);
    assert.equal(decode(encode("café")), `caf${UNK_CHAR}`);
  });

  it("rejects ids outside the vocabulary", () => {
    assert.throws(() => decode([5, VOCAB_SIZE]), /token id 97 at position 1/);
  });
});

describe("data.randomBatch()", () => {
  const tokens = Int32Array.from({ length: 100 }, (_, i) => i);

  it("returns contiguous windows whose targets are the inputs shifted by one", () => {
    const b = randomBatch(tokens, rng(0), { batchSize: 4, seqLen: 8 });
    assert.equal(b.inputs.length, 32);
    for (let r = 0; r < 4; r++) {
      const row = b.inputs.subarray(r * 8, r * 8 + 8);
      const tgt = b.targets.subarray(r * 8, r * 8 + 8);
      row.forEach((x, t) => {
        assert.equal(tgt[t], x + 1);
        if (t > 0) assert.equal(x, row[t - 1] + 1);
      });
      assert.ok(row[0] >= 0 && tgt[7] <= 99);
    }
  });

  it("is deterministic in the RNG state, so a restored state replays the batches", () => {
    const a = rng(3);
    randomBatch(tokens, a, { batchSize: 2, seqLen: 5 });
    const saved = a.state();
    const next = randomBatch(tokens, a, { batchSize: 2, seqLen: 5 });
    const replay = randomBatch(tokens, rngFromState(saved), { batchSize: 2, seqLen: 5 });
    assert.deepEqual(replay, next);
  });

  it("reaches the last window (offset N − T − 1)", () => {
    const r = rng(1);
    const seen = new Set<number>();
    for (let i = 0; i < 400; i++) seen.add(randomBatch(tokens.subarray(0, 12), r, { batchSize: 1, seqLen: 8 }).inputs[0]);
    assert.deepEqual([...seen].sort((x, y) => x - y), [0, 1, 2, 3]);
  });

  it("rejects a stream shorter than seqLen + 1", () => {
    assert.throws(() => randomBatch(tokens.subarray(0, 8), rng(0), { batchSize: 1, seqLen: 8 }), ConfigError);
  });
});

describe("data.sequentialBatches()", () => {
  it("covers the stream with non-overlapping windows and drops the short tail", () => {
    const tokens = Int32Array.from({ length: 23 }, (_, i) => i);
    const batches = [...sequentialBatches(tokens, { batchSize: 2, seqLen: 5 })];
    assert.deepEqual(batches.map((b) => b.batchSize), [2, 2]); // 4 windows of 5 (+1 target)
    assert.deepEqual(Array.from(batches[1].inputs), [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    assert.deepEqual(Array.from(batches[1].targets), [11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
  });
});

describe("data.spreadBatches()", () => {
  it("picks windows evenly over the whole stream: a split of two texts is read in both", () => {
    // Text A is tokens 0..99, text B 100..199 (as an eval split news+learned is the two val parts concatenated).
    const tokens = Int32Array.from({ length: 201 }, (_, i) => i);
    const batches = [...spreadBatches(tokens, { batchSize: 3, seqLen: 10, windows: 4 })];
    assert.deepEqual(batches.map((b) => b.batchSize), [3, 1]);
    const starts = batches.flatMap((b) => Array.from({ length: b.batchSize }, (_, r) => b.inputs[r * 10]));
    assert.deepEqual(starts, [0, 50, 100, 150]); // windows 0, 5, 10, 15 of 20
    assert.ok(starts.some((s) => s < 100) && starts.some((s) => s >= 100));
    assert.deepEqual(Array.from(batches[1].targets), [151, 152, 153, 154, 155, 156, 157, 158, 159, 160]);
  });

  it("gives every window once when asked for more than there are", () => {
    const tokens = Int32Array.from({ length: 23 }, (_, i) => i);
    const all = [...spreadBatches(tokens, { batchSize: 2, seqLen: 5, windows: 100 })].map((b) => Array.from(b.inputs));
    assert.deepEqual(all, [...sequentialBatches(tokens, { batchSize: 2, seqLen: 5 })].map((b) => Array.from(b.inputs)));
    assert.throws(() => [...spreadBatches(tokens, { batchSize: 2, seqLen: 5, windows: 0 })], ConfigError);
  });
});

describe("data.splitTokens()", () => {
  it("splits contiguously at the fraction", () => {
    const [a, b] = splitTokens(Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), 0.9);
    assert.deepEqual([Array.from(a), Array.from(b)], [[1, 2, 3, 4, 5, 6, 7, 8, 9], [10]]);
    assert.throws(() => splitTokens(new Int32Array(4), 1), ConfigError);
  });
});
