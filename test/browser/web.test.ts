/**
 * The web app in a real Chromium (dist-web/, built by `npm run test:browser`):
 * - wasm: finetune the bundled brown-lm on pasted text through the page's form; the loss falls, and every step's
 *   loss equals a Node run of the same request within float32 tolerance (Chromium's wasm uses relaxed-SIMD FMA and
 *   Node 20's does not, so the last bits differ); the downloaded adapter has PEFT's files and keys, loads in Node and
 *   in `boft generate`, and reproduces the page's generation;
 * - an adapter written by `boft train` loads in the page and generates what `boft generate` does with it;
 * - WebGPU (SwiftShader, a software GPU: about 25× slower than wasm, so fewer steps): the same steps agree with wasm.
 * A screenshot of each run is saved under runs/web/.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { generate, loadCausalLm, fromPretrained, parseHeader, type Model } from "boft";
import type { TrainRequest } from "../../web/protocol.js";
import { adapterFor, trainOnText } from "../../web/recipe.js";
import { chromiumMissing, openApp, waitFor, type Session } from "./chromium.js";
import { runOnNodeWebGpu } from "../node-webgpu.js";

const RUNS = resolve("runs", "web");
const MODEL_DIR = resolve("assets", "brown-lm");
const TEXT = [
  "The lighthouse keeper climbed the stairs at dusk and lit the lamp for the ships at sea.",
  "Every night the keeper wrote the weather in a small book: wind from the west, rain, calm water.",
  "The ships passed the lighthouse in the dark, and the keeper watched their lights go by.",
].join("\n").repeat(8);

const REQUEST: TrainRequest = {
  adapterConfig: {
    peft_type: "BOFT",
    boft_block_size: 8,
    boft_block_num: 0,
    boft_n_butterfly_factor: 2,
    boft_dropout: 0,
    target_modules: ["q_proj", "v_proj"],
    bias: "none",
    init_weights: true,
  },
  text: TEXT,
  steps: 20,
  lr: 0.01,
  batchSize: 4,
  seqLen: 64,
  seed: 0,
  prompt: "The keeper ",
  maxNewTokens: 40,
};

/** Float32 agreement between the page and Node (or wasm and WebGPU): |a − b| ≤ 2e-5·max(1, |b|) (measured: under 1e-6). */
function assertClose(got: number[], want: number[], what: string): number {
  assert.equal(got.length, want.length, `${what}: ${got.length} values, want ${want.length}`);
  let worst = 0;
  for (let k = 0; k < want.length; k++) {
    const tol = 2e-5 * Math.max(1, Math.abs(want[k]));
    assert.ok(Math.abs(got[k] - want[k]) <= tol, `${what}[${k}]: ${got[k]} vs ${want[k]} (|Δ| ${Math.abs(got[k] - want[k]).toExponential(2)} > ${tol.toExponential(1)})\n got ${got.join(", ")}\nwant ${want.join(", ")}`);
    worst = Math.max(worst, Math.abs(got[k] - want[k]));
  }
  return worst;
}

async function modelFiles(): Promise<Model> {
  const files: Record<string, Uint8Array> = {};
  for (const f of readdirSync(MODEL_DIR)) files[f] = new Uint8Array(readFileSync(join(MODEL_DIR, f)));
  return loadCausalLm(files);
}

async function nodeGenerate(m: Parameters<typeof generate>[0], r: TrainRequest): Promise<string> {
  let text = r.prompt;
  for await (const t of generate(m, r.prompt, { maxNewTokens: r.maxNewTokens, seed: r.seed })) text += t.text;
  return text;
}

/** Waits for the worker, then loads the bundled brown-lm through its button. */
async function loadBundled(s: Session): Promise<void> {
  await waitFor(s, "window.boftPage.device && window.boftPage.busy === null", 60_000, "worker ready");
  await s.page.click("#load-bundled");
  await waitFor(s, "window.boftPage.modelLoaded && window.boftPage.busy === null", 120_000, "loading brown-lm");
}

