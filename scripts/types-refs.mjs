// After tsc: the published dist/src/index.d.ts references lib esnext.float16, which jax-js's types (re-exported as
// `jax`) need for Float16Array. Not in the source: our own compile keeps its lib (ES2023), whose typed arrays jax-js's
// stricter float16-era signatures would reject. Idempotent.
import * as fs from "node:fs";

const file = new URL("../dist/src/index.d.ts", import.meta.url);
const ref = '/// <reference lib="esnext.float16" />\n';
const text = fs.readFileSync(file, "utf8");
if (!text.startsWith(ref)) {
  const tmp = new URL(`../dist/src/index.d.ts.tmp-${process.pid}`, import.meta.url);
  fs.writeFileSync(tmp, ref + text);
  fs.renameSync(tmp, file);
}
