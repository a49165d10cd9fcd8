/**
 * Training checkpoints on disk: a folder `checkpoint-<step>` holding the adapter exactly as PEFT saves it
 * (adapter_config.json + adapter_model.safetensors; for full finetuning model.safetensors), the optimizer
 * moments (optimizer.safetensors) and trainer_state.json (step, generator states, and the settings of the run that
 * wrote it, so a resume can tell a checkpoint of another run.json from its own). The folder is written
 * under a temporary name and renamed when complete, so a killed run never leaves half a checkpoint.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { FormatError } from "../errors.js";
import type { HostTensor } from "../engine/index.js";
import type { AdapterMethod } from "../methods/method.js";
import type { AdapterConfigExtra } from "../formats/peft-config.js";
import { toPeftState, fromPeftState } from "../formats/peft-adapter.js";
import type { TrainSnapshot } from "../train/trainer.js";
import type { HostTree } from "../train/host-tree.js";
import { hostTreeEntries, isHostTensor } from "../train/host-tree.js";
import type { RngState } from "../data/rng.js";
import { saveAdapter, ADAPTER_WEIGHTS } from "./adapter-files.js";
import { saveSafetensors, SafetensorsReader } from "./safetensors-file.js";
import { atomicWriteFile } from "./atomic.js";

export const TRAINER_STATE = "trainer_state.json";
export const OPTIMIZER_FILE = "optimizer.safetensors";
export const FULL_MODEL_FILE = "model.safetensors";

interface TrainerStateJson {
  step: number;
  optimizer_count: number;
  data_rng: RngState;
  dropout_rng: RngState;
  /** The run's settings (run-guard.ts runRecord); absent in checkpoints of older boft versions. */
  run?: unknown;
}

/** Where the adapter sits in a run: per module the dotted parameter suffixes, and the extra base keys. */
export interface TrainableLayout {
  layout: Record<string, readonly string[]>;
  extras: readonly string[];
}

function checkpointName(step: number): string {
  return `checkpoint-${String(step).padStart(6, "0")}`;
}

/** The two parts of a trainable host tree: per module path its parameter tree, and full base tensors by name. */
function trainedParts(h: HostTree): { adapter: Record<string, HostTree>; extras: Record<string, HostTensor> } {
  const isNode = (x: HostTree | undefined): x is { [key: string]: HostTree } => typeof x === "object" && !Array.isArray(x) && !isHostTensor(x);
  if (!isNode(h) || !isNode(h.adapter) || !isNode(h.extras)) throw new FormatError("trained state: expected { adapter, extras }");
  const extras: Record<string, HostTensor> = {};
  for (const [k, t] of Object.entries(h.extras)) {
    if (!isHostTensor(t)) throw new FormatError(`trained state: extras["${k}"] is not a tensor`);
    extras[k] = t;
  }
  return { adapter: h.adapter, extras };
}

/** Writes the adapter (PEFT format) for a trainable state; full finetuning writes model.safetensors. */
export function writeTrained(dir: string, trainable: HostTree, method: AdapterMethod | null, extra: AdapterConfigExtra): void {
  const { adapter, extras } = trainedParts(trainable);
  if (method) {
    saveAdapter(dir, method, toPeftState(adapter, extras), extra);
  } else {
    fs.mkdirSync(dir, { recursive: true });
    saveSafetensors(nodePath.join(dir, FULL_MODEL_FILE), Object.entries(extras).map(([name, t]) => ({ name, dtype: "F32" as const, shape: t.shape, data: t.data })));
  }
}

