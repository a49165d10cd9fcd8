/**
 * The page: forms, file pickers, the loss chart and downloads. It holds no engine (jax-js runs in web/worker.ts), so
 * it stays responsive while a model trains. `window.boftPage` exposes its state to the browser tests.
 */
import type { Files, FromWorker, StepInfo, ToWorker, TrainRequest } from "./protocol.js";
import { drawLossChart } from "./chart.js";

type Field = { name: string; kind: "int" | "float" | "bool" | "list" | "choice"; value: number | boolean | string; choices?: string[] };

/** PEFT's config fields per method, with defaults that fit the bundled brown-lm (hidden 128, MLP 352). */
const FIELDS: Record<"BOFT" | "OFT" | "LORA", Field[]> = {
  BOFT: [
    { name: "boft_block_size", kind: "int", value: 8 },
    { name: "boft_block_num", kind: "int", value: 0 },
    { name: "boft_n_butterfly_factor", kind: "int", value: 2 },
    { name: "boft_dropout", kind: "float", value: 0 },
    { name: "target_modules", kind: "list", value: "q_proj, v_proj" },
    { name: "bias", kind: "choice", value: "none", choices: ["none", "boft_only", "all"] },
    { name: "init_weights", kind: "bool", value: true },
  ],
  OFT: [
    { name: "r", kind: "int", value: 0 },
    { name: "oft_block_size", kind: "int", value: 16 },
    { name: "coft", kind: "bool", value: false },
    { name: "eps", kind: "float", value: 6e-5 },
    { name: "block_share", kind: "bool", value: false },
    { name: "use_cayley_neumann", kind: "bool", value: true },
    { name: "num_cayley_neumann_terms", kind: "int", value: 5 },
    { name: "module_dropout", kind: "float", value: 0 },
    { name: "target_modules", kind: "list", value: "q_proj, v_proj" },
    { name: "bias", kind: "choice", value: "none", choices: ["none", "oft_only", "all"] },
    { name: "init_weights", kind: "bool", value: true },
  ],
  LORA: [
    { name: "r", kind: "int", value: 8 },
    { name: "lora_alpha", kind: "int", value: 16 },
    { name: "lora_dropout", kind: "float", value: 0 },
    { name: "use_rslora", kind: "bool", value: false },
    { name: "target_modules", kind: "list", value: "q_proj, v_proj" },
    { name: "bias", kind: "choice", value: "none", choices: ["none", "lora_only", "all"] },
    { name: "init_lora_weights", kind: "bool", value: true },
  ],
};

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/** What the browser tests read back. */
interface PageState {
  device: string | null;
  modelLoaded: boolean;
  busy: string | null;
  steps: StepInfo[];
  result: (FromWorker & { type: "trained" }) | null;
  generations: Record<string, string>;
  errors: string[];
  adapterLoaded: string | null;
  firstStepMs: number | null;
}
const state: PageState = { device: null, modelLoaded: false, busy: null, steps: [], result: null, generations: {}, errors: [], adapterLoaded: null, firstStepMs: null };
(window as unknown as { boftPage: PageState }).boftPage = state;

const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
// Stop is a flag the worker reads between steps; shared memory reaches it even while a step keeps it busy.
const stopFlag = typeof SharedArrayBuffer !== "undefined" && crossOriginIsolated ? new SharedArrayBuffer(4) : undefined;
// Picked files are moved, not copied, to the worker (a set: two views of one buffer move it once).
const send = (m: ToWorker, transfer: ArrayBufferLike[] = []) => worker.postMessage(m, [...new Set(transfer)] as Transferable[]);

function method(): "BOFT" | "OFT" | "LORA" {
  return (document.querySelector<HTMLInputElement>("input[name=method]:checked")?.value ?? "BOFT") as "BOFT" | "OFT" | "LORA";
}

function renderConfigForm(): void {
  const form = $("config");
  form.replaceChildren();
  for (const f of FIELDS[method()]) {
    const label = document.createElement("label");
    let input: HTMLInputElement | HTMLSelectElement;
    if (f.kind === "choice") {
      input = document.createElement("select");
      for (const c of f.choices!) input.append(new Option(c, c, c === f.value, c === f.value));
    } else {
      input = document.createElement("input");
      if (f.kind === "bool") {
        input.type = "checkbox";
        input.checked = f.value as boolean;
        label.className = "check";
      } else {
        input.type = f.kind === "list" ? "text" : "number";
        if (f.kind === "float") input.step = "any";
        input.value = String(f.value);
      }
    }
    input.name = f.name;
    if (f.kind === "bool") label.append(input, f.name);
    else label.append(f.name, input);
    form.append(label);
  }
}

