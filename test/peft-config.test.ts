/**
 * adapter_config.json both ways, and target matching. Expected texts were produced by PEFT v0.20.0's own config
 * dataclasses (config.py, tuners/{boft,oft,lora}/config.py, run with stub imports) and json.dumps exactly as
 * save_pretrained calls it; set-valued fields were sorted, since PEFT writes sets in hash order.
 * Target cases were evaluated with PEFT's check_target_module_exists (tuners_utils.py, commit 5d602fd).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, FormatError } from "../src/errors.js";
import { boftConfig } from "../src/methods/boft/config.js";
import { oftConfig } from "../src/methods/oft/config.js";
import { loraConfig } from "../src/methods/lora/config.js";
import { type TargetFields, matchesTarget, defaultTargetModules } from "../src/methods/targets.js";
import { type AdapterMethod, toAdapterConfigJson, parseAdapterConfig } from "../src/formats/peft-config.js";
import { pyFloatRepr, pyJsonDumps, PyFloat } from "../src/formats/py-json.js";

const BOFT_SPEC_EXAMPLE =
  "{\n  \"auto_mapping\": null,\n  \"base_model_name_or_path\": \"org/model\",\n  \"bias\": \"none\",\n  \"boft_block_num\": 0,\n  \"boft_block_size\": 8,\n  \"boft_dropout\": 0.0,\n  \"boft_n_butterfly_factor\": 2,\n  \"exclude_modules\": null,\n  \"fan_in_fan_out\": false,\n  \"inference_mode\": true,\n  \"init_weights\": true,\n  \"layers_pattern\": null,\n  \"layers_to_transform\": null,\n  \"modules_to_save\": null,\n  \"peft_type\": \"BOFT\",\n  \"peft_version\": \"0.20.0\",\n  \"revision\": null,\n  \"target_modules\": [\n    \"q_proj\",\n    \"v_proj\"\n  ],\n  \"task_type\": null\n}";
const OFT_DEFAULT =
  "{\n  \"auto_mapping\": null,\n  \"base_model_name_or_path\": \"org/model\",\n  \"bias\": \"none\",\n  \"block_share\": false,\n  \"coft\": false,\n  \"eps\": 6e-05,\n  \"exclude_modules\": null,\n  \"fan_in_fan_out\": false,\n  \"inference_mode\": true,\n  \"init_weights\": true,\n  \"layers_pattern\": null,\n  \"layers_to_transform\": null,\n  \"module_dropout\": 0.0,\n  \"modules_to_save\": null,\n  \"num_cayley_neumann_terms\": 5,\n  \"oft_block_size\": 32,\n  \"peft_type\": \"OFT\",\n  \"peft_version\": \"0.20.0\",\n  \"r\": 0,\n  \"revision\": null,\n  \"target_modules\": [\n    \"q_proj\",\n    \"v_proj\"\n  ],\n  \"task_type\": null,\n  \"use_cayley_neumann\": true\n}";
const OFT_CUSTOM =
  "{\n  \"auto_mapping\": null,\n  \"base_model_name_or_path\": null,\n  \"bias\": \"oft_only\",\n  \"block_share\": true,\n  \"coft\": true,\n  \"eps\": 0.01,\n  \"exclude_modules\": [\n    \"lm_head\"\n  ],\n  \"fan_in_fan_out\": false,\n  \"inference_mode\": true,\n  \"init_weights\": true,\n  \"layers_pattern\": null,\n  \"layers_to_transform\": null,\n  \"module_dropout\": 0.1,\n  \"modules_to_save\": null,\n  \"num_cayley_neumann_terms\": 5,\n  \"oft_block_size\": 0,\n  \"peft_type\": \"OFT\",\n  \"peft_version\": \"0.20.0\",\n  \"r\": 4,\n  \"revision\": null,\n  \"target_modules\": \".*\\\\.(q|v)_proj\",\n  \"task_type\": \"CAUSAL_LM\",\n  \"use_cayley_neumann\": false\n}";
const LORA_CUSTOM =
  "{\n  \"alora_invocation_tokens\": null,\n  \"alpha_pattern\": {},\n  \"arrow_config\": null,\n  \"auto_mapping\": null,\n  \"base_model_name_or_path\": \"Qwen/Qwen2-0.5B\",\n  \"bias\": \"none\",\n  \"corda_config\": null,\n  \"ensure_weight_tying\": false,\n  \"eva_config\": null,\n  \"exclude_modules\": null,\n  \"fan_in_fan_out\": false,\n  \"inference_mode\": true,\n  \"init_lora_weights\": true,\n  \"layer_replication\": null,\n  \"layers_pattern\": \"layers\",\n  \"layers_to_transform\": [\n    0,\n    2\n  ],\n  \"loftq_config\": {},\n  \"lora_alpha\": 32,\n  \"lora_bias\": false,\n  \"lora_dropout\": 0.05,\n  \"lora_ga_config\": null,\n  \"megatron_config\": null,\n  \"megatron_core\": \"megatron.core\",\n  \"modules_to_save\": [\n    \"lm_head\"\n  ],\n  \"monteclora_config\": null,\n  \"peft_type\": \"LORA\",\n  \"peft_version\": \"0.20.0\",\n  \"qalora_group_size\": 16,\n  \"r\": 16,\n  \"rank_pattern\": {},\n  \"revision\": null,\n  \"target_modules\": [\n    \"q_proj\",\n    \"v_proj\"\n  ],\n  \"target_parameters\": null,\n  \"task_type\": \"CAUSAL_LM\",\n  \"trainable_token_indices\": null,\n  \"use_bdlora\": null,\n  \"use_dora\": false,\n  \"use_qalora\": false,\n  \"use_rslora\": false,\n  \"velora_config\": null\n}";

/** The spec §4 example, as one line (the spec prints it compacted). */
const SPEC_BOFT_OBJECT = {
  auto_mapping: null, base_model_name_or_path: "org/model", bias: "none", boft_block_num: 0, boft_block_size: 8,
  boft_dropout: 0.0, boft_n_butterfly_factor: 2, exclude_modules: null, fan_in_fan_out: false, inference_mode: true,
  init_weights: true, layers_pattern: null, layers_to_transform: null, modules_to_save: null, peft_type: "BOFT",
  peft_version: "0.20.0", revision: null, target_modules: ["q_proj", "v_proj"], task_type: null,
};

