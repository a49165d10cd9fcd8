/**
 * `boft train` survives SIGKILL: a small run is killed 20 times at random moments (half at a random time, half the
 * moment a checkpoint's temporary folder appears, i.e. inside a checkpoint write) and resumed with --resume each
 * time. After every kill, each complete checkpoint is byte-identical to the uninterrupted run's; at the end the
 * adapter, every checkpoint and metrics.jsonl (wall-clock fields aside) are byte-identical too, and no partial file
 * is left. Timing adapts to the machine: kill delays are drawn from the uninterrupted run's own duration.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as nodePath from "node:path";
import { rng } from "../src/data/rng.js";
import { BIN } from "./cli-helpers.js";

/** Kills the README's "Reliability" section quotes. */
const KILLS = 20;

const RUN = {
  model: {
    arch: "llama",
    config: {
      model_type: "llama", vocab_size: 97, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2,
      num_attention_heads: 2, num_key_value_heads: 1, head_dim: 8, rms_norm_eps: 1e-5, max_position_embeddings: 64,
    },
  },
  data: { kind: "brown", train: ["humor"], eval: { val: ["humor"] }, seqLen: 16, batchSize: 2, evalWindows: 4 },
  method: { peft_type: "BOFT", boft_block_size: 4, boft_n_butterfly_factor: 2, target_modules: ["q_proj", "v_proj", "up_proj"] },
  train: { steps: 12, lr: 0.05, warmupSteps: 2, evalEvery: 6, checkpointEvery: 2, seed: 3 },
  output: "out",
};

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  ms: number;
}

/**
 * Runs `boft train`; `killWhen` may arm a kill (it gets the child and the output folder) and returns a disarm
 * function. Resolves when the process has exited.
 */
function train(dir: string, resume: boolean, killWhen?: (kill: () => void, out: string) => () => void): Promise<Exit> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, "train", "--config", nodePath.join(dir, "run.json"), ...(resume ? ["--resume"] : [])], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const disarm = killWhen?.(() => child.kill("SIGKILL"), nodePath.join(dir, "out")) ?? (() => {});
  return new Promise((resolve) =>
    child.on("exit", (code, signal) => {
      disarm();
      resolve({ code, signal, stderr, ms: performance.now() - t0 });
    }),
  );
}

const CHECKPOINT = /^checkpoint-\d+$/;
const files = (dir: string): string[] => (fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => fs.statSync(nodePath.join(dir, f)).isFile()).sort() : []);

function assertSameFiles(got: string, want: string, what: string): void {
  assert.deepEqual(files(got), files(want), `${what}: files`);
  for (const f of files(want)) assert.ok(fs.readFileSync(nodePath.join(got, f), "latin1") === fs.readFileSync(nodePath.join(want, f), "latin1"), `${what}: ${f} differs`);
}

/** metrics.jsonl without its wall-clock fields (elapsedMs), the only part two identical runs may differ in. */
function metricsWithoutTime(dir: string): string {
  return fs.readFileSync(nodePath.join(dir, "metrics.jsonl"), "utf8").replace(/,"elapsedMs":[0-9.e+-]+/g, "");
}

