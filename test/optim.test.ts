import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { np, tree, jit, type Arr } from "../src/engine/index.js";
import { ConfigError, ShapeError } from "../src/errors.js";
import {
  adamw,
  adamwStateFromHost,
  adamwStateToHost,
  adamwStateToHostAsync,
  clipByGlobalNorm,
  globalNorm,
  type AdamWState,
} from "../src/train/optim.js";
import { hostTreeEntries, treeToHost, type Tree } from "../src/train/host-tree.js";

type Params = { a: Arr; layers: { w: Arr }[] };
const SHAPES = { a: [2, 3], w0: [4], w1: [1, 2] };

function f64(values: number[], shape: number[]): Arr {
  return np.array(Float64Array.from(values), { dtype: np.float64 }).reshape(shape);
}

// Flat host copies in tree order: a, layers[0].w, layers[1].w.
function flat(p: Params): Float64Array[] {
  return hostTreeEntries(treeToHost(tree.ref(p))).map(([, h]) => Float64Array.from(h.data));
}

function build(xs: number[][]): Params {
  return { a: f64(xs[0], SHAPES.a), layers: [{ w: f64(xs[1], SHAPES.w0) }, { w: f64(xs[2], SHAPES.w1) }] };
}

/** torch.optim.AdamW (single-tensor path) in float64 JS, one tensor as a flat array. */
function torchAdamW(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, t: number, h: { lr: number; b1: number; b2: number; eps: number; wd: number }) {
  const bc1 = 1 - h.b1 ** t;
  const bc2 = 1 - h.b2 ** t;
  const stepSize = h.lr / bc1;
  for (let i = 0; i < p.length; i++) {
    p[i] *= 1 - h.lr * h.wd;
    m[i] += (g[i] - m[i]) * (1 - h.b1);
    v[i] = v[i] * h.b2 + (1 - h.b2) * g[i] * g[i];
    const denom = Math.sqrt(v[i]) / Math.sqrt(bc2) + h.eps;
    p[i] += -stepSize * (m[i] / denom);
  }
}

// A loss-like gradient that depends on the current params, so each step sees new values.
function gradOf(p: Float64Array, k: number, step: number): Float64Array {
  return p.map((x, i) => Math.sin(1.3 * x + 0.7 * i + k) * (1 + 0.25 * step) + 0.1 * x);
}

