// Your own small model with BOFT: define it, wrap it, train it, save the adapter, load it into a fresh copy, merge.
// Runs in Node and in a browser (it imports only "boft").
import { init, jax, defineModel, getPeftModel, finetune, forward, savePretrained, fromPretrained, mergeAndUnload, tensor } from "boft";

await init(); // wasm; init({ device: "webgpu" }) where there is a GPU

// A 2-layer MLP as a pure function of named weights: `layer(path, x)` applies the Linear at `path` (with the adapter
// when target_modules matches it). Weights: fc1.weight [16, 8], fc1.bias [16], fc2.weight [3, 16], fc2.bias [3].
const build = () =>
  defineModel(
    {
      type: "two-layer",
      modules: [
        { path: "fc1", kind: "linear", inFeatures: 8, outFeatures: 16 },
        { path: "fc2", kind: "linear", inFeatures: 16, outFeatures: 3 },
      ],
      forward: (x, layer) => layer("fc2", jax.nn.relu(layer("fc1", x))),
    },
    { seed: 0 },
  );

// 128 points in 8 dimensions; the label is the nearest of three directions.
const n = 128;
const x = Float32Array.from({ length: n * 8 }, (_, i) => Math.sin(i * 1.7) + Math.cos(i * 0.31));
const y = Int32Array.from({ length: n }, (_, r) => {
  const s = [0, 1, 2].map((c) => x.subarray(r * 8, r * 8 + 8).reduce((t, v, j) => t + v * Math.sin(1 + 3 * c + j), 0));
  return s.indexOf(Math.max(...s));
});
const data = { inputs: tensor(x, [n, 8]), targets: tensor(y, [n], "int32") };

const peft = getPeftModel(build(), { peftType: "BOFT", blockSize: 4, nButterflyFactor: 2, targetModules: ["fc1", "fc2"] });
for await (const e of finetune(peft, data, { steps: 50, lr: 0.02, batchSize: 32 })) {
  if (e.kind === "step" && e.step % 10 === 0) console.log(`step ${e.step}: loss ${e.loss.toFixed(4)}`);
}

const files = await savePretrained(peft); // adapter_config.json + adapter_model.safetensors, as PEFT writes them
const again = await fromPretrained(build(), files);
const merged = mergeAndUnload(again); // a plain model: the rotation folded into the weights

const probe = tensor(x.subarray(0, 4 * 8), [4, 8]);
const [adapted, reloaded, plain] = [await forward(peft, probe), await forward(again, probe), await forward(merged, probe)];
const maxDiff = (a: typeof adapted, b: typeof adapted) => Math.max(...Array.from(a.data, (v, i) => Math.abs(v - b.data[i])));
console.log(`saved ${files["adapter_model.safetensors"].byteLength} bytes; reloaded = trained: ${maxDiff(reloaded, adapted) === 0}; merged differs by ${maxDiff(plain, adapted).toExponential(1)}`);
if (maxDiff(reloaded, adapted) !== 0 || maxDiff(plain, adapted) > 1e-5) throw new Error("round trip or merge changed the outputs");
