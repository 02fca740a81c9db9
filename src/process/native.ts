/**
 * The one typed door to the C++ addon (native/). Everything that is a system call lives
 * behind it; this module only types the calls, fills defaults and turns the addon's errno
 * errors into {@link SystemError}s.
 *
 * Linux only, kernel >= 5.4 (pidfd_open, pidfd_send_signal, waitid(P_PIDFD)).
 *
 * Lifetime policy: a child never outlives the Node environment that spawned it. When the
 * environment ends (the process exits, process.exit() included; a worker_thread ends or is
 * terminated; an Electron context goes away), every child still running is SIGKILLed, with its
 * process group when it has one, and reaped. Every listening socket made by {@link listenUnix}
 * whose fd was not closed with {@link closeFd} is closed, and its file, unless handed back with
 * {@link unlinkSocket} or {@link keepSocketFile}, is removed (when it is still the file we bound).
 * Only a process killed by a signal skips this; a child spawned with `lifetime.deathSignal` gets
 * that signal from the kernel then. A child spawned with `lifetime.detach` is left running
 * instead (its pidfd is closed).
 *
 * Socket directories: every socket-file operation pins the socket's directory with one fd and
 * acts relative to it. A symlink on the way is followed only when the directory holding it is
 * owned by root or by us and writable by nobody else (or sticky and the link is root's or ours);
 * otherwise the call fails with `ELOOP`, naming the symlink, its directory's owner and the fix.
 *
 * Trusted files (state files, keys, lock files): reached through the same walk, but stricter, as
 * OpenSSH's StrictModes: every directory on the way too must be one only root or we could have
 * changed, and the file is a regular file of root's or ours (see {@link readTrustedFile}).
 *
 * @module virtiofs-daemon/native
 */
import { constants } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import bindings from 'bindings';
import { describeValue } from '../common/describe.js';
import { InvalidOptionError, SystemError, VirtiofsDaemonError } from '../common/errors.js';
import type { ExitStatus } from '../common/types.js';
import { signalName, signalNumber } from '../common/signals.js';
import { requirePids } from '../common/validate.js';

/**
 * A unix stream socket that we bound and that is listening. It is bound through its pinned
 * directory, so its address (getsockname, ss) reads `/proc/self/fd/<n>/<name>`, `<n>` being a
 * directory fd of ours that is closed by then (or, where /proc is not procfs or that does not
 * fit 107 bytes, the bare `<name>`): find a listener's file by its inode (`ss -xe`,
 * {@link socketListener}), not by its address.
 */
export interface ListeningSocket {
  /** The listening fd: blocking, close-on-exec. Ours to pass on and to close, with {@link closeFd} only. */
  fd: number;
  /** The path it is bound to. */
  path: string;
  /** `st_dev` of the socket file we created. */
  dev: bigint;
  /**
   * `st_ino` of the socket file we created. With `dev`, what later steps ({@link unlinkSocket},
   * {@link chownToParent}, {@link keepSocketFile}, teardown) check first: they act on that file
   * only, never on whatever has replaced it at `path`.
   */
  ino: bigint;
  /** With `chownTo: 'parent'`: the owner the socket file was given (its directory's). */
  owner?: {
    /** The file's owner now: its directory's. */
    uid: number;
    /** The file's group now: its directory's. */
    gid: number;
  };
}

/** What {@link listenUnix} takes besides the path. */
export interface ListenOptions {
  /** listen(2)'s backlog. @default 128 */
  backlog?: number;
  /**
   * `'parent'`: give the socket file to the owner (uid and gid) of its directory, as
   * {@link chownToParent} does, in the same call and through the same pinned directory (a chown
   * that fails unlinks and closes the socket, and throws with `syscall: 'fchownat'`).
   * `null`: leave it ours.
   * @default null
   */
  chownTo?: 'parent' | null;
}

/** Where a child's fd comes from (see {@link SpawnOptions.fds}). */
export type FdSource =
  /** An fd of ours: the child gets its own copy of it. */
  | number
  /** `/dev/null`, opened read-write. */
  | 'null'
  /** A new pipe the child writes to; the parent's read end is returned in `pipes`. */
  | 'pipe'
  /** A new pipe the child reads from; the parent's write end is returned in `pipes`. */
  | 'pipe-in'
  /** Closed in the child. */
  | null;

/**
 * How a child ended. `code` and `signal` are both null only when the status was lost: some
 * other code in this process reaped our child first (a `waitpid(-1)` elsewhere) and the kernel
 * keeps no copy of it (it does from Linux 6.15: PIDFD_INFO_EXIT).
 */
export interface ChildExit extends ExitStatus {
  /** True when the kernel wrote a core dump. */
  coreDumped: boolean;
}

