/**
 * Param trees ↔ host trees: the same nesting with each engine array replaced by a HostTensor.
 *
 * Checkpoints (optimizer moments, adapter weights) go through here. Keys are kept verbatim (a key may
 * itself contain dots, e.g. "layers.0.q_proj"), so flattening yields key *paths*, not dotted strings.
 */
import { np, toHost, toHostAsync, fromHost, jaxDType, sizeOf, type Arr, type HostTensor } from "../engine/index.js";
import { FormatError } from "../errors.js";

/** A nested tree of engine arrays (a param tree, a gradient tree, optimizer moments). */
export type Tree = Arr | Tree[] | { [key: string]: Tree };

/** The same nesting with HostTensor leaves. */
export type HostTree = HostTensor | HostTree[] | { [key: string]: HostTree };

function isArr(x: unknown): x is Arr {
  return x instanceof np.Array;
}

/** A HostTensor leaf (a TypedArray `data` is what tells it apart from a tree node). */
export function isHostTensor(x: unknown): x is HostTensor {
  if (typeof x !== "object" || x === null) return false;
  const t = x as Partial<HostTensor>;
  return ArrayBuffer.isView(t.data) && Array.isArray(t.shape) && typeof t.dtype === "string";
}

function mapTree<A, B>(t: unknown, isLeaf: (x: unknown) => x is A, f: (a: A) => B, where: string, path: string[] = []): unknown {
  if (isLeaf(t)) return f(t);
  if (Array.isArray(t)) return t.map((c, i) => mapTree(c, isLeaf, f, where, [...path, String(i)]));
  if (typeof t === "object" && t !== null) {
    return Object.fromEntries(Object.entries(t).map(([k, c]) => [k, mapTree(c, isLeaf, f, where, [...path, k])]));
  }
  throw new FormatError(`${where}: unexpected ${t === null ? "null" : typeof t} at path [${path.join(", ")}]`);
}

function entriesOf<A>(t: unknown, isLeaf: (x: unknown) => x is A, where: string): Array<[string[], A]> {
  const out: Array<[string[], A]> = [];
  const walk = (x: unknown, path: string[]): void => {
    if (isLeaf(x)) out.push([path, x]);
    else if (Array.isArray(x)) x.forEach((c, i) => walk(c, [...path, String(i)]));
    else if (typeof x === "object" && x !== null) for (const [k, c] of Object.entries(x)) walk(c, [...path, k]);
    else throw new FormatError(`${where}: unexpected ${x === null ? "null" : typeof x} at path [${path.join(", ")}]`);
  };
  walk(t, []);
  return out;
}

/** Leaves of a tree in key-insertion order, with their key paths. Borrows `t` (nothing is read). */
export function treeEntries(t: Tree): Array<[string[], Arr]> {
  return entriesOf(t, isArr, "treeEntries");
}

/** Engine tree → host tree. Consumes `t`. A sync point: all pending work runs here. */
export function treeToHost(t: Tree): HostTree {
  return mapTree(t, isArr, toHost, "treeToHost") as HostTree;
}

/** Async form of treeToHost (safe with worker threads, where sync reads throw). Consumes `t`. */
export async function treeToHostAsync(t: Tree): Promise<HostTree> {
  const hosts = await Promise.all(treeEntries(t).map(([, a]) => toHostAsync(a)));
  let i = 0; // mapTree visits leaves in the same order as treeEntries
  return mapTree(t, isArr, () => hosts[i++], "treeToHostAsync") as HostTree;
}

// jax-js 0.1.25 np.array throws on zero-length data ("Expected a number for constant"), so fromHost does too.
function fromHostAnySize(t: HostTensor): Arr {
  return sizeOf(t.shape) === 0 && t.data.length === 0 ? np.zeros(t.shape, { dtype: jaxDType(t.dtype) }) : fromHost(t);
}

/** Host tree → engine tree (copies the data). */
export function treeFromHost(h: HostTree): Tree {
  return mapTree(h, isHostTensor, fromHostAnySize, "treeFromHost") as Tree;
}

/** Leaves of a host tree with their key paths, e.g. to name tensors in a safetensors file. */
export function hostTreeEntries(h: HostTree): Array<[string[], HostTensor]> {
  return entriesOf(h, isHostTensor, "hostTreeEntries");
}
