/**
 * Config-time and layer-time checks against PEFT's own accept/reject grids (validation_boft.json,
 * validation_oft.json) and the shapes recorded in the PEFT case fixtures.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, ShapeError } from "../src/errors.js";
import { boftConfig, resolveBoftShape, BOFT_DEFAULTS } from "../src/methods/boft/config.js";
import { oftConfig, resolveOftShape, adjustOftParameter, OFT_DEFAULTS } from "../src/methods/oft/config.js";
import { loraConfig, loraScaling, LORA_DEFAULTS } from "../src/methods/lora/config.js";
import { parseAdapterConfig } from "../src/formats/peft-config.js";

const dir = join("test", "fixtures", "peft");
const readJson = (name: string): unknown => JSON.parse(readFileSync(join(dir, name), "utf8"));

type BoftRow = {
  in_features: number;
  boft_block_size: number;
  boft_block_num: number;
  boft_n_butterfly_factor: number;
  fbd_cuda_available: boolean;
  stage: "config" | "layer";
  ok: boolean;
  error?: string;
  boft_R_shape?: number[];
  boft_s_shape?: number[];
  block_size?: number;
  block_num?: number;
};

type OftRow = {
  in_features: number;
  r: number;
  oft_block_size: number;
  stage: "config" | "layer";
  ok: boolean;
  error?: string;
  r_eff?: number;
  block_size_eff?: number;
  oft_R_weight_shape?: number[];
  warnings?: string[];
};

/** Runs `f` and returns the ConfigError's message, failing if anything else happens. */
function configErrorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return e.message;
  }
  assert.fail("expected a ConfigError, nothing was thrown");
}

const boftRows = readJson("validation_boft.json") as BoftRow[];
const rowName = (r: BoftRow) =>
  `n=${r.in_features} b=${r.boft_block_size} D=${r.boft_block_num} m=${r.boft_n_butterfly_factor}`;
const boftPartial = (r: BoftRow) => ({
  blockSize: r.boft_block_size,
  blockNum: r.boft_block_num,
  nButterflyFactor: r.boft_n_butterfly_factor,
});

describe("boft.resolveBoftShape() reproduces validation_boft.json (fbd_cuda_available: true)", () => {
  const rows = boftRows.filter((r) => r.fbd_cuda_available);
  it("covers the whole GPU half of the grid", () => assert.equal(rows.length, 585));
  for (const row of rows) {
    it(`${row.ok ? "accepts" : "rejects"} ${rowName(row)} at ${row.stage} time`, () => {
      if (row.stage === "config") {
        assert.equal(configErrorOf(() => boftConfig(boftPartial(row))), row.error);
        return;
      }
      const cfg = boftConfig(boftPartial(row));
      if (!row.ok) {
        assert.equal(configErrorOf(() => resolveBoftShape(cfg, row.in_features, "linear")), row.error);
        return;
      }
      const s = resolveBoftShape(cfg, row.in_features, "linear");
      assert.deepEqual([s.nFactors, s.blockNum, s.blockSize, s.blockSize], row.boft_R_shape);
      assert.equal(s.blockSize, row.block_size);
      assert.equal(s.blockNum, row.block_num);
      assert.deepEqual(row.boft_s_shape?.[1], 1); // [out, 1] for Linear: nothing shape-dependent to derive
    });
  }
});

describe("boft.resolveBoftShape() on CPU-only PEFT rows", () => {
  // CPU PEFT forces m = 1 before any check; the same rows must come out of our GPU rules with m = 1.
  for (const row of boftRows.filter((r) => !r.fbd_cuda_available)) {
    it(`equals m forced to 1 for ${rowName(row)}`, () => {
      if (row.stage === "config") {
        assert.equal(configErrorOf(() => boftConfig(boftPartial(row))), row.error);
        return;
      }
      const cfg = boftConfig({ ...boftPartial(row), nButterflyFactor: 1 });
      if (!row.ok) {
        assert.equal(configErrorOf(() => resolveBoftShape(cfg, row.in_features, "linear")), row.error);
        return;
      }
      const s = resolveBoftShape(cfg, row.in_features, "linear");
      assert.deepEqual([s.nFactors, s.blockNum, s.blockSize, s.blockSize], row.boft_R_shape);
    });
  }
});

