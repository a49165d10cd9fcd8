#!/usr/bin/env node
/**
 * Applies boft's patches to the installed @jax-js/jax. npm runs it after every install (package.json
 * `postinstall`), in this repository and wherever the boft package is installed.
 *
 * Why: upstream cannot be reached from where boft is developed, and the fixes are to generated wasm kernels that
 * boft cannot reach from outside. docs/engine-notes.md describes each patch, ready to send upstream.
 *
 * The patches are `patches/jax-js/*.patch`, applied in name order. Each is a unified diff against the package's
 * root, preceded by one `sha256 <file> <before> <after>` line per file it changes: the file must be exactly
 * `before` (as published in the pinned version, or as the previous patch left it) or already `after`. Anything else
 * stops the install with one line naming the file, because a patch to code we have not read is not a fix.
 * Files are written temp + rename, and only after every patch has applied cleanly in memory.
 *
 * Usage: node scripts/patch-jax.mjs [--check]
 *   --check  change nothing; exit 1 unless every patch is applied.
 * BOFT_SKIP_JAX_PATCH=1 skips patching (boft then runs unpatched: same results, slower).
 */
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, renameSync, writeFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** The only version the patches were written for (package.json pins it exactly). */
export const JAX_VERSION = "0.1.25";
const PATCH_DIR = fileURLToPath(new URL("../patches/jax-js/", import.meta.url));

const sha256 = (text) => createHash("sha256").update(text, "utf8").digest("hex");

class PatchError extends Error {}

/** The installed @jax-js/jax's directory, as boft's own imports resolve it. */
export function jaxPackageDir() {
  const entry = createRequire(import.meta.url).resolve("@jax-js/jax");
  return dirname(dirname(entry));
}

/** Parses one patch file: its per-file hashes and hunks. */
function parsePatch(name, text) {
  const files = new Map();
  // A checkout that turned the patch's line ends into CRLF must not change what it says.
  const lines = text.split("\n").map((l) => l.replace(/\r$/, ""));
  let current = null;
  let hunk = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const hash = /^sha256 (\S+) ([0-9a-f]{64}) ([0-9a-f]{64})$/.exec(line);
    if (hash && current === null) {
      files.set(hash[1], { path: hash[1], before: hash[2], after: hash[3], hunks: [] });
      continue;
    }
    if (line.startsWith("--- ")) {
      const next = lines[i + 1] ?? "";
      const path = /^\+\+\+ b\/(\S+)/.exec(next)?.[1];
      if (!path || !files.has(path)) throw new PatchError(`${name}: diff of ${path ?? "?"} has no sha256 line`);
      current = files.get(path);
      hunk = null;
      i++;
      continue;
    }
    const at = /^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@/.exec(line);
    if (at) {
      if (!current) throw new PatchError(`${name}: hunk before any file header`);
      hunk = { start: Number(at[1]), old: [], new: [] };
      current.hunks.push(hunk);
      continue;
    }
    if (!hunk || line.startsWith("\\")) continue;
    const body = line.slice(1);
    if (line.startsWith(" ")) hunk.old.push(body), hunk.new.push(body);
    else if (line.startsWith("-")) hunk.old.push(body);
    else if (line.startsWith("+")) hunk.new.push(body);
    else if (line === "" && i === lines.length - 1) continue;
    else throw new PatchError(`${name}: unexpected line ${i + 1} in a hunk`);
  }
  for (const f of files.values()) if (f.hunks.length === 0) throw new PatchError(`${name}: no hunks for ${f.path}`);
  if (files.size === 0) throw new PatchError(`${name}: no sha256 lines`);
  return { name, files: [...files.values()] };
}

