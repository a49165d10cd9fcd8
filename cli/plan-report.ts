/**
 * `boft inspect --model …`: plan an adapter's size on a model before training, and set it beside what the BOFT
 * paper reports for that model. Parses the method options, loads the model shape (preset or config.json),
 * renders the tables. The counting itself is src/methods/planner.ts; the paper's numbers src/methods/paper-counts.ts.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  boftConfig, oftConfig, loraConfig, planParameters, groupPlannedModules, PAPER_CLAIMS, explainClaim, MODEL_PRESETS, findModelPreset, presetModelShape, modelShapeFromConfig,
  type AdapterMethod, type ModelShape, type ParameterPlan, type PaperClaim,
} from "boft";
import { UsageError, optionalNumber } from "./command.js";
import { renderTable, formatNumber } from "./table.js";

type Values = Record<string, string | boolean | string[] | undefined>;

/** A preset name, a config.json, or a model folder holding one. */
export function loadModelShape(spec: string): ModelShape {
  const preset = findModelPreset(spec);
  if (preset) return presetModelShape(preset);
  if (existsSync(spec)) {
    const file = statSync(spec).isDirectory() ? join(spec, "config.json") : spec;
    return modelShapeFromConfig(readFileSync(file, "utf8"), spec, file);
  }
  throw new UsageError(`--model: no preset or file named ${JSON.stringify(spec)} (presets: ${MODEL_PRESETS.map((p) => p.name).join(", ")})`);
}

/** The method config the options describe. Config errors (PEFT's checks) propagate as ConfigError. */
export function methodFromOptions(values: Values): AdapterMethod {
  const method = String(values.method ?? "boft").toLowerCase();
  const target = typeof values.target === "string" ? values.target.split(",").map((t) => t.trim()).filter(Boolean) : null;
  const targetModules = target && target.length ? target : null;
  const bias = typeof values.bias === "string" ? values.bias : "none";
  const blockSize = optionalNumber(values, "block-size");
  const blockNum = optionalNumber(values, "block-num");
  switch (method) {
    case "boft":
      return {
        kind: "BOFT",
        config: boftConfig({
          blockSize: blockSize ?? (blockNum ? 0 : 4),
          blockNum: blockNum ?? 0,
          nButterflyFactor: optionalNumber(values, "factors") ?? 1,
          targetModules,
          bias: bias as never,
        }),
      };
    case "oft":
      return {
        kind: "OFT",
        config: oftConfig({ blockSize: blockSize ?? (blockNum ? 0 : 32), r: blockNum ?? 0, targetModules, bias: bias as never }),
      };
    case "lora":
      return { kind: "LORA", config: loraConfig({ r: optionalNumber(values, "rank") ?? 8, targetModules, bias: bias as never }) };
    default:
      throw new UsageError(`--method must be boft, oft or lora (got ${method})`);
  }
}

function methodLabel(m: AdapterMethod): string {
  switch (m.kind) {
    case "BOFT":
      return `BOFT m=${m.config.nButterflyFactor} ${m.config.blockSize ? `b=${m.config.blockSize}` : `D=${m.config.blockNum}`}`;
    case "OFT":
      return `OFT ${m.config.blockSize ? `b=${m.config.blockSize}` : `r=${m.config.r}`}`;
    case "LORA":
      return `LoRA r=${m.config.r}`;
  }
}

const pct = (x: number) => `${x < 0.01 ? x.toExponential(2) : x.toFixed(3)}%`;

