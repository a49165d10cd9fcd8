/**
 * The engine: the only module that imports @jax-js/jax.
 *
 * It computes on jax-js's wasm backend until `initDevice` picks another (importing it fixes nothing, so a page can
 * decide after load whether it has a GPU; plain `init()` of every backend crashes on Node 20), installs the two
 * polyfills jax-js needs on Node 20 (ES2025 iterator helpers; a Float16Array name for its
 * `instanceof` checks), and converts between host data (TypedArrays) and engine arrays.
 *
 * Ownership (jax-js rule, kept inside src/): every op consumes its Array arguments; `.ref` keeps one;
 * reading data consumes. Functions in src/math and src/methods follow the rule and say
 * "Consumes …" in their docs. The public API (src/index.ts) takes and returns HostTensors, so
 * library users never meet it.
 */
import "core-js/actual/iterator/index.js";

// jax-js tests `instanceof Float16Array` before it reads a Float64Array; Node 20 has no such global.
(globalThis as { Float16Array?: unknown }).Float16Array ??= class Float16ArrayUnavailable {};

import * as jax from "@jax-js/jax";
import { ConfigError } from "../errors.js";
import {
  init,
  defaultDevice,
  numpy as np,
  lax,
  nn,
  random,
  tree,
  grad,
  valueAndGrad,
  vjp,
  jit,
  makeJaxpr,
  blockUntilReady,
  Array as JArray,
  DType,
} from "@jax-js/jax";

// src/node/threads.ts refuses to install its worker shim after this point (a late install breaks every kernel).
(globalThis as Record<symbol, unknown>)[Symbol.for("boft.engine.loaded")] = true;

/** Where arrays live and kernels run: jax-js's wasm backend (every JS runtime) or WebGPU (a GPU, when there is one). */
export type Device = "wasm" | "webgpu";

/** Runtime without `navigator` (Node 20) or whose navigator lacks WebGPU. */
type MaybeNavigator = { gpu?: { requestAdapter(): Promise<unknown> }; userAgent?: string };

function nav(): MaybeNavigator | undefined {
  return (globalThis as { navigator?: MaybeNavigator }).navigator;
}

/**
 * Selects the device every later array is created on, and returns it. "wasm" is the default and always works;
 * "webgpu" needs `navigator.gpu` to give an adapter (a browser with WebGPU, or Node after `boft/node`'s
 * `provideNodeWebGpu`) and throws a ConfigError saying why when it does not; "auto" takes WebGPU when it is there and
 * wasm otherwise. Call it before creating arrays: arrays made earlier stay on their device.
 */
export async function initDevice(device: Device | "auto" = "wasm"): Promise<Device> {
  if (device === "wasm") {
    defaultDevice("wasm");
    return "wasm";
  }
  if (device !== "webgpu" && device !== "auto") throw new ConfigError(`unknown device "${String(device)}" (wasm, webgpu or auto)`);
  const n = nav();
  if (!n?.gpu) {
    if (device === "auto") return initDevice("wasm");
    throw new ConfigError(
      typeof window === "undefined"
        ? "webgpu: this runtime has no navigator.gpu. In Node, install the optional package `webgpu` and select the device through boft/node (the CLI's --device webgpu or BOFT_DEVICE=webgpu do that)."
        : "webgpu: this browser has no WebGPU (navigator.gpu is missing); use the wasm device.",
    );
  }
  // jax-js's WebGPU module reads navigator.userAgent when it loads; Node's navigator may lack it.
  if (typeof n.userAgent !== "string") Object.defineProperty(n, "userAgent", { value: "boft", configurable: true });
  const available = await init("webgpu");
  if (!available.includes("webgpu")) {
    if (device === "auto") return initDevice("wasm");
    throw new ConfigError("webgpu: navigator.gpu gave no adapter (no usable GPU or driver); use the wasm device.");
  }
  defaultDevice("webgpu");
  return "webgpu";
}

/** The device new arrays are created on. */
export function currentDevice(): Device {
  return defaultDevice() === "webgpu" ? "webgpu" : "wasm";
}

/** jax-js itself, the one copy boft runs on (for defining your own models and losses). */
export { jax };

export { np, lax, nn, random, tree, grad, valueAndGrad, vjp, jit, makeJaxpr, blockUntilReady, DType };
export type Arr = JArray;

/** The two float precisions the library computes in. */
export type FloatDType = "float32" | "float64";

/** Every dtype a host tensor can carry: the float precisions, and int32 for token ids and class labels. */
export type HostDType = FloatDType | "int32";

/** The TypedArray that holds a host tensor of dtype D. */
export type HostData<D extends HostDType = HostDType> = D extends "int32" ? Int32Array : D extends "float64" ? Float64Array : Float32Array;

/**
 * Plain data at the library's edge, the one host tensor type: what formats read and write, what the public API takes
 * and returns. `data` is row-major with `shape`'s product elements. `HostTensor` alone is a float tensor;
 * `HostTensor<"int32">` holds ids or labels; `HostTensor<HostDType>` is any of them.
 */
export interface HostTensor<D extends HostDType = FloatDType> {
  dtype: D;
  shape: number[];
  data: HostData<D>;
}

/** The engine dtype of `d`. WebGPU has no float64, so asking for it there is a ConfigError rather than a kernel failure later. */
export function jaxDType(d: FloatDType): DType {
  if (d !== "float64") return np.float32;
  if (currentDevice() === "webgpu") throw new ConfigError("float64 is not available on WebGPU; compute in float32 or use the wasm device");
  return np.float64;
}

