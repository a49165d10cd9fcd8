/** Running the built `boft` command from tests, and the repository paths its runs use. */
import { spawnSync } from "node:child_process";
import * as path from "node:path";

export const BIN = path.join(process.cwd(), "bin", "boft.js");
export const BROWN_LM = path.join(process.cwd(), "assets", "brown-lm");
export const TEXT = path.join(process.cwd(), "examples", "text", "train.jsonl");

/** `boft <args>` in a child process, to completion. */
export function boft(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