/**
 * What {@link spawn} takes. The child gets exactly the fds of `fds` (every other fd of ours is
 * closed in it, close-on-exec or not), an empty signal mask and every signal at its default
 * disposition; its environment and working directory are ours unless `env` and `cwd` say
 * otherwise.
 */
export interface SpawnOptions {
  /** Path of the program; not searched in PATH. */
  file: string;
  /** The complete argument vector, argv[0] included. */
  argv: string[];
  /**
   * The complete environment. Default: the calling thread's `process.env`, as `child_process`
   * does. On the main thread that is the C library's `environ`, handed over as it is (no copy);
   * a worker_thread's `process.env` is its own copy, so a worker passes that, which also keeps the
   * addon from reading `environ` while the main thread may be changing it.
   */
  env?: NodeJS.ProcessEnv | string[];
  /** Working directory of the child. Default: ours. */
  cwd?: string;
  /**
   * The child's fd table: entry i becomes file descriptor i. Every other fd is closed in
   * the child, whether or not it was marked close-on-exec here. Placement is exact even
   * when a source sits at another entry's number.
   */
  fds: FdSource[];
  /** Put the child in a new process group (pgid = pid), so that it can be signalled with its descendants. */
  newProcessGroup?: boolean;
  /**
   * An fd of a cgroup v2 directory: the child is in that cgroup before its first instruction
   * (clone3 with CLONE_INTO_CGROUP, Linux >= 5.7; before that, or where seccomp refuses clone3,
   * the child joins through `cgroup.procs` before it execs; and once more that way when the
   * kernel killed the clone3 child before its first instruction, which kernels with kill_seq do
   * after a write to `cgroup.kill`: see {@link Child.cgroupVia}). A cgroup that refuses the child
   * (EBUSY: controllers enabled for its children; EACCES) fails the spawn with
   * `syscall: 'clone3'` or `'cgroup.procs'`. Ours to close afterwards.
   */
  cgroupFd?: number;
  /**
   * How the child gets into `cgroupFd`: `clone` (default, as above) or `procs` (always through
   * `cgroup.procs`, for comparing the two in bench/).
   * @default 'clone'
   */
  cgroupMethod?: 'clone' | 'procs';
  /** How long the child may live, beyond the teardown policy (see the module comment). */
  lifetime?: {
    /**
     * The child asks the kernel for this signal (`PR_SET_PDEATHSIG`) when the **thread** that
     * spawned it exits - the JS thread of this environment, main or worker, so it fires even
     * when this process is SIGKILLed and no teardown runs. A child whose spawner died before it
     * could ask exits at once. A name Node does not know throws an {@link InvalidOptionError}
     * for `lifetime.deathSignal`.
     * @default none
     */
    deathSignal?: NodeJS.Signals;
    /**
     * Environment teardown and process exit leave the child running instead of killing it (its
     * pidfd is closed).
     * @default false
     */
    detach?: boolean;
  };
  /**
   * Called once, on this thread's event loop, when the child has exited. While it runs the
   * child is not yet reaped, so its pid and process-group id cannot be reused: a
   * `signal(..., { group: true })` made inside it reaches exactly the survivors of the group.
   * The child is reaped when it returns.
   */
  onExit: (exit: ChildExit) => void;
}

/** A child we spawned, held by pidfd until it is reaped. */
export interface Child {
  /**
   * The child's pid. Ours while `exited` is false; once the child is reaped the number may name
   * another process: signal through {@link Child.signal}, never by number.
   */
  readonly pid: number;
  /** The pidfd, or -1 once the child is reaped (it is closed then). */
  readonly pidfd: number;
  /** For each entry of `fds`, the parent's end of its pipe (non-blocking, close-on-exec), or null. */
  readonly pipes: (number | null)[];
  /** True once the child has been reaped. */
  readonly exited: boolean;
  /**
   * With `cgroupFd`: how the child got into its cgroup, `'clone3'` (CLONE_INTO_CGROUP) or
   * `'cgroup.procs'` (the child joined before it exec'd: `cgroupMethod: 'procs'`, no clone3 here,
   * or the clone3 child was SIGKILLed at birth and the spawn went this way once more). Without
   * a cgroup: undefined.
   */
  readonly cgroupVia?: 'clone3' | 'cgroup.procs';
  /**
   * Send `signal` through the pidfd, or to the whole process group (`group: true`, for
   * children spawned with `newProcessGroup`). Returns false, and sends nothing, when the child
   * has already been reaped: a recycled pid is never signalled. The group is named through the
   * pidfd on Linux >= 6.9; before, by number only while the leader is known unreaped, so after
   * a foreign reap (someone else's waitpid) it returns false.
   */
  signal(signal: NodeJS.Signals | number, options?: { group?: boolean }): boolean;
  /**
   * True while a process of the child's process group is alive (zombies do not count: a
   * descendant that outlived the child is a zombie of init, not ours to wait for). Meant for
   * after the exit: a group outlives its leader while a descendant lives on.
   */
  groupAlive(): boolean;
  /** Keep the event loop alive until the child exits (the default). */
  ref(): void;
  /** Let the event loop end while the child still runs. */
  unref(): void;
}

