/**
 * Scale check, side by side with PyTorch: a random model of SmolLM2-135M's shape (LlamaForCausalLM: hidden 576,
 * intermediate 1536, 30 layers, 9 heads / 3 kv heads, head_dim 64, vocab 49152, tied embeddings; 134.5M parameters),
 * built in memory, timed for
 *   forward   logits of B × T tokens (inference, no adapter), one compiled decoder layer at a time, read
 *             asynchronously (both cores)
 *   train     one BOFT training step (q_proj + v_proj, b = 8, m = 2, PEFT's default targets for llama): loss and
 *             gradients one decoder layer at a time (src/models/llama-grad.ts), global-norm clip, AdamW
 *   lora      the same step with LoRA r = 8 (alpha 8) on q_proj + v_proj
 *   full      the same step training every weight (full finetuning, the tied embedding included); at 135M it does
 *             not fit jax-js's 4 GiB heap (weights, trained copy, gradients, AdamW moments), and is reported as such
 *   trainer   the BOFT step through src/train/trainer.ts (one valueAndGrad / jit over the whole model), for
 *             comparison; not in the default runs: at 30 layers it outgrows jax-js's 4 GiB heap
 *   generate  greedy decoding with the KV cache (a T-token prompt, then 32 new tokens), read synchronously (the
 *             faster way on Node: asynchronous dispatch doubles a token's CPU time; --async measures it)
 *   cli       `boft train` on a random bf16 checkpoint of that shape written in the Hugging Face layout (text data,
 *             PEFT's default targets), as a user runs it: seconds per step from its metrics.jsonl, its peak memory
 * Each case runs in a child process so its peak RSS (process.resourceUsage().maxRSS) is its own.
 *
 * PyTorch (bench/torch_llama.py: a straightforward Llama of the same shape, random weights; torch intra-op 1 thread
 * + OpenBLAS's own 2, this machine's fastest setting) runs the matching case right after each boft case, so the two
 * see the same machine load: forward; PEFT's BOFT (dense butterfly, as PEFT computes it; PEFT itself cannot be
 * installed here, the method is re-implemented from its source and checked against its outputs) and a structured
 * BOFT for train and cli; LoRA; full finetuning; generation with a KV cache. The table prints boft ÷ PyTorch per row.
 * Skipped, with the reason, when /usr/bin/python3 has no torch (bench/setup-torch.sh installs Debian's).
 *
 *   node dist/bench/hf-135m.js [--runs forward:1x256,train:1x256,...] [--steps 3] [--rounds 1] [--no-torch]
 *                              [--sync] [--async] [--heap-gib 4]
 *
 * A run is case:BxT (batch × sequence length; for generate, T is the prompt length and 32 tokens follow). --rounds N
 * repeats every run N times, boft and PyTorch interleaved, and reports medians with the spread. --sync runs the
 * forward eagerly with synchronous reads (main thread only), as before. jax-js's wasm heap is 32-bit: a run whose live buffers
 * pass 4 GiB fails, and is reported as such. The last line is a JSON array of the results.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { loadavg, tmpdir } from "node:os";
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { presizeHeap } from "../src/node/heap.js";
import { median } from "../src/train/metrics.js";
import { installThreads } from "../src/node/threads.js";
import { renderTable } from "../cli/table.js";

const defaults = {
  runs: ["forward:1x256", "train:1x256", "lora:1x256", "full:1x256", "generate:1x32", "cli:1x256"],
  steps: 3, // training steps per child; the first includes warm-up, the rest are timed
  rounds: 1, // every run this many times, boft and PyTorch interleaved
  torch: true,
  sync: false, // forward with synchronous reads (eager, one thread), as before, for comparison
  async: false, // generation with asynchronous reads (GenerateOptions.asyncReads), for comparison
  heapGiB: 4, // jax-js wasm heap created at this size (0: jax-js's default, grown on demand); see src/node/heap.ts
  blockSize: 8, // BOFT b: 576 = 72 blocks of 8
  nFactors: 2, // BOFT m
};

/** SmolLM2-135M's config.json, as our LlamaConfig. */
const SMOLLM2_135M = {
  modelType: "llama" as const,
  vocabSize: 49152,
  hiddenSize: 576,
  intermediateSize: 1536,
  numHiddenLayers: 30,
  numAttentionHeads: 9,
  numKeyValueHeads: 3,
  headDim: 64,
  rmsNormEps: 1e-5,
  ropeTheta: 100000,
  ropeScaling: null,
  tieWordEmbeddings: true,
  maxPositionEmbeddings: 8192,
  attentionBias: false,
};

