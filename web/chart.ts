/** The live loss chart: one polyline in an SVG, redrawn per step (a few hundred points at most). */

const NS = "http://www.w3.org/2000/svg";
const W = 640;
const H = 240;
const PAD = { l: 52, r: 12, t: 12, b: 28 };

function el(name: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Draws loss against step into `svg` (viewBox 640×240); the x axis spans 0…`steps`. */
export function drawLossChart(svg: SVGSVGElement, points: [number, number][], steps: number): void {
  svg.replaceChildren();
  const ys = points.map((p) => p[1]).filter(Number.isFinite);
  let lo = ys.length ? Math.min(...ys) : 0;
  let hi = ys.length ? Math.max(...ys) : 1;
  if (hi - lo < 1e-6) {
    lo -= 0.5;
    hi += 0.5;
  }
  const x = (s: number) => PAD.l + ((W - PAD.l - PAD.r) * s) / Math.max(1, steps);
  const y = (v: number) => PAD.t + ((H - PAD.t - PAD.b) * (hi - v)) / (hi - lo);
  for (let k = 0; k <= 4; k++) {
    const v = lo + ((hi - lo) * k) / 4;
    svg.append(el("line", { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(el("text", { x: PAD.l - 6, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(3)));
  }
  svg.append(el("line", { x1: PAD.l, x2: PAD.l, y1: PAD.t, y2: H - PAD.b, class: "axis" }));
  svg.append(el("line", { x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b, y2: H - PAD.b, class: "axis" }));
  svg.append(el("text", { x: PAD.l, y: H - 8 }, "0"));
  svg.append(el("text", { x: W - PAD.r, y: H - 8, "text-anchor": "end" }, `step ${steps}`));
  svg.append(el("text", { x: (W + PAD.l) / 2, y: H - 8, "text-anchor": "middle" }, "training loss"));
  if (points.length) {
    svg.append(el("polyline", { class: "loss", points: points.map(([s, v]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`).join(" ") }));
  }
}
