/**
 * Device choice in Node. wasm needs nothing; WebGPU comes from the optional `webgpu` package (Dawn's Node binding),
 * which has to be put where a browser keeps it (navigator.gpu) before the engine asks for an adapter.
 */
import { ConfigError } from "../errors.js";
import { initDevice, type Device } from "../engine/index.js";

/** The Vulkan driver settings that let Dawn find Chromium's software GPU (SwiftShader) on a machine without a GPU. */
const SWIFTSHADER_HINT =
  "On Linux without a GPU, Debian's chromium ships a software one: LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json";

/**
 * Puts WebGPU from the optional `webgpu` package on `navigator.gpu` (and its classes, such as GPUBufferUsage, on
 * globalThis), unless the runtime already has one. Throws a ConfigError naming the package when it is not installed.
 */
export async function provideNodeWebGpu(): Promise<void> {
  const g = globalThis as { navigator?: { gpu?: unknown; userAgent?: string } };
  if (g.navigator?.gpu) return;
  let mod: { create(flags: string[]): unknown; globals: Record<string, unknown> };
  try {
    // A variable specifier: `webgpu` is optional, and bundlers must not try to resolve it for the browser.
    const name = "webgpu";
    mod = (await import(name)) as typeof mod;
  } catch (e) {
    throw new ConfigError(`webgpu: the optional package \`webgpu\` is not installed or failed to load (${(e as Error).message.split("\n")[0]}); npm install webgpu`);
  }
  Object.assign(globalThis, mod.globals);
  const gpu = mod.create([]);
  if (g.navigator) Object.defineProperty(g.navigator, "gpu", { value: gpu, configurable: true });
  else Object.defineProperty(globalThis, "navigator", { value: { gpu, userAgent: `Node.js/${process.versions.node}` }, configurable: true });
}

/**
 * Selects the compute device for this process: `device` if given, else the BOFT_DEVICE environment variable, else
 * wasm. "webgpu" loads the optional `webgpu` package first. Throws a ConfigError (one line) when the device is unknown
 * or has no adapter.
 */
export async function selectDevice(device?: string): Promise<Device> {
  const want = device ?? process.env.BOFT_DEVICE ?? "wasm";
  if (want !== "wasm" && want !== "webgpu" && want !== "auto") throw new ConfigError(`unknown device "${want}" (wasm, webgpu or auto)`);
  if (want === "wasm") return initDevice("wasm");
  try {
    await provideNodeWebGpu();
  } catch (e) {
    if (want === "auto") return initDevice("wasm");
    throw e;
  }
  try {
    return await initDevice(want);
  } catch (e) {
    if (e instanceof ConfigError && want === "webgpu") throw new ConfigError(`${e.message} ${SWIFTSHADER_HINT}`);
    throw e;
  }
}

/**
 * boft's `init` for Node: chooses the device before any model is built. "wasm" (the default) works everywhere;
 * "webgpu" loads the optional `webgpu` package first (on Linux without a GPU it needs Chromium's SwiftShader, see the
 * error message); "auto" takes WebGPU when an adapter is found and wasm otherwise. Without a device, the BOFT_DEVICE
 * environment variable decides. Throws a ConfigError (one line) when the device is unknown or has no adapter.
 *
 * @example await init({ device: "webgpu" });
 */
export async function init(o: { device?: Device | "auto" } = {}): Promise<{ device: Device }> {
  return { device: await selectDevice(o.device) };
}
