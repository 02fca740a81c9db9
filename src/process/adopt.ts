/**
 * Adoption: from a {@link DaemonHandle} back to a process we may signal, proven to be a daemon
 * this library started for us, without a race and without ever reaching a process that merely
 * inherited the daemon's pid.
 *
 * Identity fields (pid, start time, boot, executable) are world-readable in /proc: they prove
 * *which* process a handle names, never that it is *ours*. So, in this order, before anything is
 * signalled, unlinked or sent:
 * 1. the handle is of this boot;
 * 2. `pidfd_open(pid)`: from then on the pidfd names one process, the one that had the pid at that
 *    moment, whatever later happens to the number; its start time is the handle's;
 * 3. it runs as us (only the user a daemon runs as may adopt it), and as the handle says;
 * 4. the seal: an HMAC over the handle that only a manager of this user on this boot can make
 *    (skipped when the caller vouches for the handle, `trust: 'caller'`);
 * 5. its group and executable, and that it is alive after the reads (so the /proc we read was its);
 * 6. it holds the output pipe the handle records (the read end parked in it, by inode);
 * 7. every socket file of the handle is listened on by the daemon itself, or by nobody (a stale
 *    file): never a socket some other process serves.
 * Every later signal goes through the pidfd.
 */
import { fstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import {
  DaemonAdoptedError,
  DaemonGoneError,
  DaemonNotPermittedError,
  HandleProofError,
  SystemError,
} from '../common/errors.js';
import { bootId, processIdentity, processUids, sealMatches, type DaemonHandle, type HandleTrust } from './handle.js';
import { closeFd, openProcess, socketListener, type OpenProcess } from './native.js';
import { lockDaemon, unlockDaemon } from './runtime-dir.js';

/** What {@link openProven} hands over: the process, and our copy of its output pipe if asked for. */
export interface Proven {
  proc: OpenProcess;
  /** Our copy of the output pipe's read end (close-on-exec), or null (none recorded, or not kept). */
  logFd: number | null;
}

/** Our effective uid: the only one whose daemons we may adopt. */
function ourUid(): number {
  return process.geteuid?.() ?? 0;
}

/**
 * The daemon of `handle`, opened and proven ours (see the module comment); the caller owns the
 * result (`proc.release()` it, close `logFd`). With `keepLog` false the output pipe is checked
 * and let go at once (`status`). Throws {@link HandleProofError} (`ERR_HANDLE_UNPROVEN`),
 * {@link DaemonNotPermittedError} (`ERR_DAEMON_NOT_PERMITTED`) or {@link DaemonGoneError}
 * (`ERR_DAEMON_GONE`), having sent no signal to anyone.
 */
export function openProven(handle: DaemonHandle, trust: HandleTrust, keepLog = true): Proven {
  const what = `${handle.kind} (pid ${handle.pid})`;
  const thisBoot = bootId();
  if (thisBoot !== handle.bootId) {
    throw new DaemonGoneError(
      handle.pid,
      `${what} is gone: the handle comes from another boot (${handle.bootId}; this one is ${thisBoot}). Nothing was signalled`,
    );
  }
  let proc: OpenProcess;
  try {
    proc = openProcess(handle.pid);
  } catch (err) {
    if (err instanceof SystemError && err.code === 'ESRCH') {
      throw new DaemonGoneError(handle.pid, `${what} is gone: no process has that pid any more`, { cause: err });
    }
    throw err;
  }
  let logFd: number | null = null;
  try {
    const gone = (why: string): never => {
      throw new DaemonGoneError(handle.pid, `${what} is gone: ${why}. Nothing was signalled`);
    };
    const id = processIdentity(handle.pid);
    if (!id) gone('no process has that pid any more');
    if (id!.startTime !== handle.startTime) {
      gone(`pid ${handle.pid} now belongs to a process started at tick ${id!.startTime}, not ${handle.startTime}`);
    }
    if (id!.state === 'Z' || id!.state === 'X') gone('it has exited');
    // Before the seal: another user's daemon is "not permitted" (a seal of theirs is not ours to
    // check), and before the executable, which another user's /proc/<pid>/exe does not even show.
    proveUid(handle, what);
    if (trust === 'sealed' && !sealMatches(handle)) {
      throw new HandleProofError(
        handle.pid,
        'seal',
        `the handle of ${what} is not sealed by a manager of uid ${ourUid()} on this boot: someone else wrote it, ` +
          "or changed it since. Adopt only what daemon.handle() returned (or pass trust: 'caller' for a handle " +
          'from a place only you can write)',
      );
    }
    if (id!.pgid !== handle.pgid) gone(`it left its process group ${handle.pgid}`);
    if (!id!.exe || id!.exe.dev !== handle.exe.dev || id!.exe.ino !== handle.exe.ino) {
      gone('it runs another executable than the one in the handle');
    }
    // Alive after the reads: the /proc entries we compared were this process's own.
    if (!proc.signal(0)) gone('it has exited');
    logFd = proveLog(handle, proc, what);
    proveSockets(handle, what);
    if (!keepLog && logFd !== null) {
      closeFd(logFd);
      logFd = null;
    }
    return { proc, logFd };
  } catch (err) {
    if (logFd !== null) closeFd(logFd);
    proc.release();
    throw err;
  }
}

/** Step 3: the process runs as us, and as the handle says (a format-1 handle records no uid). */
function proveUid(handle: DaemonHandle, what: string): void {
  const uids = processUids(handle.pid);
  if (!uids) throw new DaemonGoneError(handle.pid, `${what} is gone: it has exited. Nothing was signalled`);
  const [real, effective] = uids;
  if (real !== ourUid() || effective !== ourUid()) {
    throw new DaemonNotPermittedError(handle.pid, effective === ourUid() ? real : effective, handle.kind, ourUid());
  }
  if (handle.uid >= 0 && handle.uid !== effective) {
    throw new HandleProofError(
      handle.pid,
      'uid',
      `the handle says ${what} runs as uid ${handle.uid}, but it runs as uid ${effective}: it is not the daemon ` +
        'the handle was written for',
    );
  }
}

/**
 * Step 6: the process holds, at the fd the handle names, the read end of the output pipe the
 * handle records (a daemon started with lifetime 'survive' parks it in itself). Returns our copy.
 */
function proveLog(handle: DaemonHandle, proc: OpenProcess, what: string): number | null {
  if (!handle.log) return null;
  const { fd, pipeIno } = handle.log;
  let copy: number;
  try {
    copy = proc.getfd(fd);
  } catch (err) {
    throw new HandleProofError(
      handle.pid,
      'log',
      `${what} does not hold the output pipe its handle records (fd ${fd}: ${(err as Error).message})`,
      { cause: err },
    );
  }
  const st = fstatSync(copy, { bigint: true });
  if (!st.isFIFO() || String(st.ino) !== pipeIno) {
    closeFd(copy);
    throw new HandleProofError(
      handle.pid,
      'log',
      `${what} does not hold the output pipe its handle records: its fd ${fd} is not pipe inode ${pipeIno}`,
    );
  }
  return copy;
}

/** Step 7: no socket file of the handle is served by a process that is not the daemon. */
function proveSockets(handle: DaemonHandle, what: string): void {
  for (const [name, s] of Object.entries(handle.sockets)) {
    const listener = socketListener({ dev: BigInt(s.dev), ino: BigInt(s.ino) });
    if (listener === null) continue; // nobody listens: a stale file (virtiofsd stops listening once its VMM connects)
    if (!daemonHolds(handle.pid, `socket:[${listener}]`)) {
      throw new HandleProofError(
        handle.pid,
        'socket',
        `socket file '${s.path}' (${name}) of the handle is listened on by a process that is not ${what} or its child`,
      );
    }
  }
}

/** True when process `pid` or one of its descendants has an fd that links to `target` (e.g. `socket:[N]`). */
function daemonHolds(pid: number, target: string): boolean {
  const seen = new Set<number>();
  const queue = [pid];
  while (queue.length > 0 && seen.size < 64) {
    const p = queue.shift()!;
    if (seen.has(p)) continue;
    seen.add(p);
    if (holds(p, target)) return true;
    queue.push(...childrenOf(p));
  }
  return false;
}

function holds(pid: number, target: string): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  return fds.some((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`) === target;
    } catch {
      return false; // closed meanwhile
    }
  });
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      out.push(...readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
    }
  } catch {
    // gone meanwhile: no children to vouch for
  }
  return out;
}

/** An adopted daemon: its process, exclusively ours, and our copy of its output pipe (or null). */
export interface Adopted {
  proc: OpenProcess;
  logFd: number | null;
  /** Undo the adoption when what follows it fails: the lock, the pipe copy, the pidfd. */
  abandon: () => void;
}

/**
 * Prove, open and lock the daemon of `handle` (the adoption lock of runtime-dir.ts, which only
 * this user can take), taking its output pipe back from where it was parked. Throws as
 * {@link openProven}, or {@link DaemonAdoptedError} when another live manager holds it; nothing
 * is signalled.
 */
export function adoptProcess(handle: DaemonHandle, trust: HandleTrust): Adopted {
  const { proc, logFd } = openProven(handle, trust);
  const abandon = (locked: boolean): void => {
    if (locked) unlockDaemon(handle.pid);
    if (logFd !== null) closeFd(logFd);
    proc.release();
  };
  let locked: boolean;
  try {
    locked = lockDaemon(handle.pid);
  } catch (err) {
    abandon(false);
    throw err;
  }
  if (!locked) {
    abandon(false);
    throw new DaemonAdoptedError(handle.pid, handle.kind);
  }
  return { proc, logFd, abandon: () => abandon(true) };
}
