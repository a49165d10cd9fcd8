/**
 * Runs a script in a Node child with WebGPU from the optional `webgpu` package. Dawn finds Chromium's software Vulkan
 * driver (SwiftShader) only through LD_LIBRARY_PATH, which a process reads when it starts, hence the child.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";

const SWIFTSHADER = "/usr/lib/chromium/vk_swiftshader_icd.json";

/** Runs `body` (an ES module) in a Node child with WebGPU selected; returns its stdout lines, or why it cannot. */
export function runOnNodeWebGpu(body: string): { skip: string } | { stdout: string; stderr: string; status: number | null } {
  let webgpu = true;
  try {
    import.meta.resolve("webgpu");
  } catch {
    webgpu = false;
  }
  if (!webgpu) return { skip: "the optional package `webgpu` is not installed" };
  const env = { ...process.env };
  if (existsSync(SWIFTSHADER)) {
    env.LD_LIBRARY_PATH = ["/usr/lib/chromium", env.LD_LIBRARY_PATH].filter(Boolean).join(":");
    env.VK_ICD_FILENAMES ??= SWIFTSHADER;
  }
  // Inside the repository, so the script resolves `boft` (the package's own name) like its tests do.
  const dir = mkdtempSync(join(resolve("dist"), "webgpu-probe-"));
  try {
    const file = join(dir, "probe.mjs");
    writeFileSync(file, body);
    const r = spawnSync(process.execPath, [file], { env, encoding: "utf8", timeout: 300_000 });
    if (/gave no adapter|no navigator\.gpu/.test(r.stderr)) {
      return { skip: `no WebGPU adapter in Node (${existsSync(SWIFTSHADER) ? "Dawn rejected Chromium's SwiftShader" : "no GPU, and no Debian chromium with SwiftShader"})` };
    }
    return { stdout: r.stdout, stderr: r.stderr, status: r.status };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

