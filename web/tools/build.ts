/**
 * Builds the web app into dist-web/: the page and its training worker bundled by esbuild (one copy of jax-js, in the
 * worker), index.html, and the bundled model assets/brown-lm. Any static host can serve the folder, given the headers
 * in web/tools/headers.ts. Run after `npm run build` (the page imports the built `boft` entry).
 */
import { build } from "esbuild";
import { cpSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { HEADERS } from "./headers.js";

/** Where the app is written (the repository's dist-web/ unless given). */
export async function buildWeb(out = resolve("dist-web")): Promise<{ out: string; bytes: Record<string, number> }> {
  const root = resolve(".");
  // Written next to the target and renamed into place, so a failed build leaves the previous one.
  const tmp = `${out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    await build({
      entryPoints: { main: join(root, "web", "main.ts"), worker: join(root, "web", "worker.ts") },
      outdir: tmp,
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      minify: true,
      sourcemap: true,
      legalComments: "linked",
      logLevel: "warning",
      // The package's own name resolves to its built entry (dist/src/index.js), as an installed `boft` would.
      alias: { boft: join(root, "dist", "src", "index.js") },
    });
    for (const f of ["index.html", "style.css"]) cpSync(join(root, "web", f), join(tmp, f));
    cpSync(join(root, "assets", "brown-lm"), join(tmp, "models", "brown-lm"), { recursive: true });
    writeFileSync(join(tmp, "_headers"), `/*\n${Object.entries(HEADERS).map(([k, v]) => `  ${k}: ${v}`).join("\n")}\n`);
    rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const bytes: Record<string, number> = {};
  for (const f of readdirSync(out)) if (f.endsWith(".js")) bytes[f] = statSync(join(out, f)).size;
  return { out, bytes };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { out, bytes } = await buildWeb(process.argv[2] ? resolve(process.argv[2]) : undefined);
  const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;
  console.log(`web app → ${out} (${Object.entries(bytes).map(([f, n]) => `${f} ${kib(n)}`).join(", ")})`);
}
