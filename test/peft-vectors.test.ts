/**
 * PEFT parity: every reference case PEFT produced in float64 (test/fixtures/peft) — forward, rotation,
 * merged weight and gradients — in float64 (max abs error ≤ 1e-9 of the values' scale) and float32
 * (relative Frobenius ≤ 1e-5, gradients ≤ 1e-4). Linear BOFT/OFT run on both rotation sides.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { np, tree, valueAndGrad, type Arr, type FloatDType } from "../src/engine/index.js";
import { boftLinear, boftConv2d, boftMerge, boftDelta, boftBlocks, type BoftLayerShape, type BoftParams } from "../src/methods/boft/layer.js";
import { oftLinear, oftConv2d, oftMerge, oftDelta, oftBlocks, oftProjectParams, type OftLayerShape, type OftParams } from "../src/methods/oft/layer.js";
import { defaultConvGeometry, type Conv2dGeometry, type LinearWeights } from "../src/methods/base-layers.js";
import type { RotationSide } from "../src/methods/side.js";
import { caseNames, loadCase, ref, arr, errFor, tolerance, type PeftCase } from "./helpers.js";

const dtypes: FloatDType[] = ["float64", "float32"];

function convGeometry(c: PeftCase): Conv2dGeometry {
  const st = c.geometry.stride as number;
  const pd = c.geometry.padding as number;
  return { ...defaultConvGeometry, stride: [st, st], padding: [pd, pd] };
}

function baseOf(c: PeftCase, dtype: FloatDType): LinearWeights {
  return { weight: arr(ref(c, "base_weight"), dtype), bias: c.tensors.base_bias ? arr(ref(c, "base_bias"), dtype) : null };
}

function boftShape(c: PeftCase): BoftLayerShape {
  const d = c.derived as Record<string, number>;
  const out = (c.geometry.out_features ?? c.geometry.out_channels) as number;
  return { kind: c.layer, n: d.n, out, nFactors: d.n_factors, blockNum: d.block_num, blockSize: d.block_size };
}

function oftShape(c: PeftCase): OftLayerShape {
  const d = c.derived as Record<string, number>;
  const cfg = c.config as Record<string, number | boolean | undefined>;
  const out = (c.geometry.out_features ?? c.geometry.out_channels) as number;
  const k = c.geometry.kernel_size as number | undefined;
  return {
    kind: c.layer,
    n: d.n,
    out,
    r: d.r,
    blockSize: d.oft_block_size,
    blockShare: (cfg.block_share as boolean | undefined) ?? false,
    coft: (cfg.coft as boolean | undefined) ?? false,
    eps: (cfg.eps as number | undefined) ?? 6e-5,
    useCayleyNeumann: (cfg.use_cayley_neumann as boolean | undefined) ?? true,
    numCayleyNeumannTerms: (cfg.num_cayley_neumann_terms as number | undefined) ?? 5,
    kernel: k ? [k, k] : undefined,
  };
}

function check(label: string, err: number, tol: number): void {
  assert.ok(err <= tol, `${label}: error ${err.toExponential(2)} > ${tol}`);
}

describe("BOFT layer vs PEFT reference vectors", () => {
  for (const name of caseNames("boft_")) {
    const c = loadCase(name);
    const shape = boftShape(c);
    const sides: (RotationSide | "auto")[] = c.layer === "linear" ? ["x", "weight"] : ["auto"];
    for (const dtype of dtypes) {
      const err = errFor(dtype);
      const tol = tolerance[dtype];
      const params = (): BoftParams => ({ boft_R: arr(ref(c, "boft_R"), dtype), boft_s: arr(ref(c, "boft_s"), dtype) });
      for (const side of sides) {
        test(`${name} ${dtype} side=${side}: forward and gradients`, () => {
          const base = baseOf(c, dtype);
          const g = arr(ref(c, "grad_out"), dtype);
          const loss = (p: BoftParams, x: Arr) => {
            const b = tree.ref(base);
            const y =
              c.layer === "linear" ? boftLinear(shape, p, b, x, { side, training: true }) : boftConv2d(shape, p, b, x, convGeometry(c), { training: true });
            return y.mul(g.ref).sum();
          };
          const [value, [gp, gx]] = valueAndGrad(loss, { argnums: [0, 1] })(params(), arr(ref(c, "x"), dtype));
          const lossErr = Math.abs((value.js() as number) - (c as unknown as { loss_value: number }).loss_value);
          check("loss", lossErr / Math.abs((c as unknown as { loss_value: number }).loss_value), tol.value);
          check("grad boft_R", err(gp.boft_R, ref(c, "grad_boft_R")), tol.grad);
          check("grad boft_s", err(gp.boft_s, ref(c, "grad_boft_s")), tol.grad);
          check("grad x", err(gx, ref(c, "grad_x")), tol.grad);
          const b = tree.ref(base);
          const y =
            c.layer === "linear"
              ? boftLinear(shape, params(), b, arr(ref(c, "x"), dtype), { side })
              : boftConv2d(shape, params(), b, arr(ref(c, "x"), dtype), convGeometry(c));
          check("forward y", err(y, ref(c, "y")), tol.value);
          tree.dispose(base);
          g.dispose();
        });
      }
      test(`${name} ${dtype}: blocks, rotation, merged weight`, () => {
        check("cayley blocks", err(boftBlocks(arr(ref(c, "boft_R"), dtype)), ref(c, "cayley_blocks")), tol.value);
        const { rotation, scale } = boftDelta(shape, params());
        check("rotation", err(rotation, ref(c, "rotation")), tol.value);
        scale.dispose();
        check("merged weight", err(boftMerge(shape, params(), arr(ref(c, "base_weight"), dtype)), ref(c, "merged_weight")), tol.value);
      });
    }
  }
});

describe("OFT layer vs PEFT reference vectors", () => {
  for (const name of caseNames("oft_")) {
    const c = loadCase(name);
    const shape = oftShape(c);
    const sides: (RotationSide | "auto")[] = c.layer === "linear" ? ["x", "weight"] : ["auto"];
    for (const dtype of dtypes) {
      const err = errFor(dtype);
      const tol = tolerance[dtype];
      const params = (): OftParams => ({ oft_R: { weight: arr(ref(c, "oft_R_weight_before_forward"), dtype) } });
      for (const side of sides) {
        test(`${name} ${dtype} side=${side}: forward and gradients`, () => {
          const base = baseOf(c, dtype);
          const g = arr(ref(c, "grad_out"), dtype);
          const loss = (p: OftParams, x: Arr) => {
            const b = tree.ref(base);
            const y = c.layer === "linear" ? oftLinear(shape, p, b, x, { side, training: true }) : oftConv2d(shape, p, b, x, convGeometry(c));
            return y.mul(g.ref).sum();
          };
          const [, [gp, gx]] = valueAndGrad(loss, { argnums: [0, 1] })(params(), arr(ref(c, "x"), dtype));
          check("grad oft_R.weight", err(gp.oft_R.weight, ref(c, "grad_oft_R_weight")), tol.grad);
          check("grad x", err(gx, ref(c, "grad_x")), tol.grad);
          const b = tree.ref(base);
          const x = arr(ref(c, "x"), dtype);
          const y = c.layer === "linear" ? oftLinear(shape, params(), b, x, { side }) : oftConv2d(shape, params(), b, x, convGeometry(c));
          check("forward y", err(y, ref(c, "y")), tol.value);
          tree.dispose(base);
          g.dispose();
        });
      }
      test(`${name} ${dtype}: projection, blocks, rotation, merged weight`, () => {
        check("COFT-projected parameter", err(oftProjectParams(shape, params()).oft_R.weight, ref(c, "oft_R_weight_after_forward")), tol.value);
        check("blocks used", err(oftBlocks(shape, params()), ref(c, "rotation_blocks")), tol.value);
        check("rotation", err(oftDelta(shape, params()), ref(c, "rotation")), tol.value);
        check("merged weight", err(oftMerge(shape, params(), arr(ref(c, "base_weight"), dtype)), ref(c, "merged_weight")), tol.value);
      });
    }
  }
});

test("PEFT's OFT Conv2d k>1 unmerged forward is not its merge (documented PEFT behaviour, reproduced)", () => {
  const c = loadCase("oft_conv_in4_out6_k3_r4_exact_bias");
  assert.ok(c.checks.merged_forward_vs_forward_maxabs > 1, "the reference itself shows the gap");
  const shape = oftShape(c);
  const p = (): OftParams => ({ oft_R: { weight: arr(ref(c, "oft_R_weight_before_forward"), "float64") } });
  const base = baseOf(c, "float64");
  const unmerged = oftConv2d(shape, p(), tree.ref(base), arr(ref(c, "x"), "float64"), convGeometry(c));
  const merged = oftConv2d(
    { ...shape, kernel: [1, 1] },
    { oft_R: { weight: np.zeros(p().oft_R.weight.shape, { dtype: np.float64 }) } },
    { weight: oftMerge(shape, p(), base.weight.ref), bias: base.bias!.ref },
    arr(ref(c, "x"), "float64"),
    convGeometry(c),
  );
  const gap = np.abs(unmerged.sub(merged)).max().js() as number;
  assert.ok(Math.abs(gap - c.checks.merged_forward_vs_forward_maxabs) < 1e-9, `gap ${gap} vs PEFT's ${c.checks.merged_forward_vs_forward_maxabs}`);
  tree.dispose(base);
});
