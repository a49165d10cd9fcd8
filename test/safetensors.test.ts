import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FormatError } from "../src/errors.js";
import { type StDType, ST_DTYPES, decode, encode, roundTo } from "../src/formats/dtype.js";
import { encodeFile, parseHeader, serialize } from "../src/formats/safetensors.js";
import { atomicWriteFile, tempPathFor } from "../src/node/atomic.js";
import { SafetensorsReader, openCheckpoint, saveSafetensors, writeSafetensors } from "../src/node/safetensors-file.js";

const f64 = (xs: number[]) => new Float64Array(xs);
const bits16 = (dtype: StDType, x: number) => {
  const b = encode(dtype, f64([x]));
  return b[0] | (b[1] << 8);
};
/** Element-wise Object.is, so -0 and NaN are compared exactly. */
function assertSame(actual: ArrayLike<number>, expected: ArrayLike<number>) {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Object.is(actual[i], expected[i]), `index ${i}: got ${actual[i]}, want ${expected[i]}`);
  }
}

const EXACT: Record<StDType, number[]> = {
  F64: [0, -0, 1, -2.5, Math.PI, 5e-324, Number.MAX_VALUE, -1e-310, Infinity, -Infinity],
  F32: [0, -0, 1, -2.5, Math.fround(Math.PI), 2 ** -149, 2 ** -126, Math.fround(3.4028234663852886e38), Infinity, -Infinity],
  F16: [0, -0, 1, -2.5, 0.333251953125, 65504, -65504, 2 ** -24, 2 ** -14, 1023 * 2 ** -24, Infinity, -Infinity],
  BF16: [0, -0, 1, -2.5, 0.333984375, (2 - 2 ** -7) * 2 ** 127, 2 ** -133, 2 ** -126, 127 * 2 ** -133, Infinity, -Infinity],
};