/** The form as an adapter_config.json body (PEFT's names), so the worker reads it exactly as a saved one. */
function adapterConfig(): Record<string, unknown> {
  const out: Record<string, unknown> = { peft_type: method() };
  for (const f of FIELDS[method()]) {
    const el = $("config").querySelector<HTMLInputElement>(`[name=${f.name}]`)!;
    if (f.kind === "bool") out[f.name] = el.checked;
    else if (f.kind === "int" || f.kind === "float") out[f.name] = Number(el.value);
    else if (f.kind === "list") {
      const items = el.value.split(",").map((s) => s.trim()).filter(Boolean);
      out[f.name] = items.length ? items : null;
    } else out[f.name] = el.value;
  }
  return out;
}

function trainRequest(): TrainRequest {
  const v = (n: string) => ($("train-config").querySelector<HTMLInputElement>(`[name=${n}]`)!).value;
  return {
    adapterConfig: adapterConfig(),
    text: ($("text") as HTMLTextAreaElement).value,
    steps: Number(v("steps")),
    lr: Number(v("learning_rate")),
    batchSize: Number(v("batch_size")),
    seqLen: Number(v("seq_len")),
    seed: Number(v("seed")),
    prompt: v("prompt"),
    maxNewTokens: Number(v("max_new_tokens")),
  };
}

function setBusy(what: string | null): void {
  state.busy = what;
  const idle = what === null;
  for (const id of ["load-bundled", "generate", "download-adapter", "download-merged"]) ($(id) as HTMLButtonElement).disabled = !idle;
  ($("train") as HTMLButtonElement).disabled = !idle || !state.modelLoaded;
  ($("generate") as HTMLButtonElement).disabled = !idle || !state.modelLoaded;
  ($("download-adapter") as HTMLButtonElement).disabled = !idle || !(state.result || state.adapterLoaded);
  ($("download-merged") as HTMLButtonElement).disabled = !idle || !(state.result || state.adapterLoaded);
  ($("stop") as HTMLButtonElement).disabled = what !== "training";
  for (const id of ["model-dir", "model-files", "adapter-files", "adapter-dir"]) ($(id) as HTMLInputElement).disabled = !idle;
}

function showError(message: string): void {
  state.errors.push(message);
  const el = $("error");
  el.hidden = false;
  el.textContent = message;
}

const fmtTime = (s: number) => (s < 90 ? `${s.toFixed(0)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`);

function onStep(info: StepInfo): void {
  state.steps.push(info);
  $("bar").style.width = `${(100 * info.step) / info.steps}%`;
  $("stats").textContent = `step ${info.step}/${info.steps} · loss ${info.loss.toFixed(4)} · ${info.tokensPerSec.toFixed(0)} tokens/s · ${fmtTime(info.elapsed)} elapsed · ETA ${fmtTime(info.eta)}`;
  drawLossChart($("chart") as unknown as SVGSVGElement, state.steps.map((s) => [s.step, s.loss]), info.steps);
}

function download(name: string, bytes: Uint8Array): void {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>]));
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