/** Fills the page's forms with `r` (as a user would type it) and trains; resolves with the page state once the generation after training is shown. */
async function trainInPage(s: Session, r: TrainRequest): Promise<PageRun> {
  await loadBundled(s);
  await s.page.evaluate((r: TrainRequest) => {
    const method = document.querySelector<HTMLInputElement>(`input[name=method][value=${r.adapterConfig.peft_type as string}]`)!;
    method.click();
    for (const [k, v] of Object.entries(r.adapterConfig)) {
      if (k === "peft_type") continue;
      const el = document.querySelector<HTMLInputElement>(`#config [name=${k}]`);
      if (!el) throw new Error(`no form field ${k}`);
      if (el.type === "checkbox") el.checked = v as boolean;
      else el.value = Array.isArray(v) ? v.join(", ") : String(v);
    }
    const set = (n: string, v: unknown) => ((document.querySelector(`#train-config [name=${n}]`) as HTMLInputElement).value = String(v));
    set("steps", r.steps);
    set("learning_rate", r.lr);
    set("batch_size", r.batchSize);
    set("seq_len", r.seqLen);
    set("seed", r.seed);
    set("prompt", r.prompt);
    set("max_new_tokens", r.maxNewTokens);
    (document.querySelector("#text") as HTMLTextAreaElement).value = r.text;
  }, r);
  await s.page.click("#train");
  await waitFor(s, "window.boftPage.errors.length || (window.boftPage.result && window.boftPage.generations.after !== undefined && window.boftPage.busy === null)", 900_000, "training in the page");
  const state = (await s.page.evaluate("window.boftPage")) as PageRun;
  assert.deepEqual(state.errors, [], "the page reported errors");
  return state;
}

interface PageRun {
  device: string;
  steps: { step: number; loss: number; tokensPerSec: number }[];
  result: { losses: number[]; stopped: boolean; secondsPerStep: number };
  generations: Record<string, string>;
  errors: string[];
  firstStepMs: number;
  adapterLoaded: string | null;
}

const missing = chromiumMissing();
let wasmRun: PageRun | null = null;

before(() => {
  mkdirSync(RUNS, { recursive: true });
});

test("wasm: the page finetunes brown-lm, and matches Node", { skip: missing ?? false, timeout: 1_200_000 }, async (t) => {
  const downloads = join(RUNS, "downloads-wasm");
  rmSync(downloads, { recursive: true, force: true });
  const s = await openApp("wasm", downloads);
  try {
    const run = await trainInPage(s, REQUEST);
    wasmRun = run;
    assert.equal(run.device, "wasm");
    const losses = run.result.losses;
    assert.equal(losses.length, REQUEST.steps);
    assert.equal(run.result.stopped, false);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(mean(losses.slice(-5)) < mean(losses.slice(0, 5)) - 0.1, `loss falls: ${losses.map((l) => l.toFixed(3)).join(" ")}`);
    assert.equal(await s.page.$eval("#device", (e) => e.textContent), "wasm · threads", "cross-origin isolated: jax-js has its threads");
    await s.page.screenshot({ path: join(RUNS, "page-wasm.png"), fullPage: true });

    // The same request in Node, through the same public API and recipe.
    const model = await modelFiles();
    const peft = adapterFor(model, REQUEST);
    const nodeLosses: number[] = [];
    for await (const e of trainOnText(peft, REQUEST)) if (e.kind === "step") nodeLosses.push(e.loss);
    t.diagnostic(`page vs Node: largest loss difference ${assertClose(losses, nodeLosses, "page vs Node loss").toExponential(2)} over ${losses.length} steps`);
    assert.equal(run.generations.after, await nodeGenerate(peft, REQUEST), "the page's generation after training is Node's");
    assert.notEqual(run.generations.after, run.generations.before, "training changed the generation");

    // Download: PEFT's two files, loadable in Node and by the CLI, reproducing the page's generation.
    await s.page.click("#download-adapter");
    const files = ["adapter_config.json", "adapter_model.safetensors"].map((f) => join(downloads, f));
    await waitForFiles(files, 30_000);
    const config = JSON.parse(readFileSync(files[0], "utf8"));
    assert.equal(config.peft_type, "BOFT");
    assert.equal(config.boft_block_size, 8);
    assert.equal(config.boft_n_butterfly_factor, 2);
    assert.deepEqual([...config.target_modules].sort(), ["q_proj", "v_proj"]);
    const weights = new Uint8Array(readFileSync(files[1]));
    const keys = parseHeader(weights, weights.byteLength, files[1]).tensors.map((t) => t.name).sort();
    const want = [];
    for (let l = 0; l < 4; l++) for (const p of ["q_proj", "v_proj"]) for (const t of ["boft_R", "boft_s"]) want.push(`base_model.model.model.layers.${l}.self_attn.${p}.${t}`);
    assert.deepEqual(keys, want.sort(), "PEFT's keys");
    const loaded = await fromPretrained(model, { "adapter_config.json": readFileSync(files[0], "utf8"), "adapter_model.safetensors": weights });
    assert.equal(await nodeGenerate(loaded, REQUEST), run.generations.after, "the downloaded adapter reproduces the page's generation in Node");
    const cli = spawnSync(process.execPath, ["bin/boft.js", "generate", "--model", MODEL_DIR, "--adapter", downloads, "--prompt", REQUEST.prompt, "--max-new-tokens", String(REQUEST.maxNewTokens)], { encoding: "utf8" });
    assert.equal(cli.status, 0, cli.stderr);
    // boft generate prints the continuation only.
    assert.equal(REQUEST.prompt + cli.stdout.trimEnd(), run.generations.after.trimEnd(), "boft generate with the downloaded adapter");
  } finally {
    await s.close();
  }
});

