/**
 * Checks of values shared by both daemons, that need nothing but the value: each throws an
 * {@link InvalidOptionError} naming the option, what is wrong with it and how to fix it, before
 * anything is created. The checks that ask the file system are in file-checks.ts.
 */
import { describeError, describeValue } from './describe.js';
import { InvalidOptionError } from './errors.js';

/** A unix socket path holds at most 107 bytes (sun_path is 108 with the NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;

/** A non-empty string without NUL bytes (C strings end at the first NUL). */
export function requireString(option: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') {
    throw new InvalidOptionError(option, `must be a non-empty string, got ${describeValue(value)}`);
  }
  rejectNul(option, value);
  return value;
}

/** The kernel's highest pid (PID_MAX_LIMIT on 64-bit). */
export const MAX_PID = 4194304;

/** The largest pid_t. */
const MAX_PID_T = 2 ** 31 - 1;

/**
 * A process id: an integer from 1 to `max` ({@link MAX_PID} unless said). Anything else would
 * reach kill() and /proc as another process: 0 is our own process group, -n is pid n, 1.5 reads
 * as 1, and 2³² + n as n.
 */
export function requirePid(option: string, value: unknown, max = MAX_PID): number {
  if (!isPid(value, max)) {
    throw new InvalidOptionError(option, `is ${describeValue(value)}, not a process id (an integer, 1 to ${max})`);
  }
  return value;
}

function isPid(value: unknown, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= max;
}

/**
 * An array of process ids to ask about, each named `option[i]` when it is not one: any pid_t
 * from 1 on (one above the kernel's limit names no process, which is an answer, not an error).
 */
export function requirePids(option: string, value: unknown): number[] {
  if (!Array.isArray(value)) {
    throw new InvalidOptionError(option, `must be an array of process ids, got ${describeValue(value)}`);
  }
  for (let i = 0; i < value.length; i++) {
    // The entry's name is made only for the error: these lists run to a thousand pids a tick.
    if (!isPid(value[i], MAX_PID_T)) requirePid(`${option}[${i}]`, value[i], MAX_PID_T);
  }
  return value as number[];
}

export function rejectNul(option: string, value: string): void {
  if (value.includes('\0')) {
    throw new InvalidOptionError(option, `contains a NUL byte (${describeValue(value)}); remove it`);
  }
}

/** More entries than any program can receive (the kernel's ARG_MAX is a few MiB): a bound on the copy, too. */
const MAX_ARGS = 1 << 16;

/**
 * A copy of an array of strings without NUL bytes; `undefined` gives `[]`. The array is read
 * once, `length` first and each index once, so that a getter, a Proxy or an array that changes
 * while it is read cannot make the copy differ from what was checked. Holes are refused.
 */
export function requireArgs(option: string, value: unknown): string[] {
  if (value === undefined) return [];
  let length: unknown;
  try {
    if (!Array.isArray(value))
      throw new InvalidOptionError(option, `must be an array of strings, got ${describeValue(value)}`);
    length = value.length;
  } catch (err) {
    if (err instanceof InvalidOptionError) throw err;
    throw new InvalidOptionError(option, `cannot be read (${describeError(err)}); pass a plain array of strings`, {
      cause: err,
    });
  }
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length > MAX_ARGS) {
    throw new InvalidOptionError(option, `has ${describeValue(length)} entries; pass at most ${MAX_ARGS} strings`);
  }
  const copy: string[] = [];
  for (let i = 0; i < length; i++) {
    let arg: unknown;
    try {
      arg = (value as unknown[])[i];
    } catch (err) {
      throw new InvalidOptionError(
        `${option}[${i}]`,
        `reading it threw (${describeError(err)}); pass a plain array of strings`,
        {
          cause: err,
        },
      );
    }
    if (typeof arg !== 'string')
      throw new InvalidOptionError(`${option}[${i}]`, `must be a string, got ${describeValue(arg)}`);
    rejectNul(`${option}[${i}]`, arg);
    copy.push(arg);
  }
  return copy;
}

/**
 * A socket path that fits sun_path: a non-empty string without NUL of at most
 * {@link MAX_SOCKET_PATH_BYTES} bytes. Synchronous; {@link checkSocketPath} adds the directory.
 */
export function requireSocketPath(option: string, value: unknown): string {
  const socketPath = requireString(option, value);
  const bytes = Buffer.byteLength(socketPath);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new InvalidOptionError(
      option,
      `'${socketPath}' is ${bytes} bytes; a unix socket path holds at most ${MAX_SOCKET_PATH_BYTES}. Use a shorter path`,
    );
  }
  return socketPath;
}
