/**
 * Reading the caller's options: each read exactly once (a getter may throw, or answer
 * differently the second time), each checked synchronously, before anything is created. Every
 * helper throws an {@link InvalidOptionError} naming the option, and builds its message with
 * {@link describeValue}, which never throws.
 */
import { MAX_TIMER_MS } from './deadline.js';
import { describeError, describeValue } from './describe.js';
import { InvalidOptionError } from './errors.js';

/**
 * `options` must be an object: `new Virtiofsd()`, `new Virtiofsd(null)` or a string are refused
 * with an {@link InvalidOptionError} naming `option`, telling to call `what({ ... })`.
 */
export function requireOptionsObject(what: string, options: unknown, option = 'options'): object {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError(option, `${describeValue(options)} is not an object; call ${what}({ ... })`);
  }
  return options;
}

/**
 * A snapshot of `keys` of `options`, each property read once. A getter (or Proxy trap) that
 * throws becomes an {@link InvalidOptionError} naming that key (after `prefix`, e.g. `cmd.`),
 * with the thrown value as `cause`.
 */
export function readOptions<K extends string>(
  options: object,
  keys: readonly K[],
  prefix = '',
): { [P in K]?: unknown } {
  const out: { [P in K]?: unknown } = {};
  for (const key of keys) {
    try {
      out[key] = (options as Record<string, unknown>)[key];
    } catch (err) {
      throw new InvalidOptionError(prefix + key, `reading it threw (${describeError(err)}); pass a plain value`, {
        cause: err,
      });
    }
  }
  return out;
}

/**
 * Refuse an option name that `what` does not take: a typo (`uidMap`, `socketGroup`) would
 * otherwise be ignored and the call succeed without it. Reads only the own enumerable string
 * keys of `options` (what a literal, a spread or JSON gives; a key set to `undefined` counts).
 * The error is an {@link InvalidOptionError} for the key (after `prefix`), naming `what` (the
 * call, `new Virtiofsd()`, or the option, `idmap`) and the
 * nearest option it does take: `hints` first (another name for one of ours: `uidMap` →
 * `idmap`), else the known option the key starts with or is a few edits away from (case and `_`
 * ignored), else the known option sharing its longest prefix of at least 4 characters.
 * `refuse` words the message for keys that are known elsewhere but not here (a daemon's own
 * socket). A Proxy whose `ownKeys` trap throws is let through: {@link readOptions} names the
 * key it cannot read.
 */
export function rejectUnknownOptions(
  what: string,
  options: object,
  known: readonly string[],
  {
    hints = {},
    prefix = '',
    refuse = {},
  }: {
    hints?: Readonly<Record<string, string>>;
    prefix?: string;
    refuse?: Readonly<Record<string, string>>;
  } = {},
): void {
  let own: string[];
  try {
    own = Object.keys(options);
  } catch {
    return;
  }
  for (const key of own) {
    if (known.includes(key)) continue;
    if (Object.hasOwn(refuse, key)) throw new InvalidOptionError(prefix + key, refuse[key]);
    const near = Object.hasOwn(hints, key) ? hints[key] : nearestOption(key, known);
    const list = known.length <= 12 ? ` (it takes ${known.join(', ')})` : '';
    throw new InvalidOptionError(
      prefix + key,
      `is not an option of ${what}${near ? `; did you mean ${near}?` : ''}${list}`,
    );
  }
}

/**
 * The known option `key` most likely stands for, if any: the longest one it starts with
 * (`memorySize` → `memory`), else the closest by edit distance, at most 3, else the one that
 * shares the longest prefix of at least 4 characters with it (`socketGroup` → `socketPath`).
 * Case and `_` are ignored (`queue_size` → `queueSize`).
 */