/** The plan as text: one row per module name (layers grouped), totals, and the paper's counts for this model. */
export function renderPlan(model: ModelShape, method: AdapterMethod, plan: ParameterPlan, opts: { perModule?: boolean } = {}): string {
  const lines: string[] = [];
  const targets = Array.isArray(plan.targets) ? plan.targets.join(",") : String(plan.targets);
  lines.push(`${model.name} (${model.modelType}, ${formatNumber(model.totalParams)} parameters): ${methodLabel(method)} on ${targets}`);
  lines.push(`adapted modules: ${plan.totals.modules} of ${model.modules.length}`);
  lines.push("");
  const rows = (opts.perModule ? plan.modules.map((p) => ({ ...p, count: 1 })) : groupPlannedModules(plan.modules)).map((p) => [
    p.path,
    p.count,
    p.n,
    p.out,
    p.shape,
    p.stored,
    p.effective,
    p.span,
  ]);
  lines.push(renderTable(["module", "×", "n", "out", "shape", "stored", "effective", "span"], rows));
  lines.push("");
  const t = plan.totals;
  lines.push(`stored (as PEFT saves it): ${formatNumber(t.stored)} (${pct(plan.percent.stored)} of the model)`);
  lines.push(`effective (degrees of freedom${method.kind === "BOFT" ? ": skew part of each block + s" : ""}): ${formatNumber(t.effective)} (${pct(plan.percent.effective)})`);
  if (t.bias > 0) lines.push(`trainable base biases (bias=${method.config.bias}): ${formatNumber(t.bias)}; effective + biases ${formatNumber(t.effective + t.bias)} (${pct(plan.percent.effectivePlusBias)})`);
  for (const w of new Set(plan.modules.flatMap((p) => p.warnings))) lines.push(`warning: ${w}`);
  for (const n of model.notes ?? []) lines.push(`note: ${n}`);
  const paper = paperSection(model, method);
  if (paper) lines.push("", paper);
  return lines.join("\n");
}

/** The claims of the paper for this model that match the method's setting, with the rules that reproduce them. */
export function paperSection(model: ModelShape, method: AdapterMethod): string | null {
  const claims = PAPER_CLAIMS.filter((c) => c.model === model.name);
  if (claims.length === 0) return null;
  const same = claims.filter((c) => sameSetting(c, method));
  const lines = [`The paper (Liu et al., ICLR 2024) on ${model.name}:`];
  for (const c of claims) lines.push(`  ${c.benchmark} ${c.label}: ${c.reported} (${c.source})${same.includes(c) ? "   ← this setting" : ""}`);
  for (const c of same) {
    const cands = explainClaim(c, model);
    const hits = cands.filter((x) => x.matches);
    lines.push("");
    lines.push(`${c.label}, reported ${c.reported}; counted every way (target set × rule):`);
    lines.push(
      renderTable(
        ["targets", "rule", "count", "% of model", "rounds to " + c.reported],
        cands.map((x) => [x.targets, x.rule, x.count, pct(x.percent), x.matches ? "yes" : ""]),
      ),
    );
    lines.push(hits.length ? `reproduced by: ${hits.map((h) => `${h.targets}, ${h.rule} = ${formatNumber(h.count)}`).join("; ")}` : "no rule reproduces it");
    if (method.kind === "OFT" && c.method === "OFT") {
      lines.push("note: the paper's OFT rows come from its BOFT code with one factor (blocks + s); PEFT's OFT stores packed skew triangles and no s.");
    }
  }
  return lines.join("\n");
}

function sameSetting(c: PaperClaim, m: AdapterMethod): boolean {
  switch (m.kind) {
    case "BOFT":
      return (c.method === "BOFT" || c.method === "OFT") && c.blockSize === m.config.blockSize && (c.nFactors ?? 1) === m.config.nButterflyFactor;
    case "OFT":
      return c.method === "OFT" && c.blockSize === m.config.blockSize;
    case "LORA":
      return c.method === "LORA" && c.r === m.config.r;
  }
}

/** Runs `boft inspect --model …`. */
export function runPlan(values: Values): number {
  const model = loadModelShape(String(values.model));
  const method = methodFromOptions(values);
  const plan = planParameters(model, method);
  if (values.json) {
    console.log(JSON.stringify({ model: { name: model.name, modelType: model.modelType, totalParams: model.totalParams }, plan }));
    return 0;
  }
  console.log(renderPlan(model, method, plan, { perModule: Boolean(values["per-module"]) }));
  return 0;
}
