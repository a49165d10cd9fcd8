/**
 * boft's patches to @jax-js/jax (patches/jax-js, applied by scripts/patch-jax.mjs from npm's postinstall).
 *
 * Patch 01 lets a tiled matmul's rows share the right operand's loads when its index is provably the same on every
 * row of a row block. The tests: the installed files are the patched ones; the rule proves what it should and
 * nothing false (checked by brute force on random index expressions); a batched product's kernel shares loads
 * exactly as the 2-D product's does; and products of many shapes, in both plans and under grad, one and two
 * threads, match float64 host products and their 2-D formulation.
 *
 * Patch 03 makes the matmul's micro blocks 8 accumulators instead of 16, so they stay in x64's registers. Its test:
 * the grid's outputs are bit for bit those recorded before it (test/fixtures/matmul-grid-bits.json).
 *
 * Patch 04 vectorises float32 exp and reciprocal; its tests (at the end) check the bits against the scalar code.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { np, jit, blockUntilReady, type Arr } from "../src/engine/index.js";
import { runGrid } from "./matmul-grid.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const jaxDist = dirname(createRequire(import.meta.url).resolve("@jax-js/jax"));

/** The pieces of jax-js's wasm backend chunk the tests reach (same module instance jax-js itself loaded). */
interface Exp {
  evaluate(ctx: Record<string, number>): number;
}
interface AluExpStatic {
  special(dtype: string, name: string, n: number): Exp;
  variable(dtype: string, name: string): Exp;
  i32(v: number): Exp;
  add(a: Exp, b: Exp): Exp;
  sub(a: Exp, b: Exp): Exp;
  mul(a: Exp, b: Exp): Exp;
  idiv(a: Exp, b: Exp): Exp;
  mod(a: Exp, b: Exp): Exp;
}
const backend = (await import(pathToFileURL(join(jaxDist, "backend-CnjgxpXq.js")).href)) as {
  w: AluExpStatic;
  repeatsAcrossGidxTile?: (exp: Exp, tileSize: number, rows?: number) => boolean;
};
const E = backend.w;