test("picked model files; an adapter written by `boft train` loads in the page, generates what `boft generate` does, and merges; Stop", { skip: missing ?? false, timeout: 900_000 }, async () => {
  const dir = join(RUNS, "cli-train");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "train.txt"), TEXT);
  const run = {
    model: { hf: MODEL_DIR },
    data: { kind: "text", path: join(dir, "train.txt"), seqLen: 64, batchSize: 4 },
    method: { peft_type: "LORA", r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj"] },
    train: { steps: 3, lr: 0.01, seed: 0 },
    output: join(dir, "out"),
  };
  writeFileSync(join(dir, "run.json"), JSON.stringify(run));
  const train = spawnSync(process.execPath, ["bin/boft.js", "train", "--config", join(dir, "run.json")], { encoding: "utf8" });
  assert.equal(train.status, 0, train.stderr);
  const adapterDir = join(dir, "out", "adapter");
  const prompt = "The keeper ";
  const cli = spawnSync(process.execPath, ["bin/boft.js", "generate", "--model", MODEL_DIR, "--adapter", adapterDir, "--prompt", prompt, "--max-new-tokens", "30"], { encoding: "utf8" });
  assert.equal(cli.status, 0, cli.stderr);
  const downloads = join(RUNS, "downloads-cli");
  rmSync(downloads, { recursive: true, force: true });
  const s = await openApp("wasm", downloads);
  try {
    // The model as a user picks its files (the file-picker path, not the bundled copy).
    await waitFor(s, "window.boftPage.device && window.boftPage.busy === null", 60_000, "worker ready");
    const picker = await s.page.$("#model-files");
    await (picker as unknown as { uploadFile(...p: string[]): Promise<void> }).uploadFile(...readdirSync(MODEL_DIR).map((f) => join(MODEL_DIR, f)));
    await waitFor(s, "window.boftPage.modelLoaded && window.boftPage.busy === null", 120_000, "loading the picked files");
    const input = await s.page.$("#adapter-files");
    await (input as unknown as { uploadFile(...p: string[]): Promise<void> }).uploadFile(join(adapterDir, "adapter_config.json"), join(adapterDir, "adapter_model.safetensors"));
    await waitFor(s, "window.boftPage.adapterLoaded && window.boftPage.busy === null", 60_000, "loading the adapter");
    assert.match(await s.page.$eval("#files-info", (e) => e.textContent ?? ""), /^Loaded adapter: LORA on picked files, 7,168 parameters$/);
    await s.page.evaluate((p: string) => {
      (document.querySelector("#train-config [name=prompt]") as HTMLInputElement).value = p;
      (document.querySelector("#train-config [name=max_new_tokens]") as HTMLInputElement).value = "30";
      (document.querySelector("#train-config [name=seed]") as HTMLInputElement).value = "0";
    }, prompt);
    await s.page.click("#generate");
    const text = await waitFor<string>(s, "window.boftPage.busy === null && window.boftPage.generations.again", 120_000, "generating with the adapter");
    assert.equal(text.trimEnd(), prompt + cli.stdout.trimEnd());

    // The merged model: the base model's files with merged weights, which generate as the adapter did.
    await s.page.click("#download-merged");
    await waitForFiles(["model.safetensors", "config.json", "tokenizer.json"].map((f) => join(downloads, f)), 30_000);
    await waitFor(s, "window.boftPage.busy === null", 30_000, "saving the merged model");
    const merged = spawnSync(process.execPath, ["bin/boft.js", "generate", "--model", downloads, "--prompt", prompt, "--max-new-tokens", "30"], { encoding: "utf8" });
    assert.equal(merged.status, 0, merged.stderr);
    assert.equal(prompt + merged.stdout.trimEnd(), text.trimEnd(), "the merged model generates as the adapter did");

    // Stop: a long run ends after the step in progress, and says so.
    await s.page.evaluate(() => {
      (document.querySelector("#train-config [name=steps]") as HTMLInputElement).value = "500";
      (document.querySelector("#text") as HTMLTextAreaElement).value = "stop me, stop me, stop me. ".repeat(40);
      (document.querySelector("#train-config [name=max_new_tokens]") as HTMLInputElement).value = "5";
    });
    await s.page.click("#train");
    await waitFor(s, "window.boftPage.steps.length >= 2", 120_000, "training to start");
    await s.page.click("#stop");
    await waitFor(s, "window.boftPage.result && window.boftPage.busy === null", 120_000, "stopping");
    const stopped = (await s.page.evaluate("window.boftPage.result")) as PageRun["result"];
    assert.equal(stopped.stopped, true);
    assert.ok(stopped.losses.length >= 2 && stopped.losses.length < 500, `stopped after ${stopped.losses.length} steps`);
    assert.match(await s.page.$eval("#stats", (e) => e.textContent ?? ""), /stopped$/);
  } finally {
    await s.close();
  }
});

