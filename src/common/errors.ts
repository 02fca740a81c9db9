/**
 * Every error this package throws. Each carries a stable `code` to branch on, a message
 * that names the input at fault and the way to fix it, and the underlying error as `cause`.
 * The one exception, on purpose: the raw primitives of native.ts throw a plain TypeError or
 * RangeError when called with arguments of the wrong type (a programming error, as in Node's
 * `fs`); the daemon classes check every caller value first, so they never reach that.
 */

import type { ExitStatus } from './types.js';

/** Base class: `instanceof VirtiofsDaemonError` catches everything the package throws. */
export class VirtiofsDaemonError extends Error {
  /** Stable, machine-readable identifier of the failure. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * An option is missing, malformed, or names something that does not exist.
 * Thrown before anything is created: no socket, no process.
 */
export class InvalidOptionError extends VirtiofsDaemonError {
  /** The option at fault, e.g. `sourcePath`. */
  readonly option: string;

  constructor(option: string, message: string, options?: { cause?: unknown }) {
    super('ERR_INVALID_OPTION', `${option}: ${message}`, options);
    this.option = option;
  }
}

/**
 * A system call failed. Mirrors Node's own system errors: `code` is the errno name
 * (`ENOENT`), `errno` the negative number, `syscall` and `path` what was attempted.
 */
export class SystemError extends VirtiofsDaemonError {
  /** The negative errno (`-2` for `ENOENT`), as in Node's own system errors; {@link code} is its name. */
  readonly errno: number;
  /**
   * What failed: the system call (`bind`, `fchownat`, `pidfd_open`), or the step of a primitive
   * that spans several (`spawn` for an exec failure, `clone3` or `cgroup.procs` for a cgroup the
   * child could not be placed in).
   */
  readonly syscall: string;
  /** The path the call was made on (a socket file, a program, a trusted file); undefined when it took none. */
  readonly path: string | undefined;
  /** The option whose value the call was made with, when the error is about one. */
  readonly option: string | undefined;

  constructor(
    fields: { code: string; errno: number; syscall: string; path?: string | undefined; option?: string | undefined },
    message: string,
    options?: { cause?: unknown },
  ) {
    super(fields.code, message, options);
    this.errno = fields.errno;
    this.syscall = fields.syscall;
    this.path = fields.path;
    this.option = fields.option;
  }

  /** True for a spawn that failed to place the child in its cgroup (see native.ts `cgroupFd`). */
  static isCgroupPlacement(err: unknown): boolean {
    return err instanceof SystemError && (err.syscall === 'clone3' || err.syscall === 'cgroup.procs');
  }

  /** The same error, attributed to `option` (named in the message too). Other errors pass as they are. */
  static forOption(option: string, err: unknown): unknown {
    if (!(err instanceof SystemError) || err.option) return err;
    return new SystemError({ ...err, code: err.code, option }, `${option}: ${err.message}`, { cause: err });
  }
}

export type { ExitStatus };

/**
 * The daemon did not become ready: it exited first, or the start timeout passed.
 * Everything the start created has been removed by the time this is thrown.
 */
export class DaemonStartError extends VirtiofsDaemonError {
  /** The daemon's exit status when it exited before it was ready; null on timeout. */
  readonly exit: ExitStatus | null;
  /** The daemon's last output lines, oldest first. */
  readonly lastLines: string[];
  /** The command line that was run. */
  readonly argv: string[];

  constructor(
    code: 'ERR_DAEMON_EXITED' | 'ERR_DAEMON_START_TIMEOUT' | 'ERR_DAEMON_START',
    message: string,
    details: { exit?: ExitStatus | null; lastLines?: string[]; argv: string[] },
    options?: { cause?: unknown },
  ) {
    const tail = details.lastLines?.length ? `\n${details.lastLines.map((l) => `  | ${l}`).join('\n')}` : '';
    super(code, message + tail, options);
    this.exit = details.exit ?? null;
    this.lastLines = details.lastLines ?? [];
    this.argv = details.argv;
  }
}

/** `start()` was called while the daemon is starting or running. */
export class DaemonRunningError extends VirtiofsDaemonError {
  constructor(what: string, pid: number) {
    const state = pid ? `running (pid ${pid})` : 'starting';
    super('ERR_DAEMON_RUNNING', `${what} is already ${state}; call stop() before starting it again`);
  }
}

/** The daemon cannot do this at all (e.g. `mount` on virtiofsd). */
export class NotSupportedError extends VirtiofsDaemonError {
  constructor(message: string) {
    super('ERR_NOT_SUPPORTED', message);
  }
}

/**
 * nydusd's API answered with an error, or did not answer as HTTP/1.1 JSON.
 * `status` is the HTTP status (0 when there was no answer at all).
 */
export class NydusApiError extends VirtiofsDaemonError {
  /**
   * The HTTP status nydusd answered with (`404`, `500`, or `200` with a body that is not the
   * expected JSON); 0 when no status line arrived: `ERR_NYDUS_API_UNREACHABLE`,
   * `ERR_NYDUS_API_TIMEOUT`, `ERR_NYDUS_API_PEER`, a request aborted by `close()`, or a
   * connection that ended before, or with bytes that are not HTTP/1.1.
   */
  readonly status: number;
  /** The server's `code` field, when its body was the documented `{code, message}`. */
  readonly apiCode: string | undefined;
  /** The server's `message` field, or the raw body (capped) when it was not JSON. */
  readonly apiMessage: string | undefined;

