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