async function waitForFiles(files: string[], ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!files.every((f) => existsSync(f))) {
    if (Date.now() > until) throw new Error(`downloads did not arrive: ${files.filter((f) => !existsSync(f)).join(", ")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("WebGPU (SwiftShader): the same steps agree with wasm", { skip: missing ?? false, timeout: 1_200_000 }, async (t) => {
  if (!wasmRun) return t.skip("the wasm run did not complete");
  const steps = 3;
  const s = await openApp("webgpu", join(RUNS, "downloads-webgpu"));
  try {
    const device = await waitFor<string>(s, "window.boftPage.device || (window.boftPage.errors.length && 'error')", 60_000, "worker ready");
    if (device !== "webgpu") return t.skip(`Chromium gave no WebGPU adapter here (${device})`);
    const run = await trainInPage(s, { ...REQUEST, steps, maxNewTokens: 8 });
    assert.equal(run.device, "webgpu");
    assert.equal(await s.page.$eval("#device", (e) => e.textContent), "WebGPU");
    // A shorter run has another learning-rate schedule, so compare with a wasm run of the same length in Node.
    const model = await modelFiles();
    const peft = adapterFor(model, { ...REQUEST, steps });
    const want: number[] = [];
    for await (const e of trainOnText(peft, { ...REQUEST, steps })) if (e.kind === "step") want.push(e.loss);
    t.diagnostic(`WebGPU vs wasm: largest loss difference ${assertClose(run.result.losses, want, "WebGPU vs wasm loss").toExponential(2)}`);
    assert.equal(run.generations.after, await nodeGenerate(peft, { ...REQUEST, maxNewTokens: 8 }), "WebGPU generation equals wasm's");
    await s.page.screenshot({ path: join(RUNS, "page-webgpu.png"), fullPage: true });
    writeFileSync(join(RUNS, "webgpu.json"), JSON.stringify({ losses: run.result.losses, secondsPerStep: run.result.secondsPerStep, firstStepMs: run.firstStepMs }, null, 2));
  } finally {
    await s.close();
  }
});

after(() => {
  if (wasmRun) writeFileSync(join(RUNS, "wasm.json"), JSON.stringify({ losses: wasmRun.result.losses, secondsPerStep: wasmRun.result.secondsPerStep, firstStepMs: wasmRun.firstStepMs, tokensPerSec: wasmRun.steps.at(-1)?.tokensPerSec }, null, 2));
});

test("Node on WebGPU (optional `webgpu` package): the same steps agree with wasm", { timeout: 900_000 }, async (t) => {
  const steps = 2;
  const r = { ...REQUEST, steps, maxNewTokens: 4 };
  const dist = resolve("dist");
  const child = runOnNodeWebGpu(`
    import { readdirSync, readFileSync } from "node:fs";
    import { join } from "node:path";
    import { init, loadCausalLm } from "boft/node";
    import { adapterFor, trainOnText } from ${JSON.stringify(join(dist, "web", "recipe.js"))};
    try { await init({ device: "webgpu" }); } catch (e) { console.error(e.message); process.exit(3); }
    const files = {};
    for (const f of readdirSync(${JSON.stringify(MODEL_DIR)})) files[f] = readFileSync(join(${JSON.stringify(MODEL_DIR)}, f));
    const r = ${JSON.stringify(r)};
    const peft = adapterFor(await loadCausalLm(files), r);
    const losses = [];
    for await (const e of trainOnText(peft, r)) if (e.kind === "step") losses.push(e.loss);
    console.log(JSON.stringify({ losses }));
    process.exit(0);
  `);
  if ("skip" in child) return t.skip(child.skip);
  assert.equal(child.status, 0, child.stderr);
  const got = JSON.parse(child.stdout.trim().split("\n").pop()!).losses as number[];
  const model = await modelFiles();
  const want: number[] = [];
  for await (const e of trainOnText(adapterFor(model, r), r)) if (e.kind === "step") want.push(e.loss);
  t.diagnostic(`Node WebGPU vs wasm: largest loss difference ${assertClose(got, want, "Node WebGPU vs wasm loss").toExponential(2)}`);
});
