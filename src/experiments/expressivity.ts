/**
 * The BOFT paper's expressivity experiment (Liu et al., ICLR 2024, Fig. 5), on the CPU.
 *
 * How close can BOFT(m, b) get to a random dense rotation Q ∈ SO(n)? Starting from the identity (boft_R = 0), Adam
 * minimises ‖R(θ) − Q‖²_F over θ = boft_R [m, D, b, b] (D = n/b), where R(θ) is the BOFT rotation with exact Cayley
 * blocks, built structured as rotateRows of identity rows. The result is the final ‖R − Q‖_F per seed, set against
 * the trainable parameter count ½(b−1)·n·m (the skew part of each block; the scale s plays no role here).
 *
 * Every seed of one configuration trains at once: S rotations of size n side by side are one butterfly rotation of
 * size S·n with S·D blocks, because a butterfly chunk (b·2^(m−1) ≤ n, dividing n) never straddles two seeds. The
 * loss is the sum over seeds and parameters of different seeds never meet, so each seed's gradient, and its Adam
 * update (elementwise), is the one it would get alone. Loss and gradient run in one jit per configuration.
 *
 * Two exact shortcuts keep the full run within minutes on two cores:
 * - A rotation with span s = b·2^(m−1) < n is block-diagonal with n/s blocks of size s (no butterfly factor mixes
 *   across an aligned chunk of s), so ‖R − Q‖² = Σ_c ‖R_c − Q_cc‖² + ‖Q outside the diagonal chunks‖². Rows
 *   [I_s | … | I_s] through the rotation give every R_c: the dense build costs m·s·n·b instead of m·n²·b.
 * - For m = 1 the blocks are the chunks, so the loss needs no rotation at all, and its gradient is written out:
 *   with X = (I + S)⁻¹ and C = 2X − I, ∂‖C − Q_d‖²/∂S = −4·Xᵀ(C − Q_d)Xᵀ, and S = ½(R − Rᵀ) passes on the
 *   antisymmetric part. One inverse and two matmuls instead of differentiating through the elimination (the
 *   512-block Cayley of BOFT(1, 512) dominates the run). Tests check it against autodiff.
 */
import { np, jit, valueAndGrad, tree, type Arr } from "../engine/index.js";
import { ConfigError } from "../errors.js";
import { checkButterflyShape, cayleySolve, cayleyJit, inverseNoPivot, orthogonalityError, skewFromFull, rotateRows } from "../math/index.js";
import { boftCount } from "../methods/param-count.js";
import { adamw, type AdamWState } from "../train/optim.js";
import { lrAt } from "../train/schedule.js";
import { median } from "../train/metrics.js";
import { randomRotation } from "./random-rotation.js";

/** One BOFT(m, b) configuration, in the paper's notation. */
export type BoftSpec = { nFactors: number; blockSize: number };

/**
 * The BOFT paper's expressivity experiment (Fig. 5): fit BOFT(m, b) rotations to random n×n rotations by Adam, for
 * each config and seed. expressivityPreset gives the paper's and a quick setting.
 */
export type ExpressivityOptions = {
  /** Size of the target rotation. The paper uses 512. */
  n: number;
  /** One target per seed (randomRotation(n, seed)). */
  seeds: number[];
  configs: BoftSpec[];
  /** Adam steps per configuration. */
  steps: number;
  /** Peak learning rate; cosine decay to `minLr` over the steps. */
  lr: number;
  /** Default lr/10. */
  minLr?: number;
  /** Record the mean error every this many steps (and after the last). Default max(1, steps/50). */
  curveEvery?: number;
  /** Gauss–Jordan leaf size of the Cayley inverse (larger blocks recurse on 2×2 blocks). Default 16. */
  leaf?: number;
};

/**
 * One BOFT(m, b) configuration's outcome over all seeds: parameter counts, errors ‖R − Q‖_F, the curve and timings.
 */