describe("formats.dtype encode()/decode()", () => {
  for (const dtype of ST_DTYPES) {
    it(`round-trips exactly representable ${dtype} values, from f32 and f64 input`, () => {
      const xs = EXACT[dtype];
      assertSame(roundTo(dtype, f64(xs)), xs);
      if (dtype !== "F64") assertSame(roundTo(dtype, new Float32Array(xs)), xs);
      assert.ok(Number.isNaN(roundTo(dtype, f64([NaN]))[0]), "NaN stays NaN");
      assert.equal(encode(dtype, f64(xs)).byteLength, xs.length * (dtype === "F64" ? 8 : dtype === "F32" ? 4 : 2));
    });
  }

  it("decodes F64 and F32 is little-endian and survives an unaligned byteOffset", () => {
    const xs = [1.5, -0.25, 1e300];
    const buf = new Uint8Array(1 + 24);
    buf.set(encode("F64", f64(xs)), 1);
    assertSame(decode("F64", buf.subarray(1)), xs);
    assert.deepEqual([...encode("F32", f64([1]))], [0, 0, 0x80, 0x3f]);
    buf.set(encode("F32", f64(xs.slice(0, 2))), 3);
    assertSame(decode("F32", buf.subarray(3, 11)), xs.slice(0, 2));
    assert.deepEqual([...encode("F16", f64([1]))], [0x00, 0x3c]);
    assert.deepEqual([...encode("BF16", f64([1]))], [0x80, 0x3f]);
  });

  it("F16 rounds to nearest, ties to even, at normal and subnormal scales", () => {
    const u = 2 ** -10; // ulp at 1
    const cases: [number, number][] = [
      [1 + u / 2, 1], // tie, 1 is even
      [1 + (3 * u) / 2, 1 + 2 * u], // tie, 1+2u is even
      [1 + u / 2 + 2 ** -30, 1 + u], // just above a tie
      [2 ** -25, 0], // half the smallest subnormal: tie to even (0)
      [3 * 2 ** -25, 2 ** -23], // tie between 1 and 2 subnormal quanta
      [2 ** -25 + 2 ** -40, 2 ** -24],
      [2 ** -14 - 2 ** -25, 2 ** -14], // largest subnormal tie carries into the smallest normal
      [-(2 ** -26), -0],
      [65519, 65504],
      [65520, Infinity], // tie above the max goes to even = overflow
      [-70000, -Infinity],
      [1e300, Infinity],
    ];
    assertSame(roundTo("F16", f64(cases.map((c) => c[0]))), cases.map((c) => c[1]));
    assert.equal(bits16("F16", NaN), 0x7e00);
    assert.equal(bits16("F16", -0), 0x8000);
  });

  it("BF16 rounds to nearest, ties to even; overflow is Inf and NaN stays NaN", () => {
    const u = 2 ** -7;
    const cases: [number, number][] = [
      [1 + u / 2, 1],
      [1 + (3 * u) / 2, 1 + 2 * u],
      [2 ** -134, 0],
      [3 * 2 ** -134, 2 ** -132],
      [(2 - 2 ** -8) * 2 ** 127, Infinity],
      [(2 - 2 ** -7 + 2 ** -9) * 2 ** 127, (2 - 2 ** -7) * 2 ** 127], // below the overflow tie
      [3.4028234663852886e38, Infinity],
      [-1e39, -Infinity],
    ];
    assertSame(roundTo("BF16", new Float32Array(cases.map((c) => c[0]))), cases.map((c) => c[1]));
    assertSame(roundTo("BF16", f64(cases.map((c) => c[0]))), cases.map((c) => c[1]));
    assert.equal(bits16("BF16", NaN), 0x7fc0);
    assert.ok(Number.isNaN(decode("BF16", new Uint8Array([0x81, 0x7f]))[0]), "a NaN payload decodes as NaN");
  });

  it("f64 input is rounded once, not through f32", () => {
    // Via f32 these become exact ties and would round down to 1.
    assertSame(roundTo("BF16", f64([1 + 2 ** -8 + 2 ** -30])), [1 + 2 ** -7]);
    assertSame(roundTo("F16", f64([1 + 2 ** -11 + 2 ** -40])), [1 + 2 ** -10]);
    assertSame(roundTo("F32", f64([1 + 2 ** -24, 1 + 3 * 2 ** -24, 1e39, 1e-46, 1.4e-45])), [1, 1 + 2 ** -22, Infinity, 0, 2 ** -149]);
  });

  it("every F16 and BF16 bit pattern decodes and re-encodes to itself (NaNs to NaN)", () => {
    const all = new Uint8Array(2 * 65536);
    for (let h = 0; h < 65536; h++) {
      all[2 * h] = h & 0xff;
      all[2 * h + 1] = h >>> 8;
    }
    for (const dtype of ["F16", "BF16"] as const) {
      const values = decode(dtype, all);
      const again = encode(dtype, values);
      for (let h = 0; h < 65536; h++) {
        if (Number.isNaN(values[h])) continue;
        assert.equal(again[2 * h] | (again[2 * h + 1] << 8), h, `${dtype} 0x${h.toString(16)}`);
      }
    }
  });

  it("F16 and BF16 results are the nearest value, even on ties (10k random f32 inputs)", () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (const dtype of ["F16", "BF16"] as const) {
      const span = dtype === "F16" ? 40 : 260;
      const xs = Float32Array.from({ length: 10000 }, () => (rand() - 0.5) * 2 ** Math.floor(rand() * span - span / 2 - 10));
      const b = encode(dtype, xs);
      for (let i = 0; i < xs.length; i++) {
        const h = b[2 * i] | (b[2 * i + 1] << 8);
        const at = (bits: number) => decode(dtype, new Uint8Array([bits & 0xff, bits >>> 8]))[0];
        const r = at(h);
        const err = Math.abs(xs[i] - r);
        // Codes of one sign are ordered by value, so the nearest value is r or an adjacent code.
        for (const nb of [h - 1, h + 1]) {
          if (nb < 0 || nb > 0xffff || Number.isNaN(at(nb))) continue;
          const d = Math.abs(xs[i] - at(nb));
          assert.ok(err < d || (err === d && (h & 1) === 0), `${dtype} ${xs[i]} → ${r}, neighbour ${at(nb)} is nearer`);
        }
      }
    }
  });
});

// ---- header ------------------------------------------------------------------------------------

