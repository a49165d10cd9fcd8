/**
 * jax-js's wasm heap, created at its full size up front (Node). jax-js makes its WebAssembly.Memory empty when it
 * loads and grows it one allocation at a time; V8 answers every grow with a full mark-compact GC ("external memory
 * pressure"), ~0.4 s each once the heap is large. At SmolLM2-135M's shape the first training step spent ~13 CPU-min
 * in them; created at 3.5 GiB it took 29 s. Pages that are never written cost no RSS (measured: a small run's RSS
 * is the same with and without), so the default is the whole 4 GiB a 32-bit wasm heap can address.
 *
 * Like the thread shim, this must run before jax-js is evaluated (it builds its memory at import); the engine sets
 * `globalThis[Symbol.for("boft.engine.loaded")]`, and a first call after that throws (later calls are no-ops).
 */
import { assertBeforeEngine } from "./before-engine.js";

const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB, the memory32 limit

let presizedGiB = 0;

/**
 * Make the next WebAssembly.Memory (jax-js's) start at `gib` GiB (capped at 4). `BOFT_HEAP_GIB` overrides; 0
 * leaves jax-js's default (empty, grown on demand). Returns the size used, in GiB. Idempotent.
 */
export function presizeHeap(gib = 4): number {
  if (presizedGiB > 0) return presizedGiB;
  assertBeforeEngine("boft heap: presizeHeap()");
  const env = process.env.BOFT_HEAP_GIB?.trim();
  const want = env !== undefined && env !== "" ? Number(env) : gib;
  if (!Number.isFinite(want) || want < 0) throw new RangeError(`BOFT_HEAP_GIB must be a number of GiB >= 0 (got "${env}")`);
  if (want === 0) return 0;
  const pages = Math.min(MAX_PAGES, Math.max(1, Math.floor((want * 2 ** 30) / PAGE)));
  const wasm = WebAssembly as { Memory: typeof WebAssembly.Memory };
  const Real = wasm.Memory;
  // Only the first memory built after this call is jax-js's; the constructor is restored as it is built. Where the
  // system refuses to commit that much up front (strict overcommit), jax-js's own descriptor is used instead.
  function Presized(d: WebAssembly.MemoryDescriptor): WebAssembly.Memory {
    wasm.Memory = Real;
    try {
      return new Real({ ...d, initial: Math.max(d.initial ?? 0, Math.min(pages, d.maximum ?? MAX_PAGES)) });
    } catch {
      presizedGiB = 0;
      return new Real(d);
    }
  }
  Presized.prototype = Real.prototype;
  wasm.Memory = Presized as unknown as typeof WebAssembly.Memory;
  presizedGiB = (pages * PAGE) / 2 ** 30;
  return presizedGiB;
}