const specBoft = (): AdapterMethod => ({
  kind: "BOFT",
  config: boftConfig({ blockSize: 8, nButterflyFactor: 2, targetModules: ["v_proj", "q_proj"] }),
});

function throwsWith<E extends Error>(f: () => unknown, cls: new (...a: never[]) => E, message: string | RegExp) {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

describe("formats.toAdapterConfigJson()", () => {
  it("writes the spec §4 BOFT example byte for byte", () => {
    const text = toAdapterConfigJson(specBoft(), { baseModelNameOrPath: "org/model" });
    assert.equal(text, BOFT_SPEC_EXAMPLE);
    assert.deepEqual(JSON.parse(text), SPEC_BOFT_OBJECT);
  });
  it("writes OFT defaults as PEFT does, eps as 6e-05", () => {
    const text = toAdapterConfigJson(
      { kind: "OFT", config: oftConfig({ targetModules: ["q_proj", "v_proj"] }) },
      { baseModelNameOrPath: "org/model" },
    );
    assert.equal(text, OFT_DEFAULT);
  });
  it("writes a regex target, floats and task_type as PEFT does", () => {
    const config = oftConfig({
      r: 4, blockSize: 0, coft: true, eps: 1e-2, moduleDropout: 0.1, targetModules: ".*\\.(q|v)_proj",
      useCayleyNeumann: false, excludeModules: ["lm_head"], blockShare: true, bias: "oft_only",
    });
    assert.equal(toAdapterConfigJson({ kind: "OFT", config }, { taskType: "CAUSAL_LM" }), OFT_CUSTOM);
  });
  it("writes every LoraConfig field of PEFT v0.20.0 with its default", () => {
    const config = loraConfig({
      r: 16, loraAlpha: 32, loraDropout: 0.05, targetModules: ["q_proj", "v_proj"], layersToTransform: [0, 2],
      layersPattern: "layers", modulesToSave: ["lm_head"],
    });
    const text = toAdapterConfigJson(
      { kind: "LORA", config },
      { taskType: "CAUSAL_LM", baseModelNameOrPath: "Qwen/Qwen2-0.5B" },
    );
    assert.equal(text, LORA_CUSTOM);
  });
  it("sorts keys at every level", () => {
    for (const text of [BOFT_SPEC_EXAMPLE, toAdapterConfigJson({ kind: "LORA", config: loraConfig() })]) {
      const keys = Object.keys(JSON.parse(text) as object);
      assert.deepEqual(keys, [...keys].sort());
    }
  });
  it("validates before writing", () => {
    throwsWith(
      () => toAdapterConfigJson({ kind: "BOFT", config: { ...boftConfig(), blockNum: 2 } }),
      ConfigError,
      /You can only specify either boft_block_size \(4\) or boft_block_num \(2\)/,
    );
    throwsWith(
      () => toAdapterConfigJson(specBoft(), { taskType: "CAUSAL" }),
      ConfigError,
      "Invalid task type: 'CAUSAL'. Must be one of the following task types: SEQ_CLS, SEQ_2_SEQ_LM, CAUSAL_LM, TOKEN_CLS, QUESTION_ANS, FEATURE_EXTRACTION.",
    );
  });
});

describe("formats.parseAdapterConfig()", () => {
  it("round-trips every method, including non-default values", () => {
    const methods: AdapterMethod[] = [
      specBoft(),
      { kind: "BOFT", config: boftConfig({ blockSize: 0, blockNum: 8, dropout: 0.1, bias: "boft_only", initWeights: false, targetModules: "q|v" }) },
      { kind: "OFT", config: oftConfig({ r: 4, blockSize: 0, eps: 1.5e-5, coft: true, numCayleyNeumannTerms: 3, layersToTransform: 3, layersPattern: ["h", "layers"], targetModules: ["c_attn"] }) },
      { kind: "LORA", config: loraConfig({ r: 4, loraAlpha: 5.5, useRslora: true, initLoraWeights: "gaussian", excludeModules: ".*lm_head" }) },
    ];
    for (const m of methods) {
      const text = toAdapterConfigJson(m, { baseModelNameOrPath: "org/model", taskType: "CAUSAL_LM", revision: "main" });
      const back = parseAdapterConfig(text, "adapter_config.json");
      assert.equal(back.kind, m.kind);
      assert.deepEqual(back.config, m.config);
      assert.deepEqual(back.warnings, []);
      assert.equal(back.baseModelNameOrPath, "org/model");
      assert.equal(back.taskType, "CAUSAL_LM");
      assert.equal(back.revision, "main");
      assert.equal(toAdapterConfigJson(back, back), text);
    }
  });
  it("carries every config field through the file (each set away from its default)", () => {
    const common = {
      targetModules: ["a", "b"], excludeModules: ["c"], modulesToSave: ["head"], layersToTransform: [1, 0],
      layersPattern: "blocks", fanInFanOut: true,
    };
    const methods: AdapterMethod[] = [
      { kind: "BOFT", config: boftConfig({ ...common, blockSize: 2, nButterflyFactor: 3, dropout: 0.25, bias: "all", initWeights: false }) },
      { kind: "OFT", config: oftConfig({ ...common, r: 0, blockSize: 8, moduleDropout: 0.5, coft: true, eps: 1e-3, blockShare: true, useCayleyNeumann: false, numCayleyNeumannTerms: 7, bias: "all", initWeights: false }) },
      { kind: "LORA", config: loraConfig({ ...common, r: 3, loraAlpha: 7, loraDropout: 0.2, bias: "lora_only", initLoraWeights: false, useRslora: true }) },
    ];
    for (const m of methods) {
      const back = parseAdapterConfig(toAdapterConfigJson(m), "all.json");
      assert.deepEqual(back.config, m.config);
      assert.deepEqual(back.warnings, []);
    }
  });
  it("writes and reads auto_mapping (PeftModel.save_pretrained sets it when task_type is null)", () => {
    const autoMapping = { base_model_class: "LlamaForCausalLM", parent_library: "transformers.models.llama.modeling_llama" };
    const text = toAdapterConfigJson(specBoft(), { autoMapping });
    assert.match(text, /"auto_mapping": \{\n {4}"base_model_class": "LlamaForCausalLM",\n {4}"parent_library"/);
    assert.deepEqual(parseAdapterConfig(text, "m.json").autoMapping, autoMapping);
  });
  it("fills missing keys with PEFT's defaults: OFT without use_cayley_neumann loads as true, without a warning", () => {
    const back = parseAdapterConfig('{"peft_type": "OFT", "oft_block_size": 16}', "old.json");
    assert.equal(back.kind, "OFT");
    assert.deepEqual(back.config, oftConfig({ blockSize: 16 }));
    assert.equal(back.kind === "OFT" && back.config.useCayleyNeumann, true);
    assert.deepEqual(back.warnings, []); // PEFT only looks at the key as written
  });
  it("drops unknown keys with one warning naming them all", () => {
    const text = JSON.stringify({ ...JSON.parse(BOFT_SPEC_EXAMPLE), zeta_option: 1, alpha_option: [1] });
    const back = parseAdapterConfig(text, "new.json");
    assert.equal(back.warnings.length, 1);
    assert.match(back.warnings[0], /^new\.json: .*BOFTConfig: \['alpha_option', 'zeta_option'\]/);
    assert.deepEqual(back.config, specBoft().config);
  });
  it("refuses OFT configs from before PEFT 0.14 (no oft_block_size key) with PEFT's message", () => {
    throwsWith(
      () => parseAdapterConfig('{"peft_type": "OFT", "r": 8}', "legacy.json"),
      ConfigError,
      "OFT has been updated since PEFT 0.14.0. Your trained adapter weights are incompatible with the latest version of OFT. Please retrain your adapter weights with newer PEFT versions. Alternatively, downgrade PEFT to version 0.13.0 to use the old adapter weights.",
    );
  });
  it("warns when a Neumann OFT adapter predates PEFT 0.18.0 or has no version", () => {
    const warnFor = (extra: object) =>
      parseAdapterConfig(JSON.stringify({ peft_type: "OFT", oft_block_size: 4, use_cayley_neumann: true, ...extra }), "a.json")
        .warnings;
    const msg =
      "The cayley-neumann parameterization has been slightly changed to be more numerically stable in PEFT 0.18.0. Please retrain your adapter weights with newer PEFT versions. Alternatively, downgrade PEFT to version 0.17.0 to use the old parameterization.";
    assert.deepEqual(warnFor({}), [msg]);
    assert.deepEqual(warnFor({ peft_version: "0.17.1" }), [msg]);
    assert.deepEqual(warnFor({ peft_version: "0.18.0.dev0@UNKNOWN" }), [msg]);
    assert.deepEqual(warnFor({ peft_version: "0.18.0rc1" }), [msg]);
    assert.deepEqual(warnFor({ peft_version: "0.18.0" }), []);
    assert.deepEqual(warnFor({ peft_version: "0.18.0.post1" }), []);
    assert.deepEqual(warnFor({ peft_version: "0.20.1.dev0@5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40" }), []);
    assert.deepEqual(warnFor({ peft_version: "1.0" }), []);
  });
  it("requires peft_type and a supported method", () => {
    throwsWith(() => parseAdapterConfig('{"r": 8}', "x.json"), FormatError, /x\.json: missing required key "peft_type"/);
    throwsWith(() => parseAdapterConfig('{"peft_type": "IA3"}', "x.json"), FormatError, /peft_type "IA3" is not supported/);
    throwsWith(() => parseAdapterConfig("{nope", "x.json"), FormatError, /Failed to parse x\.json: not valid JSON/);
    throwsWith(() => parseAdapterConfig("[1]", "x.json"), FormatError, /expected a JSON object/);
  });
  it("rejects wrongly typed fields and applies the config-time checks", () => {
    throwsWith(
      () => parseAdapterConfig('{"peft_type": "BOFT", "boft_block_size": "4"}', "t.json"),
      FormatError,
      /t\.json: "boft_block_size" has the wrong type/,
    );
    throwsWith(
      () => parseAdapterConfig('{"peft_type": "BOFT", "boft_block_size": 4, "boft_block_num": 2}', "t.json"),
      ConfigError,
      "You can only specify either boft_block_size (4) or boft_block_num (2), but not both simultaneously, because boft_block_size x boft_block_num == in_features.",
    );
    throwsWith(
      () => parseAdapterConfig('{"peft_type": "BOFT", "task_type": "LM"}', "t.json"),
      ConfigError,
      /^Invalid task type: 'LM'/,
    );
  });
  it("refuses LoRA options that would change the math, and notes init-only ones", () => {
    throwsWith(
      () => parseAdapterConfig('{"peft_type": "LORA", "use_dora": true}', "d.json"),
      ConfigError,
      /d\.json: LoRA option use_dora=true is not supported/,
    );
    throwsWith(
      () => parseAdapterConfig('{"peft_type": "LORA", "rank_pattern": {"q_proj": 4}}', "d.json"),
      ConfigError,
      /rank_pattern/,
    );
    const back = parseAdapterConfig('{"peft_type": "LORA", "eva_config": {"rho": 2.0}, "kasa_config": null}', "e.json");
    assert.equal(back.warnings.length, 1);
    assert.match(back.warnings[0], /^e\.json: ignoring eva_config: it has no effect/);
  });
  it("drops runtime_config with PEFT's warning", () => {
    const back = parseAdapterConfig('{"peft_type": "LORA", "runtime_config": {"ephemeral_gpu_offload": false}}', "r.json");
    assert.deepEqual(back.warnings, [
      "The configuration file contains a `runtime_config` key. This is ignored. Runtime configurations are only valid at runtime.",
    ]);
  });
});

describe("formats py-json (Python json.dumps)", () => {
  it("formats floats as Python's repr", () => {
    const cases: [number, string][] = [
      [6e-5, "6e-05"], [0, "0.0"], [-0, "-0.0"], [0.1, "0.1"], [1e-7, "1e-07"], [1e16, "1e+16"],
      [1e15, "1000000000000000.0"], [123.456, "123.456"], [0.0001, "0.0001"], [1.5e-5, "1.5e-05"],
      [2.5e300, "2.5e+300"], [1 / 3, "0.3333333333333333"], [100, "100.0"], [5e-324, "5e-324"],
      [1.7976931348623157e308, "1.7976931348623157e+308"], [0.01, "0.01"], [1e-4 * 3, "0.00030000000000000003"],
      [123456789012345.6, "123456789012345.6"], [9999999999999998, "9999999999999998.0"], [0.00012345, "0.00012345"],
      [NaN, "NaN"], [-Infinity, "-Infinity"],
    ];
    for (const [x, want] of cases) assert.equal(pyFloatRepr(x), want, `repr(${x})`);
  });
  it("escapes non-ASCII and control characters as ensure_ascii does", () => {
    assert.equal(pyJsonDumps({ a: 'é\x7f😀"\\\n\x01' }), '{\n  "a": "\\u00e9\\u007f\\ud83d\\ude00\\"\\\\\\n\\u0001"\n}');
    assert.equal(pyJsonDumps({ b: [], a: {}, c: [new PyFloat(1)] }), '{\n  "a": {},\n  "b": [],\n  "c": [\n    1.0\n  ]\n}');
  });
});

type TargetCase = [Partial<TargetFields>, string, boolean];
const NONE: TargetFields = { targetModules: null, excludeModules: null, layersToTransform: null, layersPattern: null };
// Each expected value is what PEFT's check_target_module_exists returned for the same inputs.
const TARGET_CASES: TargetCase[] = [
  [{ targetModules: ["q_proj", "v_proj"] }, "model.layers.0.self_attn.q_proj", true],
  [{ targetModules: ["q_proj", "v_proj"] }, "model.layers.0.self_attn.k_proj", false],
  [{ targetModules: ["q_proj", "v_proj"] }, "q_proj", true],
  [{ targetModules: ["q_proj", "v_proj"] }, "model.layers.0.self_attn.xq_proj", false],
  [{ targetModules: ".*\\.(q|v)_proj" }, "model.layers.0.self_attn.q_proj", true],
  [{ targetModules: ".*\\.(q|v)_proj" }, "q_proj", false],
  [{ targetModules: ".*\\.(q|v)_proj" }, "model.layers.0.self_attn.q_proj.base_layer", false],
  [{ targetModules: "q_proj" }, "model.layers.0.self_attn.q_proj", false],
  [{ targetModules: ["q_proj"], excludeModules: ["layers.1.self_attn.q_proj"] }, "model.layers.1.self_attn.q_proj", false],
  [{ targetModules: ["q_proj"], excludeModules: ["layers.1.self_attn.q_proj"] }, "model.layers.0.self_attn.q_proj", true],
  [{ targetModules: ".*_proj", excludeModules: ".*\\.1\\..*" }, "model.layers.1.self_attn.q_proj", false],
  [{ targetModules: ".*_proj", excludeModules: ".*\\.1\\..*" }, "model.layers.0.self_attn.q_proj", true],
  [{ targetModules: ["q_proj"], layersToTransform: [0, 2], layersPattern: "layers" }, "model.layers.2.self_attn.q_proj", true],
  [{ targetModules: ["q_proj"], layersToTransform: [0, 2], layersPattern: "layers" }, "model.layers.1.self_attn.q_proj", false],
  [{ targetModules: ["q_proj"], layersToTransform: 1 }, "model.layers.1.self_attn.q_proj", true],
  [{ targetModules: ["q_proj"], layersToTransform: 1, layersPattern: "h" }, "model.layers.1.self_attn.q_proj", false],
  [{ targetModules: ["q_proj"], layersToTransform: 1, layersPattern: ["h", "layers"] }, "model.layers.1.self_attn.q_proj", true],
  [{ targetModules: ["down_proj"], layersToTransform: 1 }, "model.layers.1.mlp.experts.0.down_proj", true],
  [{ targetModules: ["down_proj"], layersToTransform: 0 }, "model.layers.1.mlp.experts.0.down_proj", false],
  [{ targetModules: ["model.layers.1.self_attn.q_proj"], layersToTransform: [0] }, "model.layers.1.self_attn.q_proj", true],
  [{ targetModules: ".*q_proj", layersToTransform: [0] }, "model.layers.1.self_attn.q_proj", true],
  [{ targetModules: ["q_proj"], layersToTransform: [] }, "model.layers.5.self_attn.q_proj", true],
  [{ targetModules: ["q_proj"], layersToTransform: [0] }, "q_proj", true],
  [{ targetModules: ["lm_head", "q_proj"], modulesToSave: ["lm_head"] }, "lm_head", false],
  [{ targetModules: ["lmXhead"], modulesToSave: ["lm.head"] }, "lmXhead", false],
  [{ targetModules: ["lmXhead"] }, "lmXhead", true],
  [{ targetModules: ["q_proj"], layersToTransform: 0, layersPattern: "" }, "transformer.h.0.attn.q_proj", true],
];

describe("methods.matchesTarget()", () => {
  for (const [partial, path, want] of TARGET_CASES) {
    it(`${want ? "matches" : "skips"} ${path} for ${JSON.stringify(partial)}`, () => {
      assert.equal(matchesTarget({ ...NONE, ...partial }, path), want);
    });
  }
  it("accepts a whole config, which carries the same fields", () => {
    const cfg = boftConfig({ targetModules: ["q_proj"], layersToTransform: [1], layersPattern: "layers" });
    assert.equal(matchesTarget(cfg, "model.layers.1.self_attn.q_proj"), true);
    assert.equal(matchesTarget(cfg, "model.layers.0.self_attn.q_proj"), false);
  });
  it("asks for targets to be resolved first when targetModules is null", () => {
    throwsWith(() => matchesTarget(NONE, "model.layers.0.self_attn.q_proj"), ConfigError, /defaultTargetModules/);
  });
  it("translates Python-only regex syntax", () => {
    const cfg = { ...NONE, targetModules: "(?P<blk>.*)\\.(q|v)_proj\\Z" };
    assert.equal(matchesTarget(cfg, "model.layers.3.self_attn.v_proj"), true);
  });
});

describe("methods.defaultTargetModules()", () => {
  it("gives q_proj/v_proj for llama, mistral and qwen2", () => {
    for (const t of ["llama", "mistral", "qwen2"]) assert.deepEqual(defaultTargetModules(t), ["q_proj", "v_proj"]);
  });
  it("fails with PEFT's message for an unknown model type", () => {
    throwsWith(() => defaultTargetModules("toString"), ConfigError, "Please specify `target_modules` in `peft_config`");
  });
});