const te = new TextEncoder();
/** A file with `json` as header (padded to 8 unless told), `dataBytes` zero bytes of data. */
function rawFile(json: string, dataBytes: number, opts: { declared?: number; pad?: boolean } = {}): Uint8Array {
  let text = json;
  if (opts.pad !== false) while (te.encode(text).length % 8) text += " ";
  const h = te.encode(text);
  const out = new Uint8Array(8 + h.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(opts.declared ?? h.length), true);
  out.set(h, 8);
  return out;
}
const entry = (dtype: string, shape: unknown, offsets: unknown) =>
  `{"dtype":${JSON.stringify(dtype)},"shape":${JSON.stringify(shape)},"data_offsets":${JSON.stringify(offsets)}}`;
function assertFormatError(fn: () => unknown, ...patterns: RegExp[]) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    assert.equal(e.name, "FormatError");
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}
const parse = (bytes: Uint8Array, size = bytes.length) => parseHeader(bytes, size, "bad.safetensors");

describe("formats.safetensors serialize()/parseHeader()", () => {
  it("writes the bytes Python safetensors writes for a one-tensor file", () => {
    const json = `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`; // 53 bytes → padded to 56
    const expected = new Uint8Array(8 + 56 + 8);
    expected[0] = 56;
    expected.set(te.encode(json.padEnd(56, " ")), 8);
    expected.set([0, 0, 0x80, 0x3f, 0, 0, 0, 0x40], 64);
    const data = encode("F32", f64([1, 2]));
    assert.deepEqual(encodeFile([{ name: "a", dtype: "F32", shape: [2], data }]), expected);
  });

  it("matches the reference library's own test vectors (no padding, empty file, metadata)", () => {
    const data = encode("F32", f64([0, 1, 2, 3, 4, 5]));
    const out = encodeFile([{ name: "attn.0", dtype: "F32", shape: [1, 2, 3], data }]);
    const json = `{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`;
    assert.equal(json.length, 64);
    assert.deepEqual(out.subarray(0, 8), new Uint8Array([64, 0, 0, 0, 0, 0, 0, 0]));
    assert.equal(new TextDecoder().decode(out.subarray(8, 72)), json);
    assert.deepEqual(encodeFile([]), new Uint8Array([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]));
    const withMeta = encodeFile([], { framework: "pt" });
    assert.equal(withMeta[0], 40);
    assert.equal(new TextDecoder().decode(withMeta.subarray(8)), `{"__metadata__":{"framework":"pt"}}     `);
  });

  it("lays tensors out by descending dtype size, then name; metadata first", () => {
    const z = (n: number) => new Uint8Array(n);
    const { header, layout, totalSize } = serialize(
      [
        { name: "b", dtype: "F16", shape: [1], data: z(2) },
        { name: "a", dtype: "F16", shape: [3], data: z(6) },
        { name: "c", dtype: "BF16", shape: [1], data: z(2) },
        { name: "z", dtype: "F64", shape: [], data: z(8) },
        { name: "y", dtype: "F32", shape: [2, 0], data: z(0) },
      ],
      { k: "v" },
    );
    assert.deepEqual(layout.map((t) => t.name), ["z", "y", "c", "a", "b"]);
    const text = new TextDecoder().decode(header.subarray(8));
    assert.match(text, /^\{"__metadata__":\{"k":"v"\},"z":\{"dtype":"F64","shape":\[\],"data_offsets":\[0,8\]\},"y":/);
    assert.equal(totalSize, header.length + 18);
    assert.equal(header.length % 8, 0);
  });

  it("parses what it writes: names, dtypes, shapes, absolute offsets, metadata", () => {
    const meta = { format: "pt", "ключ": 'a "quoted"\n value', "": "" };
    const file = encodeFile(
      [
        { name: "w", dtype: "F32", shape: [2, 2], data: new Uint8Array(16) },
        { name: "h", dtype: "F16", shape: [3], data: new Uint8Array(6) },
      ],
      meta,
    );
    const h = parse(file);
    assert.deepEqual(h.metadata, meta);
    assert.equal(h.headerSize % 8, 0);
    assert.deepEqual(h.tensors, [
      { name: "w", dtype: "F32", shape: [2, 2], begin: h.headerSize, end: h.headerSize + 16 },
      { name: "h", dtype: "F16", shape: [3], begin: h.headerSize + 16, end: h.headerSize + 22 },
    ]);
    assert.equal(parse(rawFile(`{"__metadata__":null}`, 0)).metadata, null);
  });

  const cases: [string, () => Uint8Array, number | undefined, RegExp[]][] = [
    ["a truncated file", () => new Uint8Array([8, 0, 0, 0]), undefined, [/too short/]],
    ["a header length past the end", () => rawFile(`{}`, 0, { declared: 1000 }), undefined, [/1000 runs past the end/]],
    ["a header length over 100 MB", () => rawFile(`{}`, 0, { declared: 100_000_001 }), 200_000_000, [/100000001 exceeds/]],
    ["a non-JSON header", () => rawFile(`{"a": nope}`, 0), undefined, [/not valid JSON/]],
    ["a non-object header", () => rawFile(`[1,2]`, 0), undefined, [/must be a JSON object/]],
    ["invalid UTF-8", () => rawFile(`{"ab":1}`, 0).map((b, i) => (i === 10 ? 0xff : b)), undefined, [/UTF-8/]],
    ["overlapping offsets", () => rawFile(`{"a":${entry("F32", [2], [0, 8])},"b":${entry("F32", [2], [4, 12])}}`, 12), undefined, [/"b"/, /overlaps tensor "a"/]],
    ["a gap between tensors", () => rawFile(`{"a":${entry("F32", [2], [0, 8])},"b":${entry("F32", [2], [12, 20])}}`, 20), undefined, [/gap/, /tensor "b"/]],
    ["a first tensor not at 0", () => rawFile(`{"a":${entry("F32", [1], [4, 8])}}`, 8), undefined, [/gap/, /\[0,4\)/, /"a"/]],
    ["bytes after the last tensor", () => rawFile(`{"a":${entry("F32", [1], [0, 4])}}`, 8), undefined, [/4 bytes after the last tensor/]],
    ["offsets past the data section", () => rawFile(`{"a":${entry("F32", [4], [0, 16])}}`, 8), undefined, [/tensor "a"/, /past the data section/]],
    ["an unknown dtype", () => rawFile(`{"x":${entry("I8", [4], [0, 4])}}`, 4), undefined, [/unsupported dtype I8 for tensor "x"; boft reads F64, F32, F16, BF16/]],
    ["a size mismatch", () => rawFile(`{"a":${entry("F32", [3], [0, 8])}}`, 8), undefined, [/tensor "a"/, /needs 12 bytes/]],
    ["duplicate tensor names", () => rawFile(`{"a":${entry("F32", [1], [0, 4])},"a":${entry("F32", [1], [0, 4])}}`, 4), undefined, [/duplicate tensor name "a"/]],
    ["a duplicate key inside an entry", () => rawFile(`{"a":{"dtype":"F32","shape":[1],"dtype":"F32","data_offsets":[0,4]}}`, 4), undefined, [/duplicate key "dtype" in header entry "a"/]],
    ["a negative shape", () => rawFile(`{"a":${entry("F32", [-1], [0, 0])}}`, 0), undefined, [/tensor "a"/, /shape/]],
    ["a non-integer shape", () => rawFile(`{"a":${entry("F32", [1.5], [0, 6])}}`, 6), undefined, [/tensor "a"/, /shape/]],
    ["reversed offsets", () => rawFile(`{"a":${entry("F32", [0], [4, 0])}}`, 4), undefined, [/tensor "a"/, /begin after/]],
    ["non-string metadata", () => rawFile(`{"__metadata__":{"n":1}}`, 0), undefined, [/__metadata__/, /n=1/]],
  ];
  for (const [what, make, size, patterns] of cases) {
    it(`rejects ${what} with a FormatError naming the file`, () => {
      const bytes = make();
      assertFormatError(() => parse(bytes, size ?? bytes.length), /^bad\.safetensors: /, ...patterns);
    });
  }

  it("refuses to write what it would refuse to read", () => {
    assertFormatError(() => serialize([{ name: "a", dtype: "F32", shape: [2], data: new Uint8Array(4) }]), /tensor "a"/, /needs 8 bytes/);
    assertFormatError(() => serialize([{ name: "a", dtype: "F32", shape: [1] }, { name: "a", dtype: "F16", shape: [1] }]), /duplicate/);
    assertFormatError(() => serialize([{ name: "a", dtype: "I8" as StDType, shape: [1] }]), /unsupported dtype I8/);
  });
});

// ---- files -------------------------------------------------------------------------------------

describe("node safetensors files", () => {
  let dir = "";
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "boft-st-"));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const values: Record<StDType, Float32Array | Float64Array> = {
    F64: f64(EXACT.F64),
    F32: new Float32Array(EXACT.F32),
    F16: new Float32Array(EXACT.F16),
    BF16: new Float32Array(EXACT.BF16),
  };

  it("write → read round-trips every dtype exactly, with metadata", () => {
    const file = path.join(dir, "all.safetensors");
    const tensors = ST_DTYPES.map((dtype) => ({ name: `t.${dtype}`, dtype, shape: [values[dtype].length], data: values[dtype] }));
    saveSafetensors(file, tensors, { format: "pt", step: "7" });
    const r = new SafetensorsReader(file);
    try {
      assert.deepEqual(r.header.metadata, { format: "pt", step: "7" });
      assert.deepEqual(r.names(), ["t.F64", "t.F32", "t.BF16", "t.F16"]);
      for (const t of tensors) {
        const got = r.read(t.name);
        assert.equal(got.dtype, t.dtype);
        assert.deepEqual(got.shape, t.shape);
        assert.ok(got.data instanceof (t.dtype === "F64" ? Float64Array : Float32Array));
        assertSame(got.data, t.data);
        assert.deepEqual(r.readRaw(t.name), encode(t.dtype, t.data));
      }
      assertFormatError(() => r.read("nope"), /no tensor named "nope"/, /e\.g\. "t\.F64"/);
    } finally {
      r.close();
    }
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes(".tmp-")), []);
  });

  it("the reader reports a truncated or corrupt file as a FormatError naming it", () => {
    const good = encodeFile([{ name: "a", dtype: "F32", shape: [4], data: new Uint8Array(16) }]);
    const file = path.join(dir, "cut.safetensors");
    fs.writeFileSync(file, good.subarray(0, good.length - 3));
    assertFormatError(() => new SafetensorsReader(file), /cut\.safetensors/, /tensor "a"/);
    fs.writeFileSync(file, good.subarray(0, 5));
    assertFormatError(() => new SafetensorsReader(file), /cut\.safetensors/, /too short/);
  });

  it("calls produce lazily in file order, and a throwing produce leaves no file", () => {
    const file = path.join(dir, "fail.safetensors");
    const calls: string[] = [];
    const src = (name: string, fail = false) => ({
      name,
      dtype: "F32" as const,
      shape: [1],
      produce: () => {
        calls.push(name);
        if (fail) throw new Error("boom");
        return new Uint8Array(4);
      },
    });
    assert.throws(() => writeSafetensors(file, [src("c"), src("a"), src("b", true)]), /boom/);
    assert.deepEqual(calls, ["a", "b"]);
    assert.equal(fs.existsSync(file), false);
    assert.equal(fs.existsSync(tempPathFor(file)), false);
  });

  it("a failed write does not damage an existing file at the target", () => {
    const file = path.join(dir, "keep.safetensors");
    saveSafetensors(file, [{ name: "w", dtype: "F32", shape: [2], data: new Float32Array([1, 2]) }]);
    const before = fs.readFileSync(file);
    const bad = { name: "w", dtype: "F32" as const, shape: [2], produce: () => new Uint8Array(4) };
    assertFormatError(() => writeSafetensors(file, [bad]), /produced 4 bytes/);
    assert.deepEqual(fs.readFileSync(file), before);
    assert.equal(fs.existsSync(tempPathFor(file)), false);
  });

  it("atomicWriteFile replaces a file and leaves no temp file", () => {
    const file = path.join(dir, "x.json");
    atomicWriteFile(file, "{}");
    atomicWriteFile(file, `{"a":1}`);
    assert.equal(fs.readFileSync(file, "utf8"), `{"a":1}`);
    assert.equal(fs.existsSync(tempPathFor(file)), false);
  });
});

