#!/usr/bin/env node
// The `boft` command. The TypeScript sources are compiled to dist/ by `npm run build`.
// Threads first: jax-js decides whether to use workers when it is loaded (src/node/threads.ts).
import "../dist/src/node/install-threads.js";
import "../dist/cli/main.js";
