#!/usr/bin/env node
// The `boft` command. The TypeScript sources are compiled to dist/ by `npm run build`.
// The preload first: jax-js decides on threads and builds its heap when it is loaded (src/node/preload.ts).
import "../dist/src/node/preload.js";
import "../dist/cli/main.js";
