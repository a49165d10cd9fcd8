/**
 * assets/brown-lm's tokenizer.json, read through the Hugging Face tokenizer path (@huggingface/tokenizers), gives the
 * ids of src/data/text.ts, the vocabulary the model was pretrained on, for every kind of character.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { folderFiles } from "../src/node/hf-model.js";
import { loadHfTokenizer } from "../src/models/hf-load.js";
import { charTokenizerJson, charTokenizerConfig } from "../src/data/char-tokenizer.js";
import { encode, decode, VOCAB_SIZE, UNK_ID } from "../src/data/text.js";
import { rng } from "../src/data/rng.js";

const BROWN_LM = nodePath.join(process.cwd(), "assets", "brown-lm");
const tok = loadHfTokenizer(folderFiles(BROWN_LM));

function sameIds(text: string): void {
  const want = Array.from(encode(text));
  const got = tok.encode(text);
  assert.equal(got.length, want.length, `${JSON.stringify(text.slice(0, 40))}: ${got.length} ids vs text.ts ${want.length}`);
  for (let i = 0; i < want.length; i++) assert.equal(got[i], want[i], `id ${i} of ${JSON.stringify(text.slice(0, 40))} (code unit ${text.charCodeAt(i)})`);
  assert.equal(tok.decode(got), decode(want));
}

describe("assets/brown-lm tokenizer.json", () => {
  it("is what `npm run pretrain -- tokenizer` writes from the vocabulary (not stale)", () => {
    assert.deepEqual(JSON.parse(fs.readFileSync(nodePath.join(BROWN_LM, "tokenizer.json"), "utf8")), charTokenizerJson());
    assert.deepEqual(JSON.parse(fs.readFileSync(nodePath.join(BROWN_LM, "tokenizer_config.json"), "utf8")), charTokenizerConfig());
    assert.equal(tok.size, VOCAB_SIZE);
  });

  it("gives text.ts's ids on varied text: ASCII, spacing, tabs, CR, accents, CJK, emoji, U+FFFD, lone surrogates", () => {
    sameIds("The jury said \"no\" .  It's 3 ? x ! y , z 'm n't\n\nend~ {a|b} [c]\\d ` ^_");
    sameIds("\ttab\tand\r\nCRLF\rCR \f\v\u0000\u007f\u0085\u00a0");
    sameIds("naïve café — résumé “quotes” ‘single’ … 日本語 Ελληνικά");
    sameIds("emoji 😀👍🏽 and math 𝔸 and \uFFFD replacement");
    sameIds("lone \ud800 high, lone \udc00 low, swapped \udc00\ud800, end\ud83d");
    sameIds("");
    // Space-before-punctuation must survive decode (clean_up_tokenization_spaces is off).
    assert.equal(tok.decode(tok.encode("a . b , c ! d ?")), "a . b , c ! d ?");
  });

  it("gives text.ts's ids on 20,000 random code units drawn across the whole UTF-16 range", () => {
    const r = rng(7);
    const units: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      const pick = r.nextInt(4);
      // Mostly in-vocabulary text, with control characters, BMP characters and surrogates (paired or not).
      units.push(pick === 0 ? 32 + r.nextInt(95) : pick === 1 ? r.nextInt(128) : pick === 2 ? r.nextInt(0x10000) : 0xd800 + r.nextInt(0x800));
    }
    const text = String.fromCharCode(...units);
    sameIds(text);
    const ids = Array.from(encode(text));
    assert.ok(ids.filter((id) => id === UNK_ID).length > 1000 && ids.filter((id) => id !== UNK_ID).length > 7000, "both kinds are exercised");
  });
});
