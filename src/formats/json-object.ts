/** The one way a config file's JSON is read: text parsed, top level a plain object, messages naming the source. */
import { FormatError } from "../errors.js";

/** `input` as a JSON object: text is parsed; anything else must already be one. Throws FormatError. */
export function jsonObject(input: string | unknown, source: string): Record<string, unknown> {
  let raw: unknown = input;
  if (typeof input === "string") {
    try {
      raw = JSON.parse(input);
    } catch (e) {
      throw new FormatError(`${source}: not valid JSON (${(e as Error).message}).`);
    }
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new FormatError(`${source}: expected a JSON object, got ${JSON.stringify(raw)?.slice(0, 40)}.`);
  }
  return raw as Record<string, unknown>;
}

/**
 * A parsed JSON value shown in an error message: short and safe for any input. JSON.stringify would overflow the
 * stack on a deeply nested value (a corrupt file can nest 100k deep; JSON.parse copes) and print megabytes for a
 * large one, so nesting is cut at 3 levels, lists and objects at 8 entries, the whole at `max` characters.
 * `undefined` (a missing key) shows as "missing".
 */
export function preview(value: unknown, max = 120): string {
  const show = (v: unknown, depth: number): string => {
    if (v === undefined) return "missing";
    if (v === null || typeof v !== "object") return typeof v === "string" ? JSON.stringify(v.length > max ? `${v.slice(0, max)}…` : v) : String(v);
    if (depth >= 3) return Array.isArray(v) ? "[…]" : "{…}";
    const entries = Array.isArray(v) ? v : Object.entries(v);
    const shown = entries.slice(0, 8).map((e) => (Array.isArray(v) ? show(e, depth + 1) : `${JSON.stringify((e as [string, unknown])[0])}:${show((e as [string, unknown])[1], depth + 1)}`));
    if (entries.length > 8) shown.push("…");
    return Array.isArray(v) ? `[${shown.join(",")}]` : `{${shown.join(",")}}`;
  };
  const s = show(value, 0);
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