interface RawChild {
  readonly pid: number;
  readonly pidfd: number;
  readonly pipes: (number | null)[];
  readonly exited: boolean;
  readonly cgroupVia?: 'clone3' | 'cgroup.procs';
  signal(signo: number, group: boolean): boolean;
  groupAlive(): boolean;
  ref(): void;
  unref(): void;
}

/** A pipe being read on the event loop (see {@link readPipe}). */
export interface PipeReader {
  /** Stop reading and close the pipe, without a further callback. Idempotent. */
  close(): void;
  /** Keep the event loop alive while the pipe is open (the default). */
  ref(): void;
  /** Let the event loop end while the pipe is open. */
  unref(): void;
}

interface Addon {
  listenUnix(
    path: string,
    backlog: number,
    chownToParent: boolean,
  ): { fd: number; dev: bigint; ino: bigint; uid?: number; gid?: number };
  chownToParent(path: string, dev: bigint, ino: bigint): { uid: number; gid: number };
  unlinkSocket(path: string, dev: bigint, ino: bigint): boolean;
  removeStaleSocket(path: string): boolean;
  socketListener(dev: bigint, ino: bigint): bigint | null;
  peerCredentials(fd: number): PeerCredentials;
  fileMode(path: string): number;
  closeFd(fd: number): void;
  abandonAll(): void;
  liveGroups(pgids: number[]): boolean[];
  readPipe(fd: number, onData: (chunk: Buffer | null) => void): PipeReader;
  killCgroupMembers(dirfd: number): void;
  processFacts(pids: number[]): Float64Array;
  groupMembers(pgids: number[]): Int32Array;
  spawn(
    file: string,
    argv: string[],
    env: string[] | null,
    cwd: string | null,
    fds: FdSource[],
    newProcessGroup: boolean,
    onExit: (code: number, signo: number, coreDumped: boolean) => void,
    options: { cgroupFd?: number; cgroupMethod?: string; deathSignal?: number; detach?: boolean },
  ): RawChild;
  openProcess(pid: number): RawProcess;
  makePipe(size: number, writeNonblocking: boolean): LogPipe;
  keepSocketFile(dev: bigint, ino: bigint): void;
  readTrustedFile(path: string, maxBytes: number): Buffer | null;
  writeTrustedFile(path: string, data: Buffer, mode: number, exclusive: boolean): boolean;
  removeTrustedFile(path: string): boolean;
  makePrivateDir(path: string, create: boolean): boolean;
  openLockFile(path: string): number;
  lockByte(fd: number, offset: number): boolean;
  unlockByte(fd: number, offset: number): void;
  byteLockedElsewhere(fd: number, offset: number): boolean;
}

let addon: Addon | undefined;

/** scripts/addon-path.js, shared with the install and prebuild scripts (plain CommonJS, shipped as is). */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a plain CommonJS script outside src/, without types
const addonPaths = require('../../scripts/addon-path.js') as {
  PACKAGE_ROOT: string;
  addonSearchList(): string[];
};

/** How to get a working addon, for the errors below. */
const ADDON_FIX =
  'Fix: `npm rebuild virtiofs-daemon` (pnpm: `pnpm approve-builds`, then `pnpm rebuild virtiofs-daemon`), which ' +
  'builds it from source and needs a C++ compiler, make and python3 (Debian/Ubuntu: ' +
  '`apt-get install build-essential python3`). In a bundled app, keep virtiofs-daemon external and its ' +
  '*.node files outside the asar archive.';

/**
 * Loads the addon with `bindings`, from the package's own directory: a build from source first,
 * then the prebuild for this platform and arch. A missing addon is ERR_ADDON_NOT_FOUND; one the
 * dynamic loader refuses (another arch, a glibc too old, a broken file) is ERR_ADDON_LOAD.
 */