test(`boft train killed ${KILLS} times with SIGKILL, resumed each time: adapter, checkpoints and metrics byte-identical`, { timeout: 600_000 }, async (t) => {
  const root = fs.mkdtempSync(nodePath.join(os.tmpdir(), "boft-kill-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const ref = nodePath.join(root, "ref");
  const run = nodePath.join(root, "run");
  const setup = () => (fs.mkdirSync(run), fs.writeFileSync(nodePath.join(run, "run.json"), JSON.stringify(RUN, null, 2)));
  setup();
  const started = performance.now();
  const whole = await train(run, false);
  assert.equal(whole.code, 0, whole.stderr);
  // The reference moves aside, so both runs write the same paths (metrics.jsonl names its checkpoints' paths).
  fs.renameSync(run, ref);
  setup();
  const refOut = nodePath.join(ref, "out");
  const out = nodePath.join(run, "out");
  const refCheckpoints = fs.readdirSync(refOut).filter((n) => CHECKPOINT.test(n));
  assert.equal(refCheckpoints.length, RUN.train.steps / RUN.train.checkpointEvery);

  const r = rng(16);
  let kills = 0;
  let inWrite = 0; // kills that left a checkpoint's temporary folder behind: they landed inside a write
  let completed = 0;
  let processes = 0;
  const check = (what: string) => {
    // Every checkpoint a kill left complete is the uninterrupted run's, byte for byte.
    for (const n of fs.readdirSync(out).filter((n) => CHECKPOINT.test(n))) assertSameFiles(nodePath.join(out, n), nodePath.join(refOut, n), `${what}, ${n}`);
  };
  const finished = () => {
    completed++;
    assertSameFiles(nodePath.join(out, "adapter"), nodePath.join(refOut, "adapter"), "adapter");
    assert.equal(metricsWithoutTime(out), metricsWithoutTime(refOut), "metrics.jsonl");
    check("after completion");
    // No partial checkpoint or temp file is left: the folder holds what the uninterrupted run's does.
    assert.deepEqual(files(out).filter((f) => f !== "loss.svg"), files(refOut).filter((f) => f !== "loss.svg"));
  };

  // Timing decides where a kill lands; on a loaded machine none of the first KILLS may land inside a write, so a few
  // more write-targeted kills are made until one does (bounded), and the assertion at the end still holds the test to it.
  while (kills < KILLS || (inWrite === 0 && kills < KILLS + 10)) {
    const resume = fs.existsSync(out) && fs.readdirSync(out).some((n) => CHECKPOINT.test(n));
    if (!resume) fs.rmSync(out, { recursive: true, force: true }); // killed before its first checkpoint: start again
    fs.mkdirSync(out, { recursive: true }); // to watch it from the start
    const duringWrite = kills % 2 === 1 || kills >= KILLS;
    const temps = () => new Set(fs.existsSync(out) ? fs.readdirSync(out).filter((n) => /\.tmp-\d+$/.test(n)) : []);
    const tempsBefore = temps();
    processes++;
    const e = await train(run, resume, (kill, dir) => {
      // A random moment in the first half of an uninterrupted run's time (startup and compile included).
      const timer = setTimeout(kill, r.nextFloat() * whole.ms * (duringWrite ? 1 : 0.5));
      if (!duringWrite) return () => clearTimeout(timer);
      // Inside a checkpoint write: kill when the temporary folder of this process's 1st or 2nd checkpoint
      // appears (inotify, no polling delay); the timer is the fallback.
      let skip = r.nextInt(2);
      const watcher = fs.watch(dir, (_, name) => {
        if (name && /^checkpoint-\d+\.tmp-\d+$/.test(name) && !seen.has(name) && fs.existsSync(nodePath.join(dir, name))) {
          seen.add(name);
          if (skip-- === 0) kill();
        }
      });
      const seen = new Set<string>();
      return () => (clearTimeout(timer), watcher.close());
    });
    if (e.code === 0) {
      finished(); // the run got to its end before the kill
      fs.rmSync(out, { recursive: true, force: true });
      continue;
    }
    assert.equal(e.signal, "SIGKILL", `exit ${e.code}: ${e.stderr}`);
    kills++;
    if ([...temps()].some((n) => !tempsBefore.has(n))) inWrite++;
    check(`after kill ${kills}`);
  }
  for (;;) {
    const resume = fs.existsSync(out) && fs.readdirSync(out).some((n) => CHECKPOINT.test(n));
    if (!resume) fs.rmSync(out, { recursive: true, force: true });
    processes++;
    const e = await train(run, resume);
    assert.equal(e.code, 0, e.stderr);
    finished();
    break;
  }

  // The states a kill can leave that random timing rarely hits, made by hand from the uninterrupted run cut back to
  // step 8: the kill came between renaming checkpoint-000008 into place and logging it, cut the last log line
  // short, and left temporary files of a checkpoint, the final adapter and the log.
  fs.rmSync(run, { recursive: true, force: true });
  fs.cpSync(ref, run, { recursive: true });
  for (const n of fs.readdirSync(out).filter((n) => CHECKPOINT.test(n) && Number(n.slice(11)) > 8)) fs.rmSync(nodePath.join(out, n), { recursive: true });
  fs.rmSync(nodePath.join(out, "adapter"), { recursive: true });
  const lines = fs.readFileSync(nodePath.join(out, "metrics.jsonl"), "utf8").split("\n");
  const upTo = lines.findIndex((l) => l.includes('"kind":"checkpoint","step":8,'));
  fs.writeFileSync(nodePath.join(out, "metrics.jsonl"), lines.slice(0, upTo).join("\n") + "\n" + lines[upTo + 1].slice(0, 30));
  fs.mkdirSync(nodePath.join(out, "checkpoint-000010.tmp-99999"));
  fs.writeFileSync(nodePath.join(out, "checkpoint-000010.tmp-99999", "adapter_model.safetensors.tmp-99999"), "half a file");
  fs.mkdirSync(nodePath.join(out, "adapter"));
  fs.writeFileSync(nodePath.join(out, "adapter", "adapter_model.safetensors.tmp-99998"), "half an adapter");
  fs.writeFileSync(nodePath.join(out, "metrics.jsonl.tmp-99997"), "half a log");
  processes++;
  const handMade = await train(run, true);
  assert.equal(handMade.code, 0, handMade.stderr);
  finished();

  // Killed after training, while writing the final adapter: the log is complete ("done" included), adapter/ is not.
  fs.rmSync(run, { recursive: true, force: true });
  fs.cpSync(ref, run, { recursive: true });
  fs.rmSync(nodePath.join(out, "adapter", "adapter_config.json"));
  fs.renameSync(nodePath.join(out, "adapter", "adapter_model.safetensors"), nodePath.join(out, "adapter", "adapter_model.safetensors.tmp-99996"));
  processes++;
  const afterDone = await train(run, true);
  assert.equal(afterDone.code, 0, afterDone.stderr);
  finished();
  // Killed between the last checkpoint and logging "done": the resumed run takes no step, yet logs the same final loss.
  const log = nodePath.join(out, "metrics.jsonl");
  fs.writeFileSync(log, fs.readFileSync(log, "utf8").replace(/\{"kind":"done".*\n$/, ""));
  fs.rmSync(nodePath.join(out, "adapter"), { recursive: true });
  processes++;
  const beforeDone = await train(run, true);
  assert.equal(beforeDone.code, 0, beforeDone.stderr);
  finished();

  const seconds = (performance.now() - started) / 1000;
  t.diagnostic(`${kills} kills (${inWrite} inside a checkpoint write), ${processes} processes, ${completed} completed runs compared; ${seconds.toFixed(1)} s, uninterrupted run ${(whole.ms / 1000).toFixed(1)} s`);
  assert.ok(inWrite >= 1, "at least one kill landed inside a checkpoint write");
});
