/**
 * The `boft` command line. Each sub-command lives in cli/commands/<name>.ts; this file parses, dispatches and
 * turns errors into one line on stderr and a non-zero exit (1 for bad input, 2 for bad usage).
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { BoftError, init } from "boft/node";
import { type Command, UsageError } from "./command.js";
import { mergeCommand } from "./commands/merge.js";
import { inspectCommand } from "./commands/inspect.js";
import { trainCommand } from "./commands/train.js";
import { evalCommand } from "./commands/eval.js";
import { generateCommand } from "./commands/generate.js";

const commands: Command[] = [trainCommand, evalCommand, mergeCommand, inspectCommand, generateCommand];

/** The package's version, from the package.json shipped beside dist/ (bin/boft.js runs dist/cli/main.js). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { name: string; version: string };
  return `${pkg.name} ${pkg.version}`;
}

function help(): string {
  const lines = ["usage: boft <command> [options]", "       boft --version", "", "commands:"];
  for (const c of commands) lines.push(`  ${c.name.padEnd(10)} ${c.summary}`);
  lines.push("", "Every command takes --device wasm|webgpu|auto (default: BOFT_DEVICE, else wasm).");
  lines.push("Run `boft <command> --help` for a command's options.");
  return lines.join("\n");
}

function commandHelp(c: Command): string {
  const lines = [`usage: ${c.usage}`, "", c.summary, "", "options:"];
  for (const [name, o] of Object.entries(c.options)) {
    const flag = o.type === "string" ? `--${name} <${o.valueName ?? name}>` : `--${name}`;
    lines.push(`  ${flag.padEnd(30)} ${o.description}`);
  }
  return lines.join("\n");
}

/** Takes the global `--device <d>` / `--device=<d>` out of a command's arguments. */
function takeDevice(args: string[]): { device: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let device: string | undefined;
  for (let k = 0; k < args.length; k++) {
    if (args[k] === "--device") {
      if (k + 1 >= args.length) throw new UsageError("--device needs a value (wasm, webgpu or auto)");
      device = args[++k];
    } else if (args[k].startsWith("--device=")) device = args[k].slice("--device=".length);
    else rest.push(args[k]);
  }
  return { device, rest };
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(help());
    return name ? 0 : 2;
  }
  if (name === "--version" || name === "-V" || name === "version") {
    console.log(version());
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    console.error(`boft: unknown command "${name}"\n\n${help()}`);
    return 2;
  }
  if (args.includes("--help") || args.includes("-h")) {
    console.log(commandHelp(command));
    return 0;
  }
  try {
    const { device, rest } = takeDevice(args);
    await init({ device: device as "wasm" | "webgpu" | "auto" | undefined });
    const options = Object.fromEntries(Object.entries(command.options).map(([k, { description: _d, valueName: _v, ...o }]) => [k, o]));
    const { values, positionals } = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
    return await command.run(values as Record<string, string | boolean | string[] | undefined>, positionals);
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      console.error(`boft ${name}: ${(e as Error).message}\nusage: ${command.usage}`);
      return 2;
    }
    if (e instanceof BoftError) {
      console.error(`boft ${name}: ${e.message}`);
      return 1;
    }
    const err = e as NodeJS.ErrnoException;
    if (err.code && err.path) {
      console.error(`boft ${name}: ${err.path}: ${err.code === "ENOENT" ? "no such file or folder" : err.message}`);
      return 1;
    }
    throw e;
  }
}

process.exitCode = await main(process.argv.slice(2));
