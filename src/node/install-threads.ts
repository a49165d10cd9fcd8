/**
 * Importing this module installs the worker-thread shim (src/node/threads.ts) with its defaults
 * (`BOFT_THREADS` overrides; `off` disables). It must be imported before anything that imports the engine:
 * the `boft` command and the npm scripts load it first (`node --import`).
 */
import { installThreads } from "./threads.js";

installThreads();
