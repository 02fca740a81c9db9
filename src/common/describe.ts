/**
 * A short description of any value for an error message. It never throws: error messages are
 * built from what the caller gave, and that may be a BigInt (JSON.stringify throws), a Symbol
 * (template literals throw), a Proxy, or an object whose toString throws.
 */

/** Longest string value quoted in full; longer ones are cut with `…`. */
const MAX_QUOTED = 120;

/** `'abc'`, `42`, `10n`, `Symbol(x)`, `null`, `an array`, `an object`, `a function`. */
export function describeValue(value: unknown): string {
  try {
    switch (typeof value) {
      case 'string': {
        const s = value.length > MAX_QUOTED ? `${value.slice(0, MAX_QUOTED)}…` : value;
        return JSON.stringify(s);
      }
      case 'number':
      case 'boolean':
      case 'undefined':
        return String(value);
      case 'bigint':
        return `${value.toString()}n (a BigInt)`;
      case 'symbol':
        return `${value.toString()} (a Symbol)`;
      case 'function':
        return 'a function';
      default:
        if (value === null) return 'null';
        return Array.isArray(value) ? 'an array' : 'an object';
    }
  } catch {
    // A revoked Proxy throws even on Array.isArray.
    return `a value of type ${typeof value}`;
  }
}

/** The message of anything thrown, without ever throwing itself. */
export function describeError(err: unknown): string {
  try {
    if (err instanceof Error) return String(err.message);
    return describeValue(err);
  } catch {
    return 'an error that cannot be described';
  }
}
