/**
 * Training events and their JSON-lines form.
 *
 * A trainer yields these (`{ kind: "step" | "eval" | "checkpoint" | "done", … }`); the CLI renders them
 * as a progress bar and appends them to `metrics.jsonl`, from which loss curves are plotted. Non-finite
 * numbers are written as the strings "NaN", "Infinity", "-Infinity", because a diverged loss is
 * exactly what a log must not lose (JSON.stringify would turn it into null).
 */
import { FormatError } from "../errors.js";
import type { TrainSnapshot } from "./trainer.js";

/** One optimizer step finished. */
export type StepEvent = {
  kind: "step";
  /** Steps completed, 1-based. */
  step: number;
  totalSteps: number;
  /** Training loss of this step's batch. */
  loss: number;
  /** Learning rate used for this step. */
  lr: number;
  /** Global gradient norm before clipping, if measured. */
  gradNorm?: number;
  /** Items processed this step (tokens for an LM, samples for a classifier), for throughput. */
  items?: number;
  /** Wall time since training started, ms. */
  elapsedMs: number;
};

/** An evaluation pass finished. */
export type EvalEvent = {
  kind: "eval";
  step: number;
  /** Which data, e.g. "val", "val-romance", "test-rotated". */
  split: string;
  loss: number;
  /** Further numbers, e.g. { accuracy: 0.97, perplexity: 4.1 }. */
  metrics?: Record<string, number>;
};

/**
 * A checkpoint: the trainer yields the state after `step` as an in-memory `snapshot` (resume from it with the
 * `resume` option); a run writes it to disk and reports its folder as `path` instead.
 */
export type CheckpointEvent = { kind: "checkpoint"; step: number; snapshot?: TrainSnapshot; path?: string };

/** Training ended. */
export type DoneEvent = {
  kind: "done";
  /** Steps completed. */
  step: number;
  elapsedMs: number;
  /** Loss of the last step, if any step ran. */
  finalLoss?: number;
  /** Present (true) when training was stopped early by its AbortSignal. */
  stopped?: boolean;
};

/**
 * What `finetune` yields (and what a run logs to metrics.jsonl, one JSON line each): tell them apart by `kind`.
 *
 * @example
 * for await (const e of finetune(peft, data, { steps: 50 })) {
 *   if (e.kind === "step") console.log(e.step, e.loss);
 *   else if (e.kind === "eval") console.log(e.split, e.loss);
 * }
 */
export type TrainEvent = StepEvent | EvalEvent | CheckpointEvent | DoneEvent;

const KINDS = new Set(["step", "eval", "checkpoint", "done"]);
const TEXT_FIELDS = new Set(["kind", "split", "path"]);

function encodeNumber(_key: string, v: unknown): unknown {
  if (typeof v === "number" && !Number.isFinite(v)) return String(v); // "NaN", "Infinity", "-Infinity"
  return v;
}

/** One event → one line of JSON (no trailing newline). `kind` comes first so lines are easy to grep. */
export function toJsonLine(e: TrainEvent): string {
  // A snapshot is tensors, not a log line: runs write it as a checkpoint folder and log its path.
  const { kind, snapshot: _snapshot, ...rest } = e as TrainEvent & { snapshot?: unknown };
  return JSON.stringify({ kind, ...rest }, encodeNumber);
}

/** One line written by toJsonLine → the event. Throws FormatError on anything else. */
export function parseJsonLine(line: string): TrainEvent {
  let v: unknown;
  try {
    v = JSON.parse(line, (key, val: unknown) =>
      !TEXT_FIELDS.has(key) && (val === "NaN" || val === "Infinity" || val === "-Infinity") ? Number(val) : val,
    );
  } catch (err) {
    throw new FormatError(`parseJsonLine: not JSON (${(err as Error).message}): ${line.slice(0, 80)}`);
  }
  const o = v as { kind?: unknown; step?: unknown };
  if (typeof v !== "object" || v === null || !KINDS.has(o.kind as string) || typeof o.step !== "number") {
    throw new FormatError(`parseJsonLine: not a training event (need kind in step|eval|checkpoint|done and a numeric step): ${line.slice(0, 80)}`);
  }
  return v as TrainEvent;
}

/** Parses a whole JSONL text, skipping blank lines. */
export function parseJsonLines(text: string): TrainEvent[] {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map(parseJsonLine);
}

/** A named curve, the shape plot/svg.ts draws. */
export type Curve = { name: string; points: Array<[number, number]> };

/** Loss against step: a "train" curve from step events and one curve per eval split, in first-seen order. */
export function lossCurves(events: Iterable<TrainEvent>): Curve[] {
  const curves = new Map<string, Curve>();
  const add = (name: string, x: number, y: number): void => {
    if (!curves.has(name)) curves.set(name, { name, points: [] });
    (curves.get(name) as Curve).points.push([x, y]);
  };
  for (const e of events) {
    if (e.kind === "step") add("train", e.step, e.loss);
    else if (e.kind === "eval") add(e.split, e.step, e.loss);
  }
  return [...curves.values()];
}

/** The middle value (the mean of the two middle ones for an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}