type Options = typeof defaults;

function parse(argv: string[]): Options {
  const o = { ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === "--no-torch") (o.torch = false), i--;
    else if (k === "--sync") (o.sync = true), i--;
    else if (k === "--async") (o.async = true), i--;
    else if (k === "--runs") o.runs = v.split(",");
    else if (k === "--steps") o.steps = Number(v);
    else if (k === "--rounds") o.rounds = Number(v);
    else if (k === "--heap-gib") o.heapGiB = Number(v);
    else throw new Error(`hf-135m: unknown option ${k} (use --runs case:BxT,…, --steps N, --rounds N, --no-torch, --sync, --async, --heap-gib G)`);
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

/** Fast deterministic N(0, std²)-ish fill (sum of three uniforms); the math does not care about the exact law. */
function filler(seed: number): (n: number, std: number) => Float32Array {
  let s = seed >>> 0 || 1;
  const u = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  return (n, std) => {
    const a = new Float32Array(n);
    for (let k = 0; k < n; k++) a[k] = std * 2 * (u() + u() + u() - 1.5);
    return a;
  };
}

async function child(kind: string, batch: number, T: number, o: Options): Promise<Result> {
  installThreads();
  presizeHeap(o.heapGiB);
  const { np, fromHost, toHost, toHostAsync, tree, blockUntilReady } = await import("../src/engine/index.js");
  const { llama } = await import("../src/models/llama.js");
  const { adaptedModel, addAdapter, forward, trainableOf } = await import("../src/models/adapted.js");
  const { generate } = await import("../src/models/generate.js");
  const { boftConfig } = await import("../src/methods/boft/config.js");
  const { loraConfig } = await import("../src/methods/lora/config.js");
  const { rng } = await import("../src/data/rng.js");
  const { train, trainDefaults, crossEntropy, updateInGroups } = await import("../src/train/trainer.js");
  const { adamw, clipScale } = await import("../src/train/optim.js");
  const { layerwiseValueAndGrad, layerwiseLoss } = await import("../src/models/llama-grad.js");
  type Arr = ReturnType<typeof fromHost>;

  const def = llama(SMOLLM2_135M);
  const fill = filler(1234);
  const weights: Record<string, ReturnType<typeof fromHost>> = {};
  let params = 0;
  for (const w of def.weights) {
    const n = w.shape.reduce((a, b) => a * b, 1);
    params += n;
    const data = w.init === "ones" ? new Float32Array(n).fill(1) : fill(n, 0.02);
    weights[w.name] = fromHost({ dtype: "float32", shape: w.shape, data });
  }
  const afterLoad = process.memoryUsage().rss;
  const V = SMOLLM2_135M.vocabSize;
  const r = rng(7);
  const ids = (B: number, n: number) => np.array(Int32Array.from({ length: B * n }, () => r.nextInt(V)), { dtype: np.int32 }).reshape([B, n]);
  const base = adaptedModel(def, weights);
  let seconds = 0;
  let cpuSeconds = 0;
  let tokens = 0;
  let detail = `${(params / 1e6).toFixed(1)}M parameters`;

  if (kind === "forward") {
    const times: number[] = [];
    const cpus: number[] = [];
    for (let rep = 0; rep < 3; rep++) {
      const t0 = performance.now();
      const c0 = cpu();
      let checksum: number;
      if (o.sync) {
        // flush: run layer by layer, so finished layers' buffers are freed (jax-js's wasm heap stops at 4 GiB).
        const { logits } = forward(base, { ids: ids(batch, T), flush: true });
        checksum = toHost(logits.sum()).data[0]; // forces the whole forward
      } else {
        // One compiled decoder layer at a time, awaited: the kernels run on the worker threads.
        const logits = await layerwiseLoss(base, SMOLLM2_135M, null, ids(batch, T), (l) => l);
        checksum = (await toHostAsync(logits.sum())).data[0];
      }
      times.push((performance.now() - t0) / 1000);
      cpus.push(cpu() - c0);
      if (!Number.isFinite(checksum)) throw new Error("forward produced a non-finite value");
    }
    seconds = median(times.slice(1));
    cpuSeconds = median(cpus.slice(1));
    tokens = batch * T;
    detail += `; first run ${times[0].toFixed(2)} s (includes kernel compilation)`;
  } else if (kind === "train" || kind === "trainer" || kind === "lora" || kind === "full") {
    const method =
      kind === "lora"
        ? { kind: "LORA" as const, config: loraConfig({ r: 8, loraAlpha: 8, targetModules: null }) }
        : { kind: "BOFT" as const, config: boftConfig({ blockSize: o.blockSize, nButterflyFactor: o.nFactors, targetModules: null }) };
    const m = kind === "full" ? base : addAdapter(base, "default", method, { rng: rng(1) });
    const initial = () => (kind === "full" ? { adapter: {}, extras: Object.fromEntries(Object.entries(m.weights).map(([k, v]) => [k, v.ref])) } : trainableOf(m));
    const trainable = tree.leaves(initial() as never).reduce((t: number, a) => {
      (a as Arr).dispose();
      return t + (a as Arr).size;
    }, 0);
    const batchOf = () => {
      const x = ids(batch, T + 1);
      return { input: x.ref.slice([], [0, T]), target: x.slice([], [1, T + 1]) };
    };
    const stepTimes: number[] = [];
    const stepCpu: number[] = [];
    const losses: number[] = [];
      if (kind !== "trainer") {
      // One decoder layer at a time (src/models/llama-grad.ts), then clip + AdamW as the trainer does.
      const opt = adamw({ lr: 1e-3, weightDecay: 0 });
      let t = initial();
      let state = opt.init(tree.ref(t) as never);
      for (let step = 0; step < o.steps; step++) {
        const t0 = performance.now();
        const c0 = cpu();
        const b = batchOf();
        const [loss, g] = await layerwiseValueAndGrad(m, SMOLLM2_135M, tree.ref(t), b.input, (logits) => crossEntropy(logits, b.target), { training: true });
        const [scale, norm] = clipScale(g as never, 1);
        norm.dispose();
        const [t2, s2] = await updateInGroups(opt, g as never, state as never, t as never, 1e-3, scale); // as the trainer does
        scale.dispose();
        t = t2 as unknown as typeof t;
        state = s2 as unknown as typeof state;
        losses.push((await toHostAsync(loss)).data[0]);
        await blockUntilReady([t, state] as never); // the update has run
        stepTimes.push((performance.now() - t0) / 1000);
        stepCpu.push(cpu() - c0);
      }
      tree.dispose([t, state] as never);
    } else {
      // The whole-model step of src/train/trainer.ts, for comparison.
      const task = {
        batch: () => {
          const b = batchOf();
          return { input: { ids: b.input }, target: b.target, items: batch * T };
        },
        loss: (out: { logits: Arr }, y: Arr) => crossEntropy(out.logits, y),
      };
      let last = 0;
      let lastCpu = cpu();
      const result = await train(m, task, { ...trainDefaults, steps: o.steps, lr: 1e-3 }, {
        onEvent: (e) => {
          if (e.kind !== "step") return;
          stepTimes.push((e.elapsedMs - last) / 1000);
          last = e.elapsedMs;
          const c = cpu();
          stepCpu.push(c - lastCpu);
          lastCpu = c;
          losses.push(e.loss);
        },
      });
      tree.dispose(result as never);
    }
    seconds = median(stepTimes.slice(1));
    cpuSeconds = median(stepCpu.slice(1));
    tokens = batch * T;
    const what = kind === "full" ? "full finetuning" : kind === "lora" ? "LoRA r=8 on q_proj+v_proj" : `BOFT b=${o.blockSize} m=${o.nFactors} on q_proj+v_proj`;
    detail += `; ${what}: ${trainable} trainable; first step ${stepTimes[0].toFixed(1)} s (CPU ${stepCpu[0].toFixed(1)} s); losses ${losses.map((l) => l.toFixed(3)).join(" ")}`;
  } else if (kind === "generate") {
    const prompt = Array.from({ length: T }, () => r.nextInt(V));
    // Synchronous reads on wasm unless --async: a token's kernels are too small for asynchronous dispatch to pay.
    const run = (n: number) => generate(base, prompt, { maxNewTokens: n, asyncReads: o.async });
    await run(2); // warm-up
    const t0 = performance.now();
    const c0 = cpu();
    const out = await run(32);
    seconds = (performance.now() - t0) / 1000;
    cpuSeconds = cpu() - c0;
    tokens = out.length;
    detail += `; ${out.length} tokens after a ${T}-token prompt (prefill included), batch 1, ${o.async ? "asynchronous" : "synchronous"} reads`;
  } else {
    throw new Error(`hf-135m: unknown case ${kind}`);
  }
  tree.dispose(weights as never);
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

/** CPU seconds this process has used (user + system). */
function cpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}


/**
 * `boft train` itself on a folder of that shape: a random bf16 checkpoint in the Hugging Face layout (written once to
 * the temp folder), byte-level tokenizer, Brown "romance" as a text file, BOFT with PEFT's default llama targets
 * (q_proj, v_proj), b and m as above. Runs the command as a user would (its own preload: threads + heap), then reads
 * its metrics.jsonl (per-step elapsed time) and its "peak memory" line.
 */
async function cliRun(batch: number, T: number, o: Options): Promise<Result | string> {
  const { writeWeights, tinyTokenizerFiles } = await import("../test/hf-fixture.js");
  const { loadBrown } = await import("../src/node/data/brown.js");
  const root = nodePath.join(tmpdir(), "boft-smollm2-135m-shape");
  const modelDir = nodePath.join(root, "model");
  if (!fs.existsSync(nodePath.join(modelDir, "model.safetensors"))) {
    fs.mkdirSync(modelDir, { recursive: true });
    const c = SMOLLM2_135M;
    const tok = tinyTokenizerFiles();
    const config = {
      architectures: ["LlamaForCausalLM"], attention_bias: false, attention_dropout: 0, bos_token_id: tok.bosId, eos_token_id: tok.eosId,
      head_dim: c.headDim, hidden_act: "silu", hidden_size: c.hiddenSize, initializer_range: 0.02, intermediate_size: c.intermediateSize,
      max_position_embeddings: c.maxPositionEmbeddings, mlp_bias: false, model_type: "llama", num_attention_heads: c.numAttentionHeads,
      num_hidden_layers: c.numHiddenLayers, num_key_value_heads: c.numKeyValueHeads, pretraining_tp: 1, rms_norm_eps: c.rmsNormEps,
      rope_scaling: null, rope_theta: c.ropeTheta, tie_word_embeddings: true, torch_dtype: "bfloat16", use_cache: true, vocab_size: c.vocabSize,
    };
    fs.writeFileSync(nodePath.join(modelDir, "config.json"), JSON.stringify(config, null, 2));
    fs.writeFileSync(nodePath.join(modelDir, "tokenizer.json"), JSON.stringify(tok.tokenizer));
    fs.writeFileSync(nodePath.join(modelDir, "tokenizer_config.json"), JSON.stringify(tok.config));
    const { llama } = await import("../src/models/llama.js");
    const fill = filler(1234);
    const tensors = llama(SMOLLM2_135M).weights.map((w) => {
      const n = w.shape.reduce((a, b) => a * b, 1);
      return { name: w.name, shape: w.shape, data: w.init === "ones" ? new Float32Array(n).fill(1) : fill(n, 0.02) };
    });
    writeWeights(modelDir, tensors, "BF16", false);
  }
  const dataFile = nodePath.join(root, "romance.txt");
  if (!fs.existsSync(dataFile)) fs.writeFileSync(dataFile, (await loadBrown({ genres: ["romance"] })).text.romance);
  const out = nodePath.join(root, `run-${batch}x${T}`);
  fs.rmSync(out, { recursive: true, force: true });
  const steps = o.steps + 2;
  const runJson = {
    model: { hf: modelDir },
    data: { kind: "text", path: dataFile, seqLen: T, batchSize: batch, evalWindows: 1 },
    method: { peft_type: "BOFT", boft_block_size: o.blockSize, boft_n_butterfly_factor: o.nFactors },
    train: { steps, lr: 1e-3, warmupSteps: 0, evalEvery: 0 },
    output: out,
  };
  fs.mkdirSync(out, { recursive: true });
  const cfgFile = nodePath.join(out, "run.json");
  fs.writeFileSync(cfgFile, JSON.stringify(runJson, null, 2));
  const bin = fileURLToPath(new URL("../../bin/boft.js", import.meta.url));
  const c = spawnSync(process.execPath, [bin, "train", "--config", cfgFile], { encoding: "utf8", maxBuffer: 1 << 26 });
  if (c.status !== 0) return `exit ${c.status}: ${c.stderr.trim().split("\n").slice(-3).join(" | ")}`;
  const events = fs.readFileSync(nodePath.join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { kind: string; elapsedMs?: number });
  const elapsed = events.filter((e) => e.kind === "step").map((e) => e.elapsedMs!);
  const perStep = elapsed.slice(2).map((t, i) => t - elapsed[i + 1]); // steps 3.., after compilation and warm-up
  const seconds = median(perStep) / 1000;
  const peak = /peak memory (\d+) MiB/.exec(c.stdout);
  return {
    case: "cli",
    batch,
    seq: T,
    seconds,
    cpuSeconds: NaN,
    tokensPerSecond: (batch * T) / seconds,
    peakRssMiB: peak ? Number(peak[1]) : NaN,
    afterLoadRssMiB: NaN,
    detail: `boft train, ${steps} steps (first ${(elapsed[0] / 1000).toFixed(1)} s incl. compile), BOFT q_proj+v_proj b=${o.blockSize} m=${o.nFactors}, 2 threads`,
  };
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
  if (kind === "cli") return cliRun(batch, T, o);
  const c = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--child", kind, String(batch), String(T), JSON.stringify(o)], {
    encoding: "utf8",
    maxBuffer: 1 << 24,
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
    void child(kind, Number(batch), Number(seq), JSON.parse(json) as Options).then((r) => console.log(JSON.stringify(r)));
    return;
  }
  const o = parse(argv);
  const runs = o.runs.map((run) => {
    const m = /^(forward|train|trainer|lora|full|generate|cli):(\d+)x(\d+)$/.exec(run);
    if (!m) throw new Error(`hf-135m: bad run ${JSON.stringify(run)} (expected case:BxT, e.g. train:1x128)`);
    return { run, kind: m[1], batch: Number(m[2]), seq: Number(m[3]) };
  });
  console.log(
    `SmolLM2-135M shape, random weights, f32; one child process per run (worker threads as the CLI uses them, forward ${o.sync ? "eager, read synchronously: one thread" : "one compiled layer at a time, read asynchronously: both cores"}, generation ${o.async ? "asynchronous" : "synchronous"} reads; wasm heap created at ${o.heapGiB} GiB); Node ${process.version}; ${o.rounds} round(s), boft and PyTorch interleaved; load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}`,
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