describe("train.adamw()", () => {
  it("matches a float64 re-computation of torch.optim.AdamW over 5 steps", () => {
    const h = { lr: 0.05, b1: 0.8, b2: 0.95, eps: 1e-3, wd: 0.1 }; // large eps: its placement matters
    const lrs = [0.05, 0.04, 0.03, 0.02, 0.01];
    const init = [[0.5, -1, 2, 0.25, -0.75, 1.5], [1, 2, 3, 4], [-0.3, 0.9]];
    const ref = init.map((x) => Float64Array.from(x));
    const rm = ref.map((x) => new Float64Array(x.length));
    const rv = ref.map((x) => new Float64Array(x.length));

    const opt = adamw({ lr: h.lr, beta1: h.b1, beta2: h.b2, eps: h.eps, weightDecay: h.wd });
    let params = build(init);
    let state = opt.init(tree.ref(params));
    for (let step = 1; step <= 5; step++) {
      const cur = flat(params);
      const gs = cur.map((x, k) => gradOf(x, k, step));
      const lr = lrs[step - 1];
      ref.forEach((x, k) => torchAdamW(x, gs[k], rm[k], rv[k], step, { ...h, lr }));
      // Alternate number and Array learning rates: both paths must agree with torch.
      const lrArg = step % 2 === 0 ? np.full([], lr, { dtype: np.float64 }) : lr;
      [params, state] = opt.update(build(gs.map((g) => Array.from(g))), state, params, lrArg);
    }
    const got = flat(params);
    got.forEach((x, k) => x.forEach((val, i) => assert.ok(Math.abs(val - ref[k][i]) <= 1e-13, `leaf ${k}[${i}]: ${val} vs ${ref[k][i]}`)));
    const hs = adamwStateToHost(state);
    assert.equal(hs.count, 5);
    hostTreeEntries(hs.mu).forEach(([, t], k) => t.data.forEach((val, i) => assert.ok(Math.abs(val - rm[k][i]) < 1e-14)));
    hostTreeEntries(hs.nu).forEach(([, t], k) => t.data.forEach((val, i) => assert.ok(Math.abs(val - rv[k][i]) < 1e-14)));
    tree.dispose(params);
  });

  it("keeps float32 params float32, even with a float64 learning-rate Array", () => {
    const opt = adamw({ lr: 0.1 });
    const p = { w: np.array([1, 2, 3]) };
    const state = opt.init(tree.ref(p));
    const [np1, st1] = opt.update({ w: np.array([0.1, -0.2, 0.3]) }, state, p, np.full([], 0.1, { dtype: np.float64 }));
    assert.equal(np1.w.dtype, np.float32);
    assert.equal(st1.mu.w.dtype, np.float32);
    // First Adam step moves each weight by lr·sign(g) (up to eps), after decay by 1 − lr·wd.
    const got = np1.w.js() as number[];
    [1, 2, 3].forEach((x, i) => assert.ok(Math.abs(got[i] - (x * (1 - 0.1 * 0.01) - 0.1 * Math.sign([0.1, -0.2, 0.3][i]))) < 1e-5));
    tree.dispose(st1);
  });

  it("a number learning rate (compiled per leaf) gives the bits of an Array one (op by op), float32, 6 steps", () => {
    const opt = adamw({ lr: 0.01, weightDecay: 0.05 });
    const start = Array.from({ length: 300 }, (_, i) => Math.sin(i * 0.37) * 2);
    const params = (): { w: Arr; b: Arr } => ({ w: np.array(start.slice(0, 200)).reshape([20, 10]), b: np.array(start.slice(200)) });
    let [pn, pa] = [params(), params()];
    let [sn, sa] = [opt.init(tree.ref(pn)), opt.init(tree.ref(pa))];
    for (let step = 1; step <= 6; step++) {
      const g = () => ({ w: np.array(start.slice(0, 200).map((x, i) => Math.cos(x * step + i) * 1e-2 * step)).reshape([20, 10]), b: np.array(start.slice(200).map((x) => x * 1e-3 - 1e-4 * step)) });
      const lr = 0.01 * (1 - step / 10);
      [pn, sn] = opt.update(g(), sn, pn, lr);
      [pa, sa] = opt.update(g(), sa, pa, np.full([], lr));
    }
    assert.equal(pn.w.dtype, np.float32);
    const bits = (t: unknown) => hostTreeEntries(treeToHost(t as Tree)).map(([, h]) => Array.from(h.data));
    const [hn, ha] = [bits([pn, sn.mu, sn.nu]), bits([pa, sa.mu, sa.nu])];
    assert.ok(hn.flat().some((x) => x !== 0));
    assert.deepEqual(hn, ha);
  });

  it("consumes grads, state and params, with a number learning rate too", () => {
    const opt = adamw({ lr: 0.1 });
    const p = { w: np.ones([3]) };
    const st = opt.init(tree.ref(p));
    const g = { w: np.ones([3]) };
    const [np1, st1] = opt.update(g, st, p, 0.05);
    for (const a of [p.w, g.w, st.mu.w, st.nu.w]) assert.equal(a.refCount, 0);
    assert.equal(np1.w.refCount, 1);
    tree.dispose([np1, st1]);
  });

  it("consumes grads, state and params", () => {
    const opt = adamw({ lr: 0.1 });
    const p = { w: np.ones([3]) };
    const st = opt.init(tree.ref(p));
    const g = { w: np.ones([3]) };
    const lr = np.full([], 0.1);
    const [np1, st1] = opt.update(g, st, p, lr);
    for (const a of [p.w, g.w, st.mu.w, st.nu.w, lr]) assert.equal(a.refCount, 0);
    assert.equal(np1.w.refCount, 1);
    tree.dispose([np1, st1]);
  });

  it("init consumes params and returns zero moments and count 0", () => {
    const p = { w: np.ones([2, 2]) };
    const st = adamw({ lr: 1 }).init(p);
    assert.equal(p.w.refCount, 0);
    const h = adamwStateToHost(st);
    assert.equal(h.count, 0);
    assert.deepEqual(Array.from(hostTreeEntries(h.mu)[0][1].data), [0, 0, 0, 0]);
  });

  it("rejects mismatched trees with ShapeError and frees the inputs", () => {
    const opt = adamw({ lr: 0.1 });
    const p = { w: np.ones([3]) };
    const st = opt.init(tree.ref(p));
    const g = { w: np.ones([4]) };
    assert.throws(() => opt.update(g, st, p), (e: unknown) => e instanceof ShapeError && /leaf 0 of grads has shape \[4\]/.test(e.message));
    assert.equal(p.w.refCount, 0);
    assert.equal(g.w.refCount, 0);
  });

  it("rejects bad hyper-parameters with ConfigError naming the field", () => {
    assert.throws(() => adamw({ lr: 0.1, beta2: 1 }), (e: unknown) => e instanceof ConfigError && /beta2=1/.test(e.message));
    assert.throws(() => adamw({ lr: -1 }), ConfigError);
  });

  it("state survives a host round trip (sync and async) and resumes identically", async () => {
    const opt = adamw({ lr: 0.05 });
    let p: Params = build([[1, 2, 3, 4, 5, 6], [1, 1, 1, 1], [2, 2]]);
    let s = opt.init(tree.ref(p));
    const g = () => build([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [1, -1, 1, -1], [0.5, 0.5]]);
    [p, s] = opt.update(g(), s, p);
    const host = adamwStateToHost(tree.ref(s));
    const hostAsync = await adamwStateToHostAsync(tree.ref(s));
    assert.deepEqual(hostAsync, host);
    const restored = adamwStateFromHost<Params>(host);
    const [pa, sa] = opt.update(g(), s, tree.ref(p));
    const [pb, sb] = opt.update(g(), restored, p);
    assert.deepEqual(flat(pa), flat(pb));
    assert.deepEqual(adamwStateToHost(sa), adamwStateToHost(sb));
    tree.dispose([pa, pb]);
  });
});

