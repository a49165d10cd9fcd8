/**
 * Scale check, side by side with PyTorch, through boft's public API only (`boft`, `boft/node`, `boft/preload`): a
 * random model of SmolLM2-135M's shape (LlamaForCausalLM: hidden 576, intermediate 1536, 30 layers, 9 heads / 3 kv
 * heads, head_dim 64, vocab 49152, tied embeddings; 134.5M parameters) built with `llamaFromConfig`, timed for
 *   forward   `forward(model, ids)`: logits of B × T tokens, no adapter (a deep model runs one compiled decoder layer
 *             at a time, read asynchronously, so both cores work)
 *   train     `finetune` of a BOFT adapter from `getPeftModel` (q_proj + v_proj, b = 8, m = 2, PEFT's default targets
 *             for llama): time and CPU between its step events (the model's layer-by-layer gradient, clipping, AdamW)
 *   lora      the same with LoRA r = 8 (alpha 8) on q_proj + v_proj
 *   trainer   the BOFT step with `finetune(…, { layerwise: false })` (one compiled step over the whole model), for
 *             comparison; not in the default runs: at 30 layers it outgrows jax-js's 4 GiB heap
 *   generate  `generate` with the KV cache: a T-token prompt, then 32 new tokens
 *   cli       `boft train` on a random f32 checkpoint of that shape written with `saveWeights` in the Hugging Face
 *             layout (char tokenizer, Brown "romance" text, PEFT's default targets), as a user runs it: seconds per
 *             step from its metrics.jsonl, its peak memory
 *   full      the same command with `peft_type: "FULL"` (full finetuning, as a user runs it; at 135M it does not fit
 *             jax-js's 4 GiB heap yet, and is reported as such)
 * Each case runs in a child process (`node --import boft/preload`, with BOFT_HEAP_GIB and BOFT_THREADS as given), so
 * its peak RSS (process.resourceUsage().maxRSS) is its own. The cli and full rows have no CPU time: it is the
 * command's, a process this bench does not measure from inside.
 *
 * Not measured any more, because the public API does not expose them (the last figures are in docs/engine-notes.md
 * and the README's history): the eager forward read synchronously (`--sync`: the library reads asynchronously, so
 * that no public path needs a synchronous read) and generation with synchronous reads (`generate` is always
 * asynchronous; on wasm a token's ~1,500 small kernels cost about twice the CPU that way).
 *
 * PyTorch (bench/torch_llama.py: a straightforward Llama of the same shape, random weights; torch intra-op 1 thread
 * + OpenBLAS's own 2, this machine's fastest setting) runs the matching case right after each boft case, so the two
 * see the same machine load: forward; PEFT's BOFT (dense butterfly, as PEFT computes it; PEFT itself cannot be
 * installed here, the method is re-implemented from its source and checked against its outputs) and a structured
 * BOFT for train and cli; LoRA; full finetuning; generation with a KV cache. The table prints boft ÷ PyTorch per row.
 * Skipped, with the reason, when /usr/bin/python3 has no torch (bench/setup-torch.sh installs Debian's).
 *
 *   node dist/bench/hf-135m.js [--runs forward:1x256,train:1x256,...] [--steps 3] [--rounds 1] [--no-torch]
 *                              [--heap-gib 4]
 *
 * A run is case:BxT (batch × sequence length; for generate, T is the prompt length and 32 tokens follow). --rounds N
 * repeats every run N times, boft and PyTorch interleaved, and reports medians with the spread. jax-js's wasm heap is
 * 32-bit: a run whose live buffers pass 4 GiB fails, and is reported as such. The last line is a JSON array of the
 * results (objects with case, batch, seq, seconds, cpuSeconds, tokensPerSecond, peakRssMiB, …).
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { loadavg, tmpdir } from "node:os";
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { median } from "boft";
import { renderTable } from "../cli/table.js";

const defaults = {
  runs: ["forward:1x256", "train:1x256", "lora:1x256", "full:1x256", "generate:1x32", "cli:1x256"],
  steps: 3, // training steps per child; the first includes warm-up, the rest are timed
  rounds: 1, // every run this many times, boft and PyTorch interleaved
  torch: true,
  heapGiB: 4, // jax-js wasm heap created at this size (BOFT_HEAP_GIB of boft/preload; 0: grown on demand)
  blockSize: 8, // BOFT b: 576 = 72 blocks of 8
  nFactors: 2, // BOFT m
};

/** SmolLM2-135M's config.json (the fields a LlamaForCausalLM needs). */
const SMOLLM2_135M = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 49152,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  head_dim: 64,
  hidden_act: "silu",
  rms_norm_eps: 1e-5,
  rope_theta: 100000,
  rope_scaling: null,
  tie_word_embeddings: true,
  max_position_embeddings: 8192,
  attention_bias: false,
  mlp_bias: false,
};

