/**
 * AdamW and global-norm clipping as pure functions over param trees (optax-shaped: `init` / `update`,
 * no hidden state), with PyTorch `torch.optim.AdamW` semantics so runs can be compared step for step.
 *
 * Ownership: every function consumes its Array arguments (grads, state, params, an Array lr); pass
 * `tree.ref(x)` to keep one. Nothing reads data; the step count is a host number (see AdamWState).
 */
import { np, tree, jit, type Arr } from "../engine/index.js";
import { ConfigError, ShapeError } from "../errors.js";
import type { HostTree, Tree } from "./host-tree.js";
import { treeFromHost, treeToHost, treeToHostAsync } from "./host-tree.js";

export type AdamWConfig = {
  /** Default learning rate, used when `update` gets none (a schedule passes one each step). */
  lr: number;
  /** First-moment decay. Default 0.9. */
  beta1?: number;
  /** Second-moment decay. Default 0.999. */
  beta2?: number;
  /** Added to √v̂ in the denominator (PyTorch placement, not optax's eps inside the bias correction). */
  eps?: number;
  /** Decoupled weight decay λ: each step first does p ← p·(1 − lr·λ). Default 0.01 (PyTorch's default). */
  weightDecay?: number;
};

/**
 * Optimizer state. The step count is a host number: the bias corrections 1−β₁ᵗ and √(1−β₂ᵗ) are computed in
 * JS double precision from it each step. Keeping them as engine scalars made them depend on how jax-js folds
 * constants, so a run resumed from stored values rounded differently from the uninterrupted one.
 */
export type AdamWState<P extends Tree = Tree> = {
  /** Steps taken. */
  count: number;
  /** First moments, same tree as the params. */
  mu: P;
  /** Second moments, same tree as the params. */
  nu: P;
};

/** A pure optimizer over param trees: `init` builds the state, `update` returns new params and state. */
export type AdamW = {
  /** Zero moments shaped like `params`. Consumes `params`. */
  init<P extends Tree>(params: P): AdamWState<P>;
  /**
   * One step at learning rate `lr` (default: the config's). Consumes grads, state, params and `lr` if it
   * is an Array (pass an Array under jit so a new rate does not retrace). `gradScale` (a scalar, borrowed, e.g.
   * clipScale's factor) multiplies every gradient first, inside the update's own kernel. Returns [newParams, newState].
   */
  update<P extends Tree>(grads: P, state: AdamWState<P>, params: P, lr?: number | Arr, gradScale?: Arr): [P, AdamWState<P>];
};

function leavesOf(t: Tree): Arr[] {
  return tree.leaves(t) as Arr[];
}

// A scalar in the leaf's dtype, so a float64 scalar never promotes float32 params to float64. Consumes s.
function like(s: Arr, leaf: Arr): Arr {
  return s.dtype === leaf.dtype ? s : s.astype(leaf.dtype);
}

function checkConfig(c: Required<AdamWConfig>): void {
  const bad = (field: string, v: number, want: string): never => {
    throw new ConfigError(`adamw: ${field} must be ${want} (${field}=${v})`);
  };
  if (!(Number.isFinite(c.lr) && c.lr >= 0)) bad("lr", c.lr, "a finite number ≥ 0");
  if (!(c.beta1 >= 0 && c.beta1 < 1)) bad("beta1", c.beta1, "in [0, 1)");
  if (!(c.beta2 >= 0 && c.beta2 < 1)) bad("beta2", c.beta2, "in [0, 1)");
  if (!(c.eps >= 0 && Number.isFinite(c.eps))) bad("eps", c.eps, "a finite number ≥ 0");
  if (!(c.weightDecay >= 0 && Number.isFinite(c.weightDecay))) bad("weightDecay", c.weightDecay, "a finite number ≥ 0");
}

// Structure and shapes, checked before any op: a throwing op leaks its inputs (field notes §5.5).
function treeMismatch(named: Array<[string, Tree]>): string | null {
  const [[refName, refTree], ...rest] = named;
  const refDef = tree.structure(refTree);
  const refLeaves = leavesOf(refTree);
  for (const [name, t] of rest) {
    const def = tree.structure(t);
    if (!def.equals(refDef)) return `${name} tree ${def.toString()} does not match ${refName} tree ${refDef.toString()}`;
    const leaves = leavesOf(t);
    for (let i = 0; i < leaves.length; i++) {
      const [a, b] = [leaves[i].shape, refLeaves[i].shape];
      if (a.length !== b.length || a.some((d, j) => d !== b[j])) {
        return `leaf ${i} of ${name} has shape [${a}], ${refName} has [${b}]`;
      }
    }
  }
  return null;
}

