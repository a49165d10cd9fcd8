/**
 * Fault tests for the readers: 12,000 mutated safetensors files and adapter configs (test/fuzz-cases.ts, a fixed
 * seed) end in a typed error or a self-consistent parse; a header that claims 2^50 elements fails before anything
 * of that size is allocated; and the findings of the fuzzer, each pinned as a regression test.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import * as os from "node:os";
import * as nodePath from "node:path";
import { FormatError, BoftError } from "../src/errors.js";
import { parseHeader } from "../src/formats/safetensors.js";
import { parseAdapterConfig } from "../src/formats/peft-config.js";
import { SafetensorsReader, openCheckpoint } from "../src/node/safetensors-file.js";
import { fuzz, TARGETS, SLOW_MS } from "./fuzz-cases.js";
import { rawSafetensors } from "./merge-helpers.js";

const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "boft-fuzz-test-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The case count the README's "Reliability" section quotes. */
const CASES = 12_000;

describe("reader fuzzing", () => {
  it(`${CASES} mutated files and configs: a typed error or a consistent parse, never a crash or a hang`, () => {
    const s = fuzz({ seed: 2026, cases: CASES, dir });
    const report = s.findings.slice(0, 10).map((f) => `${f.target}:${f.index} (${f.mutation}): ${f.detail}`).join("\n");
    assert.equal(s.findings.length, 0, `findings (re-run one with npm run fuzz -- --seed 2026 --only <target>:<index>):\n${report}`);
    assert.ok(s.slowestMs < SLOW_MS, `slowest case ${s.slowestMs} ms`);
    // Not a degenerate fuzzer: every target both parses some mutants and refuses many.
    for (const t of TARGETS) {
      const c = s.byTarget[t];
      assert.equal(c.ok + c.refused, CASES / TARGETS.length);
      assert.ok(c.ok >= 100 && c.refused >= 1000, `${t}: parsed ${c.ok}, refused ${c.refused}`);
    }
  });
});

describe("a header that claims huge shapes fails before any allocation", () => {
  const TWO_50 = 2 ** 50;
  /** Every buffer the file reader reads into, by size, while `f` runs. */
  function readBuffers(f: () => void): number[] {
    const sizes: number[] = [];
    const original = fs.readSync;
    (fs as { readSync: unknown }).readSync = (fd: number, buffer: NodeJS.ArrayBufferView, ...rest: unknown[]) => {
      sizes.push(buffer.byteLength);
      return (original as (...a: unknown[]) => number)(fd, buffer, ...rest);
    };
    syncBuiltinESMExports();
    try {
      f();
    } finally {
      (fs as { readSync: unknown }).readSync = original;
      syncBuiltinESMExports();
    }
    return sizes;
  }

  const cases: [string, Uint8Array, RegExp][] = [
    [
      "shape [2^25, 2^25] (2^50 elements), offsets to match",
      rawSafetensors({ w: { dtype: "F32", shape: [2 ** 25, 2 ** 25], data_offsets: [0, 4 * TWO_50] } }, new Uint8Array(16)),
      /data_offsets end past the data section/,
    ],
    [
      "shape [2^50] with 16 bytes of offsets",
      rawSafetensors({ w: { dtype: "F32", shape: [TWO_50], data_offsets: [0, 16] } }, new Uint8Array(16)),
      /shape \[1125899906842624\] of F32 needs 4503599627370496 bytes but data_offsets=\[0,16\] span 16/,
    ],
    ["header length 2^50", rawSafetensors({}, new Uint8Array(16), { lengthOverride: TWO_50 }), /header length 1125899906842624 exceeds the 100000000-byte limit/],
    ["header length just under the limit, 100-byte file", rawSafetensors({}, new Uint8Array(90), { lengthOverride: 99_999_999 }), /header length 99999999 runs past the end of the file/],
  ];

  before(() => {
    // Warm up: the first call loads code and may allocate for reasons of its own.
    for (const [, bytes] of cases) assert.throws(() => parseHeader(bytes, bytes.length, "x"), FormatError);
  });

  for (const [name, bytes, message] of cases) {
    it(`${name}: FormatError, no read buffer larger than the file, no memory growth`, () => {
      const file = nodePath.join(dir, "huge.safetensors");
      fs.writeFileSync(file, bytes);
      assert.throws(() => parseHeader(bytes, bytes.length, "x"), message);
      const memBefore = process.memoryUsage();
      const t0 = performance.now();
      const sizes = readBuffers(() => {
        for (let k = 0; k < 100; k++) assert.throws(() => new SafetensorsReader(file), (e: Error) => e instanceof FormatError && message.test(e.message));
        assert.throws(() => openCheckpoint(file), message);
      });
      const ms = performance.now() - t0;
      const memAfter = process.memoryUsage();
      assert.ok(sizes.length > 0 && Math.max(...sizes) <= bytes.length, `read buffers ${Math.max(...sizes)} bytes, file ${bytes.length}`);
      assert.ok(ms < 500, `101 opens took ${ms} ms`);
      // A 2^50-element claim would be petabytes; a few MB of slack covers the heap's own noise.
      assert.ok(memAfter.arrayBuffers - memBefore.arrayBuffers < 4 << 20, `arrayBuffers grew ${memAfter.arrayBuffers - memBefore.arrayBuffers} bytes`);
      assert.ok(memAfter.rss - memBefore.rss < 64 << 20, `rss grew ${memAfter.rss - memBefore.rss} bytes`);
    });
  }
});

