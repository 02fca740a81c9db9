/**
 * The CLI commands around a daemon that outlives the command: `run --detach --state FILE`
 * starts a surviving virtiofsd and writes its handle to FILE; `stop --state FILE` adopts and
 * stops it; `status --state FILE` says whether it still runs and is the same process.
 *
 * FILE is a trusted file (trusted-file.ts): read, written and removed only when it, and every
 * directory on the way to it, is one only root or we could have changed - a state file in a
 * directory the VMM user owns could name any process. Each refusal is an UntrustedFileError
 * that names the path and the fix, before anything is started, signalled or removed.
 */
import { statSync } from 'node:fs';
import type { Logger } from 'pino';
import { openProven } from '../process/adopt.js';
import { UntrustedFileError, VirtiofsDaemonError } from '../common/errors.js';
import { parseHandle, sealMatches, type DaemonHandle, type DaemonKind, type HandleTrust } from '../process/handle.js';
import { removeStaleSocket } from '../process/native.js';
import { daemonLockHeld } from '../process/runtime-dir.js';
import { Nydusd } from '../nydusd/nydusd.js';
import { readTrustedFile, removeTrustedFile, writeTrustedFile } from '../process/trusted-file.js';
import { Virtiofsd } from '../virtiofsd/virtiofsd.js';

/** Exit status of `status` (and `stop`) when the daemon of the state file is not running (LSB's "program is not running"). */
export const EXIT_NOT_RUNNING = 3;

/** How --state names itself in errors. */
const STATE = {
  what: '--state',
  fix: 'Keep state files in a directory that only you (or root) can write, such as /run/virtiofs-daemon',
};

/**
 * The handle in `file`, checked: null when there is no such file. Throws UntrustedFileError when
 * the file is not to be trusted (at most 64 KiB, a regular file of root's or ours, in a trusted
 * directory), a SystemError when its directory is missing, and a VirtiofsDaemonError when it
 * is not a handle.
 */
function readState(file: string): DaemonHandle | null {
  const data = readTrustedFile(file, STATE);
  if (!data) return null;
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new VirtiofsDaemonError(
      'ERR_INVALID_OPTION',
      `--state: '${file}' is not JSON; it is not a state file written by run --detach`,
      {
        cause: err,
      },
    );
  }
  const kind = (value as { kind?: unknown } | null)?.kind;
  // A format-1 handle (run --detach of virtiofs-daemon 0.1) has no seal; the state file it sits
  // in is ours, which vouches for it as well: take it as the caller's.
  const format = (value as { format?: unknown } | null)?.format;
  return parseHandle(value, kind === 'nydusd' ? 'nydusd' : ('virtiofsd' satisfies DaemonKind), trustOf(format));
}

/** How far the CLI trusts a state file's handle: see {@link readState}. */
function trustOf(format: unknown): HandleTrust {
  return format === 1 ? 'caller' : 'sealed';
}

/** The handle in `file`, which must exist (`stop`, `status`). */
function requireState(file: string): DaemonHandle {
  const handle = readState(file);
  if (!handle) throw new VirtiofsDaemonError('ERR_INVALID_OPTION', `--state: cannot read '${file}' (ENOENT)`);
  return handle;
}

/** Write `handle` to `file` atomically (a new file of a random name beside it, renamed), readable by us only. */
function writeState(file: string, handle: DaemonHandle): void {
  writeTrustedFile(file, `${JSON.stringify(handle, null, 2)}\n`, { ...STATE, mode: 0o600 });
}

/**
 * `run --detach`: start `daemon` (built with lifetime 'survive'), write its handle to
 * `stateFile` once it is ready, and return: the caller exits, the daemon stays. A state file
 * that names a daemon still running is refused (stop that one first).
 */
export async function runDetached(daemon: Virtiofsd, stateFile: string, logger: Logger): Promise<void> {
  // Before the start: a state file we may not trust, or a directory we may not write to, must
  // refuse the run, not stop a daemon it has just started. A file that is not a handle is
  // replaced, as before.
  const previous = previousState(stateFile);
  if (previous) {
    try {
      openProven(previous, trustOf(previous.format), false).proc.release();
      throw new VirtiofsDaemonError(
        'ERR_DAEMON_RUNNING',
        `--state: '${stateFile}' names a ${previous.kind} that is still running (pid ${previous.pid}); ` +
          `stop it first (virtiofs-daemon stop --state ${stateFile})`,
      );
    } catch (err) {
      if ((err as VirtiofsDaemonError).code !== 'ERR_DAEMON_GONE') throw err;
    }
  }
  const pid = await daemon.start();
  try {
    writeState(stateFile, daemon.handle());
  } catch (err) {
    await daemon.stop();
    if (err instanceof UntrustedFileError) {
      throw new UntrustedFileError(err, `${err.message}; the daemon was stopped`, { cause: err });
    }
    throw new VirtiofsDaemonError(
      'ERR_INVALID_OPTION',
      `--state: cannot write '${stateFile}': ${(err as Error).message}; the daemon was stopped`,
      {
        cause: err,
      },
    );
  }
  logger.info(
    { daemonPid: pid, state: stateFile },
    'virtiofsd runs detached; stop it with: virtiofs-daemon stop --state FILE',
  );
}