export function nearestOption(key: string, known: readonly string[]): string | undefined {
  const norm = (s: string): string => s.toLowerCase().replace(/_/g, '');
  const typed = norm(key);
  const prefix = known.filter((k) => typed.startsWith(norm(k))).sort((a, b) => b.length - a.length)[0];
  if (prefix) return prefix;
  let best: string | undefined;
  let bestDistance = 4;
  for (const k of known) {
    const d = editDistance(typed, norm(k));
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  if (best) return best;
  let longest = 3;
  for (const k of known) {
    const n = norm(k);
    let i = 0;
    while (i < n.length && i < typed.length && n[i] === typed[i]) i++;
    if (i > longest) [best, longest] = [k, i];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}

/** A whole number of milliseconds that setTimeout honours: 1 to 2**31-1. `undefined` gives `dflt`. */
export function requireTimeout(option: string, value: unknown, dflt: number): number {
  if (value === undefined) return dflt;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_TIMER_MS) {
    throw new InvalidOptionError(
      option,
      `${describeValue(value)} is not a timeout; use a whole number of milliseconds from 1 to ${MAX_TIMER_MS}`,
    );
  }
  return value;
}

/** `true` or `false`; `undefined` gives `dflt`. */
export function requireBoolean(option: string, value: unknown, dflt: boolean): boolean {
  if (value === undefined) return dflt;
  if (typeof value !== 'boolean')
    throw new InvalidOptionError(option, `${describeValue(value)} is not a boolean; use true or false`);
  return value;
}

/** One of `allowed`; `undefined` gives `dflt`. */
export function requireOneOf<T extends string>(
  option: string,
  value: unknown,
  allowed: readonly T[],
  dflt: T,
  what: string,
): T {
  if (value === undefined) return dflt;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new InvalidOptionError(option, `${describeValue(value)} is not ${what}; use one of ${allowed.join(', ')}`);
  }
  return value as T;
}

/**
 * An environment for a daemon: a plain object (or `process.env`) of `NAME: value` strings,
 * copied once. `undefined` values are left out (as child_process does); `null`, numbers and
 * other non-strings are refused rather than stringified, as are names that are empty or hold
 * `=` or NUL, values that hold NUL, and Symbol keys. `undefined` (the option unset) gives undefined.
 */
export function requireEnv(option: string, value: unknown): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  const fix = 'pass an object of NAME: value strings, e.g. { ...process.env, RUST_LOG: "debug" }';
  let keys: string[];
  try {
    const proto: unknown = value !== null && typeof value === 'object' ? Object.getPrototypeOf(value) : undefined;
    if (
      value === null ||
      typeof value !== 'object' ||
      Array.isArray(value) ||
      (value !== process.env && proto !== Object.prototype && proto !== null)
    ) {
      throw new InvalidOptionError(option, `${describeValue(value)} is not a plain object; ${fix}`);
    }
    if (Object.getOwnPropertySymbols(value).length > 0) {
      throw new InvalidOptionError(option, `has a Symbol key, which cannot name an environment variable; ${fix}`);
    }
    keys = Object.keys(value);
  } catch (err) {
    if (err instanceof InvalidOptionError) throw err;
    throw new InvalidOptionError(option, `cannot be read (${describeError(err)}); ${fix}`, { cause: err });
  }
  const env: Record<string, string> = {};
  for (const key of keys) {
    if (key === '' || key.includes('=') || key.includes('\0')) {
      throw new InvalidOptionError(
        option,
        `${describeValue(key)} cannot name an environment variable (empty, or holds '=' or NUL); ${fix}`,
      );
    }
    let v: unknown;
    try {
      v = (value as Record<string, unknown>)[key];
    } catch (err) {
      throw new InvalidOptionError(`${option}.${key}`, `reading it threw (${describeError(err)}); pass a string`, {
        cause: err,
      });
    }
    if (v === undefined) continue;
    if (typeof v !== 'string') {
      throw new InvalidOptionError(
        `${option}.${key}`,
        `${describeValue(v)} is not a string; pass the value as a string (or undefined to leave it out)`,
      );
    }
    if (v.includes('\0')) throw new InvalidOptionError(`${option}.${key}`, 'contains a NUL byte; remove it');
    env[key] = v;
  }
  return env;
}