/** `run` is stored in trainer_state.json for readCheckpointRun. */
export function saveCheckpoint(runDir: string, snap: TrainSnapshot, method: AdapterMethod | null, extra: AdapterConfigExtra, run?: unknown): string {
  const final = nodePath.join(runDir, checkpointName(snap.step));
  const tmp = `${final}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  try {
    writeTrained(tmp, snap.trainable, method, extra);
    const moments = (name: string, h: HostTree) => hostTreeEntries(h).map(([path, t]) => ({ name: `${name}/${path.join("/")}`, dtype: "F32" as const, shape: t.shape, data: t.data }));
    saveSafetensors(nodePath.join(tmp, OPTIMIZER_FILE), [...moments("mu", snap.optimizer.mu), ...moments("nu", snap.optimizer.nu)]);
    const state: TrainerStateJson = { step: snap.step, optimizer_count: snap.optimizer.count, data_rng: snap.dataRng, dropout_rng: snap.dropoutRng, ...(run === undefined ? {} : { run }) };
    atomicWriteFile(nodePath.join(tmp, TRAINER_STATE), JSON.stringify(state, null, 2) + "\n");
    fs.rmSync(final, { recursive: true, force: true });
    fs.renameSync(tmp, final);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return final;
}

/** A file or folder written under a temporary name (atomic.ts's `<name>.tmp-<pid>`, a checkpoint's `checkpoint-N.tmp-<pid>`). */
const PARTIAL = /\.tmp-\d+$/;

/**
 * Removes what a killed run left half-written under temporary names: checkpoint folders and files of the run
 * folder and of its final adapter/ or model/ folder. Complete files never carry these names, so nothing written
 * whole is touched. Call it only when this process owns the run folder (resume), not while another run writes there.
 * Returns the removed paths.
 */
export function removePartialWrites(runDir: string): string[] {
  const removed: string[] = [];
  for (const dir of [runDir, nodePath.join(runDir, "adapter"), nodePath.join(runDir, "model")]) {
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir).filter((n) => PARTIAL.test(n))) {
      fs.rmSync(nodePath.join(dir, name), { recursive: true, force: true });
      removed.push(nodePath.join(dir, name));
    }
  }
  return removed;
}

/** The newest complete checkpoint folder of a run, or null. */
export function latestCheckpoint(runDir: string): string | null {
  if (!fs.existsSync(runDir)) return null;
  const names = fs.readdirSync(runDir).filter((n) => /^checkpoint-\d+$/.test(n) && fs.existsSync(nodePath.join(runDir, n, TRAINER_STATE)));
  names.sort();
  return names.length ? nodePath.join(runDir, names[names.length - 1]) : null;
}

function readTrainerState(dir: string): TrainerStateJson {
  const statePath = nodePath.join(dir, TRAINER_STATE);
  let s: TrainerStateJson;
  try {
    s = JSON.parse(fs.readFileSync(statePath, "utf8")) as TrainerStateJson;
  } catch (e) {
    throw new FormatError(`${statePath}: cannot read trainer state (${(e as Error).message})`);
  }
  if (!s || typeof s !== "object" || !Number.isInteger(s.step) || !Array.isArray(s.data_rng) || !Array.isArray(s.dropout_rng)) {
    throw new FormatError(`${statePath}: missing step or generator states`);
  }
  return s;
}

/** The step of a checkpoint and the run settings it was written with (undefined: an older boft wrote it). */
export function readCheckpointRun(dir: string): { step: number; run: unknown } {
  const s = readTrainerState(dir);
  return { step: s.step, run: s.run };
}

function readTensors(file: string): (key: string) => HostTensor {
  const r = new SafetensorsReader(file);
  const cache = new Map<string, HostTensor>();
  for (const name of r.names()) {
    const t = r.read(name);
    cache.set(name, { dtype: "float32", shape: t.shape, data: Float32Array.from(t.data) });
  }
  r.close();
  return (key) => {
    const t = cache.get(key);
    if (!t) throw new FormatError(`${file}: no tensor "${key}" (the checkpoint does not match this run's model and method)`);
    return t;
  };
}

/** Rebuilds a snapshot from a checkpoint folder, given the run's trainable layout and the moments' tree shape. */
export function loadCheckpoint(dir: string, layout: TrainableLayout | null, fullKeys: readonly string[]): TrainSnapshot {
  const s = readTrainerState(dir);
  const trainableOf = (read: (k: string) => HostTensor): HostTree =>
    layout ? fromPeftState(layout.layout, layout.extras, read) : { adapter: {}, extras: Object.fromEntries(fullKeys.map((k) => [k, read(k)])) };
  const trainable = trainableOf(readTensors(nodePath.join(dir, layout ? ADAPTER_WEIGHTS : FULL_MODEL_FILE)));
  const optRead = readTensors(nodePath.join(dir, OPTIMIZER_FILE));
  // Moments have the trainable's tree shape; their tensors are named by tree path.
  const moments = (name: string): HostTree => {
    const rebuild = (node: HostTree, path: string[]): HostTree => {
      if (isHostTensor(node)) return optRead(`${name}/${path.join("/")}`);
      return Object.fromEntries(Object.entries(node as Record<string, HostTree>).map(([k, v]) => [k, rebuild(v, [...path, k])])) as HostTree;
    };
    return rebuild(trainable, []);
  };
  return {
    step: s.step,
    trainable,
    optimizer: { count: s.optimizer_count, mu: moments("mu"), nu: moments("nu") },
    dataRng: s.data_rng,
    dropoutRng: s.dropout_rng,
  };
}