function load(): Addon {
  if (addon) return addon;
  if (process.platform !== 'linux') {
    throw new VirtiofsDaemonError(
      'ERR_UNSUPPORTED_PLATFORM',
      `virtiofs-daemon runs on Linux only, not ${process.platform}`,
    );
  }
  const tries = addonPaths.addonSearchList();
  let loaded: Addon;
  try {
    loaded = bindings({
      bindings: 'virtiofs_daemon.node',
      module_root: addonPaths.PACKAGE_ROOT,
      try: tries.map((file) => [file]),
    }) as Addon;
  } catch (err) {
    if (err instanceof Error && Array.isArray((err as { tries?: unknown }).tries)) {
      throw new VirtiofsDaemonError(
        'ERR_ADDON_NOT_FOUND',
        `virtiofs-daemon's native addon is missing: there is no prebuilt one for ${process.platform}-${process.arch} ` +
          `and it was not built from source (install scripts skipped or failed?). Looked for ${tries.join(', ')}. ` +
          ADDON_FIX,
        { cause: err },
      );
    }
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new VirtiofsDaemonError(
      'ERR_ADDON_LOAD',
      `virtiofs-daemon's native addon cannot be loaded on this machine (${process.platform}-${process.arch}, ` +
        `Node ${process.version}): ${reason}. ${ADDON_FIX}`,
      { cause: err },
    );
  }
  // The addon kills and reaps its live children when this environment is torn down, but
  // process.exit() skips that teardown: apply the same policy on 'exit'.
  process.once('exit', () => loaded.abandonAll());
  addon = loaded;
  return loaded;
}

/** Turns the addon's errno errors into SystemErrors; everything else passes as is. */
function call<T>(fn: (a: Addon) => T): T {
  const a = load();
  try {
    return fn(a);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e instanceof Error && typeof e.errno === 'number' && typeof e.code === 'string' && e.syscall) {
      throw new SystemError({ code: e.code, errno: e.errno, syscall: e.syscall, path: e.path }, e.message, {
        cause: e,
      });
    }
    throw err;
  }
}

/** The number of a signal given by name or number; anything else is an InvalidOptionError (option `signal`). */
export { signalName, signalNumber } from '../common/signals.js';

/**
 * Create a unix stream socket listening at `path` (blocking, close-on-exec), and with
 * `chownTo: 'parent'` give its file to its directory's owner: one walk to the directory, one
 * call. A stale socket file there is replaced; a live listener, or anything that is not a
 * socket, is an error and is left alone. Paths longer than 107 bytes are refused, never
 * truncated. The bind makes no thread where /proc is procfs (see {@link ListeningSocket}).
 * `options` may also be the backlog alone (a number), as in 0.1.
 */
export function listenUnix(path: string, options: ListenOptions | number = {}): ListeningSocket {
  const { backlog = 128, chownTo = null } = typeof options === 'number' ? { backlog: options } : options;
  if (chownTo !== null && chownTo !== 'parent') {
    throw new InvalidOptionError('chownTo', `${describeValue(chownTo)} is not 'parent' or null`);
  }
  const r = call((a) => a.listenUnix(path, backlog, chownTo === 'parent'));
  const sock: ListeningSocket = { fd: r.fd, path, dev: r.dev, ino: r.ino };
  if (r.uid !== undefined) sock.owner = { uid: r.uid, gid: r.gid! };
  return sock;
}

/**
 * Give the socket file to the owner (uid and gid) of its directory, without following
 * symlinks and only while the file at the path is still the one we bound.
 */
export function chownToParent(sock: ListeningSocket): {
  /** The owner the file was given: its directory's. */
  uid: number;
  /** The group the file was given: its directory's. */
  gid: number;
} {
  return call((a) => a.chownToParent(sock.path, sock.dev, sock.ino));
}

/** Remove the socket file if it is still the one we bound. Returns whether it removed it. */
export function unlinkSocket(sock: Pick<ListeningSocket, 'path' | 'dev' | 'ino'>): boolean {
  return call((a) => a.unlinkSocket(sock.path, sock.dev, sock.ino));
}

/**
 * Remove the socket file at `path` if nobody listens on it (for daemons that bind their
 * sockets themselves). Returns whether a file was removed. A live listener (`EADDRINUSE`) or
 * anything that is not a socket (`EEXIST`) is an error and is left intact.
 */
export function removeStaleSocket(path: string): boolean {
  return call((a) => a.removeStaleSocket(path));
}

/**
 * Who listens on the socket file `sock` (device and inode): the inode of the listening socket
 * itself - the N that `/proc/<pid>/fd/<fd>` of its holders reads as `socket:[N]` - or null when
 * no socket of this network namespace listens there. Asked of the kernel (sock_diag), never by
 * connecting: a virtiofsd serves one front-end and exits when it disconnects.
 */
export function socketListener(sock: { dev: bigint; ino: bigint }): bigint | null {
  return call((a) => a.socketListener(sock.dev, sock.ino));
}

