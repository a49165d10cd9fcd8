/**
 * The parameter counts the BOFT paper reports (Liu et al., ICLR 2024), and which counting rule reproduces each.
 *
 * A reported count depends on choices the tables do not state: which modules were adapted, whether the BOFT/OFT
 * count is the stored b×b blocks or only their skew part, and whether the scale s and trained biases are included.
 * `explainClaim` counts every combination of target set × rule with the planner and marks those that round to the
 * printed number. Pure.
 */
import type { AdapterMethod } from "./method.js";
import { boftConfig } from "./boft/config.js";
import { loraConfig } from "./lora/config.js";
import { type ModelShape, planParameters } from "./planner.js";

/** One parameter count the BOFT paper prints for a model, as planParameters can check it (explainClaim). */
export type PaperClaim = {
  /** Preset name (formats/hf-model-shapes.ts). */
  model: string;
  benchmark: string;
  /** How the paper labels the row, e.g. "BOFT m=2 b=8". */
  label: string;
  method: "BOFT" | "OFT" | "LORA";
  /** Block size b and factors m (OFT rows are BOFT with m = 1 in the paper's code), or LoRA rank r. */
  blockSize?: number;
  nFactors?: number;
  r?: number;
  /** As printed: "0.75M" or "0.12%". */
  reported: string;
  source: string;
};

/** The BOFT paper's parameter counts that boft reproduces from model shapes (`boft inspect --paper`). */
export const PAPER_CLAIMS: readonly PaperClaim[] = [
  { model: "DeBERTaV3-base", benchmark: "GLUE", label: "OFT b=16", method: "OFT", blockSize: 16, nFactors: 1, reported: "0.79M", source: "Table 1 (#Params)" },
  { model: "DeBERTaV3-base", benchmark: "GLUE", label: "BOFT m=2 b=8", method: "BOFT", blockSize: 8, nFactors: 2, reported: "0.75M", source: "Table 1 (#Params)" },
  { model: "DeBERTaV3-base", benchmark: "GLUE", label: "LoRA r=8", method: "LORA", r: 8, reported: "1.33M", source: "Table 1 (#Params)" },
  { model: "Llama-2-7B", benchmark: "MMLU / math", label: "BOFT m=2 b=8", method: "BOFT", blockSize: 8, nFactors: 2, reported: "0.12%", source: "LLM tables (#Params, % of the model)" },
];

/** Target sets worth trying per model family (PEFT target_modules lists). */
export const CANDIDATE_TARGETS: Readonly<Record<string, ReadonlyArray<{ label: string; targets: string[] }>>> = {
  "deberta-v2": [
    { label: "query, value", targets: ["query_proj", "value_proj"] },
    { label: "query, key, value", targets: ["query_proj", "key_proj", "value_proj"] },
    // The list from wy1iu/butterfly-oft#2; "output.dense" matches both attention.output.dense and output.dense.
    { label: "all 6 linear", targets: ["query_proj", "key_proj", "value_proj", "output.dense", "intermediate.dense"] },
  ],
  llama: [
    { label: "q, v", targets: ["q_proj", "v_proj"] },
    { label: "q, k, v, o", targets: ["q_proj", "k_proj", "v_proj", "o_proj"] },
    { label: "all 7 linear", targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] },
  ],
  dinov2: [
    { label: "query, value", targets: ["query", "value"] },
    { label: "query, key, value, dense", targets: ["query", "key", "value", "attention.output.dense"] },
    { label: "all 6 linear", targets: ["query", "key", "value", "attention.output.dense", "fc1", "fc2"] },
  ],
};

export type CountRule = "stored (PEFT file)" | "skew only" | "skew + s" | "skew + s + bias" | "A + B" | "A + B + bias";

/** One way of counting a PaperClaim (target set and counting rule) and whether it prints as the paper's number. */
export type ClaimCandidate = { targets: string; rule: CountRule; count: number; percent: number; matches: boolean };

/** Does `count` (or its share of `total`) print as `reported` ("0.75M", "1.33M", "0.12%", "12.5K")? */
export function roundsTo(reported: string, count: number, total: number): boolean {
  const m = /^([\d.]+)\s*([KMB%])$/i.exec(reported.trim());
  if (!m) return false;
  const [whole, frac = ""] = m[1].split(".");
  const half = 0.5 * 10 ** -frac.length;
  const value = Number(`${whole}.${frac || "0"}`);
  const unit = m[2].toUpperCase();
  const x = unit === "%" ? (100 * count) / total : count / { K: 1e3, M: 1e6, B: 1e9 }[unit as "K" | "M" | "B"];
  return Math.abs(x - value) <= half + 1e-12;
}

/** The method config a claim describes, on the given targets (bias "none": biases are counted separately). */
export function claimMethod(c: PaperClaim, targets: string[]): AdapterMethod {
  if (c.method === "LORA") return { kind: "LORA", config: loraConfig({ r: c.r ?? 8, targetModules: targets }) };
  // The paper's OFT rows come from its BOFT code with one factor (so they carry s, like BOFT).
  return { kind: "BOFT", config: boftConfig({ blockSize: c.blockSize ?? 0, nButterflyFactor: c.nFactors ?? 1, targetModules: targets }) };
}

/** Every (target set × counting rule) for a claim on `model`, with the ones that reproduce the printed number. */
export function explainClaim(c: PaperClaim, model: ModelShape): ClaimCandidate[] {
  const out: ClaimCandidate[] = [];
  for (const t of CANDIDATE_TARGETS[model.modelType] ?? []) {
    const plan = planParameters(model, claimMethod(c, t.targets));
    const scale = plan.modules.reduce((a, p) => a + p.out, 0); // s has one value per output
    const adapted = new Set(plan.modules.map((p) => p.path));
    const withBias = model.modules.filter((m) => adapted.has(m.path) && m.bias).reduce((a, m) => a + m.outFeatures, 0);
    const rules: Array<[CountRule, number]> =
      c.method === "LORA"
        ? [
            ["A + B", plan.totals.stored],
            ["A + B + bias", plan.totals.stored + withBias],
          ]
        : [
            ["stored (PEFT file)", plan.totals.stored],
            ["skew only", plan.totals.effective - scale],
            ["skew + s", plan.totals.effective],
            ["skew + s + bias", plan.totals.effective + withBias],
          ];
    for (const [rule, count] of rules) {
      out.push({ targets: t.label, rule, count, percent: (100 * count) / model.totalParams, matches: roundsTo(c.reported, count, model.totalParams) });
    }
  }
  return out;
}