/**
 * AdamW as in PyTorch (`torch.optim.AdamW`, non-amsgrad, https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html):
 * `p ← p·(1 − lr·λ)`; `m ← m + (1−β₁)(g − m)`; `v ← β₂v + (1−β₂)g²`;
 * `p ← p − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)`.
 */
export function adamw(cfg: AdamWConfig): AdamW {
  const { lr: defaultLr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01 } = cfg;
  checkConfig({ lr: defaultLr, beta1, beta2, eps, weightDecay });
  // One leaf's update with a number learning rate, compiled (once per leaf shape). Eager, each step's learning rate and
  // bias corrections were new constants in the leaf's kernels, so jax-js generated and compiled them again every step
  // (demo LM, BOFT's 56 leaves: ~0.2 s of a 0.5 s step). The scalars come in as an array in the leaf's dtype (a number
  // inside jit would be float32 even for float64 leaves), and 1/√(1−β₂ᵗ) multiplies as the eager division by a
  // number did, so both paths give the same bits.
  const leafStep = jit((p: Arr, g0: Arr, m0: Arr, v0: Arr, sc: Arr, gradScale: Arr): Arr[] => {
    const at = (i: number) => sc.ref.slice([i, i + 1]).reshape([]);
    const [stepSize, decay, invBc2Sqrt, oneMinusB1, b2, oneMinusB2, epsA] = [0, 1, 2, 3, 4, 5, 6].map(at);
    sc.dispose();
    const g = g0.mul(gradScale); // × 1 when unscaled: the same bits
    const m = m0.ref.add(g.ref.sub(m0).mul(oneMinusB1));
    const v = v0.mul(b2).add(g.ref.mul(g).mul(oneMinusB2));
    const denom = np.sqrt(v.ref).mul(invBc2Sqrt).add(epsA);
    return [p.mul(decay).sub(m.ref.div(denom).mul(stepSize)), m, v];
  });
  return {
    init<P extends Tree>(params: P): AdamWState<P> {
      const zeros = (): P => tree.map((p: Arr) => np.zeros(p.shape, { dtype: p.dtype }), params) as P;
      const state = {
        count: 0,
        mu: zeros(),
        nu: zeros(),
      };
      tree.dispose(params);
      return state;
    },

    update<P extends Tree>(grads: P, state: AdamWState<P>, params: P, lr: number | Arr = defaultLr, gradScale?: Arr): [P, AdamWState<P>] {
      const mismatch = treeMismatch([
        ["params", params],
        ["grads", grads],
        ["state.mu", state.mu],
        ["state.nu", state.nu],
      ]);
      if (mismatch !== null) {
        tree.dispose([params, grads, state.mu, state.nu]);
        if (typeof lr !== "number") lr.dispose();
        throw new ShapeError(`adamw.update: ${mismatch}. Pass grads and state built from the same param tree.`);
      }
      const [ps, def] = tree.flatten(params) as [Arr[], ReturnType<typeof tree.structure>];
      const gs = leavesOf(grads);
      const ms = leavesOf(state.mu);
      const vs = leavesOf(state.nu);

      const count = state.count + 1;
      if (typeof lr === "number") {
        const scalars = [lr * (1 / (1 - beta1 ** count)), 1 - lr * weightDecay, 1 / Math.sqrt(1 - beta2 ** count), 1 - beta1, beta2, 1 - beta2, eps];
        const byDtype = new Map<Arr["dtype"], [Arr, Arr]>();
        const sc = (p: Arr): [Arr, Arr] => {
          if (!byDtype.has(p.dtype)) byDtype.set(p.dtype, [np.array(scalars, { dtype: p.dtype }), gradScale ? like(gradScale.ref, p) : np.ones([], { dtype: p.dtype })]);
          const [a, b] = byDtype.get(p.dtype)!;
          return [a.ref, b.ref];
        };
        const out = ps.map((p, i) => leafStep(p, gs[i], ms[i], vs[i], ...sc(p)));
        for (const a of byDtype.values()) tree.dispose(a);
        const built = (j: number): P => tree.unflatten(def, out.map((o) => o[j])) as P;
        return [built(0), { count, mu: built(1), nu: built(2) }];
      }
      // An Array learning rate (one that must not retrace an enclosing jit): the same update, op by op.
      // Scalars shared by every leaf: step size lr/(1−β₁ᵗ), √(1−β₂ᵗ), and the decay factor 1 − lr·λ.
      const bc2Sqrt = Math.sqrt(1 - beta2 ** count);
      const stepSize = lr.ref.mul(1 / (1 - beta1 ** count));
      const decay = np.subtract(1, lr.ref.mul(weightDecay));

      const newP: Arr[] = [];
      const newM: Arr[] = [];
      const newV: Arr[] = [];
      ps.forEach((p, i) => {
        const g = gradScale ? scaleLeaf(gs[i], gradScale) : gs[i];
        const decayed = weightDecay === 0 ? p : p.mul(like(decay.ref, p));
        const m = ms[i].ref.add(g.ref.sub(ms[i]).mul(1 - beta1)); // torch.lerp as computed for weight < 0.5
        const v = vs[i].mul(beta2).add(g.ref.mul(g).mul(1 - beta2));
        const denom = np.sqrt(v.ref).div(bc2Sqrt).add(eps);
        newP.push(decayed.sub(m.ref.div(denom).mul(like(stepSize.ref, p))));
        newM.push(m);
        newV.push(v);
      });
      stepSize.dispose();
      decay.dispose();
      lr.dispose();

      const build = (xs: Arr[]): P => tree.unflatten(def, xs) as P;
      return [build(newP), { count, mu: build(newM), nu: build(newV) }];
    },
  };
}