/** The process at the other end of a connected unix socket, as the kernel recorded it (SO_PEERCRED). */
export interface PeerCredentials {
  /** For a connection to a listening socket: the process that called listen(). */
  pid: number;
  /** Its effective uid when it called listen() (or connect(), seen from the listener's side). */
  uid: number;
  /** Its effective gid then. */
  gid: number;
}

/** {@link PeerCredentials} of the connected unix socket `fd` (a net.Socket's fd). */
export function peerCredentials(fd: number): PeerCredentials {
  return call((a) => a.peerCredentials(fd));
}

/**
 * The mode (type and permission bits, `st_mode`) of what `path` names, symlinks followed, as
 * `stat(2)` gives it; a {@link SystemError} (`syscall: 'stat'`, `ENOENT`, `ENOTDIR`, `EACCES`...)
 * when there is nothing to stat. One system call and a number: no Stats object, no Dates.
 */
export function fileMode(path: string): number {
  return call((a) => a.fileMode(path));
}

/**
 * The socket file now belongs to a daemon that outlives this environment (lifetime 'survive'):
 * teardown leaves it in place. {@link unlinkSocket} still removes it when we stop the daemon.
 */
export function keepSocketFile(sock: Pick<ListeningSocket, 'dev' | 'ino'>): void {
  call((a) => a.keepSocketFile(sock.dev, sock.ino));
}

/** Close an fd the addon gave us (the listening socket's fd must be closed here, never otherwise). */
export function closeFd(fd: number): void {
  call((a) => a.closeFd(fd));
}

/** The environment as the addon takes it: null for `environ` itself (the main thread's default). */
function envArray(env: NodeJS.ProcessEnv | string[] | undefined): string[] | null {
  if (env === undefined) {
    if (isMainThread) return null;
    env = process.env;
  }
  if (Array.isArray(env)) return env;
  const out: string[] = [];
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out.push(`${k}=${v}`);
  return out;
}

/** The Child interface over the addon's object; methods on the prototype keep each child small. */
class ChildHandle implements Child {
  /** Read once: a pid never changes, and each read of the addon's accessor crosses into C++. */
  readonly pid: number;
  constructor(private readonly raw: RawChild) {
    this.pid = raw.pid;
  }
  get pidfd(): number {
    return this.raw.pidfd;
  }
  get pipes(): (number | null)[] {
    return this.raw.pipes;
  }
  get exited(): boolean {
    return this.raw.exited;
  }
  get cgroupVia(): 'clone3' | 'cgroup.procs' | undefined {
    return this.raw.cgroupVia;
  }
  signal(signal: NodeJS.Signals | number, options?: { group?: boolean }): boolean {
    const raw = this.raw;
    return call(() => raw.signal(signalNumber(signal), options?.group ?? false));
  }
  groupAlive(): boolean {
    const raw = this.raw;
    return call(() => raw.groupAlive());
  }
  ref(): void {
    this.raw.ref();
  }
  unref(): void {
    this.raw.unref();
  }
}

function exitOf(code: number, signo: number, coreDumped: boolean): ChildExit {
  return {
    code: signo || code < 0 ? null : code,
    signal: signo ? signalName(signo) : null,
    coreDumped,
  };
}

/** The addon's exit callback, made outside spawn() so that it keeps `onExit` only, not the options. */
function exitCallback(onExit: (exit: ChildExit) => void): (code: number, signo: number, coreDumped: boolean) => void {
  return (code, signo, coreDumped) => onExit(exitOf(code, signo, coreDumped));
}

/**
 * Start a program with exactly the fds of `options.fds`, an empty signal mask and every
 * signal at its default disposition, without copying our address space (a CLONE_VM|CLONE_VFORK
 * child: its cost does not grow with our memory). Exec failures (ENOENT, EACCES, ENOEXEC, ...)
 * throw here, synchronously, with `syscall: 'spawn'` and `path`; the failed child is already
 * reaped then and `onExit` is never called. `EMFILE` names RLIMIT_NOFILE and its fix.
 */
export function spawn(options: SpawnOptions): Child {
  const raw = call((a) =>
    a.spawn(
      options.file,
      options.argv,
      envArray(options.env),
      options.cwd ?? null,
      options.fds,
      options.newProcessGroup ?? false,
      exitCallback(options.onExit),
      {
        cgroupFd: options.cgroupFd,
        cgroupMethod: options.cgroupMethod,
        deathSignal: options.lifetime?.deathSignal
          ? signalNumber(options.lifetime.deathSignal, 'lifetime.deathSignal')
          : 0,
        detach: options.lifetime?.detach ?? false,
      },
    ),
  );
  return new ChildHandle(raw);
}

