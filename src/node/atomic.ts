/**
 * Atomic file replacement: write a temp file beside the target, fsync, rename over the target.
 * A crash or a thrown error leaves either the old file or the new one, never half of one.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";

/** Node's single read/write call is capped near 2 GiB, so big buffers go in slices. */
export const IO_CHUNK = 1 << 30;

/** The temp name used for `path`; per-process so two processes writing one target do not collide. */
export function tempPathFor(path: string): string {
  return `${path}.tmp-${process.pid}`;
}

/** Whether process `pid` is running (a process of another user counts: it cannot be signalled, but it exists). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes what killed processes left under the temp names of `targets` (`<target>.<tag>-<pid>` for each tag, such
 * as atomic.ts's "tmp" or a merge's "merge"), and returns the removed paths. A temp file of a process that is still
 * running is kept: it may be that process's write in progress.
 */
export function removeLeftovers(targets: readonly string[], tags: readonly string[]): string[] {
  const removed: string[] = [];
  const dirs = new Map<string, Set<string>>();
  for (const t of targets) {
    const dir = nodePath.dirname(t);
    dirs.set(dir, (dirs.get(dir) ?? new Set()).add(nodePath.basename(t)));
  }
  const temp = new RegExp(`^(.*)\\.(?:${tags.join("|")})-(\\d+)$`);
  for (const [dir, names] of dirs) {
    if (!fs.existsSync(dir)) continue;
    for (const f of fs.readdirSync(dir)) {
      const m = temp.exec(f);
      if (!m || !names.has(m[1]) || processAlive(Number(m[2]))) continue;
      fs.rmSync(nodePath.join(dir, f), { force: true });
      removed.push(nodePath.join(dir, f));
    }
  }
  return removed;
}

/**
 * Runs `fill(fd)` on a fresh temp file, then renames it to `path`. If `fill` (or anything after it)
 * throws, the temp file is deleted, `path` keeps its previous content, and the error propagates.
 */
export function writeAtomically(path: string, fill: (fd: number) => void): void {
  const tmp = tempPathFor(path);
  let fd: number | undefined = fs.openSync(tmp, "w");
  try {
    fill(fd);
    // Without fsync the rename can reach the disk before the data, leaving an empty file after a crash.
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // The original error is the one worth reporting.
      }
    }
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Atomically replaces `path` with `data` (strings are written as UTF-8). */
export function atomicWriteFile(path: string, data: Uint8Array | string): void {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  writeAtomically(path, (fd) => writeAll(fd, bytes));
}

/** Writes all of `bytes` at the fd's current position; writeSync may write less than asked. */
export function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) {
    done += fs.writeSync(fd, bytes, done, Math.min(bytes.byteLength - done, IO_CHUNK));
  }
}