describe("boft.resolveBoftShape() for Conv2d", () => {
  const cfg = (p: Parameters<typeof boftConfig>[0]) => boftConfig(p);
  it("names the kernel dimension in the divisibility messages", () => {
    assert.equal(
      configErrorOf(() => resolveBoftShape(cfg({ blockSize: 5 }), 36, "conv2d")),
      "Convolutional kernel dimension (36) must be divisible by boft_block_size (5)!",
    );
    assert.equal(
      configErrorOf(() => resolveBoftShape(cfg({ blockSize: 0, blockNum: 5 }), 36, "conv2d")),
      "Convolutional kernel dimension (36) must be divisible by boft_block_num (5)!",
    );
  });
  it("uses a lower-case 'convolutional' in the invalid-combination message, as PEFT does", () => {
    assert.equal(
      configErrorOf(() => resolveBoftShape(cfg({ blockSize: 12, nButterflyFactor: 3 }), 36, "conv2d")),
      "Invalid combination of convolutional kernel dimension (36), boft_n_butterfly_factor (3) and boft_block_size (12)!",
    );
  });
  it("keeps the block-num messages unchanged", () => {
    assert.equal(
      configErrorOf(() => resolveBoftShape(cfg({ blockSize: 0, blockNum: 4, nButterflyFactor: 4 }), 36, "conv2d")),
      "Invalid combination of boft_n_butterfly_factor (4) and boft_block_num (4)!",
    );
  });
});

describe("boft.resolveBoftShape() on the PEFT case fixtures", () => {
  for (const file of readdirSync(dir).filter((f) => f.startsWith("boft_"))) {
    it(`derives the recorded boft_R shape for ${file}`, () => {
      const c = readJson(file) as { layer: "linear" | "conv2d"; config: object; derived: Record<string, unknown> };
      const parsed = parseAdapterConfig(JSON.stringify({ peft_type: "BOFT", ...c.config }), file);
      assert.equal(parsed.kind, "BOFT");
      if (parsed.kind !== "BOFT") return;
      const n = c.derived.n as number;
      const s = resolveBoftShape(parsed.config, n, c.layer);
      assert.deepEqual([s.nFactors, s.blockNum, s.blockSize, s.blockSize], c.derived.boft_R_shape);
    });
  }
});

describe("layer input dim", () => {
  it("must be a positive integer (ShapeError, not a PEFT condition)", () => {
    assert.throws(() => resolveBoftShape(boftConfig(), 0, "linear"), ShapeError);
    assert.throws(() => resolveOftShape(oftConfig(), 2.5), ShapeError);
  });
});

describe("boft.boftConfig()", () => {
  it("applies PEFT's defaults", () => {
    assert.deepEqual(boftConfig(), { ...BOFT_DEFAULTS });
    assert.equal(BOFT_DEFAULTS.blockSize, 4);
    assert.equal(BOFT_DEFAULTS.nButterflyFactor, 1);
  });
  it("rejects layers_pattern without layers_to_transform with PEFT's message (trailing space included)", () => {
    assert.equal(
      configErrorOf(() => boftConfig({ layersPattern: "layers" })),
      "When `layers_pattern` is specified, `layers_to_transform` must also be specified. ",
    );
  });
  it("accepts layers_to_transform = 0 with a pattern (PEFT after #3425)", () => {
    assert.equal(boftConfig({ layersPattern: "layers", layersToTransform: 0 }).layersToTransform, 0);
  });
  it("rejects an unknown bias and non-boolean init_weights as PEFT would", () => {
    assert.equal(
      configErrorOf(() => boftConfig({ bias: "lora_only" as never })),
      "Requested bias: lora_only, is not implemented.",
    );
    assert.equal(
      configErrorOf(() => boftConfig({ initWeights: "gaussian" as never })),
      "Unknown initialization init_weights='gaussian'",
    );
  });
  it("rejects negative or fractional sizes that PEFT would only fail on inside torch", () => {
    assert.match(configErrorOf(() => boftConfig({ blockSize: -4 })), /blockSize must be an integer >= 0/);
    assert.match(configErrorOf(() => boftConfig({ nButterflyFactor: 1.5 })), /nButterflyFactor must be an integer/);
  });
  it("stores target lists as sorted unique lists (PEFT keeps a set)", () => {
    assert.deepEqual(boftConfig({ targetModules: ["v_proj", "q_proj", "v_proj"] }).targetModules, ["q_proj", "v_proj"]);
  });
});

const oftRows = readJson("validation_oft.json") as OftRow[];

