/**
 * A dependency-free SVG line/scatter plot: several named series, ticked and labelled axes, optional
 * log scales, a legend. Returns the SVG as a string (write it to a file, or inline it in a page).
 *
 * Used for loss curves and for the BOFT paper's expressivity plot (approximation error against the
 * number of trainable parameters, log–log, one line with markers per method).
 */
import { ConfigError } from "../errors.js";

/** One line (or set of markers) of a linePlot, e.g. a run's training loss against step. */
export type PlotSeries = {
  name: string;
  /** [x, y] pairs in drawing order. Non-finite points (and ≤ 0 on a log axis) are skipped and break the line. */
  points: ReadonlyArray<readonly [number, number]>;
  /** "line" (default), "scatter" (markers only) or "both". */
  mode?: "line" | "scatter" | "both";
  /** Any SVG colour; default from a 10-colour palette by series index. */
  color?: string;
  dashed?: boolean;
};

type Corner = "top-right" | "top-left" | "bottom-right" | "bottom-left";

export type PlotOpts = {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  logX?: boolean;
  logY?: boolean;
  /** Pixel size of the whole image. Default 640 × 400. */
  width?: number;
  height?: number;
  /** Fixed axis ranges; default from the data (rounded out to ticks). */
  xDomain?: [number, number];
  yDomain?: [number, number];
  /** Legend corner, "auto" (the corner covering the fewest data points; default) or "none". */
  legend?: "auto" | Corner | "none";
  /** Prefix for element ids, so several plots can share one HTML page. Default "plot". */
  id?: string;
};

// Tableau 10: distinguishable, and readable by most colour-blind viewers.
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"';

/** Escapes text for SVG content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);
}

/** A "nice" step (1, 2 or 5 × 10ᵏ) giving about `target` intervals over a span. */
function niceStep(span: number, target: number): number {
  const raw = span / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

// Removes float noise such as 0.30000000000000004 from computed tick values.
const clean = (v: number): number => Number(v.toPrecision(12));

/** Linear ticks: multiples of a nice step inside [lo, hi]. */
export function niceTicks(lo: number, hi: number, target = 5): number[] {
  if (!(hi > lo)) return [lo];
  const step = niceStep(hi - lo, target);
  const out: number[] = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) out.push(clean(k * step));
  return out;
}

/** Log ticks inside [lo, hi] (lo > 0): powers of ten, with 2× and 5× added when fewer than three fit. */
export function logTicks(lo: number, hi: number): number[] {
  const e0 = Math.floor(Math.log10(lo));
  const e1 = Math.ceil(Math.log10(hi));
  const within = (v: number) => v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9);
  const byMult = (mults: number[]) => {
    const out: number[] = [];
    for (let e = e0; e <= e1; e++) for (const m of mults) if (within(m * 10 ** e)) out.push(clean(m * 10 ** e));
    return out;
  };
  const decades = byMult([1]);
  if (decades.length >= 3) return decades.length > 8 ? decades.filter((_, i) => i % Math.ceil(decades.length / 8) === 0) : decades;
  for (const mults of [[1, 2, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9]]) {
    const fine = byMult(mults);
    if (fine.length >= 3) return fine;
  }
  return niceTicks(lo, hi, 4); // less than a decade: linear steps read better
}

/** Short tick label: 0.001, 0.25, 3, 1.2k, 16k, 2.5M, 1e-4. */
export function formatTick(v: number): string {
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e9) return `${clean(v / 1e9)}G`;
  if (a >= 1e6) return `${clean(v / 1e6)}M`;
  if (a >= 1e4) return `${clean(v / 1e3)}k`;
  if (a < 1e-3) return v.toExponential().replace(/\.?0+e/, "e").replace("e+", "e");
  return String(clean(v));
}

type Axis = { lo: number; hi: number; log: boolean; ticks: number[] };

