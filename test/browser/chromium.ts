/**
 * Drives the built web app (dist-web/) in Debian's Chromium through puppeteer-core: no network besides the local
 * server, WebGPU through SwiftShader when asked (a software GPU, so it works on machines without one).
 */
import { existsSync, mkdirSync } from "node:fs";
import { resolve } from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { serveWeb } from "../../web/tools/serve.js";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Why the browser tests cannot run here, or null. */
export function chromiumMissing(): string | null {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`;
  if (!existsSync(resolve("dist-web", "index.html"))) return "dist-web/ is not built (npm run test:browser builds it)";
  return null;
}

const QUIET = ["--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic", "--disable-default-apps", "--disable-extensions", "--metrics-recording-only", "--mute-audio"];
// With --enable-unsafe-webgpu alone, synchronous reads return zeros and the device is then lost; Vulkan on
// SwiftShader is what makes it correct in headless Chromium.
const WEBGPU = ["--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-vulkan=swiftshader", "--use-angle=swiftshader"];

export interface Session {
  browser: Browser;
  page: Page;
  url: string;
  downloads: string;
  /** Console lines and page errors, for failure messages. */
  log: string[];
  close(): Promise<void>;
}

/** Starts the server and Chromium and opens the app with `?device=`. */
export async function openApp(device: "wasm" | "webgpu", downloads: string): Promise<Session> {
  const { server, url } = await serveWeb(resolve("dist-web"));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--headless=new", ...QUIET, ...(device === "webgpu" ? WEBGPU : [])],
    defaultViewport: { width: 1280, height: 1000 },
  });
  const log: string[] = [];
  try {
    const page = await browser.newPage();
    page.on("console", (m) => log.push(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => log.push(`pageerror: ${(e as Error).message}`));
    mkdirSync(downloads, { recursive: true });
    const cdp = await page.createCDPSession();
    await cdp.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: downloads });
    await page.goto(`${url}?device=${device}`, { waitUntil: "load" });
    return {
      browser,
      page,
      url,
      downloads,
      log,
      async close() {
        await browser.close();
        server.close();
      },
    };
  } catch (e) {
    await browser.close();
    server.close();
    throw e;
  }
}

/** Waits until `fn` (run in the page) returns a truthy value; fails with the page's log after `ms`. */
export async function waitFor<T>(s: Session, fn: string, ms: number, what: string): Promise<T> {
  try {
    const h = await s.page.waitForFunction(fn, { timeout: ms, polling: 100 });
    return (await h.jsonValue()) as T;
  } catch (e) {
    const errors = await s.page.evaluate("window.boftPage && window.boftPage.errors").catch(() => null);
    throw new Error(`${what}: ${(e as Error).message}\npage errors: ${JSON.stringify(errors)}\n${s.log.slice(-20).join("\n")}`);
  }
}
