/**
 * Multithreading for jax-js's wasm backend on Node: a minimal Web Worker shim over `node:worker_threads`.
 *
 * jax-js 0.1.25 decides *once, while its module is being evaluated* whether the wasm backend uses
 * workers: the backend is constructed at import time and checks `typeof SharedArrayBuffer` and
 * `typeof Worker`, and sizes the pool from `navigator.hardwareConcurrency`. Node 20 has neither
 * `Worker` nor `navigator`, so without this shim jax-js runs single-threaded.
 *
 * Rules (checked against jax-js 0.1.25 dist and measured):
 * - `installThreads()` must run before `@jax-js/jax` is *evaluated*, i.e. before the engine module is
 *   imported (statically or dynamically). Calling it just before `init("wasm")` is already too late.
 *   Installing after jax-js has loaded breaks every kernel compiled afterwards ("memory import 0 has
 *   no maximum limit": kernels then import a shared memory the backend does not have). If the engine
 *   sets `globalThis[Symbol.for("boft.engine.loaded")] = true`, a late call throws instead.
 * - The shim must never be removed once jax-js has loaded; `shutdownThreads()` only stops the threads.
 * - Only the async reads (`await a.data()`, `jsAsync()`, `blockUntilReady()`) run on the workers.
 *   `dataSync()`/`item()`/`js()` compute on the main thread (single-threaded, same bits). A sync read of
 *   an array whose producing kernel was dispatched asynchronously and is still running throws
 *   "cannot read synchronously from a slot with async work" (or "cannot dispatch synchronously with
 *   pending async work"). Await async reads before reading synchronously.
 *
 * Idle workers are `unref()`ed, so a process exits normally once its work is done; a worker is
 * ref'ed only while a message to it awaits its reply (jax-js's worker answers every message once).
 *
 * Environment: `BOFT_THREADS` overrides the count passed to `installThreads`: `0`/`1`/`off` disables
 * the shim, `auto` uses `os.availableParallelism()`, `N` uses N workers.
 */
import { Worker as NodeWorker } from "node:worker_threads";
import { availableParallelism } from "node:os";
import { assertBeforeEngine } from "./before-engine.js";

export interface ThreadsOptions {
  /** Number of workers; default `os.availableParallelism()`. 0 or 1 means: do not install (single thread). */
  threads?: number;
}

const SCRIPT_KEY = "__boftWorkerScript";

/**
 * The worker thread's bootstrap: a Web-Worker-like global scope, then the script text sent by the
 * main thread. Valid as CommonJS and as ESM, because workers inherit `--input-type=module` from
 * `node --input-type=module -e …` (no `require` there). Port messages queue until the listener exists.
 */
const BOOTSTRAP = `
import("node:worker_threads").then(({ parentPort }) => {
  globalThis.self = globalThis;
  globalThis.postMessage = (data, transfer) => parentPort.postMessage(data, transfer);
  let early = [];
  const deliver = (data) => { if (typeof globalThis.onmessage === "function") globalThis.onmessage({ data }); };
  parentPort.on("message", (data) => {
    if (early === null) return deliver(data);
    if (data !== null && typeof data === "object" && ${JSON.stringify(SCRIPT_KEY)} in data) {
      (0, eval)(data[${JSON.stringify(SCRIPT_KEY)}]);
      const queued = early;
      early = null;
      for (const d of queued) deliver(d);
    } else early.push(data);
  });
});
`;

/** Blob URL → its text (read as soon as the URL is created, because a Worker is built synchronously). */
const blobScripts = new Map<string, Promise<string>>();
const live = new Set<ThreadWorker | InlineWorker>();
let installedCount = 0;

/** The script text behind a Blob URL jax-js built its worker from (the only kind of Worker URL it uses). */
function workerScript(url: string | URL): Promise<string> {
  const script = blobScripts.get(String(url));
  if (script === undefined) throw new TypeError(`boft threads: Worker supports only Blob URLs from URL.createObjectURL (got ${String(url)})`);
  return script;
}

/** A Web `Worker` over a worker_threads Worker; supports exactly what jax-js uses (onmessage, onerror, postMessage, terminate). */
class ThreadWorker {
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onerror: ((ev: { message: string; error: unknown }) => void) | null = null;
  readonly #thread: NodeWorker;
  #inFlight = 0;
  #closed = false;
  /** Messages this thread received (jax-js: one "init", then one per kernel chunk or routine it ran). */
  posted = 0;