test("the installed @jax-js/jax carries every patch in patches/jax-js", () => {
  const r = spawnSync(process.execPath, [join(root, "scripts", "patch-jax.mjs"), "--check"], { encoding: "utf8" });
  assert.equal(r.status, 0, `patch-jax --check: ${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /^applied 01-share-loads-across-aligned-rows\.patch$/m);
  assert.match(r.stdout, /^applied 03-matmul-micro-blocks-fit-x64-registers\.patch$/m);
  assert.match(r.stdout, /^applied 04-simd-exp-and-reciprocal\.patch$/m);
  assert.doesNotMatch(r.stdout, /pending/);
});

/** Brute force: e(R·q + T·r + c) = e(R·q + c) for every block of the kernel, row and column. */
function sameOnEveryRow(e: Exp, tileSize: number, rows: number, kernelSize: number): boolean {
  const block = tileSize * rows;
  for (let base = 0; base + block <= kernelSize; base += block) {
    for (let c = 0; c < tileSize; c++) {
      const first = e.evaluate({ gidx: base + c });
      for (let r = 1; r < rows; r++) if (e.evaluate({ gidx: base + r * tileSize + c }) !== first) return false;
    }
  }
  return true;
}

test("the row rule proves batch terms constant over aligned row blocks, and only where they are", () => {
  const prove = backend.repeatsAcrossGidxTile;
  assert.ok(prove, "repeatsAcrossGidxTile is exported by the patched backend");
  const c = E.i32;
  // [3,768,64]·[3,64,256]: the right operand's index without its reduction term.
  const gidx = E.special("int32", "gidx", 3 * 768 * 256);
  const batched = E.add(E.mul(E.idiv(gidx, c(196608)), c(16384)), E.mod(gidx, c(256)));
  assert.equal(prove(batched, 256, 4), true);
  assert.equal(sameOnEveryRow(batched, 256, 4, 3 * 768 * 256), true);
  assert.equal(prove(batched, 256, 1), false, "without rows to share there is nothing to prove");
  // Blocks of 4 rows of 12 straddle batches of 60 outputs.
  const g60 = E.special("int32", "gidx", 4 * 60);
  const straddling = E.add(E.mul(E.idiv(g60, c(60)), c(96)), E.mod(g60, c(12)));
  assert.equal(prove(straddling, 12, 4), false);
  assert.equal(sameOnEveryRow(straddling, 12, 4, 240), false);
  // Periodic in 2 rows, not in 1: rows 256 apart read different halves.
  const g8k = E.special("int32", "gidx", 8192);
  assert.equal(prove(E.mod(g8k, c(512)), 256, 4), false);
  assert.equal(prove(E.mod(g8k, c(512)), 512, 4), true);
  // A symbol the rule knows nothing about is never proven.
  assert.equal(prove(E.add(E.idiv(E.variable("int32", "gidx"), c(4096)), E.mod(g8k, c(64))), 64, 4), false);
});

test("the CommonJS build carries the same rule", () => {
  const cjs = join(jaxDist, "backend-TLHPgbCA.cjs");
  const child = `const { AluExp: E, repeatsAcrossGidxTile: prove } = require(${JSON.stringify(cjs)});
const c = E.i32;
const g = E.special("int32", "gidx", 3 * 768 * 256);
const batched = E.add(E.mul(E.idiv(g, c(196608)), c(16384)), E.mod(g, c(256)));
const g60 = E.special("int32", "gidx", 240);
const straddling = E.add(E.mul(E.idiv(g60, c(60)), c(96)), E.mod(g60, c(12)));
process.stdout.write(JSON.stringify([prove(batched, 256, 4), prove(straddling, 12, 4)]));`;
  const r = spawnSync(process.execPath, ["-e", child], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [true, false]);
});

test("the row rule is never wrong on random index expressions (brute force)", () => {
  const prove = backend.repeatsAcrossGidxTile!;
  let seed = 7;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const pick = <T>(xs: T[]) => xs[rand(xs.length)];
  const divisors = [2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384];
  let proven = 0;
  let periodic = 0;
  for (let trial = 0; trial < 400; trial++) {
    const tileSize = pick([4, 8, 12, 16, 24, 32]);
    const rows = pick([2, 4]);
    const kernelSize = tileSize * rows * pick([1, 2, 3, 5, 6, 8, 12]);
    const gidx = E.special("int32", "gidx", kernelSize);
    const leaf = (): Exp => {
      const d = pick(divisors);
      return pick([() => E.idiv(gidx, E.i32(d)), () => E.mod(gidx, E.i32(d)), () => gidx, () => E.i32(rand(5))])();
    };
    const build = (depth: number): Exp => {
      if (depth === 0) return leaf();
      const x = build(depth - 1);
      switch (rand(6)) {
        case 0:
          return E.add(x, build(depth - 1));
        case 1:
          return E.mul(x, E.i32(1 + rand(7)));
        case 2:
          return E.idiv(x, E.i32(pick(divisors)));
        case 3:
          return E.mod(x, E.i32(pick(divisors)));
        case 4:
          return E.sub(E.add(x, E.i32(4096)), build(depth - 1));
        default:
          return E.mul(x, build(0));
      }
    };
    const e = build(1 + rand(3));
    const truth = sameOnEveryRow(e, tileSize, rows, kernelSize);
    const claim = prove(e, tileSize, rows);
    if (claim) assert.equal(truth, true, `proved a false claim: T=${tileSize} rows=${rows} size=${kernelSize} ${e}`);
    if (claim) proven++;
    if (truth) periodic++;
  }
  // The rule is useful, not vacuous: it proves most of what is true.
  assert.ok(proven > periodic / 2, `proved ${proven} of ${periodic} true claims`);
});

/** Counts a module's declared locals by value type (0x7b = v128) by walking its code section. */
function localsByType(bytes: Uint8Array): Record<number, number> {
  let p = 8;
  const leb = () => {
    let r = 0;
    let s = 0;
    let x;
    do {
      x = bytes[p++];
      r |= (x & 0x7f) << s;
      s += 7;
    } while (x & 0x80);
    return r >>> 0;
  };
  const counts: Record<number, number> = {};
  while (p < bytes.length) {
    const id = bytes[p++];
    const end = leb() + p;
    if (id === 10) {
      for (let n = leb(); n > 0; n--) {
        const bodyEnd = leb() + p;
        for (let groups = leb(); groups > 0; groups--) {
          const count = leb();
          const type = bytes[p++];
          counts[type] = (counts[type] ?? 0) + count;
        }
        p = bodyEnd;
      }
    }
    p = end;
  }
  return counts;
}

/** The wasm modules jax-js compiles while `run` runs (kernels compile through one of these two entries). */
async function compiledModules(run: () => Promise<void>): Promise<Uint8Array[]> {
  const seen: Uint8Array[] = [];
  const { Module, compile } = WebAssembly;
  const copy = (b: BufferSource) => new Uint8Array(ArrayBuffer.isView(b) ? b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) : b.slice(0));
  WebAssembly.compile = (b: BufferSource) => (seen.push(copy(b)), compile(b));
  WebAssembly.Module = function (b: BufferSource) {
    seen.push(copy(b));
    return new Module(b);
  } as unknown as typeof WebAssembly.Module;
  try {
    await run();
  } finally {
    Object.assign(WebAssembly, { Module, compile });
  }
  return seen;
}

test("a batched product's kernel shares the right operand's loads as the 2-D product's does, in both plans", async () => {
  // v128 locals hold the loaded vectors (and accumulators) of a micro block: a row block that reloads the right
  // operand on every row needs more of them. Without patch 01 (and with 4×4 micro blocks), the batched kernels
  // declared 48 and 96 instead of 33 and 48.
  const kernelOf = async (a: number[], b: number[], transposeB: boolean) => {
    const mods = await compiledModules(async () => {
      const f = jit((x: Arr, y: Arr) => np.matmul(x, transposeB ? np.matrixTranspose(y) : y));
      try {
        const out = f(np.ones(a), np.ones(b));
        await blockUntilReady(out);
        out.dispose();
      } finally {
        f.dispose();
      }
    });
    const kernels = mods.map(localsByType).filter((l) => (l[0x7b] ?? 0) > 0);
    assert.equal(kernels.length, 1, `one SIMD kernel for [${a}]·[${b}]`);
    return kernels[0];
  };
  for (const transposeB of [false, true]) {
    const bBatched = transposeB ? [3, 256, 64] : [3, 64, 256];
    const bFlat = transposeB ? [256, 64] : [64, 256];
    const batched = await kernelOf([3, 768, 64], bBatched, transposeB);
    const flat = await kernelOf([2304, 64], bFlat, transposeB);
    assert.equal(batched[0x7b], flat[0x7b], `v128 locals, ${transposeB ? "K-SIMD" : "tiled"} plan`);
  }
});

/**
 * The grid's output bits as the kernels gave them before patch 03 (4×4 micro blocks; patches 01 and 02 applied),
 * one digest per way the kernels multiply-add: fused where V8 has relaxed SIMD (Node 22 and newer), a multiply then
 * an add where it does not (Node 20). Patch 03 changes which outputs a micro block computes together, not the order
 * of any output's sum, so no bit may change. Recorded with `BOFT_GRID_BITS=write`, only for an intended change.
 */
const GRID_BITS = join(root, "test", "fixtures", "matmul-grid-bits.json");
// jax-js's own feature probe: a module using f32x4.relaxed_madd.
const RELAXED_MADD_PROBE = "0061736d0100000001080160037b7b7b017b030201000a0d010b00200020012002fd85020b";
const madd = WebAssembly.validate(Buffer.from(RELAXED_MADD_PROBE, "hex")) ? "relaxed-madd" : "mul-add";

function checkGridBits(digest: string) {
  const recorded = JSON.parse(readFileSync(GRID_BITS, "utf8")) as Record<string, string>;
  if (process.env.BOFT_GRID_BITS === "write") {
    writeFileSync(GRID_BITS, JSON.stringify({ ...recorded, [madd]: digest }, null, 2) + "\n");
    return;
  }
  assert.equal(digest, recorded[madd], `the grid's float32 bits (${madd}) differ from the recorded ones`);
}

test("products of many shapes match float64, forward and under grad, both plans, one thread, bits as recorded", async () => {
  const { failures, digest } = await runGrid();
  assert.deepEqual(failures, []);
  checkGridBits(digest);
});

test("the same grid with two worker threads (kernels split in chunks), the same bits", () => {
  const preload = join(root, "dist", "src", "node", "preload.js");
  const grid = pathToFileURL(join(root, "dist", "test", "matmul-grid.js")).href;
  const child = `const { runGrid } = await import(${JSON.stringify(grid)});
process.stdout.write(JSON.stringify(await runGrid()));
process.exit(0);`;
  const r = spawnSync(process.execPath, ["--import", preload, "--input-type=module", "-e", child], {
    encoding: "utf8",
    env: { ...process.env, BOFT_THREADS: "2" },
    timeout: 240_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const { failures, digest } = JSON.parse(r.stdout) as { failures: string[]; digest: string };
  assert.deepEqual(failures, []);
  checkGridBits(digest);
});

/**
 * Patch 04 gives float32 Exp and Reciprocal f32x4 forms, so softmax, SiLU and RMSNorm kernels vectorise. A kernel of
 * fewer than 4 elements never vectorises, so each value's exp on its own runs the scalar code the kernels used before;
 * the vectorised kernel must give the same bits for every value, edge cases included.
 */
const EXP_EDGES = [0, -0, 1, -1, 0.5, 1e-40, -1e-40, 88, 88.72, 88.73, 89, 100, 126 * Math.LN2, 127 * Math.LN2, 128 * Math.LN2,
  -87.3, -87.33, -88, -103, -104, -126 * Math.LN2, -127 * Math.LN2, 1e30, -1e30, Infinity, -Infinity, NaN, 3.4e38, -3.4e38];

function expInputs(n: number): Float32Array {
  let s = 12345;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const out = [...EXP_EDGES];
  while (out.length < n) out.push((next() * 2 - 1) * (next() < 0.5 ? 5 : 120));
  return Float32Array.from(out);
}

const bitsOf = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0];

test("vectorised exp, reciprocal and SiLU give the scalar kernels' bits, edge cases included", async () => {
  const x = expInputs(1024);
  const ops: [string, (a: Arr) => Arr][] = [
    ["exp", (a) => np.exp(a)],
    ["reciprocal", (a) => np.reciprocal(a)],
    ["silu", (a) => a.ref.mul(np.reciprocal(np.exp(a.mul(-1)).add(1)))],
  ];
  for (const [name, op] of ops) {
    const f = jit(op);
    try {
      const vectorised = (await f(np.array(x)).data()) as Float32Array;
      const mismatches: string[] = [];
      for (let i = 0; i < x.length; i++) {
        const scalar = ((await f(np.array(x.subarray(i, i + 1))).data()) as Float32Array)[0];
        const same = bitsOf(scalar) === bitsOf(vectorised[i]) || (Number.isNaN(scalar) && Number.isNaN(vectorised[i]));
        if (!same) mismatches.push(`${name}(${x[i]}): scalar ${scalar}, vectorised ${vectorised[i]}`);
      }
      assert.deepEqual(mismatches.slice(0, 5), [], `${mismatches.length} of ${x.length} differ`);
    } finally {
      f.dispose();
    }
  }
});

/** Whether `bytes` holds the byte sequence `seq`. */
const holds = (bytes: Uint8Array, seq: number[]) => bytes.some((_, i) => seq.every((b, j) => bytes[i + j] === b));

test("an exp kernel and a reciprocal kernel compile to SIMD code", async () => {
  const kernelsOf = (op: (a: Arr) => Arr) =>
    compiledModules(async () => {
      const f = jit(op);
      try {
        const out = f(np.ones([4096]).mul(0.5));
        await blockUntilReady(out);
        out.dispose();
      } finally {
        f.dispose();
      }
    });
  // The four-lane exp keeps its steps in v128 locals; unpatched, the kernel calls the scalar exp, which has none.
  const exp = await kernelsOf((a) => np.exp(a));
  assert.ok(exp.some((m) => (localsByType(m)[0x7b] ?? 0) > 0), "an exp kernel with v128 locals");
  // f32x4.div is 0xfd 0xe7 0x01; unpatched, the kernel divides one lane at a time (f32.div, 0x95).
  const reciprocal = await kernelsOf((a) => np.reciprocal(a));
  assert.ok(reciprocal.some((m) => holds(m, [0xfd, 0xe7, 0x01])), "a reciprocal kernel with f32x4.div");
});
