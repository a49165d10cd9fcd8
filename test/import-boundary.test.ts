/**
 * One front door: the front ends (cli/, scripts/, bench/, examples/, web/) import only the package's public entries
 * ("boft", "boft/node", "boft/preload"), never src/; and `boft`'s whole import closure is browser-clean (no
 * `node:` modules, no Node-only packages).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as nodePath from "node:path";

const root = process.cwd();

function sourceFiles(dir: string): string[] {
  const abs = nodePath.join(root, dir);
  if (!fs.existsSync(abs)) return [];
  return fs.readdirSync(abs, { withFileTypes: true }).flatMap((e) => {
    const rel = nodePath.join(dir, e.name);
    if (e.isDirectory()) return e.name === "node_modules" ? [] : sourceFiles(rel);
    return /\.(ts|mts|js|mjs)$/.test(e.name) ? [rel] : [];
  });
}

/** Every module specifier a file imports, statically or dynamically (type-only imports included). */
export function specifiers(source: string): string[] {
  // Comments may quote imports (doc examples); they import nothing.
  const text = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const out: string[] = [];
  const patterns = [/\bfrom\s*["']([^"']+)["']/g, /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g, /^\s*import\s*["']([^"']+)["']/gm];
  for (const p of patterns) for (const m of text.matchAll(p)) out.push(m[1]);
  return out;
}

test("cli/, scripts/, bench/, examples/ and web/ import only boft, boft/node and boft/preload (never src/)", () => {
  const files = ["cli", "scripts", "bench", "examples", "web"].flatMap(sourceFiles);
  assert.ok(files.length > 10, `found ${files.length} front-end files`);
  const bad: string[] = [];
  for (const f of files) {
    for (const s of specifiers(fs.readFileSync(nodePath.join(root, f), "utf8"))) {
      if (/(^|\/)src\//.test(s) || (s.startsWith("boft/") && !["boft/node", "boft/preload"].includes(s))) bad.push(`${f}: ${s}`);
    }
  }
  assert.deepEqual(bad, []);
});

test("the scan sees a deep import (the check can fail)", () => {
  assert.deepEqual(specifiers('import { x } from "../src/models/adapted.js";\nconst y = await import("../../src/engine/index.js");'), ["../src/models/adapted.js", "../../src/engine/index.js"]);
});

test("boft's import closure (dist/src/index.js) loads no node: module and no Node-only file", () => {
  const seen = new Set<string>();
  const external = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const s of specifiers(fs.readFileSync(file, "utf8"))) {
      if (s.startsWith(".")) visit(nodePath.resolve(nodePath.dirname(file), s));
      else external.add(s);
    }
  };
  visit(nodePath.join(root, "dist", "src", "index.js"));
  assert.ok(seen.size > 30, `closure has ${seen.size} files`);
  const nodeOnly = [...external].filter((s) => s.startsWith("node:") || ["fs", "path", "os", "child_process", "worker_threads", "url", "util"].includes(s));
  assert.deepEqual(nodeOnly, []);
  const inNodeFolder = [...seen].filter((f) => f.includes(`${nodePath.sep}src${nodePath.sep}node${nodePath.sep}`));
  assert.deepEqual(inNodeFolder, []);
  assert.deepEqual([...external].sort(), ["@huggingface/jinja", "@huggingface/tokenizers", "@jax-js/jax", "core-js/actual/iterator/index.js"]);
});

test("the web page and its worker import boft only (the browser has no boft/node)", () => {
  const page = sourceFiles("web").filter((f) => !f.startsWith(nodePath.join("web", "tools")));
  assert.ok(page.length >= 4, `found ${page.length} page files`);
  const bad = page.flatMap((f) => specifiers(fs.readFileSync(nodePath.join(root, f), "utf8")).filter((s) => !(s === "boft" || s.startsWith("./"))).map((s) => `${f}: ${s}`));
  assert.deepEqual(bad, []);
});
