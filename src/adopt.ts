/**
 * Adoption: from a {@link DaemonHandle} back to a process we may signal, without a race and
 * without ever reaching a process that merely inherited the daemon's pid.
 *
 * Order matters. `pidfd_open(pid)` comes first: from then on the pidfd names one process, the
 * one that had the pid at that moment, whatever later happens to the number. Only then is that
 * process compared with the handle (start time, boot, executable, group), and found alive after
 * the comparison - so the /proc we read was its /proc. Every later signal goes through the pidfd.
 */
import { fstatSync } from 'node:fs';
import { DaemonAdoptedError, DaemonGoneError, SystemError } from './errors.js';
import { bootId, processIdentity, type DaemonHandle } from './handle.js';
import { closeFd, openProcess, type OpenProcess } from './native.js';

/**
 * The daemon of `handle`, opened and verified; the caller owns the result (`release()` it).
 * Throws {@link DaemonGoneError} (`ERR_DAEMON_GONE`) when it is not that daemon or not alive,
 * having sent no signal to anyone.
 */
export function openVerified(handle: DaemonHandle): OpenProcess {
  const what = `${handle.kind} (pid ${handle.pid})`;
  let proc: OpenProcess;
  try {
    proc = openProcess(handle.pid);
  } catch (err) {
    if (err instanceof SystemError && err.code === 'ESRCH') {
      throw new DaemonGoneError(handle.pid, `${what} is gone: no process has that pid any more`, { cause: err });
    }
    throw err;
  }
  try {
    const gone = (why: string): never => {
      throw new DaemonGoneError(handle.pid, `${what} is gone: ${why}. Nothing was signalled`);
    };
    const thisBoot = bootId();
    if (thisBoot !== handle.bootId)
      gone(`the handle comes from another boot (${handle.bootId}; this one is ${thisBoot})`);
    const id = processIdentity(handle.pid);
    if (!id) gone('no process has that pid any more');
    if (id!.startTime !== handle.startTime) {
      gone(`pid ${handle.pid} now belongs to a process started at tick ${id!.startTime}, not ${handle.startTime}`);
    }
    if (id!.state === 'Z' || id!.state === 'X') gone('it has exited');
    if (id!.pgid !== handle.pgid) gone(`it left its process group ${handle.pgid}`);
    if (!id!.exe || id!.exe.dev !== handle.exe.dev || id!.exe.ino !== handle.exe.ino) {
      gone('it runs another executable than the one in the handle');
    }
    // Alive after the reads: the /proc entries we compared were this process's own.
    if (!proc.signal(0)) gone('it has exited');
    return proc;
  } catch (err) {
    proc.release();
    throw err;
  }
}

/** An adopted daemon: its process, exclusively ours, and the read end of its output pipe if we got it. */
export interface Adopted {
  proc: OpenProcess;
  /** Our copy of the output pipe's read end, or null (no pipe in the handle, or it was not there). */
  logFd: number | null;
  /** Why the output could not be taken over, when it could not. */
  logProblem: string | null;
}

/**
 * Open, verify and lock the daemon of `handle`, and take its output pipe back from where it was
 * parked. Throws {@link DaemonGoneError} or {@link DaemonAdoptedError}; nothing is signalled.
 */
export function adoptProcess(handle: DaemonHandle): Adopted {
  const proc = openVerified(handle);
  try {
    if (!proc.lock()) throw new DaemonAdoptedError(handle.pid, handle.kind);
    let logFd: number | null = null;
    let logProblem: string | null = null;
    if (handle.log) {
      try {
        logFd = proc.getfd(handle.log.fd);
        const st = fstatSync(logFd, { bigint: true });
        if (!st.isFIFO() || String(st.ino) !== handle.log.pipeIno) {
          closeFd(logFd);
          logFd = null;
          logProblem = `fd ${handle.log.fd} of the daemon is no longer its output pipe`;
        }
      } catch (err) {
        if (logFd !== null) closeFd(logFd);
        logFd = null;
        logProblem = `cannot take fd ${handle.log.fd} from the daemon: ${(err as Error).message}`;
      }
    }
    return { proc, logFd, logProblem };
  } catch (err) {
    proc.release();
    throw err;
  }
}
