/**
 * Domain shifts for image batches, as pure functions on host arrays [n, height·width] (row-major pixels).
 *
 * These make the adaptation targets of the vision demo: pretrain on upright digits, then adapt to
 * rotated, inverted or held-out-class digits. Inputs are never mutated.
 */
import { ShapeError } from "../errors.js";

export type ImageDims = {
  /** Rows per image. Default 28 (MNIST). */
  height?: number;
  /** Columns per image. Default 28 (MNIST). */
  width?: number;
};

function imageCount(where: string, images: Float32Array, height: number, width: number): number {
  const px = height * width;
  if (!(px > 0) || images.length % px !== 0) {
    throw new ShapeError(
      `${where}: images has ${images.length} values, not a multiple of height·width = ${height}·${width}. Pass the image size in opts.`,
    );
  }
  return images.length / px;
}

/**
 * Rotates every image by `degrees` counter-clockwise (as displayed, rows growing downward) about the
 * image centre, sampling bilinearly. Pixels that come from outside the source are 0.
 * @param images [n, height·width]
 * @returns [n, height·width], new array
 */
export function rotateImages(images: Float32Array, degrees: number, opts: ImageDims = {}): Float32Array {
  const { height = 28, width = 28 } = opts;
  const n = imageCount("rotateImages", images, height, width);
  const px = height * width;
  const out = new Float32Array(images.length);
  const th = (degrees * Math.PI) / 180;
  const c = Math.cos(th);
  const s = Math.sin(th);
  const cx = (width - 1) / 2;
  const cy = (height - 1) / 2;
  // Source position of each output pixel (inverse rotation), shared by every image.
  const srcX = new Float64Array(px);
  const srcY = new Float64Array(px);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const u = x - cx;
      const v = cy - y; // y up, so a positive angle turns counter-clockwise on screen
      srcX[y * width + x] = cx + (c * u + s * v);
      srcY[y * width + x] = cy - (-s * u + c * v);
    }
  }
  const at = (base: number, y: number, x: number): number =>
    x >= 0 && x < width && y >= 0 && y < height ? images[base + y * width + x] : 0;
  for (let i = 0; i < n; i++) {
    const base = i * px;
    for (let p = 0; p < px; p++) {
      // Snap values within 1e-9 of a grid point, so 90° turns are exact copies despite cos(π/2) ≠ 0.
      const fx = Math.abs(srcX[p] - Math.round(srcX[p])) < 1e-9 ? Math.round(srcX[p]) : srcX[p];
      const fy = Math.abs(srcY[p] - Math.round(srcY[p])) < 1e-9 ? Math.round(srcY[p]) : srcY[p];
      const x0 = Math.floor(fx);
      const y0 = Math.floor(fy);
      const ax = fx - x0;
      const ay = fy - y0;
      const top = (1 - ax) * at(base, y0, x0) + ax * at(base, y0, x0 + 1);
      const bottom = (1 - ax) * at(base, y0 + 1, x0) + ax * at(base, y0 + 1, x0 + 1);
      out[base + p] = (1 - ay) * top + ay * bottom;
    }
  }
  return out;
}

/** `1 − x` per pixel, for images scaled to [0, 1]. Returns a new array. */
export function invertImages(images: Float32Array): Float32Array {
  const out = new Float32Array(images.length);
  for (let i = 0; i < images.length; i++) out[i] = 1 - images[i];
  return out;
}

/** A labelled image set on the host; images [n, pixels], labels [n]. */
export type LabelledImages = {
  images: Float32Array;
  labels: Int32Array;
  n: number;
};

/**
 * The examples whose label is in `keep`, in their original order (e.g. digits 0–4 to pretrain, 5–9 to adapt).
 * With `relabel`, label k becomes its index in `keep`, so a 5-way head sees 0..4.
 */
export function selectLabels(set: LabelledImages, keep: readonly number[], opts: { relabel?: boolean } = {}): LabelledImages {
  const { relabel = false } = opts;
  const { images, labels, n } = set;
  if (labels.length !== n || images.length % Math.max(n, 1) !== 0) {
    throw new ShapeError(`selectLabels: n=${n} does not fit labels (${labels.length}) and images (${images.length} values)`);
  }
  const px = n === 0 ? 0 : images.length / n;
  const index = new Map(keep.map((k, i) => [k, i]));
  const rows: number[] = [];
  for (let i = 0; i < n; i++) if (index.has(labels[i])) rows.push(i);
  const outImages = new Float32Array(rows.length * px);
  const outLabels = new Int32Array(rows.length);
  rows.forEach((r, j) => {
    outImages.set(images.subarray(r * px, (r + 1) * px), j * px);
    outLabels[j] = relabel ? (index.get(labels[r]) as number) : labels[r];
  });
  return { images: outImages, labels: outLabels, n: rows.length };
}
