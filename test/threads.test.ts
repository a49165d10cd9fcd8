/**
 * The worker-thread shim (src/node/threads.ts) in child processes, so that a hang is caught by a
 * timeout and the shim never leaks into other tests: jax-js decides about threads at import time.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

const threadsUrl = new URL("../src/node/threads.js", import.meta.url).href;
const engineUrl = new URL("../src/engine/index.js", import.meta.url).href;

/** Child: threads per BOFT_THREADS (read by installThreads), a matmul read async and sync, then exit. */
const CHILD = `
import { createHash } from "node:crypto";
import { installThreads, threadCount, threadStats, shutdownThreads } from ${JSON.stringify(threadsUrl)};
installThreads({ threads: 2 });
const { np } = await import(${JSON.stringify(engineUrl)});
const M = 256, K = 384, N = 320;
let s = 12345;
const rnd = (n) => Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1);
const a = np.array(rnd(M * K)).reshape([M, K]);
const b = np.array(rnd(K * N)).reshape([K, N]);
const hex = (f) => createHash("sha256").update(new Uint8Array(f.buffer, f.byteOffset, f.byteLength)).digest("hex");
const before = threadStats().messagesPerWorker;
const asyncOut = await np.matmul(a.ref, b.ref).mul(0.5).add(1).data();
const after = threadStats().messagesPerWorker;
const syncOut = np.matmul(a, b).mul(0.5).add(1).dataSync();
const beforeTiny = threadStats().messagesPerWorker;
await np.array(new Float32Array([1, 2, 3, 4])).mul(3).add(1).data();
const tiny = threadStats().messagesPerWorker.map((m, i) => m - (beforeTiny[i] ?? 0));
// Few outputs (2,048, split in two chunks of 1,024) but each a sum of 2,048 values: small by size, slow by time.
const red = np.array(rnd(2048 * 2048)).reshape([2048, 2048]);
await red.ref.sum(0).data();
const beforeReduce = threadStats().messagesPerWorker;
const reduceOut = await red.ref.sum(0).data();
const reduce = threadStats().messagesPerWorker.map((m, i) => m - (beforeReduce[i] ?? 0));
const reduceSync = red.sum(0).dataSync();
if (process.env.CHILD_SHUTDOWN === "1") await shutdownThreads();
process.stdout.write(JSON.stringify({
  threads: threadCount(),
  used: after.map((m, i) => m - (before[i] ?? 0)),
  tiny,
  reduce,
  reduceAsync: hex(reduceOut),
  reduceSync: hex(reduceSync),
  async: hex(asyncOut),
  sync: hex(syncOut),
  sample: [asyncOut[0], asyncOut[M * N - 1]],
}));
`;

interface ChildOut {
  threads: number;
  used: number[];
  /** Messages per worker for tiny elementwise kernels. */
  tiny: number[];
  /** Messages per worker for the second run of a slow reduction with few outputs. */
  reduce: number[];
  reduceAsync: string;
  reduceSync: string;
  /** sha256 of the result bytes */
  async: string;
  sync: string;
  sample: number[];
}

function runChild(env: Record<string, string>): ChildOut {
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", CHILD], {
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
  assert.equal(r.error, undefined, `child failed to run or timed out (hang?): ${r.error?.message}\n${r.stderr}`);
  assert.equal(r.signal, null, `child killed by ${r.signal}\n${r.stderr}`);
  assert.equal(r.status, 0, `child exited with ${r.status}\n${r.stderr}`);
  return JSON.parse(r.stdout) as ChildOut;
}

test("2 worker threads: matmul bitwise equal to single-threaded, both workers used, process exits by itself", () => {
  const single = runChild({ BOFT_THREADS: "off" });
  assert.equal(single.threads, 0);
  assert.deepEqual(single.used, []);
  assert.equal(single.async, single.sync);
  assert.ok(single.sample.every(Number.isFinite));

  const multi = runChild({ BOFT_THREADS: "2" });
  assert.equal(multi.threads, 2);
  assert.equal(multi.used.length, 2);
  // Each worker gets one "init" message, then one message per kernel chunk it runs.
  assert.ok(multi.used.every((m) => m >= 2), `both workers should run kernel chunks, got ${JSON.stringify(multi.used)}`);
  assert.equal(multi.async, single.async, "threaded result must be bitwise equal to the single-threaded one");
  assert.equal(multi.sync, single.async, "sync read with threads installed runs on the main thread, same bits");
  // Worker 0 is the main thread; a kernel too small to split never makes the round trip to the other thread.
  assert.ok(multi.tiny[0] >= 1 && multi.tiny[1] === 0, `tiny kernels should run on the main thread only, got ${JSON.stringify(multi.tiny)}`);
  // A kernel with few outputs that was slow on the main thread the first time sends its second chunk to the thread.
  assert.ok(multi.reduce[0] >= 1 && multi.reduce[1] >= 1, `a slow reduction should use both threads, got ${JSON.stringify(multi.reduce)}`);
  assert.equal(multi.reduceAsync, single.reduceAsync, "threaded reduction must be bitwise equal to the single-threaded one");
  assert.equal(multi.reduceSync, single.reduceAsync);
});

test("shutdownThreads() ends the workers and the process exits 0", () => {
  const out = runChild({ BOFT_THREADS: "2", CHILD_SHUTDOWN: "1" });
  assert.equal(out.threads, 2);
  assert.ok(out.used.every((m) => m >= 2));
});