/**
 * For each process-group id, whether a process of that group is alive (zombies do not count).
 * One walk of /proc answers for all of them, and none is made when every group is gone.
 */
export function liveGroups(pgids: number[]): boolean[] {
  return call((a) => a.liveGroups(requirePids('pgids', pgids)));
}

/** What /proc says about one process (see {@link processFacts}). */
export interface ProcessFacts {
  /** The pid asked about (the answers come in the order of the pids given). */
  pid: number;
  /**
   * Open file descriptors, from /proc/PID/fd without following any: the kernel's count (its
   * size, Linux >= 6.2, which includes a slot an accept() in progress reserved), else its entries.
   */
  fds: number;
  /**
   * Its RLIMIT_NOFILE soft limit: prlimit(2), else (another user's process) /proc/PID/limits,
   * which shows the same value; Infinity when unlimited.
   */
  fdLimit: number;
  /** Resident set size in bytes (/proc/PID/stat). */
  rssBytes: number;
  /** Threads of the process (/proc/PID/stat). */
  threads: number;
  /** User + system CPU time in microseconds (/proc/PID/stat utime + stime). */
  cpuUsec: number;
  /** Its process group id (/proc/PID/stat). */
  pgid: number;
  /** Clock ticks after boot at which it started: with the pid, it names one process. */
  startTime: number;
  /** `R`, `S`, `D`, `Z`, … A zombie has no files: `fds` and `fdLimit` are 0. */
  state: string;
  /** 0, or why it could not be read: `ENOENT`/`ESRCH` (gone), `EACCES`, … */
  error: string | 0;
}

/** Numbers per process in the addon's flat answer, in the order of {@link ProcessFacts}. */
const FACT_FIELDS = 9;

/** `ENOENT` for 2. */
function errnoName(errno: number): string {
  for (const [name, n] of Object.entries(constants.errno)) if (n === errno) return name;
  return `errno ${errno}`;
}

/**
 * The facts of many processes in one call (a few system calls each, nothing through the thread
 * pool): open fds, fd limit, RSS, threads, CPU time, group, start time. A process that is gone
 * answers `error: 'ENOENT'` (or `ESRCH`), never an exception.
 */
export function processFacts(pids: number[]): ProcessFacts[] {
  const raw = call((a) => a.processFacts(requirePids('pids', pids)));
  const out = new Array<ProcessFacts>(pids.length);
  for (let k = 0, i = 0; k < pids.length; k++, i += FACT_FIELDS) {
    const err = raw[i + 8];
    out[k] = {
      pid: pids[k],
      fds: raw[i],
      fdLimit: raw[i + 1] < 0 ? Infinity : raw[i + 1],
      rssBytes: raw[i + 2],
      threads: raw[i + 3],
      cpuUsec: raw[i + 4],
      pgid: raw[i + 5],
      startTime: raw[i + 6],
      state: String.fromCharCode(raw[i + 7]),
      error: err === 0 ? 0 : errnoName(-err),
    };
  }
  return out;
}

/**
 * The members of each process group, zombies included, from one walk of /proc for all of them
 * (getpgid per process): the i-th entry lists the pids of `pgids[i]`.
 */
export function groupMembers(pgids: number[]): number[][] {
  const flat = call((a) => a.groupMembers(requirePids('pgids', pgids)));
  const out: number[][] = [];
  for (let i = 0; out.length < pgids.length;) {
    const n = flat[i++];
    out.push(Array.from(flat.subarray(i, i + n)));
    i += n;
  }
  return out;
}

/**
 * Read our end of a child's pipe (from `pipes`, non-blocking) on this thread's event loop:
 * `onData` gets what each wakeup read (at most 64 KiB), then `null` once at EOF or on a read
 * error, after which the fd is closed. Lighter than a net.Socket over the fd (no stream, no
 * thread pool), which matters with hundreds of daemons. The fd is the reader's from now on.
 */
export function readPipe(fd: number, onData: (chunk: Buffer | null) => void): PipeReader {
  return call((a) => a.readPipe(fd, onData));
}

/**
 * SIGKILL every process of a cgroup v2 directory (`dirfd`: an fd of it), for kernels without
 * `cgroup.kill` (Linux < 5.14): each member is held by a pidfd and signalled only while
 * `cgroup.procs` still lists it, so a pid reused by a process outside the cgroup is never hit.
 * Rounds until the cgroup reads empty (a member may fork meanwhile). Throws a
 * {@link SystemError} (`syscall: 'cgroup.procs'`) when the member list cannot be read.
 */
export function killCgroupMembers(dirfd: number): void {
  call((a) => a.killCgroupMembers(dirfd));
}

