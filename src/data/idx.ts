/**
 * The IDX file format of MNIST (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS"): bytes → host arrays.
 *
 * Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then each
 * dimension as a big-endian uint32; the data follows, row-major. Pure and browser-clean: a page can
 * fetch the four files and call decodeMnist; src/node/data/mnist.ts reads them from disk.
 */
import { ConfigError, FormatError } from "../errors.js";
import type { LabelledImages } from "./vision.js";

const UBYTE = 0x08;

/** A parsed IDX header. */
export type IdxHeader = {
  /** Sizes of each dimension, e.g. [60000, 28, 28]. */
  dims: number[];
  /** Offset of the first data byte (4 + 4·ndims). */
  headerBytes: number;
};

/**
 * Parses and checks the header of an unsigned-byte IDX file with `ndims` dimensions.
 * `bytes` needs only the first 4 + 4·ndims bytes; `fileSize` is the whole file's length.
 * Throws FormatError, naming `what`, on a wrong magic number or a size that does not match the dims.
 */
export function parseIdxHeader(bytes: Uint8Array, fileSize: number, ndims: number, what: string): IdxHeader {
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes || fileSize < headerBytes) {
    throw new FormatError(`${what}: file is ${fileSize} bytes, too short for an IDX header (${headerBytes} bytes)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, headerBytes);
  const magic = view.getUint32(0, false);
  const expected = (UBYTE << 8) | ndims;
  if (magic !== expected) {
    throw new FormatError(
      `${what}: bad IDX magic number 0x${magic.toString(16).padStart(8, "0")}, expected 0x${expected.toString(16).padStart(8, "0")} ` +
        `(unsigned bytes, ${ndims} dims). Is this an uncompressed MNIST file?`,
    );
  }
  const dims = Array.from({ length: ndims }, (_, i) => view.getUint32(4 + 4 * i, false));
  const dataBytes = dims.reduce((a, b) => a * b, 1);
  if (fileSize !== headerBytes + dataBytes) {
    throw new FormatError(
      `${what}: header declares dims [${dims}] = ${dataBytes} data bytes after a ${headerBytes}-byte header, ` +
        `but the file is ${fileSize} bytes (expected ${headerBytes + dataBytes}). The file is truncated or corrupt.`,
    );
  }
  return { dims, headerBytes };
}

/** Checks that an image header and a label header describe the same MNIST set; returns the example count. */
export function checkMnistPair(images: IdxHeader, labels: IdxHeader, what: string): number {
  const [n, rows, cols] = images.dims;
  if (rows !== 28 || cols !== 28) {
    throw new FormatError(`${what}: images are ${rows}×${cols}, expected 28×28 MNIST digits`);
  }
  if (labels.dims[0] !== n) {
    throw new FormatError(`${what}: ${n} images but ${labels.dims[0]} labels; the files are from different sets`);
  }
  return n;
}

/** How many of `n` examples to keep; `limit` undefined keeps all. */
export function resolveLimit(n: number, limit: number | undefined, where: string): number {
  if (limit === undefined) return n;
  if (!Number.isInteger(limit) || limit < 0) {
    throw new ConfigError(`${where}: limit must be a non-negative integer (limit=${limit})`);
  }
  return Math.min(n, limit);
}

/** Pixel bytes [n·784] → floats in [0, 1]; label bytes [n] → Int32Array, each checked to be a digit. */
export function toLabelledImages(pixels: Uint8Array, labelBytes: Uint8Array, n: number, what: string): LabelledImages {
  const images = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) images[i] = pixels[i] / 255;
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    if (labelBytes[i] > 9) throw new FormatError(`${what}: label ${labelBytes[i]} at index ${i} is not a digit 0–9`);
    labels[i] = labelBytes[i];
  }
  return { images, labels, n };
}

/**
 * Decodes a whole MNIST images file and labels file (uncompressed IDX bytes) into
 * images [n, 784] scaled to [0, 1] and labels [n], keeping the first `limit` examples.
 */
export function decodeMnist(imageFile: Uint8Array, labelFile: Uint8Array, opts: { limit?: number } = {}): LabelledImages {
  const { limit } = opts;
  const ih = parseIdxHeader(imageFile, imageFile.length, 3, "decodeMnist: images");
  const lh = parseIdxHeader(labelFile, labelFile.length, 1, "decodeMnist: labels");
  const n = resolveLimit(checkMnistPair(ih, lh, "decodeMnist"), limit, "decodeMnist");
  const pixels = imageFile.subarray(ih.headerBytes, ih.headerBytes + n * 784);
  return toLabelledImages(pixels, labelFile.subarray(lh.headerBytes, lh.headerBytes + n), n, "decodeMnist: labels");
}
