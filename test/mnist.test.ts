import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile, copyFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, FormatError } from "../src/errors.js";
import { decodeMnist } from "../src/data/idx.js";
import { loadMnist, mnistDataDir } from "../src/node/data/mnist.js";

function idx(ndimsCode: number, dims: number[], body: Uint8Array, typeCode = 0x08): Uint8Array {
  const head = new DataView(new ArrayBuffer(4 + 4 * dims.length));
  head.setUint32(0, (typeCode << 8) | ndimsCode, false);
  dims.forEach((d, i) => head.setUint32(4 + 4 * i, d, false));
  const out = new Uint8Array(head.byteLength + body.length);
  out.set(new Uint8Array(head.buffer), 0);
  out.set(body, head.byteLength);
  return out;
}

// Two tiny 28×28 "digits": pixel k of image i is (k + i) mod 256.
const pixels = Uint8Array.from({ length: 2 * 784 }, (_, k) => (k % 784) + Math.floor(k / 784));
const goodImages = idx(3, [2, 28, 28], pixels);
const goodLabels = idx(1, [2], Uint8Array.from([4, 9]));

describe("data.decodeMnist()", () => {
  it("decodes pixels to [0, 1] and labels to Int32Array", () => {
    const s = decodeMnist(goodImages, goodLabels);
    assert.equal(s.n, 2);
    assert.equal(s.images.length, 2 * 784);
    assert.equal(s.images[1], Math.fround(1 / 255));
    assert.equal(s.images[784 + 254], 1);
    assert.deepEqual(Array.from(s.labels), [4, 9]);
    assert.equal(decodeMnist(goodImages, goodLabels, { limit: 1 }).images.length, 784);
  });

  it("rejects a wrong magic number", () => {
    assert.throws(
      () => decodeMnist(idx(3, [2, 28, 28], pixels, 0x09), goodLabels),
      (e: unknown) => e instanceof FormatError && /bad IDX magic number 0x00000903, expected 0x00000803/.test(e.message),
    );
    assert.throws(() => decodeMnist(goodLabels, goodImages), FormatError); // files swapped
  });

  it("rejects a truncated file, a size mismatch and a count mismatch", () => {
    assert.throws(() => decodeMnist(goodImages.subarray(0, goodImages.length - 1), goodLabels), /truncated or corrupt/);
    assert.throws(() => decodeMnist(idx(3, [2, 20, 20], pixels.subarray(0, 800)), goodLabels), /20×20, expected 28×28/);
    assert.throws(() => decodeMnist(goodImages, idx(1, [3], Uint8Array.from([1, 2, 3]))), /2 images but 3 labels/);
    assert.throws(() => decodeMnist(goodImages, idx(1, [2], Uint8Array.from([1, 12]))), /label 12 at index 1/);
    assert.throws(() => decodeMnist(new Uint8Array(3), goodLabels), /too short/);
  });

  it("rejects a negative limit", () => {
    assert.throws(() => decodeMnist(goodImages, goodLabels, { limit: -1 }), ConfigError);
  });
});

describe("node.loadMnist()", () => {
  it("reads the 60000 training digits; the first is a 5", async () => {
    const s = await loadMnist("train");
    assert.equal(s.n, 60000);
    assert.equal(s.images.length, 60000 * 784);
    assert.equal(s.labels.length, 60000);
    assert.equal(s.labels[0], 5);
    // Label counts of the MNIST training set (LeCun et al.).
    const counts = new Array(10).fill(0);
    s.labels.forEach((l) => counts[l]++);
    assert.deepEqual(counts, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    let min = Infinity;
    let max = -Infinity;
    for (const v of s.images) (min = Math.min(min, v)), (max = Math.max(max, v));
    assert.deepEqual([min, max], [0, 1]);
  });

  it("reads the 10000 test digits; the first is a 7", async () => {
    const s = await loadMnist("test");
    assert.equal(s.n, 10000);
    assert.equal(s.labels[0], 7);
  });

  it("with a limit reads only the first examples, identical to the full read", async () => {
    const s = await loadMnist("train", { limit: 3 });
    assert.equal(s.n, 3);
    assert.deepEqual(Array.from(s.labels), [5, 0, 4]);
    assert.equal(s.images.length, 3 * 784);
    // Image 0 has ink in the middle and a blank top row.
    assert.ok(s.images.subarray(0, 28).every((v) => v === 0));
    assert.ok(s.images.subarray(0, 784).some((v) => v > 0.99));
  });

  describe("with a corrupt copy of the files", () => {
    let dir = "";
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "boft-mnist-"));
      await copyFile(join(mnistDataDir(), "t10k-labels-idx1-ubyte"), join(dir, "t10k-labels-idx1-ubyte"));
      await writeFile(join(dir, "t10k-images-idx3-ubyte"), idx(3, [10000, 28, 28], pixels)); // far too short
    });
    after(async () => rm(dir, { recursive: true, force: true }));

    it("throws FormatError naming the file", async () => {
      await assert.rejects(loadMnist("test", { dir }), (e: unknown) => e instanceof FormatError && e.message.includes("t10k-images-idx3-ubyte"));
    });

    it("throws FormatError when a file is missing", async () => {
      await assert.rejects(loadMnist("train", { dir }), (e: unknown) => e instanceof FormatError && /cannot open/.test(e.message));
    });
  });
});
