/**
 * What protects a run folder: everything is checked before the first byte is written, an earlier run is never
 * replaced unless asked (--overwrite), and a resume only continues a checkpoint of the same run.json.
 *
 * runTraining's order is: parse (run-config.ts) → prepare model and data (checks shapes, files, genres) →
 * checkPreparedData → checkRunOutput (folder state, resume's checkpoint) → load the checkpoint → startRunOutput (the
 * first write). Each step throws ConfigError with one line naming the setting or file.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { ConfigError, FormatError } from "../errors.js";
import { toJsonLine } from "../train/metrics.js";
import { toAdapterConfigJson } from "../formats/peft-config.js";
import type { AdaptedModel } from "../models/adapted.js";
import type { RunConfig } from "./run-config.js";
import { latestCheckpoint, readCheckpointRun, removePartialWrites } from "./checkpoint.js";
import { atomicWriteFile } from "./atomic.js";

/** How a run treats its output folder. */
export interface RunFolderOptions {
  /** Continue from the newest checkpoint (which must belong to this run.json). */
  resume?: boolean;
  /** Start over in a folder that holds an earlier run, removing that run's files first. */
  overwrite?: boolean;
}

/** Thrown by runTraining when `stop` asked it to end early: the checkpoint of `step` is written. */
export class RunInterrupted extends Error {
  constructor(
    readonly step: number,
    readonly checkpoint: string,
  ) {
    super(`interrupted after step ${step}; checkpoint: ${checkpoint}`);
    this.name = "RunInterrupted";
  }
}

/**
 * The settings that decide a run's result, as plain JSON with run.json's key names (method as PEFT writes it).
 * Stored in every checkpoint; a resume compares it with the current run.json.
 */
export function runRecord(cfg: RunConfig): Record<string, unknown> {
  const { snapshotEvery: _mirror, ...train } = cfg.train as typeof cfg.train & { snapshotEvery?: number };
  let method: Record<string, unknown> = { peft_type: "FULL" };
  if (cfg.method) {
    // peft_version names the boft release, not a setting of the run.
    const { peft_version: _v, ...rest } = JSON.parse(toAdapterConfigJson(cfg.method)) as Record<string, unknown>;
    method = rest;
  }
  return JSON.parse(JSON.stringify({ model: cfg.model, data: cfg.data, method, train })) as Record<string, unknown>;
}

/** Leaf paths ("train.steps") where two records differ, with both values. */
function differences(stored: unknown, current: unknown, path = ""): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  if (isObj(stored) && isObj(current)) {
    const keys = [...new Set([...Object.keys(stored), ...Object.keys(current)])].sort();
    return keys.flatMap((k) => differences(stored[k], current[k], path ? `${path}.${k}` : k));
  }
  if (JSON.stringify(stored) === JSON.stringify(current)) return [];
  const show = (v: unknown) => (v === undefined ? "unset" : JSON.stringify(v));
  return [`${path} is ${show(stored)} there, ${show(current)} in run.json`];
}

/** Files a run writes into its folder (what --overwrite removes); anything else there is left alone. */
function isRunArtifact(name: string): boolean {
  return ["metrics.jsonl", "loss.svg", "adapter", "model", "run.json"].includes(name) || /^checkpoint-\d+(\.tmp-\d+)?$/.test(name) || /\.tmp-\d+$/.test(name);
}

/**
 * Checks the output folder for this run without writing anything. Returns the checkpoint folder to resume from, or
 * null for a new run. Throws ConfigError when: --resume and --overwrite are both given; the output is a file; a new
 * run would reuse a non-empty folder without --overwrite; --resume finds no checkpoint, or one written for other
 * settings (each differing field is named).
 */
export function checkRunOutput(cfg: RunConfig, o: RunFolderOptions): string | null {
  const out = cfg.output;
  if (o.resume && o.overwrite) throw new ConfigError("--resume continues the run in the output folder and --overwrite replaces it: give one of them");
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new ConfigError(`${out}: the run's output exists and is not a folder`);
  if (o.resume) {
    const dir = latestCheckpoint(out);
    if (!dir) throw new ConfigError(`--resume: no checkpoint in ${out}; start the run without --resume`);
    const { run } = readCheckpointRun(dir);
    if (run === undefined) {
      throw new ConfigError(`--resume: ${dir} does not record its run's settings (an older boft wrote it), so it cannot be checked against ${cfg.file}; start over with --overwrite`);
    }
    const diff = differences(run, runRecord(cfg));
    if (diff.length) {
      const shown = diff.slice(0, 4).join("; ") + (diff.length > 4 ? `; and ${diff.length - 4} more` : "");
      throw new ConfigError(`--resume: ${dir} belongs to another run: ${shown}. Resume with the run.json it was written with, or start over with --overwrite`);
    }
    return dir;
  }
  if (!fs.existsSync(out)) return null;
  // The run.json being run may live in its own output folder: it does not make the folder an earlier run.
  const self = nodePath.resolve(cfg.file);
  const present = fs.readdirSync(out).filter((n) => nodePath.join(nodePath.resolve(out), n) !== self);
  if (present.length && !o.overwrite) {
    const list = present.slice(0, 4).join(", ") + (present.length > 4 ? `, … (${present.length} entries)` : "");
    throw new ConfigError(`${out} is not empty (${list}): give --resume to continue the run there, --overwrite to replace it, or another "output"`);
  }
  return null;
}

