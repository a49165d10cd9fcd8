/**
 * A seeded, deterministic host-side RNG for data pipelines (shuffles, batch offsets, augmentations).
 *
 * xoshiro128** (Blackman & Vigna, https://prng.di.unimi.it/xoshiro128starstar.c): 128-bit state,
 * period 2^128 − 1, 32-bit outputs. The state is four uint32 numbers, so a run can write it into a
 * checkpoint as JSON and resume the exact same data stream. Engine-side randomness (dropout, init)
 * uses jax-js keys instead; this one never touches the engine.
 */
import { ConfigError } from "../errors.js";

/** The whole generator state: four uint32 words, not all zero. Plain numbers so it survives JSON. */
export type RngState = [number, number, number, number];

/** A generator over a mutable RngState. Methods advance the state; `state()` returns a copy. */
export type Rng = {
  /** Next uniform uint32 in [0, 2^32). */
  nextUint32(): number;
  /** Next uniform float in [0, 1), 53 random bits. */
  nextFloat(): number;
  /** Uniform integer in [0, n), unbiased (Lemire's rejection). */
  nextInt(n: number): number;
  /** A copy of the current state. */
  state(): RngState;
};

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

// splitmix32 step: the seeding recipe the xoshiro authors recommend (a different generator fills the state).
function splitmix32(s: { x: number }): number {
  s.x = (s.x + 0x9e3779b9) >>> 0;
  let z = s.x;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/** State for an integer seed in [0, 2^53). Equal seeds give equal streams on every platform. */
export function seedState(seed: number): RngState {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new ConfigError(`seedState: seed must be an integer in [0, 2^53) (seed=${seed}). Pass e.g. 0 or 1234.`);
  }
  // Both halves of a 53-bit seed enter the mixer, so seeds 1 and 2^32+1 differ.
  const s = { x: (seed >>> 0) ^ Math.imul(Math.floor(seed / 2 ** 32), 0x85ebca6b) };
  const st: RngState = [splitmix32(s), splitmix32(s), splitmix32(s), splitmix32(s)];
  if ((st[0] | st[1] | st[2] | st[3]) === 0) st[0] = 1; // the all-zero state is a fixed point
  return st;
}

function checkState(st: readonly number[]): void {
  const ok = st.length === 4 && st.every((w) => Number.isInteger(w) && w >= 0 && w < 2 ** 32);
  if (!ok || st.every((w) => w === 0)) {
    throw new ConfigError(
      `rngFromState: state must be 4 uint32 words, not all zero (state=${JSON.stringify(st)}). Use a value from rng.state().`,
    );
  }
}

/** A generator continuing from `st` (copied; the argument is not mutated). */
export function rngFromState(st: readonly number[]): Rng {
  checkState(st);
  const s = Uint32Array.from(st);
  const nextUint32 = (): number => {
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  };
  return {
    nextUint32,
    nextFloat() {
      const hi = nextUint32() >>> 5; // 27 bits
      const lo = nextUint32() >>> 6; // 26 bits
      return (hi * 2 ** 26 + lo) / 2 ** 53;
    },
    nextInt(n: number) {
      if (!Number.isInteger(n) || n <= 0 || n > 2 ** 32) {
        throw new RangeError(`rng.nextInt: n must be an integer in [1, 2^32] (n=${n})`);
      }
      // Lemire: the high word of the 64-bit product x·n is uniform once the few x whose low word falls
      // below (2^32 − n) mod n are rejected.
      const threshold = (2 ** 32 - n) % n;
      for (;;) {
        const [hi, lo] = mul32x32(nextUint32(), n);
        if (lo >= threshold) return hi;
      }
    },
    state: () => [s[0], s[1], s[2], s[3]],
  };
}

// Exact [high, low] 32-bit words of x·n (x < 2^32, n ≤ 2^32); a float64 product would round above 2^53.
function mul32x32(x: number, n: number): [number, number] {
  const a = (x >>> 16) * n; // < 2^48, exact
  const b = (x & 0xffff) * n; // < 2^48, exact
  const aLo = a % 2 ** 16;
  const hi = Math.floor(a / 2 ** 16) + Math.floor((aLo * 2 ** 16 + b) / 2 ** 32);
  const lo = (aLo * 2 ** 16 + b) % 2 ** 32;
  return [hi, lo];
}

/** A generator seeded from an integer; see seedState. */
export function rng(seed: number): Rng {
  return rngFromState(seedState(seed));
}

/** Shuffles `xs` in place (Fisher–Yates) and returns it. */
export function shuffleInPlace<T extends { length: number; [i: number]: unknown }>(r: Rng, xs: T): T {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = r.nextInt(i + 1);
    const tmp = xs[i];
    xs[i] = xs[j];
    xs[j] = tmp;
  }
  return xs;
}

/** A uniformly random permutation of 0..n−1. */
export function permutation(r: Rng, n: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return shuffleInPlace(r, p);
}
