import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, FormatError } from "../src/errors.js";
import { brownFileToText, detokenize, parseCats, stripTag } from "../src/data/brown.js";
import { encode, UNK_ID } from "../src/data/text.js";
import { loadBrown } from "../src/node/data/brown.js";

const GENRES = [
  "news", "editorial", "reviews", "religion", "hobbies", "lore", "belles_lettres", "government",
  "learned", "fiction", "mystery", "science_fiction", "adventure", "romance", "humor",
];

describe("data.brownFileToText()", () => {
  it("strips tags and attaches punctuation and quotes", () => {
    const tagged = "\n\n\tThe/at jury/nn said/vbd ``/`` no/at ''/'' ,/, 1/2/cd (/( ok/jj )/) ./.\n\n\n\tIt/pps ended/vbd ./.\n";
    assert.equal(brownFileToText(tagged), 'The jury said "no", 1/2 (ok). It ended.');
  });

  it("starts a new line at a paragraph break (three or more blank lines)", () => {
    assert.equal(brownFileToText("\tA/at ./.\n\n\n\n\tB/at ./.\n\n\tC/at ./."), "A.\nB. C.");
  });

  it("keeps slashes inside words", () => {
    assert.equal(stripTag("and/or/cc"), "and/or");
    assert.equal(detokenize(["(", "a", ")", "b", "!"]), "(a) b!");
  });

  it("collapses the corpus's doubled ; ? ! :", () => {
    assert.equal(detokenize(["June", ";", ";", "or", "why", "?", "?"]), "June; or why?");
  });
});

describe("data.parseCats()", () => {
  it("rejects malformed lines", () => {
    assert.throws(() => parseCats("ca01 news\nca02\n"), (e: unknown) => e instanceof FormatError && /line 2/.test(e.message));
  });
});

describe("node.loadBrown()", () => {
  it("finds the 15 genres of cats.txt, in order, over 500 files", async () => {
    const c = await loadBrown({ genres: ["humor"] });
    assert.equal(c.files.length, 500);
    assert.equal(c.files[0].file, "ca01");
    const all = await loadBrown();
    assert.deepEqual(all.genres, GENRES);
  });

  it("gives non-empty tag-free ASCII text for every genre", async () => {
    const c = await loadBrown();
    for (const g of c.genres) {
      const t = c.text[g];
      assert.ok(t.length > 50_000, `${g}: ${t.length} chars`);
      assert.ok(!/\/(at|nn|vbd|in)\b/.test(t.slice(0, 5000)), `${g} still has tags`);
      assert.ok(!encode(t).includes(UNK_ID), `${g} has characters outside the vocabulary`);
    }
    assert.ok(c.text.news.startsWith("The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election"));
    const total = Object.values(c.text).reduce((a, t) => a + t.length, 0);
    assert.ok(total > 5_000_000 && total < 7_000_000, `total ${total}`);
  });

  it("filters genres and rejects unknown ones", async () => {
    const c = await loadBrown({ genres: ["romance", "news"] });
    assert.deepEqual(c.genres, ["news", "romance"]);
    assert.deepEqual(Object.keys(c.text), ["news", "romance"]);
    await assert.rejects(loadBrown({ genres: ["poetry"] }), (e: unknown) => e instanceof ConfigError && /poetry/.test(e.message));
  });
});