/**
 * The first write of a run, after every check passed: with `overwrite`, removes the earlier run's files (only those
 * a run writes); creates the folder; writes run.json; starts metrics.jsonl, or on resume keeps its lines up to
 * the resumed checkpoint's step (a killed run may have logged steps after its last checkpoint).
 */
export function startRunOutput(cfg: RunConfig, o: RunFolderOptions & { resumed?: { step: number; dir: string } }): string {
  const out = cfg.output;
  if (o.overwrite && fs.existsSync(out)) {
    const self = nodePath.resolve(cfg.file);
    for (const n of fs.readdirSync(out)) {
      const p = nodePath.join(out, n);
      if (isRunArtifact(n) && nodePath.resolve(p) !== self) fs.rmSync(p, { recursive: true, force: true });
    }
  }
  fs.mkdirSync(out, { recursive: true });
  if (nodePath.resolve(out, "run.json") !== nodePath.resolve(cfg.file)) atomicWriteFile(nodePath.join(out, "run.json"), fs.readFileSync(cfg.file, "utf8"));
  const metricsPath = nodePath.join(out, "metrics.jsonl");
  if (o.resumed) {
    removePartialWrites(out);
    atomicWriteFile(metricsPath, metricsUpTo(metricsPath, o.resumed.step, o.resumed.dir));
  } else atomicWriteFile(metricsPath, "");
  return metricsPath;
}

/**
 * metrics.jsonl as it stood when the checkpoint of `step` (in `checkpointDir`) was written: what a killed run logged
 * after it is dropped, a last line cut short by the kill too, and the checkpoint's own line is restored if the kill
 * came between writing the checkpoint and logging it (so a resumed log equals an uninterrupted one).
 */
function metricsUpTo(metricsPath: string, step: number, checkpointDir: string): string {
  const text = fs.existsSync(metricsPath) ? fs.readFileSync(metricsPath, "utf8") : "";
  const lines = text.split("\n");
  lines.pop(); // "" when the file ends with a newline; else a line the kill cut short, dropped
  const kept: string[] = [];
  for (const [i, line] of lines.entries()) {
    if (!line) continue;
    let e: { kind?: string; step?: number };
    try {
      e = JSON.parse(line) as typeof e;
    } catch {
      throw new FormatError(`${metricsPath}:${i + 1}: not a JSON line; the log is damaged (not by a kill, which can only cut the last line).`);
    }
    if (typeof e.step === "number" && e.step <= step) kept.push(line);
  }
  const logged = kept.some((l) => {
    const e = JSON.parse(l) as { kind?: string; step?: number };
    return e.kind === "checkpoint" && e.step === step;
  });
  if (!logged) {
    kept.push(toJsonLine({ kind: "checkpoint", step, path: checkpointDir } as never));
  }
  return kept.map((l) => l + "\n").join("");
}

/** What the trainer will read: every token stream must hold at least one window of seqLen + 1 tokens. */
export function checkTokenData(where: string, streams: Record<string, ArrayLike<number>>, seqLen: number): void {
  for (const [name, s] of Object.entries(streams)) {
    if (s.length < seqLen + 1) {
      throw new ConfigError(`${where}: ${name} has ${s.length} tokens, fewer than seqLen + 1 = ${seqLen + 1}. Give more text or a shorter seqLen.`);
    }
  }
}

/** PEFT's OFT block-size / r auto-adjust warnings of the model's active adapter, each once. */
export function adapterPlanWarnings(m: Pick<AdaptedModel<unknown, unknown>, "active" | "adapters">): string[] {
  if (!m.active) return [];
  return [...new Set(m.adapters[m.active].plan.layers.flatMap((l) => (l.method === "OFT" ? l.warnings : [])))];
}
