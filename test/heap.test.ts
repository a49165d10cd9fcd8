/**
 * The wasm heap pre-sizing (src/node/heap.ts), in child processes: it acts on the first WebAssembly.Memory built
 * after it, which is jax-js's, at import time.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

const heapUrl = new URL("../src/node/heap.js", import.meta.url).href;
const engineUrl = new URL("../src/engine/index.js", import.meta.url).href;

/** Child: records every WebAssembly.Memory descriptor, pre-sizes, loads the engine, computes, builds one more memory. */
const CHILD = `
const Real = WebAssembly.Memory;
const seen = [];
const refuseAbove = Number(process.env.REFUSE_ABOVE_PAGES ?? Infinity); // stands in for a system that will not commit it
WebAssembly.Memory = class Recorder extends Real {
  constructor(d) {
    if ((d.initial ?? 0) > refuseAbove) throw new RangeError("WebAssembly.Memory(): could not allocate memory");
    super(d);
    seen.push({ initial: d.initial ?? 0, pages: this.buffer.byteLength / 65536 });
  }
};
const { presizeHeap } = await import(${JSON.stringify(heapUrl)});
const gib = presizeHeap();
const { np } = await import(${JSON.stringify(engineUrl)});
const out = Array.from(await np.ones([4]).mul(2).add(1).data());
new WebAssembly.Memory({ initial: 1 });
let late = null;
try { presizeHeap(); } catch (e) { late = e.message; }
process.stdout.write(JSON.stringify({ gib, seen, out, late, rss: Math.round(process.memoryUsage().rss / 2 ** 20) }));
`;

function runChild(env: Record<string, string>) {
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", CHILD], { env: { ...process.env, BOFT_HEAP_GIB: "", ...env }, encoding: "utf8", timeout: 60_000 });
  return { status: r.status, stderr: r.stderr, out: r.status === 0 ? (JSON.parse(r.stdout) as { gib: number; seen: { initial: number; pages: number }[]; out: number[]; late: string | null; rss: number }) : null };
}

test("jax-js's heap is created at 4 GiB by default, without the RSS of it; later memories are untouched", () => {
  const { out } = runChild({});
  assert.ok(out);
  assert.equal(out.gib, 4);
  assert.equal(out.seen[0].initial, 65536);
  assert.equal(out.seen[0].pages, 65536);
  assert.deepEqual(out.out, [3, 3, 3, 3]);
  assert.equal(out.seen[1].initial, 1, "only jax-js's memory is pre-sized");
  assert.ok(out.rss < 1024, `4 GiB reserved, not resident: RSS ${out.rss} MiB`);
  assert.equal(out.late, null, "a second call after the first is a no-op");
});

test("BOFT_HEAP_GIB sets the size, 0 keeps jax-js's default, a bad value is an error", () => {
  assert.equal(runChild({ BOFT_HEAP_GIB: "1" }).out?.seen[0].initial, 16384);
  const off = runChild({ BOFT_HEAP_GIB: "0" }).out;
  assert.equal(off?.gib, 0);
  assert.equal(off?.seen[0].initial, 0);
  assert.match(off?.late ?? "", /must run before the engine \(jax-js\) is imported/, "too late once jax-js has built its memory");
  const bad = runChild({ BOFT_HEAP_GIB: "lots" });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /BOFT_HEAP_GIB must be a number of GiB >= 0 \(got "lots"\)/);
});

test("where the system will not commit the full heap up front, jax-js's own size is used and it still computes", () => {
  const { out } = runChild({ REFUSE_ABOVE_PAGES: "1000" });
  assert.ok(out);
  assert.equal(out.seen[0].initial, 0);
  assert.deepEqual(out.out, [3, 3, 3, 3]);
  assert.match(out.late ?? "", /must run before the engine/, "not pre-sized: a later call does not pretend it was");
});
