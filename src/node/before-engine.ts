/**
 * The thread shim and the heap pre-sizing act on jax-js while it loads; afterwards they would break it. The engine
 * marks the moment it has loaded (src/engine/index.ts sets this symbol on globalThis).
 */
const ENGINE_LOADED = Symbol.for("boft.engine.loaded");

/** Throws if the engine (and so jax-js) has already been imported. `what` names the caller in the message. */
export function assertBeforeEngine(what: string): void {
  if ((globalThis as Record<PropertyKey, unknown>)[ENGINE_LOADED] === true) {
    throw new Error(`${what} must run before the engine (jax-js) is imported`);
  }
}