describe("node openCheckpoint()", () => {
  let dir = "";
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "boft-ckpt-"));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const shard = (folder: string, file: string, names: string[]) =>
    saveSafetensors(path.join(folder, file), names.map((name, i) => ({ name, dtype: "F32" as const, shape: [1], data: new Float32Array([i + 1]) })));
  function sharded(name: string, weightMap: Record<string, string>, files: Record<string, string[]>): string {
    const folder = path.join(dir, name);
    fs.mkdirSync(folder);
    for (const [f, names] of Object.entries(files)) shard(folder, f, names);
    fs.writeFileSync(path.join(folder, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: 12 }, weight_map: weightMap }));
    return folder;
  }
  const S1 = "model-00001-of-00002.safetensors";
  const S2 = "model-00002-of-00002.safetensors";

  it("reads a sharded checkpoint through its index", () => {
    const folder = sharded("ok", { "l.0.w": S1, "l.1.w": S2, "l.0.b": S1 }, { [S1]: ["l.0.w", "l.0.b"], [S2]: ["l.1.w"] });
    const ck = openCheckpoint(folder);
    try {
      assert.deepEqual(ck.names(), ["l.0.b", "l.0.w", "l.1.w"]);
      assert.deepEqual(ck.metadata, { total_size: 12 });
      assert.equal(ck.files.length, 2);
      assert.equal(path.basename(ck.info("l.1.w").file), S2);
      assertSame(ck.read("l.1.w").data, [1]);
      assertSame(ck.read("l.0.w").data, [1]);
      assertSame(ck.read("l.0.b").data, [2]);
    } finally {
      ck.close();
    }
  });

  it("opens a single file, or a folder with model.safetensors", () => {
    const folder = path.join(dir, "single");
    fs.mkdirSync(folder);
    saveSafetensors(path.join(folder, "model.safetensors"), [{ name: "w", dtype: "F16", shape: [1], data: new Float32Array([0.5]) }], { format: "pt" });
    for (const p of [folder, path.join(folder, "model.safetensors")]) {
      const ck = openCheckpoint(p);
      assert.deepEqual(ck.tensors.map((t) => [t.name, t.dtype, t.shape]), [["w", "F16", [1]]]);
      assert.deepEqual(ck.metadata, { format: "pt" });
      assertSame(ck.read("w").data, [0.5]);
      ck.close();
    }
    assertFormatError(() => openCheckpoint(path.join(dir, "nothing-here")), /no such file/);
    assertFormatError(() => openCheckpoint(dir), /neither model\.safetensors nor/);
  });

  it("rejects an index whose shards do not match it", () => {
    const missing = sharded("missing", { a: S1, b: S2 }, { [S1]: ["a"] });
    assertFormatError(() => openCheckpoint(missing), /index\.json/, new RegExp(`shard "${S2}"`), /"b"/, /does not exist/);
    const extra = sharded("extra", { a: S1 }, { [S1]: ["a", "stray"] });
    assertFormatError(() => openCheckpoint(extra), /holds tensor "stray", which the index does not list/);
    const absent = sharded("absent", { a: S1, ghost: S1 }, { [S1]: ["a"] });
    assertFormatError(() => openCheckpoint(absent), /tensor "ghost"/, /has no such tensor/);
    const moved = sharded("moved", { a: S1, b: S2 }, { [S1]: ["a", "b"], [S2]: ["b"] });
    assertFormatError(() => openCheckpoint(moved), /holds tensor "b", which the index puts in/);
    const escape = sharded("escape", { a: "../x.safetensors" }, {});
    assertFormatError(() => openCheckpoint(escape), /outside the checkpoint folder/);
    const bad = path.join(dir, "bad-index");
    fs.mkdirSync(bad);
    fs.writeFileSync(path.join(bad, "model.safetensors.index.json"), `{"weight_map":{"a":"x","a":"y"}}`);
    assertFormatError(() => openCheckpoint(bad), /duplicate key "a" in "weight_map"/);
  });
});
