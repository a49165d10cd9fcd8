import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ShapeError } from "../src/errors.js";
import { invertImages, rotateImages, selectLabels } from "../src/data/vision.js";

const dims5 = { height: 5, width: 5 };
function onePixel(y: number, x: number, h = 5, w = 5): Float32Array {
  const img = new Float32Array(h * w);
  img[y * w + x] = 1;
  return img;
}
const argmax = (a: Float32Array) => a.indexOf(Math.max(...a));

describe("data.rotateImages()", () => {
  it("is the identity at 0° and 360°", () => {
    const img = Float32Array.from({ length: 2 * 784 }, (_, i) => (i % 97) / 96);
    assert.deepEqual(rotateImages(img, 0), img);
    const full = rotateImages(img, 360);
    full.forEach((v, i) => assert.ok(Math.abs(v - img[i]) < 1e-6));
  });

  it("turns counter-clockwise as displayed: right of centre goes to the top", () => {
    const out = rotateImages(onePixel(2, 4), 90, dims5);
    assert.equal(argmax(out), 0 * 5 + 2);
    assert.equal(out.reduce((a, b) => a + b), 1);
    assert.equal(argmax(rotateImages(onePixel(2, 4), -90, dims5)), 4 * 5 + 2); // clockwise: to the bottom
  });

  it("four quarter turns give back the image exactly", () => {
    const img = Float32Array.from({ length: 784 }, (_, i) => ((i * 37) % 255) / 255);
    let x: Float32Array = img;
    for (let k = 0; k < 4; k++) x = rotateImages(x, 90);
    assert.deepEqual(x, img);
  });

  it("interpolates bilinearly and fills from outside with zeros", () => {
    const out = rotateImages(new Float32Array(25).fill(1), 45, dims5);
    assert.equal(out[12], 1); // the centre maps to itself
    assert.ok(Math.abs(out[2 * 5 + 3] - 1) < 1e-6); // samples (2 + √½, 2 + √½): all four neighbours inside
    // Corner (0, 0) samples column 2 at row 2 − 2√2 ≈ −0.83: weight 3 − 2√2 on row 0, the rest on zeros.
    assert.ok(Math.abs(out[0] - (3 - 2 * Math.SQRT2)) < 1e-6, `got ${out[0]}`);
    const big = rotateImages(new Float32Array(49).fill(1), 45, { height: 7, width: 7 });
    assert.equal(big[0], 0); // row 3 − 3√2 ≈ −1.24: both neighbours outside
  });

  it("does not mutate its input and checks the size", () => {
    const img = onePixel(2, 4);
    rotateImages(img, 30, dims5);
    assert.deepEqual(img, onePixel(2, 4));
    assert.throws(() => rotateImages(new Float32Array(10), 30), ShapeError);
  });
});

describe("data.invertImages()", () => {
  it("maps x to 1 − x", () => {
    assert.deepEqual(Array.from(invertImages(Float32Array.from([0, 0.25, 1]))), [1, 0.75, 0]);
  });
});

describe("data.selectLabels()", () => {
  const set = {
    images: Float32Array.from([0, 0, 1, 1, 2, 2, 3, 3]),
    labels: Int32Array.from([7, 3, 5, 3]),
    n: 4,
  };

  it("keeps matching examples in order", () => {
    const s = selectLabels(set, [3, 5]);
    assert.deepEqual([Array.from(s.images), Array.from(s.labels), s.n], [[1, 1, 2, 2, 3, 3], [3, 5, 3], 3]);
  });

  it("relabels to positions in `keep` when asked", () => {
    assert.deepEqual(Array.from(selectLabels(set, [5, 7, 3], { relabel: true }).labels), [1, 2, 0, 2]);
  });
});