  constructor(url: string | URL, _options?: unknown) {
    const script = workerScript(url);
    this.#thread = new NodeWorker(BOOTSTRAP, { eval: true });
    this.#thread.unref();
    live.add(this);
    script.then(
      (text) => this.#closed || this.#thread.postMessage({ [SCRIPT_KEY]: text }),
      (err: unknown) => this.#die(err),
    );
    this.#thread.on("message", (data: unknown) => {
      if (this.#inFlight > 0 && --this.#inFlight === 0) this.#thread.unref();
      this.onmessage?.({ data });
    });
    this.#thread.on("error", (err: Error) => this.#die(err));
    this.#thread.on("exit", (code: number) => {
      live.delete(this);
      if (!this.#closed) this.#die(new Error(`worker thread exited unexpectedly (code ${code})`));
    });
  }

  postMessage(data: unknown, transfer?: readonly unknown[]): void {
    if (this.#closed) throw new Error("boft threads: worker used after shutdownThreads()");
    if (runner?.initialized && runner.cheapOnMainThread(data)) return runner.run(this, data);
    this.posted++;
    if (this.#inFlight++ === 0) this.#thread.ref();
    this.#thread.postMessage(data, transfer as never);
  }

  terminate(): void {
    void this.stop();
  }

  /** terminate(), as a promise that settles when the thread has stopped. */
  async stop(): Promise<void> {
    this.#closed = true;
    live.delete(this);
    await this.#thread.terminate();
  }

  /**
   * A dead worker means a jax-js dispatch that never settles (a hang, or an early exit of the
   * process while results are pending). Fail loudly instead.
   */
  #die(err: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    const message = err instanceof Error ? err.message : String(err);
    this.onerror?.({ message, error: err });
    process.nextTick(() => {
      throw new Error(`boft threads: jax-js worker failed: ${message}`);
    });
  }
}

/**
 * jax-js's worker script, evaluated once on the main thread, in a function scope. The main thread only waits while
 * jax-js's workers compute, so it may as well compute too: it is jax-js's worker 0 (InlineWorker), and it takes
 * any kernel chunk too small to be worth a round trip to a thread (≈0.1 ms each, measured; most of an adapter
 * step's kernels are that small). Each message runs in a microtask, i.e. after jax-js has posted the other chunks
 * of the same kernel, so those run in parallel on the threads.
 *
 * "Small" is decided by time, not size: jax-js splits a kernel by output elements, but a reduction with few
 * outputs (a BOFT factor's gradient: 8,192 outputs, each a sum over 512 tokens) can run 0.6 ms per chunk.
 * The main thread times every chunk it runs (chunk 0 of each kernel always runs here), and a kernel whose
 * chunks take longer than a round trip sends its other chunks to the threads (B bench case: 4.2 ms per step that
 * ran on one core).
 */
class MainThreadRunner {
  #handler: ((ev: { data: unknown }) => void) | null = null;
  #replyTo: { onmessage: ((ev: { data: unknown }) => void) | null } | null = null;
  /** True once jax-js's "init" (the shared memory) has reached this scope. */
  initialized = false;

  constructor(script: string) {
    const scope: { onmessage: ((ev: { data: unknown }) => void) | null } = { onmessage: null };
    const reply = (data: unknown) => this.#replyTo?.onmessage?.({ data });
    new Function("self", "postMessage", script)(scope, reply);
    this.#handler = scope.onmessage;
  }

  run(replyTo: { onmessage: ((ev: { data: unknown }) => void) | null }, data: unknown): void {
    if ((data as { type?: string } | null)?.type === "init") this.initialized = true;
    const chunk = kernelChunk(data);
    queueMicrotask(() => {
      this.#replyTo = replyTo;
      const t0 = performance.now();
      try {
        this.#handler?.({ data });
      } finally {
        this.#replyTo = null;
        if (chunk) this.#record(chunk, performance.now() - t0);
      }
    });
  }

  /** Milliseconds per output element of each kernel, as last measured on this thread. */
  readonly #msPerElement = new Map<unknown, number>();

  #record(chunk: KernelChunk, ms: number): void {
    if (this.#msPerElement.size >= MAX_TIMED_KERNELS && !this.#msPerElement.has(chunk.kernelHash)) this.#msPerElement.clear();
    this.#msPerElement.set(chunk.kernelHash, ms / (chunk.end - chunk.begin));
  }

  /** Whether a chunk is cheaper here than a round trip to a thread: few outputs, and not known to be slow. */
  cheapOnMainThread(data: unknown): boolean {
    const chunk = kernelChunk(data);
    if (chunk === null || chunk.end - chunk.begin > MAIN_THREAD_MAX_ELEMENTS) return false;
    const perElement = this.#msPerElement.get(chunk.kernelHash);
    return perElement === undefined || perElement * (chunk.end - chunk.begin) <= MAIN_THREAD_MAX_MS;
  }
}

