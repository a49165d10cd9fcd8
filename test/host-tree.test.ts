import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { np, type Arr } from "../src/engine/index.js";
import { FormatError } from "../src/errors.js";
import { hostTreeEntries, isHostTensor, treeEntries, treeFromHost, treeToHost, treeToHostAsync, type Tree } from "../src/train/host-tree.js";

function sample(): Tree {
  return {
    "layers.0.q_proj": { boft_R: np.array([[1, 2], [3, 4]]), boft_s: np.array([0.5]) },
    head: [np.array([7], { dtype: np.float64 }), np.zeros([0])],
  };
}

describe("train.treeToHost() / treeFromHost()", () => {
  it("keeps nesting, verbatim keys (dots included), shapes and dtypes", () => {
    const t = sample();
    const leaves = treeEntries(t).map(([, a]) => a);
    const h = treeToHost(t);
    assert.ok(leaves.every((a) => a.refCount === 0), "consumed");
    assert.deepEqual(
      hostTreeEntries(h).map(([path, x]) => [path.join("|"), x.dtype, x.shape, Array.from(x.data)]),
      [
        ["layers.0.q_proj|boft_R", "float32", [2, 2], [1, 2, 3, 4]],
        ["layers.0.q_proj|boft_s", "float32", [1], [0.5]],
        ["head|0", "float64", [1], [7]],
        ["head|1", "float32", [0], []],
      ],
    );
    const back = treeFromHost(h) as { head: Arr[] };
    assert.equal(back.head[0].dtype, np.float64);
    assert.deepEqual(treeToHost(back), h);
  });

  it("async form gives the same host tree", async () => {
    assert.deepEqual(await treeToHostAsync(sample()), treeToHost(sample()));
  });

  it("recognises host tensors and rejects foreign leaves with their path", () => {
    assert.ok(isHostTensor({ dtype: "float32", shape: [1], data: new Float32Array(1) }));
    assert.ok(!isHostTensor({ dtype: "float32", shape: [1], data: [1] }));
    assert.throws(() => treeFromHost({ a: { b: 3 } } as never), (e: unknown) => e instanceof FormatError && /path \[a, b\]/.test(e.message));
  });
});
