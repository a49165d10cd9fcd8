/**
 * Every export of the public entries (`boft`, `boft/node`, `boft/preload`) carries a doc comment, as a consumer's
 * editor shows it: read from the built declaration files with TypeScript's checker, following re-exports to the
 * declaration they name. A comment on the re-export itself also counts (e.g. `jax`, whose declaration is jax-js's).
 * Namespace exports (`errors`, `experiments`, `layers`) are walked too: their members are public as well.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as nodePath from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const DIST_SRC = nodePath.join(nodePath.dirname(fileURLToPath(import.meta.url)), "..", "src");
export const ENTRIES = { boft: "index.d.ts", "boft/node": "node/index.d.ts", "boft/preload": "node/preload.d.ts" };

function hasDoc(s: ts.Symbol, checker: ts.TypeChecker): boolean {
  if (s.getDocumentationComment(checker).some((p) => p.text.trim() !== "")) return true;
  // A declaration whose comment holds only tags (@example, @deprecated …) is documented too.
  return (s.declarations ?? []).some((d) => ts.getJSDocCommentsAndTags(d).length > 0);
}

/**
 * A comment on the export statement itself, when the statement exports this one name: `/** … *\/ export * as ns from
 * "…"` or `/** … *\/ export { jax }`. (A comment above `export { a, b, c }` documents none of them.)
 */
function hasExportSiteDoc(exp: ts.Symbol): boolean {
  return (exp.declarations ?? []).some((d) => {
    const statement = ts.isNamespaceExport(d) ? d.parent : ts.isExportSpecifier(d) && d.parent.elements.length === 1 ? d.parent.parent : null;
    return statement !== null && ts.getJSDocCommentsAndTags(statement).length > 0;
  });
}
const isInside = (dir: string, file: string) => !nodePath.relative(dir, file).startsWith("..");

/** Exports of `entries` without a doc comment, as "entry: name" (namespace members as "entry: ns.member"). */
export function undocumentedExports(distSrc: string, entries: Record<string, string>): string[] {
  const files = Object.values(entries).map((f) => nodePath.join(distSrc, f));
  const program = ts.createProgram(files, { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, noEmit: true, types: [] });
  const checker = program.getTypeChecker();
  const missing: string[] = [];
  const visit = (entry: string, exports: ts.Symbol[], prefix: string, seen: Set<ts.Symbol>) => {
    for (const exp of exports) {
      const name = prefix + exp.getName();
      const target = exp.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exp) : exp;
      if (!hasDoc(exp, checker) && !hasExportSiteDoc(exp) && !hasDoc(target, checker)) missing.push(`${entry}: ${name}`);
      // `export * as ns from "./x.js"`: the module's own exports are public under ns. A namespace from another
      // package (`jax`) is that package's to document.
      const isModule = target.flags & ts.SymbolFlags.ValueModule && target.declarations?.some((d) => ts.isSourceFile(d) && isInside(distSrc, d.fileName));
      if (isModule && !seen.has(target)) visit(entry, checker.getExportsOfModule(target), `${name}.`, new Set([...seen, target]));
    }
  };
  for (const [entry, file] of Object.entries(entries)) {
    const sf = program.getSourceFile(nodePath.join(distSrc, file));
    assert.ok(sf, `${file}: not built (run npm run build)`);
    const mod = checker.getSymbolAtLocation(sf);
    assert.ok(mod, `${file}: not a module`);
    visit(entry, checker.getExportsOfModule(mod), "", new Set([mod]));
  }
  return missing;
}

test("every export of boft, boft/node and boft/preload has a doc comment", () => {
  const missing = undocumentedExports(DIST_SRC, ENTRIES);
  assert.deepEqual(missing, [], `${missing.length} exports without a doc comment:\n  ${missing.join("\n  ")}`);
});