// ---- processes we did not spawn ---------------------------------------------------------

/** How a process ended, as far as the kernel tells a pidfd holder that is not its parent. */
export interface ForeignExit extends ChildExit {
  /** False when the kernel cannot tell (Linux < 6.15): `code` and `signal` are null then. */
  known: boolean;
}

/**
 * A process opened by pid (`pidfd_open`), not necessarily our child: signalled through its
 * pidfd only (its group too, with `PIDFD_SIGNAL_PROCESS_GROUP`), never by number.
 */
export interface OpenProcess {
  /** The pid it was opened by. The pidfd keeps naming that process even once the number is reused. */
  readonly pid: number;
  /** The pidfd, or -1 once released. */
  readonly pidfd: number;
  /** Like {@link Child.signal}; false when the process (or, with `group`, the whole group) is gone. */
  signal(signal: NodeJS.Signals | number, options?: { group?: boolean }): boolean;
  /** True while a live (non-zombie) process has the process-group id `pid`. */
  groupAlive(): boolean;
  /** Call `onExit` once, on this thread's loop, when the process has exited. */
  watch(onExit: () => void): void;
  /**
   * After the exit: the status, or null while its parent has not reaped it yet (the kernel
   * publishes it to pidfd holders at the reap, Linux >= 6.15).
   */
  exitInfo(): ForeignExit | null;
  /** A copy of the process's fd `targetFd` (`pidfd_getfd`), close-on-exec. Ours to close. */
  getfd(targetFd: number): number;
  /** Keep the event loop alive while {@link OpenProcess.watch} waits for the exit (the default). Before watch(), a no-op. */
  ref(): void;
  /** Let the event loop end while {@link OpenProcess.watch} waits for the exit. Before watch(), a no-op. */
  unref(): void;
  /** Stop watching and close the pidfd (`pidfd` reads -1 then). Idempotent. */
  release(): void;
}

interface RawProcess {
  readonly pid: number;
  readonly pidfd: number;
  signal(signo: number, group: boolean): boolean;
  groupAlive(): boolean;
  watch(onExit: () => void): void;
  exitInfo(): { known: boolean; code?: number; signo?: number; coreDumped?: boolean } | null;
  getfd(targetFd: number): number;
  ref(): void;
  unref(): void;
  release(): void;
}

/** A pipe from {@link makePipe}. */
export interface LogPipe {
  /** Read end: non-blocking, close-on-exec. */
  read: number;
  /** Write end: close-on-exec; non-blocking when asked. */
  write: number;
  /** The capacity the kernel granted, in bytes. */
  size: number;
}

/**
 * Open the process `pid` (`pidfd_open`). Throws a {@link SystemError} `ESRCH` when there is no
 * such process. The pidfd names that process from now on, whatever later happens to the number.
 */
export function openProcess(pid: number): OpenProcess {
  const raw = call((a) => a.openProcess(pid));
  return {
    get pid() {
      return raw.pid;
    },
    get pidfd() {
      return raw.pidfd;
    },
    signal: (signal, options) => call(() => raw.signal(signalNumber(signal), options?.group ?? false)),
    groupAlive: () => call(() => raw.groupAlive()),
    watch: (onExit) => call(() => raw.watch(onExit)),
    exitInfo: () => {
      const r = raw.exitInfo();
      if (!r) return null;
      if (!r.known) return { known: false, code: null, signal: null, coreDumped: false };
      return { known: true, ...exitOf(r.code!, r.signo!, r.coreDumped!) };
    },
    getfd: (targetFd) => call(() => raw.getfd(targetFd)),
    ref: () => raw.ref(),
    unref: () => raw.unref(),
    release: () => raw.release(),
  };
}

/**
 * A pipe whose capacity is raised to `size` bytes (`F_SETPIPE_SZ`, as far as
 * /proc/sys/fs/pipe-max-size allows an unprivileged caller; root may go beyond).
 */
export function makePipe(size: number, options: { writeNonblocking?: boolean } = {}): LogPipe {
  return call((a) => a.makePipe(size, options.writeNonblocking ?? false));
}
// ---- trusted files ----------------------------------------------------------------------

/**
 * Why a trusted-file call refused a path: on the raw addon error (the `cause` of the
 * {@link SystemError} thrown), see {@link trustRefusal}.
 */
export interface TrustRefusal {
  /** What is wrong with `component` (see `UntrustedReason` in errors.ts). */
  reason: 'owner' | 'writable' | 'foreign-entry' | 'type' | 'size' | 'mode';
  /** The path at fault: the file (or directory) asked for, or a directory or symlink on the way to it. */
  component: string;
  /** Owner uid of `component`. */
  owner: number;
  /** Mode of `component`, with its file type bits. */
  mode: number;
  /** For `size`: how many bytes the file holds (at least). */
  size?: number;
}

