/** Plain-text tables for results people compare (right-aligned numbers, left-aligned text). */
export function renderTable(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === "number" ? formatNumber(c) : c)))];
  const numeric = header.map((_, j) => rows.length > 0 && rows.every((r) => typeof r[j] === "number"));
  const widths = header.map((_, j) => Math.max(...cells.map((r) => String(r[j] ?? "").length)));
  const line = (r: (string | number)[]) =>
    r.map((c, j) => (numeric[j] ? String(c).padStart(widths[j]) : String(c).padEnd(widths[j]))).join("  ").trimEnd();
  return [line(cells[0]), widths.map((w) => "-".repeat(w)).join("  "), ...cells.slice(1).map(line)].join("\n");
}

export function formatNumber(x: number): string {
  if (Number.isInteger(x)) return x.toLocaleString("en-US");
  if (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e6)) return x.toExponential(2);
  return x.toFixed(Math.abs(x) < 1 ? 4 : 2);
}
