/** A multilayer perceptron with ReLU, layers named lin0, lin1, … as in PEFT's test models. */
import { nn, type Arr } from "../engine/index.js";
import type { ModuleInfo } from "../methods/adapter.js";
import type { ModelDef, WeightSpec } from "./model.js";

/**
 * The layer widths of `mlp`. Linear i is `lin<i>` ([sizes[i+1], sizes[i]] weight plus bias), which `targetModules` names.
 */
export interface MlpConfig {
  /** Layer widths, input first, e.g. [784, 256, 256, 10]. */
  sizes: number[];
}

export function mlp(cfg: MlpConfig): ModelDef<Arr> {
  const modules: ModuleInfo[] = [];
  const weights: WeightSpec[] = [];
  for (let i = 0; i + 1 < cfg.sizes.length; i++) {
    const [n, out] = [cfg.sizes[i], cfg.sizes[i + 1]];
    modules.push({ path: `lin${i}`, kind: "linear", inFeatures: n, outFeatures: out });
    const bound = 1 / Math.sqrt(n); // nn.Linear's default init
    weights.push({ name: `lin${i}.weight`, shape: [out, n], init: { uniform: bound } }, { name: `lin${i}.bias`, shape: [out], init: { uniform: bound } });
  }
  return {
    type: "mlp",
    modules,
    weights,
    apply(_w, layer, x) {
      let h = x.reshape([x.shape[0], -1]);
      for (let i = 0; i < modules.length; i++) {
        h = layer(`lin${i}`, h);
        if (i + 1 < modules.length) h = nn.relu(h);
      }
      return h;
    },
  };
}