describe("oft.resolveOftShape() reproduces validation_oft.json", () => {
  it("covers all 55 rows", () => assert.equal(oftRows.length, 55));
  for (const row of oftRows) {
    it(`${row.ok ? "accepts" : "rejects"} n=${row.in_features} r=${row.r} b=${row.oft_block_size}`, () => {
      const partial = { r: row.r, blockSize: row.oft_block_size };
      if (row.stage === "config") {
        assert.equal(configErrorOf(() => oftConfig(partial)), row.error);
        return;
      }
      const s = resolveOftShape(oftConfig(partial), row.in_features);
      assert.equal(s.r, row.r_eff);
      assert.equal(s.blockSize, row.block_size_eff);
      assert.deepEqual([s.r, (s.blockSize * (s.blockSize - 1)) / 2], row.oft_R_weight_shape);
      assert.deepEqual(s.warnings, row.warnings);
    });
  }
});

describe("oft.resolveOftShape() on the PEFT case fixtures", () => {
  for (const file of readdirSync(dir).filter((f) => f.startsWith("oft_"))) {
    it(`derives the recorded r, block size and oft_R.weight shape for ${file}`, () => {
      const c = readJson(file) as { config: object; derived: Record<string, unknown> };
      const parsed = parseAdapterConfig(JSON.stringify({ peft_type: "OFT", peft_version: "0.20.0", ...c.config }), file);
      assert.equal(parsed.kind, "OFT");
      if (parsed.kind !== "OFT") return;
      const s = resolveOftShape(parsed.config, c.derived.n as number);
      const b = s.blockSize;
      assert.equal(s.r, c.derived.r);
      assert.equal(b, c.derived.oft_block_size);
      assert.deepEqual([parsed.config.blockShare ? 1 : s.r, (b * (b - 1)) / 2], c.derived.oft_R_weight_shape);
    });
  }
});

describe("oft.resolveOftShape() edge cases", () => {
  it("rejects Conv2d dilation > 1 with PEFT's message", () => {
    assert.equal(
      configErrorOf(() => resolveOftShape(oftConfig({ blockSize: 4 }), 36, { dilation: 2 })),
      "Conv2d with dilation > 1 is not supported by OFT.",
    );
    assert.equal(resolveOftShape(oftConfig({ blockSize: 4 }), 36, { dilation: 1 }).r, 9);
  });
  it("adjusts to the nearest divisor, lower on a tie, and caps at n", () => {
    assert.equal(adjustOftParameter(24, 5), 4);
    assert.equal(adjustOftParameter(16, 7), 8);
    assert.equal(adjustOftParameter(10, 7), 5);
    assert.equal(adjustOftParameter(12, 5), 4); // 4 and 6 are both 1 away
    assert.equal(adjustOftParameter(10, 64), 10);
    assert.equal(adjustOftParameter(7, 3), 1); // prime n: only 1 and n divide it
  });
});

describe("oft.oftConfig()", () => {
  it("applies PEFT's defaults, with use_cayley_neumann true", () => {
    assert.deepEqual(oftConfig(), { ...OFT_DEFAULTS });
    assert.equal(OFT_DEFAULTS.useCayleyNeumann, true);
    assert.equal(OFT_DEFAULTS.eps, 6e-5);
  });
  it("rejects an unknown bias with PEFT's message", () => {
    assert.equal(
      configErrorOf(() => oftConfig({ bias: "boft_only" as never })),
      "Requested bias: boft_only, is not implemented.",
    );
  });
});

describe("lora.loraConfig()", () => {
  it("applies PEFT's defaults (r=8, lora_alpha=8)", () => {
    assert.deepEqual(loraConfig(), { ...LORA_DEFAULTS });
    assert.equal(loraScaling(loraConfig({ r: 16, loraAlpha: 32 })), 2);
    assert.equal(loraScaling(loraConfig({ r: 16, loraAlpha: 32, useRslora: true })), 8);
  });
  it("refuses layer fields with a regex target, in PEFT's order", () => {
    assert.equal(
      configErrorOf(() => loraConfig({ targetModules: ".*q_proj", layersToTransform: [0] })),
      "`layers_to_transform` cannot be used when `target_modules` is a str.",
    );
    assert.equal(
      configErrorOf(() => loraConfig({ targetModules: ".*q_proj", layersPattern: "layers" })),
      "`layers_pattern` cannot be used when `target_modules` is a str.",
    );
  });
  it("rejects r <= 0 and unknown init values with PEFT's messages", () => {
    assert.equal(
      configErrorOf(() => loraConfig({ r: 0 })),
      "`r` should be a positive integer value but the value passed is 0",
    );
    assert.equal(
      configErrorOf(() => loraConfig({ initLoraWeights: "kaiming" as never })),
      "Unknown initialization init_lora_weights='kaiming'",
    );
    assert.equal(loraConfig({ initLoraWeights: "pissa_niter_4" }).initLoraWeights, "pissa_niter_4");
  });
});