/** Kernel chunks with at most this many output elements may run on the main thread instead of a worker thread… */
const MAIN_THREAD_MAX_ELEMENTS = 32768;
/** …unless they took longer than this on the main thread before: then a thread's round trip (≈0.1 ms) pays. */
const MAIN_THREAD_MAX_MS = 0.2;
/** Bound on the per-kernel timings kept (a long run compiles many kernels; the table restarts when full). */
const MAX_TIMED_KERNELS = 4096;
let runner: MainThreadRunner | null = null;

interface KernelChunk {
  kernelHash: unknown;
  begin: number;
  end: number;
}

/** A jax-js "kernel" message (one chunk of one kernel's outputs), or null for anything else. */
function kernelChunk(data: unknown): KernelChunk | null {
  const m = data as { type?: string; kernelHash?: unknown; begin?: number; end?: number } | null;
  if (m?.type !== "kernel" || typeof m.begin !== "number" || typeof m.end !== "number" || m.end <= m.begin) return null;
  return { kernelHash: m.kernelHash, begin: m.begin, end: m.end };
}

/** jax-js's worker 0: the main thread (see MainThreadRunner). CPU routines (sort, LU, …) also go to worker 0. */
class InlineWorker {
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onerror: ((ev: { message: string; error: unknown }) => void) | null = null;
  #pending: unknown[] | null = [];
  posted = 0;

  constructor(url: string | URL, _options?: unknown) {
    const script = workerScript(url);
    live.add(this);
    script.then(
      (text) => {
        runner = new MainThreadRunner(text);
        const queued = this.#pending ?? [];
        this.#pending = null;
        for (const data of queued) runner.run(this, data);
      },
      (err: unknown) => this.onerror?.({ message: String(err), error: err }),
    );
  }

  postMessage(data: unknown): void {
    this.posted++;
    if (this.#pending) this.#pending.push(data);
    else runner!.run(this, data);
  }

  terminate(): void {
    live.delete(this);
  }

  async stop(): Promise<void> {
    live.delete(this);
  }
}

function requestedThreads(opts: ThreadsOptions): number {
  const env = process.env.BOFT_THREADS?.trim().toLowerCase();
  if (env !== undefined && env !== "") {
    if (env === "auto") return availableParallelism();
    if (env === "off" || env === "false") return 0;
    const n = Number(env);
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`BOFT_THREADS must be auto, off or an integer >= 0 (got "${env}")`);
    return n;
  }
  return opts.threads ?? availableParallelism();
}

/**
 * Make jax-js's wasm backend use `threads` worker threads. Call before the engine (and so jax-js) is
 * imported, e.g. `installThreads(); const boft = await import("boft")`. Returns the number of
 * workers jax-js will start (0 = single-threaded). Idempotent; `BOFT_THREADS` overrides `threads`.
 */
export function installThreads(opts: ThreadsOptions = {}): number {
  if (installedCount > 0) return installedCount;
  const g = globalThis as Record<PropertyKey, unknown>;
  assertBeforeEngine("boft threads: installThreads()");
  const n = requestedThreads(opts);
  if (n <= 1) return 0;
  if (typeof SharedArrayBuffer === "undefined") return 0;
  if (typeof g.Worker !== "undefined") {
    throw new Error("boft threads: a global Worker already exists; not replacing it");
  }

  const nav = g.navigator as { hardwareConcurrency?: number } | undefined;
  if (nav === undefined) g.navigator = { hardwareConcurrency: n };
  else Object.defineProperty(nav, "hardwareConcurrency", { value: n, configurable: true });

  const create = URL.createObjectURL.bind(URL);
  const revoke = URL.revokeObjectURL.bind(URL);
  URL.createObjectURL = (obj: Blob) => {
    const url = create(obj);
    blobScripts.set(url, obj.text());
    return url;
  };
  URL.revokeObjectURL = (url: string) => {
    blobScripts.delete(url);
    revoke(url);
  };
  // The first worker jax-js builds is the main thread's own (InlineWorker); the rest are threads.
  let built = 0;
  g.Worker = function BoftWorker(url: string | URL, options?: unknown) {
    return built++ === 0 ? new InlineWorker(url, options) : new ThreadWorker(url, options);
  };
  installedCount = n;
  return n;
}

/** Number of worker threads installed (0 = jax-js runs single-threaded on the main thread). */
export function threadCount(): number {
  return installedCount;
}

/** Messages posted to each live worker so far: shows whether work really reaches the threads. */
export function threadStats(): { workers: number; messagesPerWorker: number[] } {
  const m = [...live].map((w) => w.posted);
  return { workers: m.length, messagesPerWorker: m };
}

/**
 * Stop all worker threads. Only for the end of a process: after it, any jax-js work that would
 * dispatch to a worker throws. Not needed for a normal exit (idle workers do not keep Node alive).
 */
export async function shutdownThreads(): Promise<void> {
  await Promise.all([...live].map((w) => w.stop()));
}
