// `npm run examples`: the programs in examples/*.ts, as a user would run them: the package is packed (`npm pack`,
// whose prepack builds it), unpacked into a temporary project's node_modules beside this repository's own installed
// dependencies (linked, so nothing is downloaded), type-checked there with skipLibCheck: false, and run.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8"));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "boft-examples-"));
const run = (cmd, args, o = {}) => execFileSync(cmd, args, { stdio: "inherit", ...o });
const started = performance.now();
try {
  console.log("examples: npm pack");
  const out = execFileSync("npm", ["pack", "--silent", "--pack-destination", tmp], { cwd: repo, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const tarball = path.join(tmp, out.trim().split("\n").pop());
  const app = path.join(tmp, "app");
  const modules = path.join(app, "node_modules");
  fs.mkdirSync(path.join(modules, "boft"), { recursive: true });
  run("tar", ["xzf", tarball, "-C", path.join(modules, "boft"), "--strip-components=1"]);
  // The package's runtime dependencies, plus what compiling TypeScript needs, from this repository's node_modules.
  for (const dep of [...Object.keys(pkg.dependencies), ...Object.keys(pkg.optionalDependencies ?? {}), "typescript", "@types/node"]) {
    const from = path.join(repo, "node_modules", dep);
    if (!fs.existsSync(from)) continue; // an optional dependency that is not installed
    fs.mkdirSync(path.dirname(path.join(modules, dep)), { recursive: true });
    fs.symlinkSync(from, path.join(modules, dep), "dir");
  }
  fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "boft-examples", private: true, type: "module" }, null, 2));
  const tsconfig = (o, include) => JSON.stringify({ compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", lib: ["ES2022", "DOM"], strict: true, ...o }, include }, null, 2);
  // The published types, as a consumer with skipLibCheck: false sees them: "boft" alone, with no Node types (it is
  // browser-clean), then the examples (llama-folder.ts imports boft/node and boft/preload) with @types/node, also
  // with skipLibCheck: false, so a declaration error anywhere in the package's types fails here.
  fs.mkdirSync(path.join(app, "types"));
  fs.writeFileSync(
    path.join(app, "types", "check.ts"),
    'import { init, jax, defineModel, getPeftModel, finetune, savePretrained, type HostTensor, type TrainEvent, type PeftModel } from "boft";\n' +
      "export const used = [init, jax, defineModel, getPeftModel, finetune, savePretrained];\n" +
      "export type Used = [HostTensor, TrainEvent, PeftModel];\n",
  );
  fs.writeFileSync(path.join(app, "tsconfig.types.json"), tsconfig({ types: [], skipLibCheck: false, noEmit: true }, ["types"]));
  fs.writeFileSync(path.join(app, "tsconfig.json"), tsconfig({ types: ["node"], skipLibCheck: false, outDir: "out", rootDir: "src" }, ["src"]));
  const examples = fs.readdirSync(path.join(repo, "examples")).filter((f) => f.endsWith(".ts")).sort();
  fs.mkdirSync(path.join(app, "src"));
  for (const f of examples) fs.copyFileSync(path.join(repo, "examples", f), path.join(app, "src", f));
  const tsc = path.join(modules, "typescript", "bin", "tsc");
  console.log("examples: tsc on boft's published types (strict, skipLibCheck: false)");
  run(process.execPath, [tsc, "-p", path.join(app, "tsconfig.types.json")]);
  console.log(`examples: tsc on ${examples.join(", ")} (strict, skipLibCheck: false, with boft/node's types)`);
  run(process.execPath, [tsc, "-p", app]);
  const args = { "llama-folder.ts": [path.join(repo, "assets", "brown-lm"), path.join(tmp, "adapter")] };
  for (const f of examples) {
    console.log(`\nexamples: ${f}`);
    const t0 = performance.now();
    run(process.execPath, [path.join(app, "out", f.replace(/\.ts$/, ".js")), ...(args[f] ?? [])], { cwd: app });
    console.log(`examples: ${f} passed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  console.log(`\nexamples: ${examples.length} passed from ${path.basename(tarball)} in ${((performance.now() - started) / 1000).toFixed(0)} s`);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
