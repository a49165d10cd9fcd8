#!/usr/bin/env node
// The `boft` command. The TypeScript sources are compiled to dist/ by `npm run build`.
import "../dist/cli/main.js";