/**
 * An array of `dtype` from values drawn in float64 on the host (random inits). Rounding to float32 happens on the
 * host, which gives the same bits as drawing float64 and casting on the engine (both round to nearest), and works on
 * devices without float64.
 */
export function fromDraws(values: Float64Array, shape: readonly number[], dtype: FloatDType): Arr {
  const data = dtype === "float64" ? values : Float32Array.from(values);
  return np.array(data, { dtype: jaxDType(dtype) }).reshape(shape.slice());
}

/** What one computation can hold: jax-js's wasm heap is 32-bit (4 GiB), minus a tenth for what estimates do not count. */
export const HEAP_BUDGET_BYTES = 0.9 * 4 * 2 ** 30;

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Host data → engine array (copies). */
export function fromHost(t: HostTensor<HostDType>): Arr {
  if (t.data.length !== sizeOf(t.shape)) {
    throw new RangeError(`fromHost: data has ${t.data.length} values, shape [${t.shape}] needs ${sizeOf(t.shape)}`);
  }
  const dtype = t.dtype === "int32" ? np.int32 : jaxDType(t.dtype);
  // jax-js cannot build an array from zero-length data; an empty tensor is all shape.
  if (t.data.length === 0) return np.zeros(t.shape, { dtype });
  return np.array(t.data, { dtype }).reshape(t.shape);
}

/** Engine array → host data. Consumes `a`. This is a sync point: pending work runs here. */
export function toHost(a: Arr): HostTensor {
  const shape = a.shape.slice();
  const dtype: FloatDType = a.dtype === np.float64 ? "float64" : "float32";
  if (a.dtype !== np.float64 && a.dtype !== np.float32) {
    const f = a.astype(np.float32);
    return { dtype: "float32", shape, data: f.dataSync() as Float32Array };
  }
  const data = a.dataSync() as Float32Array | Float64Array;
  return { dtype, shape, data };
}

/** Async form of toHost; uses worker threads when they are available. Consumes `a`. */
export async function toHostAsync(a: Arr): Promise<HostTensor> {
  const shape = a.shape.slice();
  const b = a.dtype === np.float64 || a.dtype === np.float32 ? a : a.astype(np.float32);
  const dtype: FloatDType = b.dtype === np.float64 ? "float64" : "float32";
  const data = (await b.data()) as Float32Array | Float64Array;
  return { dtype, shape, data };
}

export function isFloat64(a: Arr): boolean {
  return a.dtype === np.float64;
}

/**
 * Shapes of every intermediate value when `f` is traced (forward and, if `f` differentiates, backward).
 * Used to prove that a code path never allocates a given shape. Consumes the arguments.
 */
export function tracedShapes<A extends unknown[]>(f: (...args: A) => unknown, ...args: A): number[][] {
  const traced = makeJaxpr(f as (...a: unknown[]) => never) as (...a: unknown[]) => ReturnType<ReturnType<typeof makeJaxpr>>;
  const { jaxpr } = traced(...args);
  const shapes: number[][] = [];
  const walk = (j: { eqns: { outBinders: { aval: { shape: number[] } }[]; params: Record<string, unknown> }[] }) => {
    for (const e of j.eqns) {
      for (const o of e.outBinders) shapes.push(o.aval.shape.slice());
      for (const p of Object.values(e.params)) {
        const inner = (p as { jaxpr?: unknown })?.jaxpr;
        if (inner && typeof inner === "object" && "eqns" in (inner as object)) walk(inner as never);
      }
    }
  };
  walk(jaxpr.jaxpr as never);
  jaxpr.dispose();
  return shapes;
}

/**
 * Identity in value and gradient; the value reaching this point is written to memory in the forward pass, and so is
 * the cotangent in the backward pass. jax-js's jit fuses elementwise work into whatever consumes it, including the
 * operand of a matmul, whose wasm kernel then leaves its SIMD path (1.3× slower at 4096², 128 tokens, and up to
 * 13× when the fused operand is a strided view); a chain of steps that each read their input several times fuses
 * into an expression that grows exponentially. jax-js materialises the input of every `pad`, and a slice
 * transposes to a pad, so padding one row and slicing it off forces both writes. Consumes x.
 */
export function fusionBarrier(x: Arr): Arr {
  if (x.ndim === 0) return x;
  const shape = x.shape;
  const rows = asRows(x);
  const n = rows.shape[0];
  return np.pad(rows, [[0, 1], [0, 0]]).slice([0, n]).reshape(shape);
}

/**
 * x as [rows, last axis]: the one row that fusionBarrier and contiguous append then costs 1/rows of x, not
 * 1/x.shape[0] of it (a whole second copy when the leading axis is a batch of 1).
 */
function asRows(x: Arr): Arr {
  return x.ndim === 1 ? x.reshape([x.shape[0], 1]) : x.reshape([-1, x.shape[x.ndim - 1]]);
}

/**
 * The same values in a fresh row-major buffer, eagerly and under jit. jax-js otherwise reads a view (a transpose
 * plus reshape) through per-element index arithmetic inside the consuming kernel, and a matmul reading that way
 * leaves its SIMD path: o_proj at SmolLM2-135M's size took 230 ms instead of 8 eagerly, 350 ms under jit. An
 * elementwise identity (x·1) is folded away by jax-js's jit; a `concatenate` feeding a matmul is written to
 * memory, so x gets one row of zeros appended and sliced off again. Identity in value and gradient. Consumes x.
 */
export function contiguous(x: Arr): Arr {
  if (x.ndim === 0) return x;
  const shape = x.shape;
  const rows = asRows(x);
  const [n, width] = rows.shape;
  return np.concatenate([rows, np.zeros([1, width], { dtype: x.dtype })], 0).slice([0, n]).reshape(shape);
}
