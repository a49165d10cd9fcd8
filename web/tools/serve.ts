/**
 * A static server for dist-web/ with the headers of web/tools/headers.ts (no dependency). `npm run web` builds and
 * starts it; `serveWeb` is also what the browser tests use.
 */
import { createServer, type Server } from "node:http";
import { createReadStream, statSync } from "node:fs";
import { extname, join, normalize, resolve, sep } from "node:path";
import { HEADERS } from "./headers.js";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

/** Serves `root` on `port` (0: any free port) at 127.0.0.1; resolves once listening, with the URL. */
export function serveWeb(root: string, port = 0): Promise<{ server: Server; url: string }> {
  const base = resolve(root);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    const file = normalize(join(base, path.endsWith("/") ? `${path}index.html` : path));
    const ok = (file === base || file.startsWith(base + sep)) && statSync(file, { throwIfNoEntry: false })?.isFile();
    for (const [k, v] of Object.entries(HEADERS)) res.setHeader(k, v);
    if (!ok || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(ok ? 405 : 404, { "Content-Type": "text/plain" }).end(ok ? "method not allowed\n" : "not found\n");
      return;
    }
    res.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream", "Cache-Control": "no-cache" });
    if (req.method === "HEAD") res.end();
    else createReadStream(file).pipe(res);
  });
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", () => {
      const a = server.address();
      ok({ server, url: `http://127.0.0.1:${typeof a === "object" && a ? a.port : port}/` });
    });
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const port = Number(process.env.PORT ?? 8080);
  const { url } = await serveWeb(resolve("dist-web"), port);
  console.log(`boft web app at ${url} (Ctrl-C stops)`);
}
