/**
 * Terminal progress for training: one redrawn line on a TTY
 * (`train [#####-----] 120/200  60%  loss 2.3456  1.2k tok/s  ETA 1m05s`), and plain periodic lines
 * otherwise (CI logs, `> file`), where carriage returns would pile up into one unreadable line.
 *
 * Takes numbers, not events, so it does not depend on the trainer; the train command maps step events
 * onto `update`. Clock and output are injectable for tests.
 */

/** Where output goes: process.stdout or anything with `write`. */
export type ProgressSink = { write(s: string): unknown; isTTY?: boolean; columns?: number };

export type ProgressOpts = {
  /** Steps in the run. */
  total: number;
  /** Shown first on each line. Default "train". */
  label?: string;
  /** What `items` counts, for the rate: "tok", "samples", … Without items the rate is in steps ("it/s"). */
  unit?: string;
  /** Default process.stdout. */
  out?: ProgressSink;
  /** Force TTY or plain mode. Default: out.isTTY. */
  tty?: boolean;
  /** Milliseconds clock. Default performance.now. */
  now?: () => number;
  /** Plain mode: at most one line per this many ms (first and last step always print). Default 10000. */
  intervalMs?: number;
  /** Plain mode: also print every this many steps. Default: never by count. */
  everySteps?: number;
  /** TTY mode: minimum ms between redraws (the bar is not worth a syscall per fast step). Default 100. */
  redrawMs?: number;
};

export type StepInfo = {
  /** Latest training loss. */
  loss?: number;
  /** Items processed by this step (tokens, samples). */
  items?: number;
  /** Extra text appended to the line, e.g. "lr 3.0e-4". */
  extra?: string;
};

export type Progress = {
  /** Report that `step` of `total` steps are done (1-based). */
  update(step: number, info?: StepInfo): void;
  /** Print a message without breaking the bar (an eval result, a checkpoint path). */
  log(line: string): void;
  /** Final state and a newline; `summary` is printed after it. */
  done(summary?: string): void;
};

/** 3s, 4m05s, 1h02m. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** 12.3 tok/s, 4.5k tok/s, 1.2M tok/s. */
export function formatRate(perSecond: number, unit: string): string {
  const r = perSecond;
  const num = r >= 1e6 ? `${(r / 1e6).toFixed(1)}M` : r >= 1e4 ? `${(r / 1e3).toFixed(0)}k` : r >= 1e3 ? `${(r / 1e3).toFixed(1)}k` : r >= 10 ? r.toFixed(0) : r.toFixed(2);
  return `${num} ${unit}/s`;
}

const WINDOW = 20; // updates the rate and ETA average over: forgets the slow first (compile) step

/** A progress reporter; see ProgressOpts for TTY vs plain behaviour. */
export function createProgress(opts: ProgressOpts): Progress {
  const {
    total,
    label = "train",
    unit,
    out = process.stdout,
    tty = out.isTTY === true,
    now = () => performance.now(),
    intervalMs = 10_000,
    everySteps,
    redrawMs = 100,
  } = opts;
  const start = now();
  // Recent (time, step, cumulative items) samples; the first is the start of the run.
  const samples: Array<{ t: number; step: number; items: number }> = [{ t: start, step: 0, items: 0 }];
  let items = 0;
  let step = 0;
  let info: StepInfo = {};
  let lastPrint = -Infinity;
  let lastPrintedStep = 0;
  let drawn = false;

  const rateText = (): string => {
    const a = samples[0];
    const b = samples[samples.length - 1];
    const dt = (b.t - a.t) / 1000;
    if (b.step === a.step || dt <= 0) return "";
    return unit !== undefined && b.items > a.items ? formatRate((b.items - a.items) / dt, unit) : formatRate((b.step - a.step) / dt, "it");
  };
  const etaSeconds = (): number => {
    const a = samples[0];
    const b = samples[samples.length - 1];
    return b.step === a.step ? NaN : (((b.t - a.t) / (b.step - a.step)) * (total - step)) / 1000;
  };
  const fields = (): string[] => {
    const f: string[] = [];
    if (info.loss !== undefined) f.push(`loss ${info.loss.toFixed(4)}`);
    const rate = rateText();
    if (rate) f.push(rate);
    if (step < total) f.push(`ETA ${formatDuration(etaSeconds())}`);
    f.push(`elapsed ${formatDuration((now() - start) / 1000)}`);
    if (info.extra) f.push(info.extra);
    return f;
  };
  const pct = (): string => `${Math.floor((100 * step) / Math.max(total, 1))}%`;
  const barLine = (): string => {
    const width = 24;
    const filled = Math.round((width * Math.min(step, total)) / Math.max(total, 1));
    const line = `${label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${step}/${total} ${pct().padStart(4)}  ${fields().join("  ")}`;
    const cols = out.columns ?? 0;
    return cols > 10 && line.length >= cols ? line.slice(0, cols - 1) : line;
  };
  const plainLine = (): string => `${label} step ${step}/${total} (${pct()})  ${fields().join("  ")}`;

  const redraw = (): void => {
    out.write(`\r${barLine()}\x1b[K`);
    drawn = true;
    lastPrint = now();
  };
  const printPlain = (): void => {
    out.write(`${plainLine()}\n`);
    lastPrint = now();
    lastPrintedStep = step;
  };

  return {
    update(s: number, i: StepInfo = {}) {
      step = s;
      info = i;
      items += i.items ?? 0;
      samples.push({ t: now(), step, items });
      if (samples.length > WINDOW + 1) samples.shift();
      const t = now();
      if (tty) {
        if (step === 1 || step >= total || t - lastPrint >= redrawMs) redraw();
        return;
      }
      const due = t - lastPrint >= intervalMs || (everySteps !== undefined && step - lastPrintedStep >= everySteps);
      if (step === 1 || step >= total || due) printPlain();
    },
    log(line: string) {
      if (tty && drawn) {
        out.write(`\r\x1b[K${line}\n`);
        redraw();
      } else out.write(`${line}\n`);
    },
    done(summary?: string) {
      if (tty) {
        redraw();
        out.write("\n");
      } else if (lastPrintedStep !== step) printPlain();
      if (summary) out.write(`${summary}\n`);
    },
  };
}