/** Applies hunks exactly where they say (the before-hash already pinned the text, so no fuzz). */
function applyHunks(name, file, text) {
  const lines = text.split("\n");
  let shift = 0;
  for (const h of file.hunks) {
    const at = h.start - 1 + shift;
    for (let j = 0; j < h.old.length; j++) {
      if (lines[at + j] !== h.old[j]) throw new PatchError(`${name}: ${file.path} line ${at + j + 1} does not match`);
    }
    lines.splice(at, h.old.length, ...h.new);
    shift += h.new.length - h.old.length;
  }
  return lines.join("\n");
}

/**
 * Plans every patch against the installed files. Returns each patch's status ("applied" or "pending") and the new
 * contents of the files that need writing. Throws PatchError on any unexpected content.
 */
export function planPatches(pkgDir = jaxPackageDir()) {
  const version = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")).version;
  if (version !== JAX_VERSION) {
    throw new PatchError(`@jax-js/jax is ${version} at ${pkgDir}; boft's patches are for ${JAX_VERSION} only`);
  }
  const names = readdirSync(PATCH_DIR).filter((f) => f.endsWith(".patch")).sort();
  if (names.length === 0) throw new PatchError(`no patches in ${PATCH_DIR}`);
  const patches = names.map((name) => parsePatch(name, readFileSync(join(PATCH_DIR, name), "utf8")));
  const contents = new Map();
  const changed = new Set();
  const statuses = [];
  for (const [i, patch] of patches.entries()) {
    const { name } = patch;
    let pending = false;
    for (const file of patch.files) {
      if (!contents.has(file.path)) contents.set(file.path, readFileSync(join(pkgDir, file.path), "utf8"));
      const text = contents.get(file.path);
      const hash = sha256(text);
      // This patch or a later one already left the file as it is.
      const later = patches.slice(i).flatMap((p) => p.files.filter((f) => f.path === file.path).map((f) => f.after));
      if (later.includes(hash)) continue;
      if (hash !== file.before) {
        throw new PatchError(
          `@jax-js/jax ${file.path} has unexpected content (sha256 ${hash}); ${name} expects ${file.before} ` +
            `(${JAX_VERSION} as published, or as the previous patch left it) or ${file.after} (already patched). ` +
            `Reinstall @jax-js/jax ${JAX_VERSION}, or set BOFT_SKIP_JAX_PATCH=1 to run unpatched`,
        );
      }
      const next = applyHunks(name, file, text);
      if (sha256(next) !== file.after) throw new PatchError(`${name}: ${file.path} patched to unexpected content`);
      contents.set(file.path, next);
      changed.add(file.path);
      pending = true;
    }
    statuses.push({ name, status: pending ? "pending" : "applied" });
  }
  return { pkgDir, statuses, writes: [...changed].map((path) => ({ path, text: contents.get(path) })) };
}

function main(argv) {
  if (process.env.BOFT_SKIP_JAX_PATCH === "1" && !argv.includes("--check")) {
    console.log("boft: BOFT_SKIP_JAX_PATCH=1, @jax-js/jax left unpatched");
    return 0;
  }
  try {
    const { pkgDir, statuses, writes } = planPatches();
    if (argv.includes("--check")) {
      for (const s of statuses) console.log(`${s.status} ${s.name}`);
      return statuses.every((s) => s.status === "applied") ? 0 : 1;
    }
    for (const { path, text } of writes) {
      const target = join(pkgDir, path);
      const tmp = `${target}.boft-${process.pid}.tmp`;
      try {
        writeFileSync(tmp, text);
        renameSync(tmp, target);
      } finally {
        rmSync(tmp, { force: true });
      }
    }
    const pending = statuses.filter((s) => s.status === "pending").map((s) => s.name);
    console.log(
      pending.length > 0
        ? `boft: patched @jax-js/jax ${JAX_VERSION} (${pending.join(", ")})`
        : `boft: @jax-js/jax ${JAX_VERSION} already patched`,
    );
    return 0;
  } catch (err) {
    if (!(err instanceof PatchError) && !(err && err.code)) throw err;
    console.error(`boft: cannot patch @jax-js/jax: ${err.message}`);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.exitCode = main(process.argv.slice(2));
