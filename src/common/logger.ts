/**
 * Logging that can never break a daemon's lifecycle. The caller's logger (or a default pino
 * logger on stderr) is wrapped: a record whose method, serializer or sink throws is dropped, the
 * first such failure is reported once as a process warning, and nothing propagates into the
 * start, the output pipes or the exit report.
 */
import pino, { type Logger } from 'pino';
import { describeError, describeValue } from './describe.js';
import { InvalidOptionError, VirtiofsDaemonError } from './errors.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A logger's level methods, as pino has them: what the daemon layers take. */
export type LogMethods = Record<LogLevel, (objOrMsg?: unknown, msg?: string) => void>;

/** What this package logs through ({@link safeLog}): level methods that never throw. */
export type Log = LogMethods & {
  /**
   * Whether a record at `level` would be written (pino's `isLevelEnabled`; true for a logger
   * without it): a record that is not is not built at all.
   */
  enabled(level: LogLevel): boolean;
};

let root: Logger | undefined;

/** The logger used when the caller passes none: pino on stderr (stdout belongs to the program), created on first use. */
function defaultLogger(): Logger {
  root ??= pino({ name: 'virtiofs-daemon' }, pino.destination(2));
  return root;
}

/** True when `value` has what we call on a pino logger: `child` and every level method. */
function looksLikeLogger(value: unknown): value is Logger {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return false;
  const l = value as Record<string, unknown>;
  return typeof l.child === 'function' && LOG_LEVELS.every((level) => typeof l[level] === 'function');
}

/**
 * The caller's `logger` option, checked to look like a pino logger (undefined means the default).
 * Throws an {@link InvalidOptionError} naming `option` otherwise.
 */
export function requireLogger(option: string, value: unknown): Logger | undefined {
  if (value === undefined) return undefined;
  let ok: boolean;
  try {
    ok = looksLikeLogger(value);
  } catch (err) {
    throw new InvalidOptionError(option, `reading its methods threw (${describeError(err)}); pass a pino logger`, {
      cause: err,
    });
  }
  if (!ok) {
    throw new InvalidOptionError(
      option,
      `${describeValue(value)} is not a pino logger (it needs child() and ${LOG_LEVELS.join('/')}() methods); pass pino() or a child of one`,
    );
  }
  return value as Logger;
}

/**
 * The children made so far, per parent logger and subsystem, with the parent's level when each
 * was made: a host that runs a thousand daemons on one logger keeps one child, not a thousand
 * (a pino child with its bindings is ~1 KB of heap).
 */
const children = new WeakMap<object, Map<string, { level: unknown; log: Log }>>();

/**
 * The logger for daemons of `subsystem`: a child of the caller's (or of the default) tagged
 * `{ subsystem }`, wrapped by {@link safeLog}; made once per parent logger and subsystem, and
 * again when the parent's level has changed since (a pino child keeps the level it was made
 * with). Throws an {@link InvalidOptionError} when `child()` throws or returns something that
 * is not a logger.
 */
export function subsystemLog(subsystem: string, logger: Logger | undefined): Log {
  const parent = logger ?? defaultLogger();
  let bySubsystem = children.get(parent);
  let level: unknown;
  try {
    level = parent.level;
  } catch {
    level = undefined; // a logger whose level cannot be read: the child is made afresh each time
  }
  const known = bySubsystem?.get(subsystem);
  if (known && known.level === level && level !== undefined) return known.log;
  let child: unknown;
  try {
    child = parent.child({ subsystem });
  } catch (err) {
    throw new InvalidOptionError('logger', `logger.child() threw (${describeError(err)}); pass a pino logger`, {
      cause: err,
    });
  }
  const log = safeLog(requireLogger('logger', child) ?? parent);
  if (!bySubsystem) children.set(parent, (bySubsystem = new Map<string, { level: unknown; log: Log }>()));
  bySubsystem.set(subsystem, { level, log });
  return log;
}

const safe = new WeakSet<object>();

/**
 * `logger` with every level method made harmless: a throw (from the method, a serializer, a
 * hook or the destination) drops that record and is reported once per wrapped logger, through
 * `process.emitWarning` with the error as `cause`. The method is looked up at each call, as pino
 * swaps level methods when the level changes. Wrapping a wrapped logger returns it as it is.
 */
export function safeLog(logger: unknown): Log {
  if (typeof logger === 'object' && logger !== null && safe.has(logger)) return logger as Log;
  let reported = false;
  const report = (err: unknown): void => {
    if (reported) return;
    reported = true;
    try {
      process.emitWarning(
        new VirtiofsDaemonError(
          'ERR_LOGGER_FAILED',
          `the logger threw (${describeError(err)}); the record was dropped, and later failures of this logger are dropped ` +
            'silently. The daemon is not affected',
          { cause: err },
        ),
      );
    } catch {
      // Nothing is left to tell: the lifecycle must go on regardless.
    }
  };
  const log = {
    enabled(level: LogLevel): boolean {
      try {
        const is = (logger as { isLevelEnabled?: unknown }).isLevelEnabled;
        return typeof is === 'function' ? is.call(logger, level) !== false : true;
      } catch (err) {
        report(err);
        return false;
      }
    },
  } as Log;
  for (const level of LOG_LEVELS) {
    // Two parameters, not a rest array: nothing is allocated per record but what pino makes.
    log[level] = (objOrMsg?: unknown, msg?: string) => {
      try {
        const method = (logger as Record<string, unknown>)[level] as (...a: unknown[]) => void;
        if (msg === undefined) method.call(logger, objOrMsg);
        else method.call(logger, objOrMsg, msg);
      } catch (err) {
        report(err);
      }
    };
  }
  safe.add(log);
  return log;
}