function makeAxis(values: number[], log: boolean, fixed: [number, number] | undefined, which: string): Axis {
  if (fixed) {
    const [lo, hi] = fixed;
    if (!(hi > lo) || (log && !(lo > 0))) {
      const need = log ? "0 < lo < hi on a log axis" : "lo < hi";
      throw new ConfigError(`linePlot: ${which}Domain must be [lo, hi] with ${need} (${which}Domain=[${fixed}])`);
    }
    return { lo, hi, log, ticks: log ? logTicks(lo, hi) : niceTicks(lo, hi) };
  }
  let [lo, hi] = values.length === 0 ? (log ? [1, 10] : [0, 1]) : [Infinity, -Infinity];
  for (const v of values) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)]; // no spread: series can be long
  if (log) {
    // Pad 5% of the log span each side so end markers do not sit on the frame.
    if (lo === hi) [lo, hi] = [lo / 2, hi * 2];
    const pad = (Math.log10(hi) - Math.log10(lo)) * 0.05 || 0.25;
    [lo, hi] = [lo / 10 ** pad, hi * 10 ** pad];
    return { lo, hi, log, ticks: logTicks(lo, hi) };
  }
  if (lo === hi) [lo, hi] = lo === 0 ? [-1, 1] : [lo - Math.abs(lo) / 2, hi + Math.abs(hi) / 2];
  const pad = (hi - lo) * 0.04; // keep end markers off the frame
  [lo, hi] = [lo - pad, hi + pad];
  return { lo, hi, log, ticks: niceTicks(lo, hi) };
}

/** Maps data to pixels along one axis; `a` and `b` are the pixel ends for lo and hi. */
function scaler(ax: Axis, a: number, b: number): (v: number) => number {
  const t = ax.log ? (v: number) => Math.log10(v) : (v: number) => v;
  const [t0, t1] = [t(ax.lo), t(ax.hi)];
  return (v) => a + ((t(v) - t0) / (t1 - t0)) * (b - a);
}

const f2 = (v: number): string => v.toFixed(2);

/**
 * Renders the series as an SVG document string.
 * @example linePlot([{ name: "train", points: [[1, 2.3], [2, 1.9]] }], { xLabel: "step", yLabel: "loss", logY: true })
 */
export function linePlot(series: readonly PlotSeries[], opts: PlotOpts = {}): string {
  const { title, xLabel, yLabel, logX = false, logY = false, width = 640, height = 400, legend = "auto", id = "plot" } = opts;
  const usable = (x: number, y: number): boolean =>
    Number.isFinite(x) && Number.isFinite(y) && (!logX || x > 0) && (!logY || y > 0);
  const pts = series.flatMap((s) => s.points.filter(([x, y]) => usable(x, y)));
  const xa = makeAxis(pts.map((p) => p[0]), logX, opts.xDomain, "x");
  const ya = makeAxis(pts.map((p) => p[1]), logY, opts.yDomain, "y");

  const m = { left: 72, right: 20, top: title ? 40 : 16, bottom: xLabel ? 56 : 36 };
  const [px0, px1, py0, py1] = [m.left, width - m.right, height - m.bottom, m.top];
  const sx = scaler(xa, px0, px1);
  const sy = scaler(ya, py0, py1);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<defs><clipPath id="${escapeXml(id)}-area"><rect x="${px0}" y="${py1}" width="${px1 - px0}" height="${py0 - py1}"/></clipPath></defs>`);

  // Grid and tick labels.
  out.push(`<g ${FONT} font-size="11" fill="#333333">`);
  for (const t of xa.ticks) {
    const x = f2(sx(t));
    out.push(`<line x1="${x}" y1="${py1}" x2="${x}" y2="${py0}" stroke="#e6e6e6"/>`);
    out.push(`<line x1="${x}" y1="${py0}" x2="${x}" y2="${py0 + 5}" stroke="#333333"/>`);
    out.push(`<text x="${x}" y="${py0 + 18}" text-anchor="middle">${escapeXml(formatTick(t))}</text>`);
  }
  for (const t of ya.ticks) {
    const y = f2(sy(t));
    out.push(`<line x1="${px0}" y1="${y}" x2="${px1}" y2="${y}" stroke="#e6e6e6"/>`);
    out.push(`<line x1="${px0 - 5}" y1="${y}" x2="${px0}" y2="${y}" stroke="#333333"/>`);
    out.push(`<text x="${px0 - 8}" y="${y}" text-anchor="end" dy="0.35em">${escapeXml(formatTick(t))}</text>`);
  }
  out.push(`</g>`);
  out.push(`<rect x="${px0}" y="${py1}" width="${px1 - px0}" height="${py0 - py1}" fill="none" stroke="#333333"/>`);

  // Series: one path per series (a non-usable point starts a new sub-path), then markers.
  series.forEach((s, i) => {
    const color = escapeXml(s.color ?? PALETTE[i % PALETTE.length]);
    const mode = s.mode ?? "line";
    out.push(`<g class="series" data-name="${escapeXml(s.name)}" clip-path="url(#${escapeXml(id)}-area)">`);
    if (mode !== "scatter") {
      let d = "";
      let pen = false;
      for (const [x, y] of s.points) {
        if (!usable(x, y)) {
          pen = false;
          continue;
        }
        d += `${pen ? "L" : "M"}${f2(sx(x))} ${f2(sy(y))} `;
        pen = true;
      }
      const dash = s.dashed ? ` stroke-dasharray="6 4"` : "";
      if (d) out.push(`<path d="${d.trim()}" fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round"${dash}/>`);
    }
    if (mode !== "line") {
      for (const [x, y] of s.points) {
        if (usable(x, y)) out.push(`<circle cx="${f2(sx(x))}" cy="${f2(sy(y))}" r="3.5" fill="${color}" stroke="#ffffff" stroke-width="1"/>`);
      }
    }
    out.push(`</g>`);
  });

  // Titles.
  out.push(`<g ${FONT} fill="#111111">`);
  if (title) out.push(`<text x="${f2((px0 + px1) / 2)}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`);
  if (xLabel) out.push(`<text x="${f2((px0 + px1) / 2)}" y="${height - 14}" text-anchor="middle" font-size="13">${escapeXml(xLabel)}</text>`);
  if (yLabel) {
    const cy = f2((py0 + py1) / 2);
    out.push(`<text x="18" y="${cy}" text-anchor="middle" font-size="13" transform="rotate(-90 18 ${cy})">${escapeXml(yLabel)}</text>`);
  }
  out.push(`</g>`);

  if (legend !== "none" && series.length > 0) {
    const frame = { px0, px1, py0, py1 };
    const size = legendSize(series);
    let corner: Corner = legend === "auto" ? "top-right" : legend;
    if (legend === "auto") {
      // Pixel positions of every point and segment midpoint; the legend goes where it hides fewest.
      const marks: Array<[number, number]> = [];
      for (const s of series) {
        let prev: [number, number] | null = null;
        for (const [x, y] of s.points) {
          const cur: [number, number] | null = usable(x, y) ? [sx(x), sy(y)] : null;
          if (cur) marks.push(cur);
          if (cur && prev) marks.push([(cur[0] + prev[0]) / 2, (cur[1] + prev[1]) / 2]);
          prev = cur;
        }
      }
      const hidden = (c: Corner): number => {
        const [x, y] = legendOrigin(c, frame, size);
        return marks.filter(([mx, my]) => mx >= x - 4 && mx <= x + size.w + 4 && my >= y - 4 && my <= y + size.h + 4).length;
      };
      const corners: Corner[] = ["top-right", "top-left", "bottom-right", "bottom-left"];
      corner = corners.reduce((best, c) => (hidden(c) < hidden(best) ? c : best));
    }
    out.push(legendBox(series, legendOrigin(corner, frame, size), size));
  }
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}