  constructor(
    code:
      | 'ERR_NYDUS_API'
      | 'ERR_NYDUS_API_TIMEOUT'
      | 'ERR_NYDUS_API_UNREACHABLE'
      | 'ERR_NYDUS_API_RESPONSE'
      | 'ERR_NYDUS_API_PEER',
    message: string,
    details: { status?: number; apiCode?: string | undefined; apiMessage?: string | undefined } = {},
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.status = details.status ?? 0;
    this.apiCode = details.apiCode;
    this.apiMessage = details.apiMessage;
  }
}

/**
 * `adopt()` found no daemon to adopt: the process named by the handle has exited, or its pid
 * now belongs to another process (start time, boot or executable differ), or the handle comes
 * from another boot. No signal was sent to anyone.
 */
export class DaemonGoneError extends VirtiofsDaemonError {
  /** The pid the handle named. */
  readonly pid: number;

  constructor(pid: number, message: string, options?: { cause?: unknown }) {
    super('ERR_DAEMON_GONE', message, options);
    this.pid = pid;
  }
}

/** `adopt()` of a daemon that another manager (or the one that started it) holds and that is alive. */
export class DaemonAdoptedError extends VirtiofsDaemonError {
  /** The pid the handle named: a live daemon whose adoption lock another manager holds. */
  readonly pid: number;

  constructor(pid: number, what: string) {
    super(
      'ERR_DAEMON_ADOPTED',
      `${what} (pid ${pid}) is already managed by another live manager (its adoption lock is held); ` +
        'stop it there, or wait until that manager has exited',
    );
    this.pid = pid;
  }
}

/** Which proof a handle failed (see {@link HandleProofError}). */
export type HandleProof = 'seal' | 'uid' | 'log' | 'socket' | 'peer';

/**
 * `adopt()` (or the CLI's `status`/`stop`) found that the handle does not prove that the process
 * it names is a daemon this library started for us: its seal does not match, the process does
 * not hold the output pipe or the sockets the handle names, or the recorded uid is not the
 * process's. Identity fields (pid, start time, boot, executable) say *which* process; these say
 * it is *ours*. Nothing was signalled, unlinked or sent.
 */
export class HandleProofError extends VirtiofsDaemonError {
  /** The pid the handle named. */
  readonly pid: number;
  /** The proof that failed. */
  readonly proof: HandleProof;

  constructor(pid: number, proof: HandleProof, message: string, options?: { cause?: unknown }) {
    super('ERR_HANDLE_UNPROVEN', `${message}. Nothing was signalled, unlinked or sent`, options);
    this.pid = pid;
    this.proof = proof;
  }
}

/**
 * `adopt()` of a daemon that runs as another user: only the user it runs as may take it over
 * (root included: a root manager adopts the daemons root started).
 */
export class DaemonNotPermittedError extends VirtiofsDaemonError {
  /** The pid the handle named. */
  readonly pid: number;
  /** The uid the process runs as. */
  readonly uid: number;

  constructor(pid: number, uid: number, what: string, ours: number) {
    super(
      'ERR_DAEMON_NOT_PERMITTED',
      `${what} (pid ${pid}) runs as uid ${uid}, and this process runs as uid ${ours}: only the user a daemon runs ` +
        `as may adopt it. Adopt it as uid ${uid} (the manager that started it), or stop it there. Nothing was signalled`,
    );
    this.pid = pid;
    this.uid = uid;
  }
}

/** What makes a file, or a directory on the way to it, untrustworthy (see {@link UntrustedFileError}). */
export type UntrustedReason =
  /** Owned by someone other than root or us (a private directory: other than us). */
  | 'owner'
  /** Writable by group or others (a directory: and not sticky). */
  | 'writable'
  /** Another uid's entry in a sticky directory (such as /tmp) that anyone may add to. */
  | 'foreign-entry'
  /** Not a regular file (a FIFO, a symlink, a device, a directory); for a private directory, not a directory. */
  | 'type'
  /** More bytes than the reader takes. */
  | 'size'
  /** A private directory whose mode is not exactly 0700. */
  | 'mode';

/**
 * A file the manager would act on (a state file, a key) or write for itself, or a private
 * directory, could have been written, planted or replaced by someone less privileged: it, or a
 * directory or symlink on the way to it, is not one that only root or we could have changed, or
 * it is not a plain file of a sane size. Nothing was read, written, removed or created.
 */
export class UntrustedFileError extends VirtiofsDaemonError {
  /** The file (or directory) asked for, absolute. */
  readonly path: string;
  /** What is wrong with {@link component}. */
  readonly reason: UntrustedReason;
  /** The path at fault: {@link path} itself, or a directory or symlink on the way to it. */
  readonly component: string;
  /** Owner uid of {@link component}. */
  readonly owner: number;
  /** Mode of {@link component}, with its file type bits (`mode & 0o7777` for the permissions). */
  readonly mode: number;

  constructor(
    fields: { path: string; reason: UntrustedReason; component: string; owner: number; mode: number },
    message: string,
    options?: { cause?: unknown },
  ) {
    super('ERR_UNTRUSTED_FILE', message, options);
    this.path = fields.path;
    this.reason = fields.reason;
    this.component = fields.component;
    this.owner = fields.owner;
    this.mode = fields.mode;
  }
}
