/**
 * A small CNN for 28×28 digits: two 3×3 convolutions (padding 1) with ReLU and 2×2 max-pooling, then a
 * Linear classifier. Conv layers are where BOFT's weight-side rotation (n = in·kh·kw) is exercised.
 */
import { nn, type Arr } from "../engine/index.js";
import type { ModuleInfo } from "../methods/adapter.js";
import { defaultConvGeometry } from "../methods/base-layers.js";
import type { ModelDef, WeightSpec } from "./model.js";

/**
 * The shape of `cnn`: `channels` [c0, c1] of its two 3×3 convolutions (`conv0`, `conv1`), `classes` outputs of
 * its Linear head (`fc`). Input is [batch, size·size] (or [batch, 1, size, size]), `size` divisible by 4.
 */
export interface CnnConfig {
  channels: [number, number];
  classes: number;
  /** Input side length (square, one channel). */
  size: number;
}

function maxPool2(x: Arr): Arr {
  const [B, C, H, W] = x.shape;
  return x.reshape([B, C, H / 2, 2, W / 2, 2]).max([3, 5]);
}

export function cnn(cfg: CnnConfig): ModelDef<Arr> {
  const [c0, c1] = cfg.channels;
  const geometry = { ...defaultConvGeometry, padding: [1, 1] as [number, number] };
  const flat = c1 * (cfg.size / 4) ** 2;
  const modules: ModuleInfo[] = [
    { path: "conv0", kind: "conv2d", inFeatures: 1, outFeatures: c0, kernel: [3, 3], geometry },
    { path: "conv1", kind: "conv2d", inFeatures: c0, outFeatures: c1, kernel: [3, 3], geometry },
    { path: "fc", kind: "linear", inFeatures: flat, outFeatures: cfg.classes },
  ];
  const fanIn = (m: ModuleInfo) => m.inFeatures * (m.kernel ? m.kernel[0] * m.kernel[1] : 1);
  const weights: WeightSpec[] = modules.flatMap((m) => {
    const bound = 1 / Math.sqrt(fanIn(m));
    const shape = m.kind === "conv2d" ? [m.outFeatures, m.inFeatures, 3, 3] : [m.outFeatures, m.inFeatures];
    return [
      { name: `${m.path}.weight`, shape, init: { uniform: bound } },
      { name: `${m.path}.bias`, shape: [m.outFeatures], init: { uniform: bound } },
    ];
  });
  return {
    type: "cnn",
    modules,
    weights,
    apply(_w, layer, x) {
      const B = x.shape[0];
      let h = x.reshape([B, 1, cfg.size, cfg.size]);
      h = maxPool2(nn.relu(layer("conv0", h)));
      h = maxPool2(nn.relu(layer("conv1", h)));
      return layer("fc", h.reshape([B, flat]));
    },
  };
}