type Options = typeof defaults;

function parse(argv: string[]): Options {
  const o = { ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === "--no-torch") (o.torch = false), i--;
    else if (k === "--runs") o.runs = v.split(",");
    else if (k === "--steps") o.steps = Number(v);
    else if (k === "--rounds") o.rounds = Number(v);
    else if (k === "--heap-gib") o.heapGiB = Number(v);
    else throw new Error(`hf-135m: unknown option ${k} (use --runs case:BxT,…, --steps N, --rounds N, --no-torch, --heap-gib G)`);
  }
  if (!(Number.isInteger(o.steps) && o.steps >= 2)) throw new Error(`hf-135m: --steps must be an integer ≥ 2 (one warm-up, then timed)`);
  if (!(Number.isInteger(o.rounds) && o.rounds >= 1)) throw new Error(`hf-135m: --rounds must be a positive integer`);
  return o;
}

interface Result {
  case: string;
  batch: number;
  seq: number;
  /** Wall time of one timed unit (median), and the CPU time this process used for it (user + system). */
  seconds: number;
  cpuSeconds: number;
  tokensPerSecond: number;
  peakRssMiB: number;
  afterLoadRssMiB: number;
  detail: string;
}

const MiB = (bytes: number) => Math.round(bytes / 2 ** 20);

/** A deterministic stream of token ids below `vocab`. */
function tokenStream(seed: number, vocab: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % vocab;
  };
}

/** int32 [rows, T] of random ids. */
function idsTensor(next: () => number, rows: number, T: number) {
  return { dtype: "int32" as const, shape: [rows, T], data: Int32Array.from({ length: rows * T }, next) };
}

/** CPU seconds this process has used (user + system), worker threads included. */
function cpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** The adapter_config.json body of a training case. */
function adapterOf(kind: string, o: Options): Record<string, unknown> {
  const targets = ["q_proj", "v_proj"];
  return kind === "lora"
    ? { peft_type: "LORA", r: 8, lora_alpha: 8, lora_dropout: 0, target_modules: targets }
    : { peft_type: "BOFT", boft_block_size: o.blockSize, boft_n_butterfly_factor: o.nFactors, boft_dropout: 0, target_modules: targets };
}