export type ConfigResult = {
  nFactors: number;
  blockSize: number;
  blockNum: number;
  /** Trainable degrees of freedom ½(b−1)·n·m. */
  params: number;
  /** What PEFT stores for boft_R, m·n·b (no scale s in this experiment). */
  stored: number;
  /** Inputs one output mixes, b·2^(m−1) (capped at n). */
  span: number;
  /** ‖I − Q‖_F per seed (θ = 0). */
  initialError: number[];
  /** ‖R(θ) − Q‖_F per seed after the last step. */
  finalError: number[];
  mean: number;
  /** Sample standard deviation over seeds. */
  std: number;
  /** [step, mean error over seeds] every `curveEvery` steps, and after the last. */
  curve: Array<[number, number]>;
  /** max |C·Cᵀ − I| over all final Cayley blocks: the rotation stayed orthogonal. */
  orthogonalityError: number;
  /** Wall time of the first step (tracing and compiling included). */
  compileMs: number;
  /** Median wall time of one later step (all seeds together). */
  msPerStep: number;
  seconds: number;
};

/** Progress of an expressivity run, in order: targets drawn, then per config a start, steps and its result. */
export type ExpressivityEvent =
  | { kind: "targets"; seeds: number; ms: number; flipped: number }
  | { kind: "start"; config: BoftSpec; params: number }
  | { kind: "step"; config: BoftSpec; step: number; meanError: number }
  | { kind: "result"; result: ConfigResult };

/** A finished expressivity run: its options, one result per configuration, and its wall time in seconds. */
export type ExpressivityResult = { options: ExpressivityOptions; results: ConfigResult[]; seconds: number };

/** The paper's grid plus a few cheap extra points, keeping only shapes BOFT accepts for this n. */
export function defaultExpressivityConfigs(n: number): BoftSpec[] {
  const grid: BoftSpec[] = [
    { nFactors: 9, blockSize: 2 },
    { nFactors: 3, blockSize: 4 },
    { nFactors: 6, blockSize: 4 },
    { nFactors: 2, blockSize: 8 },
    { nFactors: 4, blockSize: 8 },
    { nFactors: 1, blockSize: 16 },
    { nFactors: 2, blockSize: 16 },
    { nFactors: 1, blockSize: 64 },
    { nFactors: 1, blockSize: n },
  ];
  return grid.filter((c) => boftSpecError(n, c) === null);
}

/**
 * The two runs `npm run paper` knows: "full" is the paper's setting (n = 512, 10 seeds) sized to finish in minutes
 * on two cores; "quick" (n = 64, 2 seeds) takes seconds and is what the tests run.
 */
export function expressivityPreset(kind: "full" | "quick"): ExpressivityOptions {
  if (kind === "full") return { n: 512, seeds: range(10), configs: defaultExpressivityConfigs(512), steps: 200, lr: 0.1 };
  const configs: BoftSpec[] = [
    { nFactors: 6, blockSize: 2 },
    { nFactors: 3, blockSize: 4 },
    { nFactors: 2, blockSize: 8 },
    { nFactors: 1, blockSize: 4 },
    { nFactors: 1, blockSize: 8 },
    { nFactors: 1, blockSize: 16 },
    { nFactors: 1, blockSize: 64 },
  ];
  return { n: 64, seeds: range(2), configs, steps: 60, lr: 0.1 };
}

/** A comparison between two configurations' mean final errors. */
export type Comparison = { a: ConfigResult; b: ConfigResult; difference: number; standardErrors: number };

/** The paper's Fig. 5 statements checked on a run (paperFindings), each with the numbers behind it. */
export type PaperFindings = {
  /** Paper: BOFT(9,2) (2,304 params at n = 512) reaches a lower error than BOFT(1,16) (3,840). */
  butterflyBeatsBlocks: (Comparison & { holds: boolean }) | null;
  /** Paper: BOFT(6,4) ≈ BOFT(2,16); "holds" when the means differ by less than 1%. */
  sixFourMatchesTwoSixteen: (Comparison & { holds: boolean; relative: number }) | null;
  /** The (1, b) family (block-diagonal OFT) sorted by parameters, and whether error falls at every step up. */
  blockFamily: { results: ConfigResult[]; monotone: boolean };
};