/** The refusal behind an error of a trusted-file call; null when the error is something else (ENOENT, EACCES...). */
export function trustRefusal(err: unknown): TrustRefusal | null {
  const raw = err instanceof SystemError ? (err.cause as Partial<TrustRefusal> | undefined) : undefined;
  if (!raw || typeof raw.reason !== 'string' || typeof raw.component !== 'string') return null;
  return {
    reason: raw.reason,
    component: raw.component,
    owner: raw.owner ?? -1,
    mode: raw.mode ?? 0,
    ...(typeof raw.size === 'number' ? { size: raw.size } : {}),
  };
}

/**
 * Read the trusted file `path` (absolute) whole, if it holds at most `maxBytes` bytes; null when
 * there is no file of that name (its directory exists and is trusted). A trusted file is reached
 * without a symlink or directory that anyone but root or us could have changed (every directory
 * on the way owned by root or our euid, and not writable by group or others, or sticky with an
 * entry of root's or ours), and is a regular file of root's or ours, writable by nobody else.
 * It is judged before it is opened (`O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_NOCTTY`): a FIFO, a device
 * or a symlink (to /dev/zero or anything) fails at once, never blocks and is never read. Never
 * a partial read: a larger file fails (`EFBIG`). A refusal is a {@link SystemError} whose cause
 * carries a {@link TrustRefusal}.
 */
export function readTrustedFile(path: string, maxBytes = 64 * 1024): Buffer | null {
  return call((a) => a.readTrustedFile(path, maxBytes));
}

/**
 * Write `data` to the trusted file `path` (absolute) atomically, with exactly `mode`: a new
 * file with a random name (`getrandom`; `O_CREAT|O_EXCL|O_NOFOLLOW`, so nothing planted
 * beforehand is ever followed or truncated) in the same pinned directory, written whole,
 * `fsync`ed, then `renameat` over `path`, and the directory `fsync`ed. On failure the new file
 * is removed and `path` is as it was. A file at `path` is replaced only when it is a regular
 * file of root's or ours; its directory must be trusted as for {@link readTrustedFile}.
 * `exclusive`: published with `linkat` instead, which never replaces anything: false, with
 * nothing written, when `path` exists. Otherwise true.
 */
export function writeTrustedFile(
  path: string,
  data: Buffer,
  mode: number,
  options: { exclusive?: boolean } = {},
): boolean {
  return call((a) => a.writeTrustedFile(path, data, mode, options.exclusive ?? false));
}

/**
 * Remove the trusted file `path` (absolute) if it is a regular file of root's or ours, through its
 * pinned directory (`unlinkat`). True when removed, false when nothing was there.
 */
export function removeTrustedFile(path: string): boolean {
  return call((a) => a.removeTrustedFile(path));
}

/**
 * A private directory at `path` (absolute) in a trusted parent: made (`mkdirat`, 0700) when
 * `create` and missing, then checked - not a symlink, a directory, owned by our euid, mode
 * exactly 0700. One that fails the check is a refusal naming its owner and mode, and is never
 * changed. True when this call made it.
 */
export function makePrivateDir(path: string, options: { create?: boolean } = {}): boolean {
  return call((a) => a.makePrivateDir(path, options.create ?? false));
}

/**
 * Open the trusted file `path` (absolute) read-write for byte locks, creating it (0600) when
 * missing. The fd belongs to this environment (the main thread, or one worker_thread): its
 * teardown closes it, and so drops every lock taken through it; {@link closeFd} closes it sooner.
 */
export function openLockFile(path: string): number {
  return call((a) => a.openLockFile(path));
}

/**
 * Lock the byte at `offset` of `fd` exclusively, without waiting (`F_OFD_SETLK`): true when we
 * hold it now (or held it already), false when another open file description holds it - one of
 * another process, or of another environment of this one, each of which opens its own. The
 * lock goes when the description's last fd is closed, or its process dies.
 */
export function lockByte(fd: number, offset: number): boolean {
  return call((a) => a.lockByte(fd, offset));
}

/** Release our lock on the byte at `offset` of `fd` (nothing happens when we hold none). */
export function unlockByte(fd: number, offset: number): void {
  call((a) => a.unlockByte(fd, offset));
}

/** Whether another open file description holds the byte at `offset` of `fd` (`F_OFD_GETLK`): false when nobody does, or we do. */
export function byteLockedElsewhere(fd: number, offset: number): boolean {
  return call((a) => a.byteLockedElsewhere(fd, offset));
}