/** One boft case, in this (child) process; boft/preload was imported first (the command line's --import). */
async function child(kind: string, batch: number, T: number, o: Options): Promise<Result> {
  const { llamaFromConfig, getPeftModel, forward, finetune, generate, trainableParameterCount } = await import("boft");
  const { shutdownThreads } = await import("boft/preload");
  const model = llamaFromConfig(SMOLLM2_135M, { seed: 1234 });
  const afterLoad = process.memoryUsage().rss;
  const V = SMOLLM2_135M.vocab_size;
  const next = tokenStream(7, V);
  let seconds = 0;
  let cpuSeconds = 0;
  let tokens = 0;
  let detail = "134.5M parameters";

  if (kind === "forward") {
    const times: number[] = [];
    const cpus: number[] = [];
    for (let rep = 0; rep < 3; rep++) {
      const ids = idsTensor(next, batch, T);
      const t0 = performance.now();
      const c0 = cpu();
      const logits = await forward(model, ids);
      times.push((performance.now() - t0) / 1000);
      cpus.push(cpu() - c0);
      if (!Number.isFinite(logits.data[logits.data.length - 1])) throw new Error("forward produced a non-finite value");
    }
    seconds = median(times.slice(1));
    cpuSeconds = median(cpus.slice(1));
    tokens = batch * T;
    detail += `; first run ${times[0].toFixed(2)} s (includes kernel compilation); logits read back to the host`;
  } else if (kind === "train" || kind === "trainer" || kind === "lora") {
    const peft = getPeftModel(model, adapterOf(kind, o));
    const rows = Math.max(8, batch * o.steps);
    const data = { inputs: idsTensor(next, rows, T), targets: idsTensor(next, rows, T) };
    const stepTimes: number[] = [];
    const stepCpu: number[] = [];
    const losses: number[] = [];
    let [last, lastCpu] = [performance.now(), cpu()];
    const opts = { steps: o.steps, lr: 1e-3, warmupSteps: 0, batchSize: batch, ...(kind === "trainer" ? { layerwise: false } : {}) };
    for await (const e of finetune(peft, data, opts)) {
      if (e.kind !== "step") continue;
      const [now, c] = [performance.now(), cpu()];
      stepTimes.push((now - last) / 1000);
      stepCpu.push(c - lastCpu);
      [last, lastCpu] = [now, c];
      losses.push(e.loss);
    }
    seconds = median(stepTimes.slice(1));
    cpuSeconds = median(stepCpu.slice(1));
    tokens = batch * T;
    const what = kind === "lora" ? "LoRA r=8 on q_proj+v_proj" : `BOFT b=${o.blockSize} m=${o.nFactors} on q_proj+v_proj`;
    detail += `; ${what}: ${trainableParameterCount(peft)} trainable; first step ${stepTimes[0].toFixed(1)} s (CPU ${stepCpu[0].toFixed(1)} s); losses ${losses.map((l) => l.toFixed(3)).join(" ")}`;
  } else if (kind === "generate") {
    const prompt = Array.from({ length: T }, next);
    const run = async (n: number) => {
      let count = 0;
      for await (const _ of generate(model, prompt, { maxNewTokens: n, stopIds: [] })) count++;
      return count;
    };
    await run(2); // warm-up: compiles the decoding step
    const t0 = performance.now();
    const c0 = cpu();
    tokens = await run(32);
    seconds = (performance.now() - t0) / 1000;
    cpuSeconds = cpu() - c0;
    detail += `; ${tokens} tokens after a ${T}-token prompt (prefill included), batch 1, asynchronous reads`;
  } else {
    throw new Error(`hf-135m: unknown case ${kind}`);
  }
  await shutdownThreads();
  return {
    case: kind,
    batch: kind === "generate" ? 1 : batch,
    seq: T,
    seconds,
    cpuSeconds,
    tokensPerSecond: tokens / seconds,
    peakRssMiB: MiB(process.resourceUsage().maxRSS * 1024),
    afterLoadRssMiB: MiB(afterLoad),
    detail,
  };
}