worker.onmessage = (e: MessageEvent<FromWorker>) => {
  const m = e.data;
  switch (m.type) {
    case "ready": {
      state.device = m.device;
      const badge = $("device");
      badge.dataset.state = m.device;
      badge.textContent = `${m.device === "webgpu" ? "WebGPU" : "wasm"}${m.device === "wasm" ? (m.threads ? " · threads" : " · one thread") : ""}`;
      badge.title = m.note;
      setBusy(null);
      return;
    }
    case "model":
      state.modelLoaded = true;
      $("model-info").textContent = m.summary + (m.hasTokenizer ? "" : " — no tokenizer.json: training and generation need one.");
      setBusy(null);
      return;
    case "generation":
      state.generations[m.which] = m.text;
      $(m.which === "before" ? "gen-before" : "gen-after").textContent = m.text;
      if (m.which !== "before") setBusy(null);
      return;
    case "started":
      $("stats").textContent = `training ${m.trainable.toLocaleString()} parameters…`;
      return;
    case "step":
      // From the click to the first finished step: tokenizing, the generation before, tracing and compiling included.
      if (state.firstStepMs === null) state.firstStepMs = performance.now() - trainClickedAt;
      onStep(m.info);
      return;
    case "trained":
      state.result = m;
      $("stats").textContent += m.stopped ? " · stopped" : " · done";
      return;
    case "adapterLoaded":
      state.adapterLoaded = m.summary;
      $("files-info").textContent = `Loaded adapter: ${m.summary}`;
      setBusy(null);
      return;
    case "files":
      for (const [name, bytes] of Object.entries(m.files)) download(name, bytes);
      $("files-info").textContent = `Saved ${Object.keys(m.files).join(", ")}`;
      setBusy(null);
      return;
    case "error":
      showError(`${m.during}: ${m.message}`);
      setBusy(null);
      return;
  }
};

async function readPicked(list: FileList | null): Promise<Files> {
  const files: Files = {};
  for (const f of Array.from(list ?? [])) {
    // A picked folder gives "folder/config.json"; the model wants bare names (subfolders are not part of a model).
    const path = (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name;
    if (path.split("/").length > 2) continue;
    files[f.name] = new Uint8Array(await f.arrayBuffer());
  }
  return files;
}

function start(what: string, m: ToWorker, transfer: ArrayBufferLike[] = []): void {
  $("error").hidden = true;
  setBusy(what);
  send(m, transfer);
}

$("load-bundled").onclick = () => start("loading", { type: "loadModel", files: "bundled", name: "brown-lm" });
for (const id of ["model-dir", "model-files"]) {
  $(id).onchange = async (e) => {
    const input = e.target as HTMLInputElement;
    const files = await readPicked(input.files);
    const first = input.files?.[0] as (File & { webkitRelativePath?: string }) | undefined;
    const name = first?.webkitRelativePath?.split("/")[0] || "picked files";
    input.value = "";
    start("loading", { type: "loadModel", files, name }, Object.values(files).map((b) => b.buffer));
  };
}
for (const id of ["adapter-files", "adapter-dir"]) {
  $(id).onchange = async (e) => {
    const input = e.target as HTMLInputElement;
    const files = await readPicked(input.files);
    input.value = "";
    start("loading adapter", { type: "loadAdapter", files }, Object.values(files).map((b) => b.buffer));
  };
}
$("text-file").onchange = async (e) => {
  const f = (e.target as HTMLInputElement).files?.[0];
  if (!f) return;
  ($("text") as HTMLTextAreaElement).value = await f.text();
  $("text-info").textContent = `${f.name}: ${f.size.toLocaleString()} bytes`;
};
document.querySelectorAll<HTMLInputElement>("input[name=method]").forEach((r) => (r.onchange = renderConfigForm));
let trainClickedAt = 0;
$("train").onclick = () => {
  trainClickedAt = performance.now();
  state.steps = [];
  state.result = null;
  state.firstStepMs = null;
  state.generations = {};
  $("gen-before").textContent = "";
  $("gen-after").textContent = "";
  if (stopFlag) new Int32Array(stopFlag)[0] = 0;
  drawLossChart($("chart") as unknown as SVGSVGElement, [], 1);
  start("training", { type: "train", request: trainRequest() });
};
$("stop").onclick = () => {
  if (stopFlag) Atomics.store(new Int32Array(stopFlag), 0, 1);
  send({ type: "stop" });
};
$("generate").onclick = () => {
  const r = trainRequest();
  start("generating", { type: "generate", prompt: r.prompt, maxNewTokens: r.maxNewTokens, seed: r.seed });
};
$("download-adapter").onclick = () => start("saving", { type: "saveAdapter" });
$("download-merged").onclick = () => start("saving", { type: "saveMerged" });

renderConfigForm();
setBusy("starting");
drawLossChart($("chart") as unknown as SVGSVGElement, [], 1);
const wanted = new URLSearchParams(location.search).get("device");
send({ type: "init", device: wanted === "wasm" || wanted === "webgpu" ? wanted : "auto", stop: stopFlag });
