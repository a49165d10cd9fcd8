/**
 * Safetensors float dtypes and their byte encodings (little-endian, as the format requires).
 *
 * Pure: no Node APIs, no engine. Narrow dtypes (F16, BF16) decode to Float32Array, which holds
 * every one of their values exactly; F64 decodes to Float64Array.
 */

/** The safetensors dtypes boft reads and writes. The format has others (I8, U8, …); we reject them. */
export type StDType = "F64" | "F32" | "F16" | "BF16";

export const ST_DTYPES: readonly StDType[] = ["F64", "F32", "F16", "BF16"];

const SIZES: Record<StDType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2 };

export function isStDType(s: unknown): s is StDType {
  return typeof s === "string" && Object.prototype.hasOwnProperty.call(SIZES, s);
}

/** Bytes per element. */
export function dtypeSize(dtype: StDType): number {
  return SIZES[dtype];
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Bytes → values. F64 gives a Float64Array, the others a Float32Array.
 * F32/F64 results share memory with `bytes` when its byteOffset is aligned (so a multi-GB read is
 * not doubled); otherwise, and for F16/BF16, the result is a fresh array.
 */
export function decode(dtype: StDType, bytes: Uint8Array): Float32Array | Float64Array {
  const size = SIZES[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new RangeError(`decode ${dtype}: ${bytes.byteLength} bytes is not a multiple of ${size}`);
  }
  const n = bytes.byteLength / size;
  switch (dtype) {
    case "F64":
    case "F32": {
      const Ctor = dtype === "F64" ? Float64Array : Float32Array;
      if (!LITTLE_ENDIAN) return decodeWideBigEndianHost(dtype, bytes);
      // Typed arrays cannot view unaligned memory: copy into a fresh (aligned) buffer.
      const src = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
      return new Ctor(src.buffer as ArrayBuffer, src.byteOffset, n);
    }
    case "F16": {
      const table = f16Table();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[bytes[2 * i] | (bytes[2 * i + 1] << 8)];
      return out;
    }
    case "BF16": {
      const out = new Float32Array(n);
      // A bf16 is the top half of an f32, so widening is a shift; NaN payloads survive as NaN.
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = ((bytes[2 * i] | (bytes[2 * i + 1] << 8)) << 16) >>> 0;
      return out;
    }
  }
}

/**
 * Values → little-endian bytes, rounding each value once, to nearest, ties to even (IEEE default).
 * Float64 input is rounded straight to the target format, never through f32, because two
 * roundings can differ from one (e.g. a value just above a bf16 tie that f32 rounds onto the tie).
 * Overflow gives ±Inf, underflow gives subnormals then ±0, NaN stays NaN.
 */
export function encode(dtype: StDType, values: Float32Array | Float64Array): Uint8Array {
  const n = values.length;
  switch (dtype) {
    case "F64":
    case "F32": {
      // Typed-array conversion from double to f32 is round-to-nearest-even (same as Math.fround).
      const wide = dtype === "F64" ? new Float64Array(values) : new Float32Array(values);
      const bytes = new Uint8Array(wide.buffer);
      if (!LITTLE_ENDIAN) swapBytes(bytes, SIZES[dtype]);
      return bytes;
    }
    case "F16":
    case "BF16": {
      const out = new Uint8Array(2 * n);
      const fmt = dtype === "F16" ? F16 : BF16;
      for (let i = 0; i < n; i++) {
        const b = narrowBits(values[i], fmt);
        out[2 * i] = b & 0xff;
        out[2 * i + 1] = b >>> 8;
      }
      return out;
    }
  }
}

/** `decode(dtype, encode(dtype, values))`: the values a file of this dtype would hold. */
export function roundTo(dtype: StDType, values: Float32Array | Float64Array): Float32Array | Float64Array {
  return decode(dtype, encode(dtype, values));
}

// ---- narrow formats ------------------------------------------------------------------------

// A narrow float: `mant` fraction bits, smallest normal exponent `emin`, `inf` = +Inf bit pattern.
interface Narrow {
  mant: number;
  emin: number;
  inf: number;
}
const F16: Narrow = { mant: 10, emin: -14, inf: 0x7c00 };
const BF16: Narrow = { mant: 7, emin: -126, inf: 0x7f80 };

const scratch64 = new Float64Array(1);
const scratchWords = new Uint32Array(scratch64.buffer);
const HI = LITTLE_ENDIAN ? 1 : 0;

// 2^k for k in [-POW2_BIAS, POW2_BIAS): `2 ** k` with a variable k costs a Math.pow call per element.
const POW2_BIAS = 1100;
const POW2 = Float64Array.from({ length: 2 * POW2_BIAS }, (_, i) => 2 ** (i - POW2_BIAS));

/** Round non-negative q to an integer, ties to even. q - floor(q) is exact for q < 2^52. */
function roundHalfEven(q: number): number {
  const f = Math.floor(q);
  const d = q - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Bits of x in a narrow format, with one rounding of the exact double value: scale |x| by a power
 * of two (exact) so the format's quantum becomes 1, then round to an integer.
 */
function narrowBits(x: number, fmt: Narrow): number {
  const { mant, emin, inf } = fmt;
  // Sign and exponent straight from the double's bits: exact, and -0 keeps its sign.
  scratch64[0] = x;
  const hi = scratchWords[HI];
  const sign = (hi >>> 31) << 15;
  const biased = (hi >>> 20) & 0x7ff;
  if (biased === 0x7ff) return sign | (x !== x ? inf | (1 << (mant - 1)) : inf); // NaN: the quiet NaN torch writes
  if (x === 0) return sign;
  // Below emin the quantum stays the subnormal quantum, so subnormals need no special case.
  const e = Math.max(biased - 1023, emin);
  const r = roundHalfEven(Math.abs(x) * POW2[POW2_BIAS + mant - e]);
  // r is in [0, 2^(mant+1)]; below 2^mant the value is subnormal (biased exponent 0). Otherwise
  // adding (e - emin) << mant gives exponent field and fraction, and r == 2^(mant+1) carries.
  const bits = r < 1 << mant ? r : ((e - emin) << mant) + r;
  return sign | (bits >= inf ? inf : bits); // overflow → Inf
}

let f16TableCache: Float32Array | undefined;

/** All 65536 f16 values, built once: decoding is then one lookup per element. */
function f16Table(): Float32Array {
  if (f16TableCache) return f16TableCache;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) t[h] = sign * frac * 2 ** -24;
    else if (exp === 31) t[h] = frac ? NaN : sign * Infinity;
    else t[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  f16TableCache = t;
  return t;
}

// ---- big-endian hosts (untested in CI: every Node platform we run on is little-endian) ------

function decodeWideBigEndianHost(dtype: "F64" | "F32", bytes: Uint8Array): Float32Array | Float64Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === "F64") {
    const out = new Float64Array(bytes.byteLength / 8);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(8 * i, true);
    return out;
  }
  const out = new Float32Array(bytes.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}

function swapBytes(bytes: Uint8Array, size: number): void {
  for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
}
