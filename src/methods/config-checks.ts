/**
 * Checks shared by the BOFT, OFT and LoRA configs. Messages quote PEFT where PEFT has the check; the others guard
 * values PEFT accepts at config time but that would crash later inside torch with an unrelated error.
 */
import { ConfigError, ShapeError } from "../errors.js";

export function requireInt(field: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) {
    const bound = min === Number.NEGATIVE_INFINITY ? "an integer" : `an integer >= ${min}`;
    throw new ConfigError(`config: ${field} must be ${bound} (${field}=${v}).`);
  }
}

export function requireProbability(field: string, v: number): void {
  if (!(typeof v === "number" && v >= 0 && v <= 1)) {
    throw new ConfigError(`config: ${field} must be a probability in [0, 1] (${field}=${v}).`);
  }
}

/** PEFT raises this when marking parameters trainable (tuners_utils `_mark_only_adapters_as_trainable`). */
export function checkBias(bias: string, allowed: readonly string[]): void {
  if (!allowed.includes(bias)) throw new ConfigError(`Requested bias: ${bias}, is not implemented.`);
}

/** PEFT accepts only the booleans (`reset_*_parameters`); any other value is "Unknown initialization". */
export function checkInitWeights(v: unknown): void {
  if (typeof v !== "boolean") throw new ConfigError(`Unknown initialization init_weights=${pyRepr(v)}`);
}

/** Python's repr() for the JSON values a config can hold, for messages that quote PEFT. */
export function pyRepr(v: unknown): string {
  if (v === null || v === undefined) return "None";
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "string") return `'${v.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(", ")}]`;
  if (typeof v === "object") {
    return `{${Object.entries(v).map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`).join(", ")}}`;
  }
  return String(v);
}

export function dropUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A layer input dim must be a positive integer; PEFT never sees anything else, so this has no PEFT message. */
export function requireLayerDim(where: string, n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new ShapeError(`${where}: layer input dim must be a positive integer (n=${n}).`);
}

/**
 * PEFT's rule for a layer size given two ways (BOFT block size / block count, OFT r / block size): exactly one
 * must be non-zero. Same two messages as PEFT's __post_init__, with the fields' wire names.
 */
export function requireExactlyOne(first: [string, number], second: [string, number]): void {
  const [[a, x], [b, y]] = [first, second];
  if (x === 0 && y === 0) {
    throw new ConfigError(`Either \`${a}\` or \`${b}\` must be non-zero. Currently, ${a} = ${x} and ${b} = ${y}.`);
  }
  if (x !== 0 && y !== 0) {
    throw new ConfigError(
      `You can only specify either ${a} (${x}) or ${b} (${y}), but not both simultaneously, because ${a} x ${b} == in_features.`,
    );
  }
}
