/**
 * Device choice: wasm by default and after importing the engine; WebGPU only through initDevice, with one clear
 * error when there is none; random inits give the same bits on every device (drawn in float64, rounded on the host).
 * The WebGPU half runs in a child process, because Dawn finds Chromium's software Vulkan driver only through
 * LD_LIBRARY_PATH, which a process reads when it starts; it is skipped, saying why, where no adapter can be found.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { runOnNodeWebGpu } from "./node-webgpu.js";
import { np, initDevice, currentDevice, fromDraws, jaxDType } from "../src/engine/index.js";
import { selectDevice } from "../src/node/device.js";
import { ConfigError } from "../src/errors.js";
import { boftInit } from "../src/methods/boft/layer.js";

test("device: wasm after import, initDevice('wasm') keeps it, unknown names are a ConfigError", async () => {
  assert.equal(currentDevice(), "wasm");
  assert.equal(await initDevice("wasm"), "wasm");
  await assert.rejects(initDevice("gpu" as never), (e) => e instanceof ConfigError && /unknown device "gpu"/.test(e.message));
  await assert.rejects(selectDevice("cuda"), (e) => e instanceof ConfigError && /unknown device "cuda"/.test(e.message));
  assert.equal(jaxDType("float64"), np.float64, "float64 is fine on wasm");
});

test("device: webgpu without navigator.gpu is one clear error; auto falls back to wasm", async (t) => {
  if ((globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu) return t.skip("this runtime has navigator.gpu");
  await assert.rejects(initDevice("webgpu"), (e) => e instanceof ConfigError && /navigator\.gpu/.test(e.message) && /webgpu/.test(e.message));
  assert.equal(await initDevice("auto"), "wasm");
  assert.equal(currentDevice(), "wasm");
});

test("fromDraws: host rounding gives the bits of a float64 draw cast on the engine", () => {
  const v = Float64Array.from({ length: 257 }, (_, k) => Math.sin(k * 1.37) * 10 ** ((k % 9) - 4) + 1 / 3);
  const viaEngine = np.array(v, { dtype: np.float64 }).reshape([257]).astype(np.float32).dataSync();
  const viaHost = fromDraws(v, [257], "float32");
  assert.equal(viaHost.dtype, np.float32);
  assert.deepEqual(Array.from(viaHost.dataSync()), Array.from(viaEngine));
  const f64 = fromDraws(v, [1, 257], "float64");
  assert.deepEqual(f64.shape, [1, 257]);
  assert.deepEqual(Array.from(f64.dataSync()), Array.from(v));
});

test("device: Node on WebGPU (optional `webgpu` package): float64 refused clearly, float32 init draws equal wasm's", async (t) => {
  const dist = join(process.cwd(), "dist", "src");
  const r = runOnNodeWebGpu(`
    import { selectDevice } from ${JSON.stringify(join(dist, "node", "device.js"))};
    import { currentDevice, toHostAsync, fromDraws } from ${JSON.stringify(join(dist, "engine", "index.js"))};
    import { boftInit } from ${JSON.stringify(join(dist, "methods", "boft", "layer.js"))};
    try { await selectDevice("webgpu"); } catch (e) { console.error(e.message); process.exit(3); }
    let f64 = "accepted";
    try { fromDraws(new Float64Array(2), [2], "float64"); } catch (e) { f64 = e.constructor.name + ": " + e.message; }
    let k = 0;
    const p = boftInit({ kind: "linear", n: 8, out: 8, nFactors: 2, blockNum: 2, blockSize: 4 }, { initWeights: false, normal: () => Math.sin(++k) });
    const R = await toHostAsync(p.boft_R);
    console.log(JSON.stringify({ device: currentDevice(), f64, R: Array.from(R.data) }));
    process.exit(0);
  `);
  if ("skip" in r) return t.skip(r.skip);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split("\n").pop()!);
  assert.equal(out.device, "webgpu");
  assert.match(out.f64, /^ConfigError: float64 is not available on WebGPU/);
  let k = 0;
  const want = boftInit({ kind: "linear", n: 8, out: 8, nFactors: 2, blockNum: 2, blockSize: 4 }, { initWeights: false, normal: () => Math.sin(++k) });
  assert.deepEqual(out.R, Array.from(want.boft_R.dataSync()));
});