/** The paper's statements about Fig. 5, checked on a run's results (a statement is null if its configs were not run). */
export function paperFindings(results: readonly ConfigResult[]): PaperFindings {
  const find = (m: number, b: number) => results.find((r) => r.nFactors === m && r.blockSize === b);
  const compare = (a: ConfigResult | undefined, b: ConfigResult | undefined): Comparison | null => {
    if (!a || !b) return null;
    const difference = a.mean - b.mean;
    const se = Math.sqrt((a.std ** 2 + b.std ** 2) / a.finalError.length);
    return { a, b, difference, standardErrors: se > 0 ? Math.abs(difference) / se : Number.POSITIVE_INFINITY };
  };
  const c92 = compare(find(9, 2), find(1, 16));
  const c64 = compare(find(6, 4), find(2, 16));
  const ones = results.filter((r) => r.nFactors === 1).sort((a, b) => a.params - b.params);
  return {
    butterflyBeatsBlocks: c92 && { ...c92, holds: c92.difference < 0 },
    sixFourMatchesTwoSixteen: c64 && { ...c64, relative: Math.abs(c64.difference) / c64.b.mean, holds: Math.abs(c64.difference) / c64.b.mean < 0.01 },
    blockFamily: { results: ones, monotone: ones.every((r, i) => i === 0 || r.mean < ones[i - 1].mean) },
  };
}

/**
 * Full OFT, BOFT(1, n), can represent any rotation without eigenvalue −1 exactly: S* = (I + Q)⁻¹(I − Q) is skew and
 * Cayley(S*) = Q. Returns how large S* is (what Adam would have to reach from 0) and how well the float64 Cayley of
 * it reproduces Q. Eager (uses the pivoted solve), float64, one target.
 */
export async function fullOftPreimage(q: Float64Array, n: number): Promise<{ maxAbs: number; frobenius: number; skewness: number; error: number }> {
  const eye = np.eye(n, undefined, { dtype: np.float64 });
  const qa = np.array(q, { dtype: np.float64 }).reshape([n, n]);
  const s = np.linalg.solve(eye.ref.add(qa.ref), eye.sub(qa.ref)); // (I + Q)⁻¹(I − Q)
  const skewness = await np.abs(s.ref.add(np.matrixTranspose(s.ref))).max().data();
  const maxAbs = await np.abs(s.ref).max().data();
  const frobenius = await np.sqrt(s.ref.mul(s.ref).sum()).data();
  const d = cayleySolve(s).sub(qa);
  const error = await np.sqrt(d.ref.mul(d).sum()).data();
  return { maxAbs: maxAbs[0], frobenius: frobenius[0], skewness: skewness[0], error: error[0] };
}