describe("train.clipByGlobalNorm()", () => {
  const grads = (): Tree => ({ a: f64([3, 4], [2]), b: [f64([12], [1, 1])] }); // global norm 13

  it("scales exactly onto the sphere of radius maxNorm when above it", () => {
    const [clipped, norm] = clipByGlobalNorm(grads(), 6.5);
    assert.equal(norm.js(), 13);
    assert.deepEqual(hostTreeEntries(treeToHost(clipped)).map(([, h]) => Array.from(h.data)), [[1.5, 2], [6]]);
  });

  it("leaves gradients bit-identical at or below maxNorm", () => {
    for (const maxNorm of [13, 100]) {
      const [clipped, norm] = clipByGlobalNorm(grads(), maxNorm);
      norm.dispose();
      assert.deepEqual(hostTreeEntries(treeToHost(clipped)).map(([, h]) => Array.from(h.data)), [[3, 4], [12]]);
    }
  });

  it("clips float32 gradients to the target norm", () => {
    const g = { x: np.array([1, 2, 3, 4]), y: np.array([[5, 6]]) };
    const [c, n] = clipByGlobalNorm(g, 1);
    assert.ok(Math.abs((n.js() as number) - Math.sqrt(91)) < 1e-5);
    assert.ok(Math.abs((globalNorm(c).js() as number) - 1) < 1e-6);
  });

  it("consumes its input and rejects a non-positive maxNorm", () => {
    const g = { x: np.ones([2]) };
    const [c, n] = clipByGlobalNorm(g, 1);
    assert.equal(g.x.refCount, 0);
    tree.dispose([c, n]);
    assert.throws(() => clipByGlobalNorm({ x: np.ones([2]) }, 0), ConfigError);
  });
});