describe("fuzzer findings, fixed", () => {
  const deep = (depth: number) => "[".repeat(depth) + "1" + "]".repeat(depth);

  it("a deeply nested value in a safetensors header is a FormatError with a short message (was RangeError from JSON.stringify)", () => {
    for (const key of ["shape", "data_offsets", "dtype"]) {
      const entry: Record<string, unknown> = { dtype: "F32", shape: [1], data_offsets: [0, 4] };
      const text = JSON.stringify({ w: { ...entry, [key]: "@" } }).replace('"@"', deep(100_000));
      const bytes = rawSafetensors(text, new Uint8Array(4));
      assert.throws(
        () => parseHeader(bytes, bytes.length, "deep.safetensors"),
        (e: Error) => e instanceof FormatError && e.message.includes(`${key}=[[[[…]]]]`) && e.message.length < 300,
      );
    }
    const meta = rawSafetensors(`{"__metadata__":{"a":${deep(100_000)}}}`, new Uint8Array(0));
    assert.throws(() => parseHeader(meta, meta.length, "deep.safetensors"), /__metadata__ values must be strings \(__metadata__\.a=\[\[\[\[…\]\]\]\]\)/);
  });

  it("a deeply nested value in adapter_config.json is a FormatError/ConfigError (was RangeError)", () => {
    for (const key of ["target_modules", "boft_block_size", "auto_mapping", "peft_type"]) {
      const text = `{"peft_type": "BOFT", "boft_block_size": 4, "${key}": ${deep(100_000)}}`;
      assert.throws(() => parseAdapterConfig(text, "adapter_config.json"), (e: Error) => e instanceof FormatError && e.message.length < 300, key);
    }
    // LoRA options boft does not model are compared with their defaults; a deep value is simply not the default.
    const lora = `{"peft_type": "LORA", "use_dora": ${deep(100_000)}}`;
    assert.throws(() => parseAdapterConfig(lora, "adapter_config.json"), (e: Error) => e instanceof BoftError && /use_dora=\[\[\[\[…\]\]\]\]/.test(e.message));
  });

  it("integers past 2^53 in int fields are refused (were accepted, then could not be written back)", () => {
    for (const v of ["9007199254740992", "1e308", "1e400"]) {
      assert.throws(() => parseAdapterConfig(`{"peft_type": "BOFT", "boft_block_size": ${v}}`, "c.json"), /"boft_block_size" has the wrong type for an integer/);
      assert.throws(() => parseAdapterConfig(`{"peft_type": "LORA", "r": 4, "layers_to_transform": [0, ${v}]}`, "c.json"), /"layers_to_transform" has the wrong type/);
    }
    assert.equal((parseAdapterConfig(`{"peft_type": "BOFT", "boft_block_size": 4, "boft_n_butterfly_factor": 9007199254740991}`, "c.json").config as { nButterflyFactor: number }).nButterflyFactor, 2 ** 53 - 1);
  });

  it("a large value in an error message is cut short, not printed whole", () => {
    const big = JSON.stringify(Array.from({ length: 100_000 }, (_, i) => i));
    const bytes = rawSafetensors(`{"w":{"dtype":"F32","shape":${big},"data_offsets":[0,4]}}`, new Uint8Array(4));
    assert.throws(() => parseHeader(bytes, bytes.length, "big.safetensors"), (e: Error) => e instanceof FormatError && e.message.length < 400);
  });
});