/** ‖g‖₂ over every element of every leaf, as a scalar Array. Consumes `grads`. */
export function globalNorm(grads: Tree): Arr {
  const leaves = leavesOf(grads);
  if (leaves.length === 0) return np.zeros([]);
  return normOfLeaves(leaves);
}

/**
 * Compiled (once per list of leaf shapes): eager, the sum of the leaves' squares was one tiny kernel per addition
 * (55 for the demo LM's BOFT adapter). The same operations in the same order, so the same bits.
 */
const normOfLeaves = jit((leaves: Arr[]): Arr => np.sqrt(leaves.map((g) => g.ref.mul(g).sum()).reduce((a, b) => a.add(b))));

/**
 * Scales the whole gradient tree by `min(1, maxNorm / ‖g‖)`, so its global norm is at most maxNorm
 * (optax `clip_by_global_norm`; PyTorch `clip_grad_norm_` without its 1e-6). Below the limit the
 * factor is exactly 1. Consumes `grads`. Returns [clipped, norm before clipping].
 */
export function clipByGlobalNorm<P extends Tree>(grads: P, maxNorm: number): [P, Arr] {
  const [scale, norm] = clipScale(grads, maxNorm);
  const clipped = tree.map((g: Arr) => scaleLeaf(g, scale), grads) as P;
  scale.dispose();
  return [clipped, norm];
}

/**
 * The factor clipByGlobalNorm multiplies every leaf by (apply it with scaleLeaf), and the norm. Borrows `grads`;
 * consumes them only when maxNorm is invalid (then it throws).
 */
export function clipScale(grads: Tree, maxNorm: number): [Arr, Arr] {
  if (!(maxNorm > 0 && Number.isFinite(maxNorm))) {
    tree.dispose(grads);
    throw new ConfigError(`clipByGlobalNorm: maxNorm must be a finite number > 0 (maxNorm=${maxNorm})`);
  }
  const norm = globalNorm(tree.ref(grads));
  return [np.divide(maxNorm, np.maximum(norm.ref, maxNorm)), norm];
}

/** One leaf times clipScale's factor. Consumes `g`; borrows `scale`. */
export function scaleLeaf(g: Arr, scale: Arr): Arr {
  return g.mul(like(scale.ref, g));
}

/** AdamW state on the host, for checkpoints. */
export type AdamWHostState = {
  count: number;
  mu: HostTree;
  nu: HostTree;
};

/** State → host data. Consumes `state`. A sync point. */
export function adamwStateToHost(state: AdamWState): AdamWHostState {
  return { count: state.count, mu: treeToHost(state.mu), nu: treeToHost(state.nu) };
}

/** Async form of adamwStateToHost (required when worker threads are in use). Consumes `state`. */
export async function adamwStateToHostAsync(state: AdamWState): Promise<AdamWHostState> {
  const [mu, nu] = await Promise.all([treeToHostAsync(state.mu), treeToHostAsync(state.nu)]);
  return { count: state.count, mu, nu };
}

/** Host data → state, so a resumed run continues with the same moments and bias correction. */
export function adamwStateFromHost<P extends Tree = Tree>(h: AdamWHostState): AdamWState<P> {
  if (!(Number.isInteger(h.count) && h.count >= 0)) {
    throw new ConfigError(`adamwStateFromHost: count must be an integer ≥ 0 (count=${h.count})`);
  }
  return {
    count: h.count,
    mu: treeFromHost(h.mu) as P,
    nu: treeFromHost(h.nu) as P,
  };
}
