/** README.md points only at files inside the repository, and those files exist (a reader of the package has no more). */
import { it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";

it("every path README.md names (links and `code` paths) is inside the repository and exists", () => {
  const root = process.cwd();
  const text = fs.readFileSync(path.join(root, "README.md"), "utf8");
  const links = [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]).filter((l) => !/^[a-z]+:/.test(l) && !l.startsWith("#"));
  const code = [...text.matchAll(/`([^`\s]+)`/g)].map((m) => m[1]).filter((c) => /^(\.{1,2}\/|\/)/.test(c) || /^(src|test|examples|assets|scripts|cli|bench|docs|web|patches)\/[\w./-]*$/.test(c));
  const named = [...new Set([...links, ...code].map((p) => p.replace(/[#:§].*$/, "")))];
  assert.ok(named.length > 5, `found ${named.length} paths`);
  for (const p of named) {
    const abs = path.resolve(root, p);
    assert.ok(abs === root || abs.startsWith(root + path.sep), `README.md names ${p}, outside the repository`);
    assert.ok(fs.existsSync(abs), `README.md names ${p}, which does not exist`);
  }
});