type Frame = { px0: number; px1: number; py0: number; py1: number };
type Size = { w: number; h: number };
const ROW_H = 18;

function legendSize(series: readonly PlotSeries[]): Size {
  // Rough text width (7 px per character at 12 px): there are no font metrics without a renderer.
  return { w: 44 + 7 * Math.max(...series.map((s) => s.name.length)), h: 8 + ROW_H * series.length };
}

function legendOrigin(corner: Corner, f: Frame, size: Size): [number, number] {
  const x = corner.endsWith("right") ? f.px1 - size.w - 8 : f.px0 + 8;
  const y = corner.startsWith("top") ? f.py1 + 8 : f.py0 - size.h - 8;
  return [x, y];
}

function legendBox(series: readonly PlotSeries[], [x, y]: [number, number], { w, h }: Size): string {
  const out = [`<g class="legend" ${FONT} font-size="12" fill="#111111">`];
  out.push(`<rect x="${f2(x)}" y="${f2(y)}" width="${f2(w)}" height="${h}" fill="#ffffff" fill-opacity="0.85" stroke="#bbbbbb"/>`);
  series.forEach((s, i) => {
    const color = escapeXml(s.color ?? PALETTE[i % PALETTE.length]);
    const cy = y + 4 + ROW_H * i + ROW_H / 2;
    const mode = s.mode ?? "line";
    if (mode !== "scatter") {
      const dash = s.dashed ? ` stroke-dasharray="6 4"` : "";
      out.push(`<line x1="${f2(x + 8)}" y1="${f2(cy)}" x2="${f2(x + 30)}" y2="${f2(cy)}" stroke="${color}" stroke-width="2"${dash}/>`);
    }
    if (mode !== "line") out.push(`<circle cx="${f2(x + 19)}" cy="${f2(cy)}" r="3.5" fill="${color}"/>`);
    out.push(`<text x="${f2(x + 36)}" y="${f2(cy)}" dy="0.35em">${escapeXml(s.name)}</text>`);
  });
  out.push(`</g>`);
  return out.join("\n");
}
