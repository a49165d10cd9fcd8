/**
 * The response headers the web app needs from any host. COOP/COEP make the page cross-origin isolated, which is what
 * gives it SharedArrayBuffer and so jax-js's worker threads (without them it runs on one thread). jax-js compiles its
 * wasm kernels at run time ('wasm-unsafe-eval') and starts its threads from Blob URLs (worker-src blob:).
 */
export const HEADERS: Readonly<Record<string, string>> = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
  "Content-Security-Policy":
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; connect-src 'self' blob: data:; img-src 'self' data: blob:; style-src 'self'; object-src 'none'; base-uri 'none'",
  "X-Content-Type-Options": "nosniff",
};