/** Why BOFT(m, b) does not fit size n, or null if it does. */
export function boftSpecError(n: number, c: BoftSpec): string | null {
  if (!(Number.isInteger(c.blockSize) && c.blockSize >= 1 && n % c.blockSize === 0)) {
    return `blockSize ${c.blockSize} does not divide n=${n}`;
  }
  try {
    checkButterflyShape({ n, blockNum: n / c.blockSize, blockSize: c.blockSize, nFactors: c.nFactors });
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Runs the configurations one after another, yielding progress; returns every result. */
export async function* expressivityIter(o: ExpressivityOptions): AsyncGenerator<ExpressivityEvent, ExpressivityResult> {
  const { n, seeds, configs, steps, lr, minLr = lr / 10, curveEvery = Math.max(1, Math.floor(steps / 50)), leaf = 16 } = o;
  if (seeds.length === 0) throw new ConfigError("expressivity: seeds must not be empty");
  if (!(Number.isInteger(steps) && steps >= 1)) throw new ConfigError(`expressivity: steps must be an integer ≥ 1 (steps=${steps})`);
  for (const c of configs) {
    const err = boftSpecError(n, c);
    if (err !== null) throw new ConfigError(`expressivity: BOFT(${c.nFactors}, ${c.blockSize}) does not fit n=${n}: ${err}`);
  }
  const started = performance.now();
  const targets = seeds.map((s) => randomRotation(n, s));
  yield { kind: "targets", seeds: seeds.length, ms: performance.now() - started, flipped: targets.filter((t) => t.flipped).length };
  const qs = targets.map((t) => t.q);

  const results: ConfigResult[] = [];
  for (const config of configs) {
    const count = boftCount({ n, out: 0, blockSize: config.blockSize, nFactors: config.nFactors });
    yield { kind: "start", config, params: count.effective };
    const t0 = performance.now();
    const problem = buildProblem(n, qs, config, leaf);
    const opt = adamw({ lr, weightDecay: 0 });
    let r = np.zeros([config.nFactors, qs.length * (n / config.blockSize), config.blockSize, config.blockSize]);
    let state = opt.init(r.ref) as AdamWState<Arr>;
    // Loss and gradient in one jit; Adam runs eagerly (its bias corrections come from a host step count).
    const lossAndGrad = jit((p: Arr, data: Arr[]) => problem.lossAndGrad(p, data));
    // Final errors and the orthogonality check (a Cayley of every block) in one more jit.
    const evaluate = jit((p: Arr, data: Arr[]) => [problem.perSeed(p.ref, data), blockOrthogonality(p, leaf)]);

    let initialError: number[] = [];
    const curve: Array<[number, number]> = [];
    const stepMs: number[] = [];
    let compileMs = 0;
    try {
      for (let k = 0; k < steps; k++) {
        const ts = performance.now();
        const [perSeed, g] = lossAndGrad(r.ref, tree.ref(problem.data)) as [Arr, Arr];
        [r, state] = opt.update(g, state, r, lrAt(k, { lr, totalSteps: steps, minLr }));
        const errors = rootsOf(await perSeed.data());
        const ms = performance.now() - ts;
        if (k === 0) {
          compileMs = ms;
          initialError = errors;
        } else stepMs.push(ms);
        if (k % curveEvery === 0) {
          const meanError = mean(errors);
          curve.push([k, meanError]);
          yield { kind: "step", config, step: k, meanError };
        }
      }
      const [finalSq, orth] = evaluate(r.ref, tree.ref(problem.data)) as Arr[];
      const finalError = rootsOf(await finalSq.data());
      const orthogonalityError = (await orth.data())[0];
      curve.push([steps, mean(finalError)]);
      const result: ConfigResult = {
        nFactors: config.nFactors,
        blockSize: config.blockSize,
        blockNum: n / config.blockSize,
        params: count.effective,
        stored: count.stored,
        span: count.span,
        initialError,
        finalError,
        mean: mean(finalError),
        std: std(finalError),
        curve,
        orthogonalityError,
        compileMs,
        msPerStep: median(stepMs),
        seconds: (performance.now() - t0) / 1000,
      };
      results.push(result);
      yield { kind: "result", result };
    } finally {
      tree.dispose([r, state.mu, state.nu, problem.data]);
      lossAndGrad.dispose();
      evaluate.dispose();
    }
  }
  return { options: o, results, seconds: (performance.now() - started) / 1000 };
}

/** Drains expressivityIter, passing each event to `onEvent`. */
export async function runExpressivity(o: ExpressivityOptions, onEvent?: (e: ExpressivityEvent) => void): Promise<ExpressivityResult> {
  const it = expressivityIter(o);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
    onEvent?.(r.value);
  }
}

/** One configuration's loss over all seeds, as functions of the parameters p [m, S·D, b, b]. */
export type ExpressivityProblem = {
  /** Engine arrays the loss reads (passed to the jitted functions each call, so they are not baked in). */
  data: Arr[];
  /** ‖R_s − Q_s‖²_F per seed, [S]. Consumes p and data. */
  perSeed(p: Arr, data: Arr[]): Arr;
  /** [per-seed squared errors [S], gradient of their sum w.r.t. p]. Consumes p and data. */
  lossAndGrad(p: Arr, data: Arr[]): [Arr, Arr];
};

/**
 * The loss of BOFT(m, b) against the targets `qs` (row-major n×n each). Exported for tests, which compare the
 * chunked and m = 1 shortcuts with the plain dense rotation and autodiff.
 */
export function buildProblem(n: number, qs: Float64Array[], c: BoftSpec, leaf = 16): ExpressivityProblem {
  const S = qs.length;
  const { nFactors: m, blockSize: b } = c;
  const span = Math.min(n, b * 2 ** (m - 1));
  const G = (S * n) / span; // chunks over all seeds
  const { diag, offSq } = chunkTargets(n, qs, span);
  if (m === 1) return blockProblem(S, G, b, diag, offSq, leaf);

  // [I_s | … | I_s] and the matching diagonal chunks of [Q_1 | … | Q_S], both [s, S·n].
  const rows = new Float32Array(span * S * n);
  const target = new Float32Array(span * S * n);
  for (let g = 0; g < G; g++) {
    for (let i = 0; i < span; i++) {
      rows[i * S * n + g * span + i] = 1;
      for (let j = 0; j < span; j++) target[i * S * n + g * span + j] = diag[(g * span + i) * span + j];
    }
  }
  const perSeed = (p: Arr, [z, q, off]: Arr[]): Arr => {
    const d = rotateRows(z, cayleyJit(skewFromFull(p), { leaf })).sub(q); // [s, S·n]: every R_c − Q_cc side by side
    return d.ref.mul(d).reshape([span, S, n]).sum([0, 2]).add(off); // [S]
  };
  const total = (p: Arr, data: Arr[]): [Arr, Arr] => {
    const e = perSeed(p, data);
    return [e.ref.sum(), e];
  };
  const vg = valueAndGrad(total, { hasAux: true }) as unknown as (p: Arr, data: Arr[]) => [[Arr, Arr], Arr];
  return {
    data: [np.array(rows).reshape([span, S * n]), np.array(target).reshape([span, S * n]), np.array(offSq)],
    perSeed,
    lossAndGrad(p, data) {
      const [[loss, errors], g] = vg(p, data);
      loss.dispose();
      return [errors, g];
    },
  };
}

/** m = 1: the Cayley blocks C [G, b, b] against Q's diagonal blocks, with the gradient written out. */
function blockProblem(S: number, G: number, b: number, diag: Float32Array, offSq: Float32Array, leaf: number): ExpressivityProblem {
  const inverse = (p: Arr): Arr => {
    const eye = np.eye(b, undefined, { dtype: p.dtype });
    return inverseNoPivot(eye.add(skewFromFull(p.reshape([G, b, b]))), { leaf }); // X = (I + S)⁻¹ [G, b, b]
  };
  const residual = (x: Arr, qDiag: Arr): Arr => x.mul(2).sub(np.eye(b, undefined, { dtype: x.dtype })).sub(qDiag); // C − Q_d
  const perSeedOf = (d: Arr, off: Arr): Arr => d.ref.mul(d).reshape([S, (G / S) * b * b]).sum(1).add(off); // [S]
  return {
    data: [np.array(diag).reshape([G, b, b]), np.array(offSq)],
    perSeed(p, [qDiag, off]) {
      return perSeedOf(residual(inverse(p), qDiag), off);
    },
    lossAndGrad(p, [qDiag, off]) {
      const x = inverse(p);
      const d = residual(x.ref, qDiag);
      const xt = np.matrixTranspose(x);
      const gS = np.matmul(np.matmul(xt.ref, d.ref), xt).mul(-4); // ∂/∂S, [G, b, b]
      const gR = gS.ref.sub(np.matrixTranspose(gS)).mul(0.5).reshape([1, G, b, b]); // through S = ½(R − Rᵀ)
      return [perSeedOf(d, off), gR];
    },
  };
}

/**
 * The targets cut into the rotation's independent chunks of size s: diag[g] is Q_seed's diagonal chunk c for global
 * chunk g = seed·(n/s) + c, and offSq[seed] the squared norm of everything outside the chunks (float64 sums).
 */
function chunkTargets(n: number, qs: Float64Array[], s: number): { diag: Float32Array; offSq: Float32Array } {
  const perSeed = n / s;
  const diag = new Float32Array(qs.length * perSeed * s * s);
  const offSq = new Float32Array(qs.length);
  qs.forEach((q, seed) => {
    let total = 0;
    let inside = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const v = q[i * n + j];
        total += v * v;
        const c = Math.floor(i / s);
        if (c !== Math.floor(j / s)) continue;
        diag[((seed * perSeed + c) * s + (i % s)) * s + (j % s)] = v;
        inside += v * v;
      }
    }
    offSq[seed] = total - inside;
  });
  return { diag, offSq };
}

/** max |C·Cᵀ − I| over the Cayley blocks of p, as a [1] array. Consumes p. */
function blockOrthogonality(p: Arr, leaf: number): Arr {
  return orthogonalityError(cayleyJit(skewFromFull(p), { leaf })).reshape([1]);
}

/** √ of each squared error (clamped at 0 against rounding). */
function rootsOf(sq: ArrayLike<number>): number[] {
  return Array.from(sq, (v) => Math.sqrt(Math.max(0, v)));
}

function range(k: number): number[] {
  return Array.from({ length: k }, (_, i) => i);
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Sample standard deviation (n − 1); 0 for one value. */
function std(xs: number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}