/** Writes the random checkpoint folder for the cli cases once (temp + rename, so a killed bench leaves no half). */
async function checkpointFolder(root: string): Promise<string> {
  const modelDir = nodePath.join(root, "model");
  if (fs.existsSync(nodePath.join(modelDir, "model.safetensors"))) return modelDir;
  const { llamaFromConfig, saveWeights, charTokenizerJson, charTokenizerConfig } = await import("boft");
  const tmp = `${modelDir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  fs.writeFileSync(nodePath.join(tmp, "config.json"), JSON.stringify({ ...SMOLLM2_135M, torch_dtype: "float32", use_cache: true }, null, 2));
  fs.writeFileSync(nodePath.join(tmp, "tokenizer.json"), JSON.stringify(charTokenizerJson()));
  fs.writeFileSync(nodePath.join(tmp, "tokenizer_config.json"), JSON.stringify(charTokenizerConfig()));
  fs.writeFileSync(nodePath.join(tmp, "model.safetensors"), await saveWeights(llamaFromConfig(SMOLLM2_135M, { seed: 1234 })));
  fs.rmSync(modelDir, { recursive: true, force: true });
  fs.renameSync(tmp, modelDir);
  return modelDir;
}

/**
 * `boft train` itself on a folder of that shape (`cli`: BOFT with PEFT's default llama targets, q_proj and v_proj;
 * `full`: full finetuning), as a user runs it (its own preload: threads + heap); reads its metrics.jsonl (per-step
 * elapsed time) and its "peak memory" line.
 */
async function cliRun(kind: "cli" | "full", batch: number, T: number, o: Options): Promise<Result | string> {
  const { loadBrown } = await import("boft/node");
  const root = nodePath.join(tmpdir(), "boft-smollm2-135m-shape-f32");
  fs.mkdirSync(root, { recursive: true });
  const modelDir = await checkpointFolder(root);
  const dataFile = nodePath.join(root, "romance.txt");
  if (!fs.existsSync(dataFile)) fs.writeFileSync(dataFile, (await loadBrown({ genres: ["romance"] })).text.romance);
  const out = nodePath.join(root, `run-${kind}-${batch}x${T}`);
  fs.rmSync(out, { recursive: true, force: true });
  const steps = o.steps + 2;
  const method = kind === "full" ? { peft_type: "FULL" } : { peft_type: "BOFT", boft_block_size: o.blockSize, boft_n_butterfly_factor: o.nFactors };
  const runJson = {
    model: { hf: modelDir },
    data: { kind: "text", path: dataFile, seqLen: T, batchSize: batch, evalWindows: 1 },
    method,
    train: { steps, lr: 1e-3, warmupSteps: 0, evalEvery: 0 },
    output: out,
  };
  const cfgFile = nodePath.join(root, `run-${kind}-${batch}x${T}.json`);
  fs.writeFileSync(cfgFile, JSON.stringify(runJson, null, 2));
  const bin = fileURLToPath(new URL("../../bin/boft.js", import.meta.url));
  const c = spawnSync(process.execPath, [bin, "train", "--config", cfgFile], { encoding: "utf8", maxBuffer: 1 << 26, env: childEnv(o) });
  if (c.status !== 0) {
    const why = /4 GiB memory32 limit|out of memory/i.test(c.stderr) ? "out of memory: jax-js's wasm heap is limited to 4 GiB" : c.stderr.trim().split("\n").slice(-3).join(" | ");
    return `exit ${c.status}: ${why}`;
  }
  const events = fs.readFileSync(nodePath.join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { kind: string; elapsedMs?: number });
  const elapsed = events.filter((e) => e.kind === "step").map((e) => e.elapsedMs!);
  const perStep = elapsed.slice(2).map((t, i) => t - elapsed[i + 1]); // steps 3.., after compilation and warm-up
  const seconds = median(perStep) / 1000;
  const peak = /peak memory (\d+) MiB/.exec(c.stdout);
  fs.rmSync(out, { recursive: true, force: true }); // a full run's output holds a 540 MB model
  return {
    case: kind,
    batch,
    seq: T,
    seconds,
    cpuSeconds: NaN,
    tokensPerSecond: (batch * T) / seconds,
    peakRssMiB: peak ? Number(peak[1]) : NaN,
    afterLoadRssMiB: NaN,
    detail: `boft train, ${steps} steps (first ${(elapsed[0] / 1000).toFixed(1)} s incl. compile), ${kind === "full" ? "full finetuning" : `BOFT q_proj+v_proj b=${o.blockSize} m=${o.nFactors}`}`,
  };
}

/** The children's environment: boft/preload's heap size as asked, threads as this process was given them. */
function childEnv(o: Options): NodeJS.ProcessEnv {
  return { ...process.env, BOFT_HEAP_GIB: String(o.heapGiB) };
}

/** One PyTorch timing (bench/torch_llama.py's output). */
interface TorchResult {
  case: string;
  seconds: number;
  times: number[];
  cpu_seconds: number;
  tokens_per_second: number;
  peak_rss_mib: number;
  torch_version: string;
  blas: string;
  threads: { torch_intra_op: number; openblas: number | null };
}

const PYTHON = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
const TORCH_SCRIPT = fileURLToPath(new URL("../../bench/torch_llama.py", import.meta.url));

/** PyTorch's counterparts of a boft case. */
const TORCH_CASES: Record<string, string[]> = {
  forward: ["forward"],
  train: ["boft_dense", "boft_structured"],
  cli: ["boft_dense"],
  trainer: ["boft_dense"],
  lora: ["lora"],
  full: ["full"],
  generate: ["generate"],
};

/** Runs one PyTorch case; a string says why it did not run. */
function torchRun(kind: string, batch: number, T: number, o: Options): TorchResult | string {
  const c = spawnSync(PYTHON, [TORCH_SCRIPT, "--case", kind, "--batch", String(batch), "--seq", String(T), "--steps", String(o.steps)], {
    encoding: "utf8",
    timeout: 10 * 60_000,
  });
  const line = (c.stdout ?? "").trim().split("\n").pop() ?? "";
  try {
    const r = JSON.parse(line) as TorchResult & { available: boolean; reason?: string };
    if (r.available === false) return `${PYTHON} has no usable torch (${r.reason ?? "unknown"}); bench/setup-torch.sh installs it`;
    return r;
  } catch {
    return `${PYTHON} bench/torch_llama.py --case ${kind} failed: ${(c.error?.message ?? c.stderr ?? "").trim().split("\n").pop() || `exit ${c.status}`}`;
  }
}

/** Runs one boft case in a child process (or `boft train` for cli); a string says why it failed. */
async function boftRun(kind: string, batch: number, T: number, o: Options): Promise<Result | string> {
  if (kind === "cli" || kind === "full") return cliRun(kind, batch, T, o);
  const c = spawnSync(process.execPath, ["--import", "boft/preload", fileURLToPath(import.meta.url), "--child", kind, String(batch), String(T), JSON.stringify(o)], {
    encoding: "utf8",
    maxBuffer: 1 << 24,
    env: childEnv(o),
  });
  if (c.status !== 0) {
    const why = /4 GiB memory32 limit/.test(c.stderr) ? "out of memory: jax-js's wasm heap is limited to 4 GiB" : c.stderr.trim().split("\n").slice(-3).join(" | ");
    return `exit ${c.status}: ${why}`;
  }
  return JSON.parse(c.stdout.trim().split("\n").pop()!) as Result;
}

const spread = (xs: number[]) => (xs.length > 1 ? ` (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})` : "");
const fmt = (xs: number[]) => `${median(xs).toFixed(2)} s${spread(xs)}`;

/** What a row of the side-by-side table compares. */
const ROW_NAMES: Record<string, string> = {
  forward: "forward, logits, no grad",
  train: "BOFT b=8 m=2 q+v step",
  cli: "BOFT step, `boft train`",
  trainer: "BOFT step, whole-model jit",
  lora: "LoRA r=8 q+v step",
  full: "full finetuning step",
  generate: "generate 32 tokens, KV cache",
};
const TORCH_NAMES: Record<string, string> = {
  forward: "forward",
  boft_dense: "PEFT's BOFT (dense)",
  boft_structured: "structured BOFT",
  lora: "LoRA",
  full: "full finetuning",
  generate: "KV cache",
};

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === "--child") {
    const [, kind, batch, seq, json] = argv;
    console.log(JSON.stringify(await child(kind, Number(batch), Number(seq), JSON.parse(json) as Options)));
    return;
  }
  const o = parse(argv);
  const runs = o.runs.map((run) => {
    const m = /^(forward|train|trainer|lora|full|generate|cli):(\d+)x(\d+)$/.exec(run);
    if (!m) throw new Error(`hf-135m: bad run ${JSON.stringify(run)} (expected case:BxT, e.g. train:1x128)`);
    return { run, kind: m[1], batch: Number(m[2]), seq: Number(m[3]) };
  });
  console.log(
    `SmolLM2-135M shape, random weights, f32, through boft's public API; one child process per run (node --import boft/preload: worker threads as the CLI uses them; wasm heap created at ${o.heapGiB} GiB); Node ${process.version}; ${o.rounds} round(s), boft and PyTorch interleaved; load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}`,
  );
  let torchSkipped: string | null = o.torch ? null : "--no-torch";
  let torchInfo = "";
  const boft = new Map<string, Result[]>(); // run → its results over the rounds
  const torch = new Map<string, TorchResult[]>(); // `${torch case}:BxT` → its results
  for (let round = 0; round < o.rounds; round++) {
    const done = new Set<string>(); // torch cases already run this round (train and cli share PEFT's BOFT)
    for (const { run, kind, batch, seq } of runs) {
      const r = await boftRun(kind, batch, seq, o);
      if (typeof r === "string") console.log(`${kind.padEnd(8)} B=${batch} T=${seq}: failed: ${r}`);
      else {
        boft.set(run, [...(boft.get(run) ?? []), r]);
        const cpuPart = Number.isNaN(r.cpuSeconds) ? "" : ` (CPU ${r.cpuSeconds.toFixed(2)} s)`;
        console.log(`${r.case.padEnd(8)} B=${r.batch} T=${r.seq}: ${r.seconds.toFixed(2)} s${cpuPart}, ${r.tokensPerSecond.toFixed(1)} tokens/s, peak RSS ${r.peakRssMiB} MiB; ${r.detail}`);
      }
      if (torchSkipped) continue;
      for (const tc of TORCH_CASES[kind]) {
        const key = `${tc}:${batch}x${seq}`;
        if (done.has(key)) continue;
        done.add(key);
        const t = torchRun(tc, batch, seq, o);
        if (typeof t === "string") {
          torchSkipped = t;
          console.log(`PyTorch skipped: ${t}`);
          break;
        }
        torchInfo = `torch ${t.torch_version} + ${t.blas}, ${t.threads.torch_intra_op} intra-op thread(s), OpenBLAS ${t.threads.openblas ?? "?"} threads`;
        torch.set(key, [...(torch.get(key) ?? []), t]);
        console.log(`  torch ${tc.padEnd(15)} B=${batch} T=${seq}: ${t.seconds.toFixed(2)} s, ${t.tokens_per_second.toFixed(1)} tokens/s, peak RSS ${t.peak_rss_mib} MiB`);
      }
    }
  }

  // The side-by-side table: per boft run and each of its PyTorch counterparts, medians over the rounds.
  const rows: (string | number)[][] = [];
  const results: (Result & { runs: number[]; torch: Record<string, { seconds: number; runs: number[] }> })[] = [];
  for (const { run, kind, batch, seq } of runs) {
    const rs = boft.get(run);
    if (!rs) continue;
    const secs = rs.map((r) => r.seconds);
    const mid = rs.find((r) => r.seconds === median(secs)) ?? rs[0];
    const entry = { ...mid, seconds: median(secs), tokensPerSecond: median(rs.map((r) => r.tokensPerSecond)), runs: secs, torch: {} as Record<string, { seconds: number; runs: number[] }> };
    results.push(entry);
    const name = `${ROW_NAMES[kind]} ${batch}×${seq}`;
    const value = kind === "generate" ? `${entry.tokensPerSecond.toFixed(1)} tok/s` : fmt(secs);
    const counterparts = torchSkipped ? [] : TORCH_CASES[kind].filter((tc) => torch.has(`${tc}:${batch}x${seq}`));
    const cpuSecs = median(rs.map((r) => r.cpuSeconds));
    if (counterparts.length === 0) rows.push([name, value, "", "", "", ""]);
    for (const tc of counterparts) {
      const ts = torch.get(`${tc}:${batch}x${seq}`)!;
      const tsecs = ts.map((t) => t.seconds);
      entry.torch[tc] = { seconds: median(tsecs), runs: tsecs };
      const tvalue = kind === "generate" ? `${median(ts.map((t) => t.tokens_per_second)).toFixed(1)} tok/s` : fmt(tsecs);
      const cpuRatio = cpuSecs / median(ts.map((t) => t.cpu_seconds));
      rows.push([name, value, TORCH_NAMES[tc], tvalue, `${(median(secs) / median(tsecs)).toFixed(2)}×`, Number.isFinite(cpuRatio) ? `${cpuRatio.toFixed(2)}×` : "-"]);
    }
  }
  console.log(`\n${renderTable(["case", "boft", "PyTorch", "PyTorch time", "boft ÷ PyTorch (time)", "(CPU time)"], rows)}`);
  console.log("Times are medians over the rounds (min–max); generation ratios are of the time for 32 tokens (1 ÷ the tokens/s ratio). CPU time counts all threads of the process: steadier than wall time on a busy machine.");
  if (torchInfo) console.log(torchInfo);
  if (torchSkipped) console.log(`(PyTorch comparison skipped: ${torchSkipped})`);
  const at = (k: string) => results.find((r) => r.case === k && r.seq === 256 && r.batch === 1)?.seconds;
  const [bo, lo, fu] = [at("train"), at("lora"), at("full")];
  if (bo && lo) console.log(`BOFT step ÷ LoRA step: ${(bo / lo).toFixed(2)}`);
  if (bo && fu) console.log(`BOFT step ÷ full-finetuning step: ${(bo / fu).toFixed(2)}`);
  console.log(JSON.stringify(results));
}

await main();
