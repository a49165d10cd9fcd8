/** Host tensors at the public API's edge: checks and conversions to and from engine arrays. */
import { fromHost, toHostAsync, sizeOf, type Arr, type HostData, type HostDType, type HostTensor } from "../engine/index.js";
import { ShapeError } from "../errors.js";

const CTORS = { float32: Float32Array, float64: Float64Array, int32: Int32Array } as const;

/** A tensor from any numbers (copies into the dtype's TypedArray). */
export function tensor<D extends HostDType = "float32">(data: ArrayLike<number>, shape: readonly number[], dtype: D = "float32" as D): HostTensor<D> {
  const t: HostTensor<D> = { dtype, shape: shape.slice(), data: CTORS[dtype].from(data) as HostData<D> };
  check(t, "tensor");
  return t;
}

function check(t: HostTensor<HostDType>, what: string): void {
  if (!t || typeof t !== "object" || !Array.isArray(t.shape) || !ArrayBuffer.isView(t.data)) {
    throw new ShapeError(`${what}: expected a tensor { dtype, shape, data }`);
  }
  if (!(t.dtype in CTORS)) throw new ShapeError(`${what}: dtype must be float32, float64 or int32 (dtype=${JSON.stringify(t.dtype)})`);
  if (t.data.length !== sizeOf(t.shape)) throw new ShapeError(`${what}: data has ${t.data.length} values, shape [${t.shape}] needs ${sizeOf(t.shape)}`);
}

/**
 * Host → engine array (copies). `want` converts floats to the compute dtype ("float32"/"float64"), insists on ids
 * ("int32"), or (null) keeps a float tensor's own dtype.
 */
export function toArr(t: HostTensor<HostDType>, want: HostDType | null, what: string): Arr {
  check(t, what);
  if (want === "int32" && t.dtype !== "int32") throw new ShapeError(`${what}: expected int32 token ids (dtype=${t.dtype})`);
  if (want === null && t.dtype === "int32") return fromHost({ dtype: "float32", shape: t.shape, data: Float32Array.from(t.data) });
  const dtype = want ?? t.dtype;
  if (dtype === t.dtype) return fromHost(t);
  return fromHost({ dtype, shape: t.shape, data: CTORS[dtype].from(t.data) } as HostTensor<HostDType>);
}

/** Engine array → host tensor, by an asynchronous read (works on every device). Consumes `a`. */
export async function toTensor(a: Arr): Promise<HostTensor> {
  return toHostAsync(a);
}
