/**
 * boft's patch 02 to @jax-js/jax (patches/jax-js): the vjp of a jit-compiled function, with some arguments held
 * fixed. jit's JVP rule leaves the zero tangents of fixed arguments out of the JVP program (folded away instead of
 * multiplied), and partial evaluation is cached, so repeated calls reuse the same compiled forward and backward.
 *
 * The tests: the patch is installed; gradients through vjp(jit(f)) equal the eager vjp's on functions that use the
 * fixed arguments in products, sums, broadcasts, views, casts, non-linearly and in a nested jit, over repeated
 * calls; and the compiled forward of vjp(jit(x ↦ x·W)) with W fixed holds one product, not two (the second,
 * x·dW with dW = 0, is the work the patch removes).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { jax, np, jit, vjp, tree, type Arr } from "../src/engine/index.js";

const root = fileURLToPath(new URL("../../", import.meta.url));

test("the installed @jax-js/jax carries patch 02", () => {
  const r = spawnSync(process.execPath, [join(root, "scripts", "patch-jax.mjs"), "--check"], { encoding: "utf8" });
  assert.equal(r.status, 0, `patch-jax --check: ${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /^applied 02-jit-vjp-symbolic-zeros-and-cached-partial-eval\.patch$/m);
});

/** A deterministic float32 array. */
function arr(shape: number[], seed: number): Arr {
  const n = shape.reduce((a, b) => a * b, 1);
  return np.array(Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 1.7 + i * 0.37) * 0.8), { dtype: np.float32 }).reshape(shape);
}

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / Math.max(den, 1e-30);
}

type Fn = (fixed: Arr[], diff: Arr[]) => Arr;
interface Case {
  name: string;
  fixed: number[][]; // shapes of the arguments held fixed
  diff: number[][]; // shapes of the arguments differentiated
  f: Fn;
}

const inner = jit((w: Arr, x: Arr) => np.tanh(np.matmul(x, w)));

const CASES: Case[] = [
  { name: "products: x·W·A, tanh", fixed: [[16, 12]], diff: [[12, 8], [6, 16]], f: ([w], [a, x]) => np.tanh(np.matmul(np.matmul(x, w), a)) },
  {
    name: "broadcast bias and scale, sum, views",
    fixed: [[8], [8]],
    diff: [[5, 8]],
    f: ([b, s], [x]) => np.sum(x.ref.add(b).mul(s).reshape([5, 2, 4]).transpose([1, 0, 2]).mul(x.reshape([5, 2, 4]).transpose([1, 0, 2])), 1),
  },
  {
    name: "fixed argument used non-linearly (exp, where, division)",
    fixed: [[6, 6]],
    diff: [[6, 6]],
    f: ([w], [x]) => np.where(w.ref.greater(0), np.exp(w.ref).mul(x.ref), x.div(w.mul(w.ref).add(1))),
  },
  { name: "float cast and a reduction", fixed: [[4, 10]], diff: [[4, 10]], f: ([w], [x]) => np.max(x.ref.mul(w).astype(np.float32), 1).add(np.sum(x, 0).sum()) },
  { name: "nested jit", fixed: [[10, 10]], diff: [[3, 10]], f: ([w], [x]) => inner(w.ref, inner(w, x)) },
  { name: "every argument differentiated", fixed: [], diff: [[7, 5], [5, 3]], f: ([], [x, w]) => np.matmul(x, w).mul(2) },
];

for (const c of CASES) {
  test(`vjp(jit(f)) with fixed arguments = the eager vjp of f: ${c.name}`, async () => {
    const fixed = c.fixed.map((s, i) => arr(s, 10 + i));
    const diff = c.diff.map((s, i) => arr(s, 20 + i));
    const compiled = jit((fx: Arr[], d: Arr[]) => c.f(fx, d));
    const run = async (g: (d: Arr[]) => Arr) => {
      const [y, back] = vjp(g as never, [tree.ref(diff)] as never) as unknown as [Arr, ((ct: Arr) => [Arr[]]) & { dispose(): void }];
      const ct = arr(y.shape, 3);
      const [grads] = back(ct);
      back.dispose();
      return Promise.all([y, ...grads].map(async (a) => (await a.data()) as Float32Array));
    };
    const want = await run((d) => c.f(tree.ref(fixed) as Arr[], d));
    for (let call = 0; call < 3; call++) {
      const got = await run((d) => compiled(tree.ref(fixed) as Arr[], d) as Arr);
      assert.equal(got.length, want.length);
      for (let i = 0; i < got.length; i++) {
        const err = relErr(got[i], want[i]);
        assert.ok(err < 1e-5, `call ${call}, ${i === 0 ? "output" : `gradient ${i - 1}`}: ${err}`);
      }
    }
    tree.dispose([fixed, diff] as never);
  });
}

test("the compiled forward of vjp(jit(x ↦ x·W)), W fixed, computes one product (no x·dW with dW = 0)", async () => {
  const w = arr([24, 20], 1);
  const x = arr([9, 24], 2);
  // A function of its own, so that nothing about it is compiled yet.
  const f = jit((w: Arr, x: Arr) => np.matmul(x.ref, w.ref).mul(np.matmul(x, w)));
  const printed: string[] = [];
  const info = console.info;
  console.info = (...a: unknown[]) => void printed.push(a.join(" "));
  jax.setDebug(1); // jax-js prints each Jaxpr it compiles
  try {
    const [y, back] = vjp(((x: Arr) => f(w.ref, x)) as never, [x.ref] as never) as unknown as [Arr, ((ct: Arr) => [Arr]) & { dispose(): void }];
    const [gx] = back(arr(y.shape, 3));
    back.dispose();
    await Promise.all([y.data(), gx.data()]);
  } finally {
    jax.setDebug(0);
    console.info = info;
  }
  const programs = printed.filter((p) => p.includes("JIT Compile"));
  assert.ok(programs.length >= 2, `expected a forward and a backward program, got ${programs.length}`);
  // The forward (the first program compiled) returns the output and the residuals: x·W twice (it is used twice),
  // unpatched also x·0 twice.
  const dots = (p: string) => (p.match(/= dot /g) ?? []).length;
  assert.equal(dots(programs[0]), 2, programs[0]);
  tree.dispose([w, x] as never);
});
