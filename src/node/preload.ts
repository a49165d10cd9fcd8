/**
 * Importing this module prepares jax-js for Node before it loads: worker threads (src/node/threads.ts;
 * `BOFT_THREADS`, `off` disables) and a wasm heap created at full size (src/node/heap.ts; `BOFT_HEAP_GIB`, 0
 * disables). It must be imported before anything that imports the engine: the `boft` command and the npm scripts
 * load it first (`node --import`).
 */
import { installThreads } from "./threads.js";
import { presizeHeap } from "./heap.js";

installThreads();
presizeHeap();

/** How many worker threads jax-js got (0: single-threaded), and how to end them so the process can exit. */
export { threadCount, threadStats, shutdownThreads } from "./threads.js";
