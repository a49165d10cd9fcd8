import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "../src/errors.js";
import { escapeXml, formatTick, linePlot, logTicks, niceTicks } from "../src/plot/svg.js";

/** Checks that tags nest and close, attributes are quoted, and text has no raw "<" or "&". Returns tag names. */
function wellFormed(svg: string): string[] {
  const stack: string[] = [];
  const names: string[] = [];
  const re = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/g;
  let consumed = 0;
  for (let m = re.exec(svg); m; m = re.exec(svg)) {
    assert.equal(m.index, consumed, `unparsable markup at ${consumed}: ${svg.slice(consumed, consumed + 60)}`);
    consumed = re.lastIndex;
    const [, close, name, , selfClose, text] = m;
    if (text !== undefined) {
      assert.ok(!/&(?!(amp|lt|gt|quot|#39);)/.test(text), `unescaped & in ${text}`);
      continue;
    }
    names.push(name);
    if (close) assert.equal(stack.pop(), name, `</${name}> closes the wrong element`);
    else if (!selfClose) stack.push(name);
  }
  assert.equal(consumed, svg.length, "trailing garbage");
  assert.deepEqual(stack, [], "unclosed elements");
  return names;
}

describe("plot.linePlot()", () => {
  const loss = { name: "train", points: Array.from({ length: 50 }, (_, i) => [i + 1, 3 * Math.exp(-i / 10) + 0.5] as [number, number]) };
  const val = { name: "val <romance> & co", points: [[1, 3.6], [25, 1.2], [50, 0.9]] as [number, number][], mode: "both" as const, dashed: true };

  it("produces a well-formed SVG document with both series and a legend", () => {
    const svg = linePlot([loss, val], { title: "Loss", xLabel: "step", yLabel: "loss", logY: true });
    const tags = wellFormed(svg);
    assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
    assert.equal(tags.filter((t) => t === "path").length, 2);
    assert.equal(tags.filter((t) => t === "circle").length, 3 + 1); // val's markers + its legend marker
    assert.ok(svg.includes('data-name="train"'));
    assert.ok(svg.includes("val &lt;romance&gt; &amp; co"));
    assert.ok(svg.includes('stroke-dasharray="6 4"'));
    for (const label of ["Loss", "step", "loss"]) assert.ok(svg.includes(`>${label}</text>`));
  });

  it("draws the expressivity plot as markers joined by lines on log–log axes", () => {
    const series = ["BOFT m=2", "OFT", "LoRA"].map((name, k) => ({
      name,
      mode: "both" as const,
      points: [2048, 8192, 32768].map((p) => [p, (0.5 + 0.1 * k) * (p / 2048) ** -0.4] as [number, number]),
    }));
    const svg = linePlot(series, { logX: true, logY: true, xLabel: "# trainable parameters", yLabel: "error" });
    wellFormed(svg);
    assert.equal((svg.match(/<circle/g) ?? []).length, 9 + 3);
    for (const tick of [">5000<", ">10k<", ">0.2<"]) assert.ok(svg.includes(tick), `missing tick ${tick}`);
  });

  it("skips non-finite points, and ≤ 0 values on log axes, breaking the line there", () => {
    const svg = linePlot([{ name: "s", points: [[1, 1], [2, 2], [3, NaN], [4, 4], [5, -1], [6, 6]] }], { logY: true });
    const d = /<path d="([^"]+)"/.exec(svg)?.[1] ?? "";
    assert.equal((d.match(/M/g) ?? []).length, 3);
    assert.equal((d.match(/L/g) ?? []).length, 1);
    assert.ok(!svg.includes("NaN"));
  });

  it("puts the legend in the corner with the fewest data points", () => {
    const rising = { name: "up", points: Array.from({ length: 40 }, (_, i) => [i, i] as [number, number]) };
    const svg = linePlot([rising], { width: 400, height: 300 });
    const [, x, y] = /class="legend"[^]*?<rect x="([\d.]+)" y="([\d.]+)"/.exec(svg) ?? [];
    // A rising diagonal fills top-right and bottom-left: the legend goes top-left.
    assert.ok(Number(x) < 200 && Number(y) < 150, `legend at ${x},${y}`);
  });

  it("handles empty and single-point input, and rejects a bad fixed domain", () => {
    wellFormed(linePlot([]));
    wellFormed(linePlot([{ name: "one", points: [[3, 3]] }], { logX: true }));
    assert.throws(() => linePlot([], { yDomain: [0, 1], logY: true }), ConfigError);
  });
});

describe("plot tick helpers", () => {
  it("niceTicks picks 1-2-5 steps", () => {
    assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
    assert.deepEqual(niceTicks(-0.13, 0.42), [-0.1, 0, 0.1, 0.2, 0.3, 0.4]);
    assert.deepEqual(niceTicks(0, 300), [0, 50, 100, 150, 200, 250, 300]);
  });

  it("logTicks uses decades when there are enough, finer multiples otherwise", () => {
    assert.deepEqual(logTicks(1e-3, 1), [0.001, 0.01, 0.1, 1]);
    assert.deepEqual(logTicks(1.5, 40), [2, 5, 10, 20]);
    assert.deepEqual(logTicks(1.1, 6.2), [2, 3, 4, 5, 6]);
  });

  it("formatTick writes short labels", () => {
    assert.deepEqual([0, 0.25, 3, 1500, 16384, 2.5e6, 1e-4, -0.2].map(formatTick), ["0", "0.25", "3", "1500", "16.384k", "2.5M", "1e-4", "-0.2"]);
    assert.equal(escapeXml(`a<b & "c"`), "a&lt;b &amp; &quot;c&quot;");
  });
});
