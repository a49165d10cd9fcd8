/**
 * Python's `json.dumps(obj, indent=2, sort_keys=True)` byte for byte, which is how PEFT writes adapter_config.json.
 * Differences from JSON.stringify that matter: floats use Python's repr (6e-05, 0.0, 1e-07), every non-printable-ASCII
 * character is escaped as \uXXXX (ensure_ascii), keys are sorted, empty containers stay on one line.
 * JS has one number type, so a value that Python holds as a float is wrapped in PyFloat; bare numbers are ints.
 */

/** A number Python would hold as a float (written with repr, so 0 → "0.0"). */
export class PyFloat {
  constructor(readonly value: number) {}
}

export type PyJson = null | boolean | number | string | PyFloat | PyJson[] | { [key: string]: PyJson };

/** `json.dumps(value, indent=2, sort_keys=True)` (ensure_ascii=True; no trailing newline). */
export function pyJsonDumps(value: PyJson, indent = 2): string {
  return dump(value, indent, 0);
}

function dump(v: PyJson, indent: number, depth: number): string {
  if (v === null) return "null";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) throw new TypeError(`pyJsonDumps: ${v} is not an int; wrap floats in PyFloat`);
    return String(v);
  }
  if (typeof v === "string") return pyString(v);
  if (v instanceof PyFloat) return pyFloatRepr(v.value);
  const pad = "\n" + " ".repeat(indent * (depth + 1));
  const end = "\n" + " ".repeat(indent * depth);
  if (Array.isArray(v)) {
    if (v.length === 0) return "[]";
    return "[" + v.map((x) => pad + dump(x, indent, depth + 1)).join(",") + end + "]";
  }
  // Python sorts str keys by code point; for the ASCII keys of a config this equals the UTF-16 order of sort().
  const keys = Object.keys(v).sort();
  if (keys.length === 0) return "{}";
  return "{" + keys.map((k) => pad + pyString(k) + ": " + dump(v[k], indent, depth + 1)).join(",") + end + "}";
}

/** Python `repr(float)`: shortest round-trip digits, exponent form when exp < -4 or exp >= 16. */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "Infinity";
  if (x === -Infinity) return "-Infinity";
  const sign = x < 0 || Object.is(x, -0) ? "-" : "";
  if (x === 0) return `${sign}0.0`;
  const { digits, exp } = shortestDigits(Math.abs(x));
  if (exp < -4 || exp >= 16) {
    const mant = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = String(Math.abs(exp)).padStart(2, "0");
    return `${sign}${mant}e${exp < 0 ? "-" : "+"}${e}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
  const frac = digits.slice(exp + 1);
  return `${sign}${intPart}.${frac === "" ? "0" : frac}`;
}

/** Significant digits d₀d₁… and decimal exponent of d₀, taken from JS's (also shortest round-trip) toString. */
function shortestDigits(x: number): { digits: string; exp: number } {
  const s = x.toString();
  const ePos = s.indexOf("e");
  if (ePos >= 0) {
    return { digits: s.slice(0, ePos).replace(".", ""), exp: Number(s.slice(ePos + 1)) };
  }
  const [ip, fp = ""] = s.split(".");
  if (ip !== "0") return { digits: (ip + fp).replace(/0+$/, ""), exp: ip.length - 1 };
  const zeros = fp.length - fp.replace(/^0+/, "").length;
  return { digits: fp.slice(zeros), exp: -(zeros + 1) };
}

/** A JSON string as Python writes it with ensure_ascii=True (lower-case hex, DEL escaped too). */
export function pyString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ch = s[i];
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\b") out += "\\b";
    else if (ch === "\f") out += "\\f";
    // Per UTF-16 unit, so astral characters become surrogate pairs, as in Python.
    else if (c < 0x20 || c > 0x7e) out += "\\u" + c.toString(16).padStart(4, "0");
    else out += ch;
  }
  return out + '"';
}
