/**
 * How a received value is shown in an error message: strings quoted, numbers as written,
 * functions and objects by name, so that the message says what was passed.
 *
 * @module
 */

/**
 * Describes a value for an error message, e.g. `0`, `"5"`, `NaN`, `function load`, `an array`.
 *
 * @example Describing received values
 * ```ts
 * import { describeValue } from "./describe_value.ts";
 * import assert from "node:assert/strict";
 * assert.equal(describeValue("5"), '"5"');
 * assert.equal(describeValue(NaN), "NaN");
 * ```
 */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
    case "number":
      return Object.is(value, -0) ? "-0" : String(value);
    case "bigint":
      return `${value}n`;
    case "function": {
      const source = Function.prototype.toString.call(value);
      const kind = source.startsWith("class") ? "class" : "function";
      return value.name ? `${kind} ${value.name}` : `an anonymous ${kind}`;
    }
    case "object": {
      if (value === null) return "null";
      if (Array.isArray(value)) return `an array of ${value.length}`;
      const name = Object.getPrototypeOf(value)?.constructor?.name;
      return typeof name === "string" && name !== "Object" ? `a ${name}` : "an object";
    }
    default:
      return String(value);
  }
}

/**
 * A circuit's (or a group's) name as every message quotes it: in double quotes, with quotes
 * and control characters in the name escaped, e.g. `Circuit "db" is open`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quoteName } from "./describe_value.ts";
 * assert.equal(quoteName("db"), '"db"');
 * assert.equal(quoteName('say "hi"'), '"say \\"hi\\""');
 * ```
 */
export function quoteName(name: string): string {
  return JSON.stringify(name);
}
