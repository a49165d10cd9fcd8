/**
 * The training worker: owns the engine (the only copy of jax-js on the page), the model and its adapter, so the
 * page stays responsive while it trains. Uses the public `boft` entry only.
 */
import {
  init,
  loadCausalLm,
  generate,
  savePretrained,
  fromPretrained,
  mergeAndUnload,
  saveWeights,
  trainableParameterCount,
  type Model,
  type PeftModel,
} from "boft";
import type { Files, FromWorker, ToWorker, TrainRequest } from "./protocol.js";
import { adapterFor, requestProblems, trainOnText } from "./recipe.js";

const post = (m: FromWorker, transfer: ArrayBufferLike[] = []) => (self as unknown as Worker).postMessage(m, [...new Set(transfer)] as Transferable[]);

let model: Model | null = null;
let modelName = "";
/** The loaded model's files: a merged model is these with model.safetensors replaced. */
let modelFiles: Files = {};
let peft: PeftModel | null = null;
let stopFlag: Int32Array | null = null;
let abort: AbortController | null = null;

/** The bundled model, fetched from the app's own folder (dist-web/models/brown-lm). */
async function bundledFiles(): Promise<Files> {
  const out: Files = {};
  for (const name of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]) {
    const r = await fetch(new URL(`./models/brown-lm/${name}`, import.meta.url));
    if (!r.ok) throw new Error(`models/brown-lm/${name}: HTTP ${r.status}`);
    out[name] = new Uint8Array(await r.arrayBuffer());
  }
  return out;
}

function describe(m: Model, name: string): string {
  const c = m.config!;
  const params = Object.values(m.weightShapes).reduce((t, s) => t + s.reduce((a, b) => a * b, 1), 0);
  return `${name}: ${c.modelType ?? m.type}, ${c.numHiddenLayers} layers, hidden ${c.hiddenSize}, ${params.toLocaleString()} parameters, ${m.modules.length} adaptable modules`;
}

async function generateText(m: Model | PeftModel, prompt: string, maxNewTokens: number, seed: number): Promise<string> {
  let text = prompt;
  for await (const t of generate(m, prompt, { maxNewTokens, seed })) text += t.text;
  return text;
}

async function train(r: TrainRequest): Promise<void> {
  if (!model) throw new Error("load a model first");
  const problems = requestProblems(model, r);
  if (problems.length) throw new Error(problems.join("; "));
  const candidate = adapterFor(model, r);
  post({ type: "generation", which: "before", text: await generateText(model, r.prompt, r.maxNewTokens, r.seed) });
  post({ type: "started", trainable: trainableParameterCount(candidate) });
  abort = new AbortController();
  const losses: number[] = [];
  let stopped = false;
  let stepMs: number[] = [];
  let last = 0;
  for await (const e of trainOnText(candidate, r, abort.signal)) {
    if (e.kind === "step") {
      losses.push(e.loss);
      stepMs.push(e.elapsedMs - last);
      last = e.elapsedMs;
      // Later steps are the steady rate; the first one includes tracing and compiling.
      const recent = stepMs.slice(1).slice(-10);
      const perStep = recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : e.elapsedMs;
      post({
        type: "step",
        info: { step: e.step, steps: e.totalSteps, loss: e.loss, tokensPerSec: ((e.items ?? 0) / perStep) * 1000, elapsed: e.elapsedMs / 1000, eta: ((e.totalSteps - e.step) * perStep) / 1000 },
      });
      if (stopFlag && Atomics.load(stopFlag, 0) === 1) abort.abort();
    } else if (e.kind === "done") stopped = e.stopped ?? false;
  }
  abort = null;
  peft = candidate;
  const steady = stepMs.slice(1);
  post({ type: "trained", stopped, losses, secondsPerStep: steady.length ? steady.reduce((a, b) => a + b, 0) / steady.length / 1000 : NaN });
  post({ type: "generation", which: "after", text: await generateText(peft, r.prompt, r.maxNewTokens, r.seed) });
}

async function handle(m: ToWorker): Promise<void> {
  switch (m.type) {
    case "init": {
      if (m.stop) stopFlag = new Int32Array(m.stop);
      const { device } = await init({ device: m.device });
      const threads = device === "wasm" && typeof SharedArrayBuffer !== "undefined" && crossOriginIsolated;
      post({
        type: "ready",
        device,
        threads,
        note: device === "webgpu" ? "WebGPU: kernels run on the GPU" : threads ? "wasm with worker threads (cross-origin isolated)" : "wasm on one thread: the page is not cross-origin isolated (COOP/COEP headers missing)",
      });
      return;
    }
    case "loadModel": {
      const files = m.files === "bundled" ? await bundledFiles() : m.files;
      const loaded = await loadCausalLm(files, { nameOrPath: m.name });
      model = loaded;
      modelFiles = files;
      modelName = m.name;
      peft = null;
      post({ type: "model", summary: describe(loaded, m.name), hasTokenizer: loaded.tokenizer !== null });
      return;
    }
    case "train":
      return train(m.request);
    case "stop":
      abort?.abort();
      return;
    case "generate": {
      if (!model) throw new Error("load a model first");
      post({ type: "generation", which: "again", text: await generateText(peft ?? model, m.prompt, m.maxNewTokens, m.seed) });
      return;
    }
    case "loadAdapter": {
      if (!model) throw new Error("load the adapter's base model first");
      const loaded = await fromPretrained(model, m.files);
      peft = loaded;
      const method = Object.values(loaded.peftConfig)[0];
      post({ type: "adapterLoaded", summary: `${method.kind} on ${modelName}, ${trainableParameterCount(loaded).toLocaleString()} parameters` });
      return;
    }
    case "saveAdapter": {
      if (!peft) throw new Error("train or load an adapter first");
      const files = await savePretrained(peft);
      const out: Files = { "adapter_config.json": new TextEncoder().encode(files["adapter_config.json"]), "adapter_model.safetensors": files["adapter_model.safetensors"] };
      post({ type: "files", kind: "adapter", files: out }, Object.values(out).map((b) => b.buffer));
      return;
    }
    case "saveMerged": {
      if (!peft) throw new Error("train or load an adapter first");
      const weights = await saveWeights(mergeAndUnload(peft));
      // The base model's other files as loaded (config, tokenizer); sharded weights become the one merged file.
      const files: Files = { "model.safetensors": weights };
      for (const [name, bytes] of Object.entries(modelFiles)) {
        if (!/\.safetensors(\.index\.json)?$/.test(name)) files[name] = bytes.slice();
      }
      post({ type: "files", kind: "merged", files }, Object.values(files).map((b) => b.buffer));
      return;
    }
  }
}

// One message at a time, in order; "stop" jumps the queue, since it must reach a run in progress.
let queue: Promise<void> = Promise.resolve();
self.onmessage = (e: MessageEvent<ToWorker>) => {
  const m = e.data;
  const run = () =>
    handle(m).catch((err: unknown) => {
      abort = null;
      post({ type: "error", message: (err as Error).message ?? String(err), during: m.type });
    });
  if (m.type === "stop") void run();
  else queue = queue.then(run);
};
