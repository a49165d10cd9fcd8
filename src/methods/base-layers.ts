/**
 * The frozen layers adapters wrap: Linear (PyTorch layout, weight [out, in]) and Conv2d (weight
 * [out, in/groups, kh, kw], NCHW activations), as pure functions of their weights.
 */
import { np, lax, type Arr, fusionBarrier } from "../engine/index.js";
import { ShapeError } from "../errors.js";

/** A Linear's frozen weights in PyTorch's layout: weight [out, in], optional bias [out]. */
export interface LinearWeights {
  weight: Arr;
  bias?: Arr | null;
}

/** Everything about a Conv2d besides its weights. Pairs are (height, width). */
export interface Conv2dGeometry {
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  groups: number;
}

/** PyTorch's nn.Conv2d defaults: stride 1, no padding, dilation 1, one group. */
export const defaultConvGeometry: Conv2dGeometry = { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 };

/** y = x·Wᵀ + b for x [..., in]. Consumes x and the weights. */
export function linear(x: Arr, w: LinearWeights): Arr {
  const [out, n] = w.weight.shape;
  const lead = x.shape.slice(0, -1);
  if (x.shape[x.shape.length - 1] !== n) {
    const got = x.shape[x.shape.length - 1];
    x.dispose();
    w.weight.dispose();
    w.bias?.dispose();
    throw new ShapeError(`linear: input has ${got} features, weight is [${out}, ${n}]`);
  }
  // The barrier keeps the backward pass's elementwise work (a scale, a residual sum) out of this matmul's operand,
  // where it would cost jax-js's fast kernel (src/engine); it is what lets frozen weights go undifferentiated.
  let y = fusionBarrier(np.matmul(x.reshape([-1, n]), np.matrixTranspose(w.weight)));
  if (w.bias) y = y.add(w.bias);
  return y.reshape([...lead, out]);
}

/** 2-D convolution of x [B, C, H, W] with weight [O, C/groups, kh, kw]. Consumes x and the weights. */
export function conv2d(x: Arr, w: LinearWeights, g: Conv2dGeometry): Arr {
  const [out] = w.weight.shape;
  let y = lax.convGeneralDilated(
    x,
    w.weight,
    g.stride,
    [
      [g.padding[0], g.padding[0]],
      [g.padding[1], g.padding[1]],
    ],
    { rhsDilation: g.dilation, featureGroupCount: g.groups },
  );
  if (w.bias) y = y.add(w.bias.reshape([1, out, 1, 1]));
  return y;
}