/** The handle a state file holds before `run --detach` writes it: null when none, or not a handle. */
function previousState(file: string): DaemonHandle | null {
  try {
    return readState(file);
  } catch (err) {
    if (err instanceof VirtiofsDaemonError && err.code === 'ERR_INVALID_OPTION') return null;
    throw err;
  }
}

/**
 * `stop --state FILE`: adopt the daemon, stop it (SIGTERM, SIGKILL after 3 s), remove the state
 * file. Its output since the last manager goes to `logger` first. Resolves to the exit status.
 * A daemon that is gone already: its socket files go if nobody listens there, then the state
 * file, and the status is {@link EXIT_NOT_RUNNING}.
 */
export async function stopDetached(stateFile: string, logger: Logger): Promise<number> {
  const handle = requireState(stateFile);
  const options = { logger, stopTimeoutMs: 3000, trust: trustOf(handle.format) };
  let daemon: Virtiofsd | Nydusd;
  try {
    daemon =
      handle.kind === 'nydusd'
        ? await Nydusd.adopt(handle, options)
        : await Virtiofsd.adopt(handle, { ...options, stopSignal: 'SIGTERM' });
  } catch (err) {
    if ((err as VirtiofsDaemonError).code !== 'ERR_DAEMON_GONE') throw err;
    logger.warn({ state: stateFile }, `not running: ${(err as Error).message}`);
    // Only a handle we wrote (sealed, this boot) may name socket files for us to tidy.
    if (sealMatches(handle)) removeLeftSockets(handle, logger);
    removeTrustedFile(stateFile, STATE);
    return EXIT_NOT_RUNNING;
  }
  await daemon.stop();
  removeTrustedFile(stateFile, STATE);
  logger.info({ daemonPid: handle.pid }, `${handle.kind} stopped`);
  return 0;
}

/**
 * The socket files a dead daemon left behind: removed when they are still the very files of the
 * handle (device and inode) and nobody listens on them; anything else stays.
 */
function removeLeftSockets(handle: DaemonHandle, logger: Logger): void {
  for (const s of Object.values(handle.sockets)) {
    try {
      const st = statSync(s.path, { bigint: true, throwIfNoEntry: false });
      if (!st || String(st.dev) !== s.dev || String(st.ino) !== s.ino) continue;
      if (removeStaleSocket(s.path)) logger.info({ socket: s.path }, 'socket of the dead daemon removed');
    } catch (err) {
      logger.warn({ err, socket: s.path }, 'socket left in place');
    }
  }
}

/**
 * `status --state FILE`: one line on stdout. 0: running and proven to be the daemon the handle
 * names, and ours, as adopt() proves it (seal, uid, output pipe, sockets; see adopt.ts);
 * {@link EXIT_NOT_RUNNING} when it is gone; a handle that fails the proof is an error. Nothing is
 * signalled and the daemon is not adopted.
 */
export function statusDetached(stateFile: string, out: NodeJS.WritableStream): number {
  const handle = requireState(stateFile);
  try {
    // The same proof as adopt(): "verified" means ours, not merely "that pid still runs that program".
    const { proc } = openProven(handle, trustOf(handle.format), false);
    const held = daemonLockHeld(handle.pid);
    proc.release();
    const sockets = Object.values(handle.sockets)
      .map((s) => s.path)
      .join(', ');
    out.write(
      `running: ${handle.kind} pid ${handle.pid} (verified: sealed handle, our uid, its output pipe and sockets), ${held ? 'managed by a live process' : 'no manager attached'}; sockets ${sockets}\n`,
    );
    return 0;
  } catch (err) {
    if ((err as VirtiofsDaemonError).code !== 'ERR_DAEMON_GONE') throw err;
    out.write(`not running: ${(err as Error).message}\n`);
    return EXIT_NOT_RUNNING;
  }
}
