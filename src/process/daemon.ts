/**
 * The lifecycle both daemons share, on top of the process layer: one process at a time, a
 * guarded start, one shared stop, and the end reported once (log, cleanup, onQuit).
 */
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { adoptProcess } from './adopt.js';
import { Cgroup } from './cgroup.js';
import { DaemonProcess, type Headroom, type ProcessEnd, type StopOptions } from './daemon-process.js';
import { describeValue } from '../common/describe.js';
import { DaemonRunningError, InvalidOptionError, VirtiofsDaemonError } from '../common/errors.js';
import {
  bootId,
  HANDLE_FORMAT,
  sealOf,
  type DaemonHandle,
  type DaemonKind,
  type HandleTrust,
  type Lifetime,
  type SocketRecord,
} from './handle.js';
import { safeLog, subsystemLog, type Log } from '../common/logger.js';
import { readOptions, rejectUnknownOptions, requireOneOf, requireOptionsObject } from '../common/options.js';
import type { DaemonStats } from './process-stats.js';
import { qemuArgsForSocket, type DaemonQemuArgsOptions } from '../common/qemu.js';
import { traced } from '../common/tracing.js';
import type { DaemonExit, MountOption, VirtiofsDaemon } from '../common/types.js';

/** Whether a launch got as far as resolving: onQuit belongs only to daemons that started. */
export interface Run {
  started: boolean;
}

/** "code 1" / "signal SIGKILL". */
export function describeExit(exit: { code: number | null; signal: string | null }): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
}

/** What is wrong with `onQuit` as start() and adopt() take it (a function or nothing), if anything. */
function onQuitError(value: unknown): InvalidOptionError | undefined {
  if (value === undefined || typeof value === 'function') return undefined;
  return new InvalidOptionError('onQuit', `${describeValue(value)} is not a function; pass a function or nothing`);
}

/**
 * The options of an `adopt()` call (`what`, e.g. `Virtiofsd.adopt`): an object of these keys
 * only (another is an InvalidOptionError naming the nearest), its `onQuit` checked here, its
 * `keys` read once and passed on to the constructor, which checks them.
 */
export function readAdoptOptions<K extends string>(
  what: string,
  options: unknown,
  keys: readonly K[],
): { onQuit: ((exit: DaemonExit) => void) | undefined; trust: HandleTrust; passed: { [P in K]?: unknown } } {
  const o = requireOptionsObject(what, options);
  rejectUnknownOptions(`${what}()`, o, ['onQuit', 'trust', ...keys]);
  const { onQuit, trust } = readOptions(o, ['onQuit', 'trust']);
  const error = onQuitError(onQuit);
  if (error) throw error;
  return {
    onQuit: onQuit as ((exit: DaemonExit) => void) | undefined,
    trust: requireOneOf('trust', trust, TRUSTS, 'sealed', 'a handle trust'),
    passed: readOptions(o, keys),
  };
}

const TRUSTS: readonly HandleTrust[] = ['sealed', 'caller'];

/** What every daemon's resolved options hold. */
export interface ResolvedDaemonOptions {
  logger: Logger | undefined;
  /** The shared directory (recorded in the handle). */
  sourcePath: string;
  /** The lifetime policy (recorded in the handle). */
  lifetime: Lifetime;
  /** The fd-headroom warning (see {@link FdWarnOptions}). */
  fdWarnRatio: number;
  fdCheckIntervalMs: number;
}

/** What each daemon's fd-headroom warning tells the operator to do. */
const FD_FIX: Readonly<Record<string, string>> = {
  virtiofsd:
    "raise rlimitNofile, or let it reference inodes by file handle (inodeFileHandles: 'prefer', as root) " +
    'instead of one O_PATH fd per inode the guest looked up',
  nydusd: "raise its limit (extraArgs: ['--rlimit-nofile=N'])",
};

/**
 * What an observer of a daemon's lifecycle is told (metrics.ts is one). Internal: the package
 * exports no way to observe, so these shapes can change with their one user.
 */
export type DaemonEvent =
  /** start() resolved: the daemon is ready, `seconds` after the call. */
  | { type: 'started'; seconds: number; dialect: string }
  /** start() rejected with an error whose `code` this is (`ERR_DAEMON_EXITED`, `EADDRINUSE`, …). */
  | { type: 'start-failed'; seconds: number; code: string }
  /** A daemon whose start resolved has ended (reaped, its group empty). */
  | { type: 'exited'; exit: DaemonExit; dialect: string }
  /** stop() of a running daemon resolved, `seconds` after the call. */
  | { type: 'stopped'; seconds: number; dialect: string };

export type DaemonObserver = (event: DaemonEvent) => void;

const observers = new WeakMap<object, Set<DaemonObserver>>();
const dialects = new WeakMap<object, string>();

/**
 * Tell `observer` each lifecycle event of `daemon` until the returned function is called. An
 * observer that throws loses that event, never the daemon's lifecycle.
 */
export function observeDaemon(daemon: Daemon, observer: DaemonObserver): () => void {
  let set = observers.get(daemon);
  if (!set) observers.set(daemon, (set = new Set()));
  set.add(observer);
  return () => void set.delete(observer);
}

/**
 * The command-line dialect of the daemon's last start: `rust`/`legacy` for virtiofsd,
 * `virtiofs`/`flat` for nydusd (2.1+ / 1.x-2.0); '' before it is known.
 */
export function daemonDialect(daemon: Daemon): string {
  return dialects.get(daemon) ?? '';
}

/** Seconds since `t0` (a performance.now()). */
const since = (t0: number): number => (performance.now() - t0) / 1000;

/** Where the records go while the options are invalid: nothing runs, so nothing is worth logging. */
const SILENT = safeLog({ trace() {}, debug() {}, info() {}, warn() {}, error() {}, fatal() {} });

export abstract class Daemon<O extends ResolvedDaemonOptions = ResolvedDaemonOptions> implements VirtiofsDaemon {
  protected readonly log: Log;
  protected proc: DaemonProcess | undefined;
  private starting: Promise<number> | undefined;
  private stopping: Promise<void> | undefined;
  /** The options resolved once, or why they are unusable (every start() rejects with that). */
  private readonly resolution: { ok: true; options: O } | { ok: false; error: Error };

  /**
   * Throws an {@link InvalidOptionError} at once only when `options` is not an object. Every
   * option is read and checked here, once, by `resolve`; when one is wrong, start() rejects
   * with that error (before anything is created), and the instance stays inert.
   */
  constructor(
    protected readonly name: 'virtiofsd' | 'nydusd',
    options: unknown,
    resolve: (options: object) => O,
  ) {
    const raw = requireOptionsObject(name === 'virtiofsd' ? 'new Virtiofsd' : 'new Nydusd', options);
    let log = SILENT;
    try {
      const resolved = resolve(raw);
      this.resolution = { ok: true, options: resolved };
      log = subsystemLog(name, resolved.logger);
    } catch (err) {
      // The resolvers throw InvalidOptionErrors; anything else is wrapped, so a rejection is always an Error.
      const error =
        err instanceof Error ? err : new InvalidOptionError('options', `reading them failed: ${describeValue(err)}`);
      this.resolution = { ok: false, error };
    }
    this.log = log;
  }

  /** The options, resolved once. Only for launch() and what follows a start: start() refuses invalid ones. */
  protected get options(): O {
    if (!this.resolution.ok) throw this.resolution.error;
    return this.resolution.options;
  }

  /**
   * The daemon's pid from the moment it is spawned (before start() resolves) until its exit is
   * seen; 0 before that (no start yet, or options still being checked) and from the exit on. An
   * adopted daemon's pid is the handle's.
   */
  get pid(): number {
    return this.proc?.pid ?? 0;
  }

  /** Which daemon this is: `virtiofsd` or `nydusd`. */
  get kind(): DaemonKind {
    return this.name;
  }

  /** Record the command-line dialect the daemon runs with (see {@link daemonDialect}). */
  protected setDialect(dialect: string): void {
    dialects.set(this, dialect);
  }

  /** Tell the observers (see {@link observeDaemon}); never throws. */
  private notify(event: DaemonEvent): void {
    for (const observer of observers.get(this) ?? []) {
      try {
        observer(event);
      } catch (err) {
        this.log.warn({ err }, `an observer of ${this.name} failed on '${event.type}'`);
      }
    }
  }

  /** True from the start() call until it settles. */
  protected get isStarting(): boolean {
    return this.starting !== undefined;
  }

  /**
   * Start the daemon and resolve to its pid once it is ready to serve: virtiofsd once it says it
   * waits for the VMM (at once after the spawn when it logs to syslog or above `info`, and so
   * never says it: the socket is already listening), nydusd once its API answers `RUNNING` and
   * the shared directory is mounted. The VMM can connect from then on.
   *
   * `onQuit` is called exactly once, when the daemon this call started has ended (reaped, its
   * group empty, what start() created removed): with `requested: true` after our stop(), false
   * when it quit or was killed by someone else. A start that rejects never calls it: the
   * rejection reports that end.
   *
   * Never throws: every failure is a rejection, and by then everything the start created
   * (socket, cgroup, process) is gone. {@link InvalidOptionError} for an option the constructor
   * refused or one the file system refuses (the binary, the directories, a cgroup);
   * {@link DaemonRunningError} while a start is pending or the daemon runs;
   * {@link DaemonStartError} when the daemon exits (`ERR_DAEMON_EXITED`), is not ready within
   * `startTimeoutMs` (`ERR_DAEMON_START_TIMEOUT`) or nydusd cannot mount the shared directory
   * (`ERR_DAEMON_START`); {@link SystemError} for a failed system call (`EADDRINUSE`: a live
   * listener holds the socket path); {@link UntrustedFileError} for a runtime directory or a
   * QEMU descriptor someone else could have written.
   */
  start(onQuit?: (exit: DaemonExit) => void): Promise<number> {
    if (this.starting || this.proc) return Promise.reject(new DaemonRunningError(this.name, this.pid));
    if (!this.resolution.ok) return Promise.reject(this.resolution.error);
    const onQuitProblem = onQuitError(onQuit);
    if (onQuitProblem) return Promise.reject(onQuitProblem);
    const run: Run = { started: false };
    const t0 = performance.now();
    // One reaction settles the start (no finally() on top: a promise and a microtask turn less per start).
    const settled: Promise<number> = this.tracedLaunch(run, onQuit).then(
      (pid) => {
        if (this.starting === settled) this.starting = undefined;
        this.notify({ type: 'started', seconds: since(t0), dialect: daemonDialect(this) });
        return pid;
      },
      (err: unknown) => {
        if (this.starting === settled) this.starting = undefined;
        const code = (err as { code?: unknown })?.code;
        this.notify({
          type: 'start-failed',
          seconds: since(t0),
          code: typeof code === 'string' ? code : 'ERR_UNKNOWN',
        });
        throw err;
      },
    );
    this.starting = settled;
    return settled;
  }

  /** launch() inside the `start` span; whatever throws, the span's attributes included, ends up in the promise. */
  private tracedLaunch(run: Run, onQuit?: (exit: DaemonExit) => void): Promise<number> {
    return traced(
      'start',
      this.name,
      () => this.spanAttributes(),
      () => this.launch(run, onQuit),
    );
  }

  /**
   * Stop the daemon and remove what start() created (its socket files; its cgroup, when one was
   * made for it). The first signal goes to the daemon's process group - virtiofsd's
   * `stopSignal` (SIGKILL by default), nydusd's SIGTERM - and SIGKILL follows after
   * `stopTimeoutMs` if it is still there; with a `cgroup`, SIGKILL reaches every process in it.
   * Resolves once the daemon is reaped, its group (or cgroup) is empty or has outlived it by
   * 5 s (logged as a warning), and onQuit has been called. A no-op when it is not running;
   * while a start is pending it waits for that start to settle and stops what it started;
   * concurrent calls share one stop. Rejects with `ERR_DAEMON_STOP_TIMEOUT` when the daemon has
   * not exited 10 s after SIGKILL (stuck in the kernel, e.g. a hung mount); a later call tries
   * again.
   */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    const proc = this.proc;
    // Still validating: nothing to signal yet, so let the start settle, then stop what it made.
    if (!proc && this.starting)
      return this.starting.then(
        () => this.stop(),
        () => {},
      );
    if (!proc) {
      this.log.info(`${this.name} is not running; nothing to stop`);
      return Promise.resolve();
    }
    const t0 = performance.now();
    // Resolves after the end was reported: onEnded's callback runs before `ended` resolves.
    const stopping: Promise<void> = traced('stop', this.name, { pid: proc.pid }, () =>
      proc.stop(this.stopOptions()),
    ).then(
      () => {
        if (this.stopping === stopping) this.stopping = undefined;
        this.notify({ type: 'stopped', seconds: since(t0), dialect: daemonDialect(this) });
      },
      (err: unknown) => {
        if (this.stopping === stopping) this.stopping = undefined;
        throw err;
      },
    );
    this.stopping = stopping;
    return stopping;
  }

  /**
   * What the daemon holds now (see {@link DaemonStats}): open fds, fd limit, resident memory,
   * threads and CPU time of its processes, from /proc; with a `cgroup`, also what the cgroup
   * accounts (`cpuUsageUsec` always, `memoryCurrent` and `pidsCurrent` where those controllers
   * are enabled for it). The calls of one tick, on any number of daemons, are read in one batch.
   * Every reading also feeds the fd-headroom warning (`fdWarnRatio`). Rejects with
   * `ERR_DAEMON_NOT_RUNNING` when it is not running.
   */
  stats(): Promise<DaemonStats> {
    if (!this.proc) {
      return Promise.reject(
        new VirtiofsDaemonError('ERR_DAEMON_NOT_RUNNING', `${this.name} is not running; start() it first`),
      );
    }
    return this.proc.stats();
  }

  /**
   * A JSON-serialisable record of the running daemon, from which `adopt()` can take it over
   * later, in this process or another (see {@link DaemonHandle}). Throws
   * `ERR_DAEMON_NOT_RUNNING` when no daemon is running.
   */
  handle(): DaemonHandle {
    const proc = this.proc;
    if (!proc || this.isStarting) {
      throw new VirtiofsDaemonError(
        'ERR_DAEMON_NOT_RUNNING',
        `${this.name} is not running; start() it and wait for it first`,
      );
    }
    const { uid, pid, pgid, startTime, exe, argv, log, cgroup } = proc.identity();
    const fields = {
      format: HANDLE_FORMAT,
      kind: this.name,
      uid,
      pid,
      pgid,
      startTime,
      bootId: bootId(),
      exe,
      argv,
      lifetime: this.options.lifetime,
      sourcePath: resolve(this.options.sourcePath),
      sockets: this.socketRecords(),
      log,
      cgroup,
    };
    return { ...fields, seal: sealOf(fields) };
  }

  /**
   * The QEMU options that attach a guest to this daemon's vhost-user socket (its absolute
   * path), as an argv array for `spawn`: `-chardev`, `-device vhost-user-fs-pci`, and unless
   * `memoryBackend: false` the shared memory backend, `-numa` and `-m`. The options and the
   * errors ({@link InvalidOptionError}, thrown) are those of the exported `qemuArgs()`. The socket exists
   * from the moment start() resolves until the daemon ends; the arguments can be built before.
   */
  qemuArgs(options: DaemonQemuArgsOptions): string[] {
    return qemuArgsForSocket(`${this.name}.qemuArgs`, resolve(this.vhostUserSocketPath()), options);
  }

  /**
   * Take over the daemon of a proven `handle` (adopt.ts): it becomes ours as if we had started
   * it - stop, onQuit once, its output through our logger from where its pipe stands.
   */
  protected attach(handle: DaemonHandle, trust: HandleTrust, onQuit?: (exit: DaemonExit) => void): void {
    const { proc, logFd, abandon } = adoptProcess(handle, trust);
    let cgroup: Cgroup | undefined;
    try {
      cgroup = handle.cgroup ? Cgroup.resume(handle.cgroup, handle.pid) : undefined;
    } catch (err) {
      abandon();
      throw err;
    }
    const log = logFd === null ? null : handle.log;
    const daemon = new DaemonProcess(
      {
        name: this.name,
        file: handle.argv[0],
        args: handle.argv.slice(1),
        logger: this.log,
        lifetime: 'survive',
        cgroup,
        headroom: this.headroom(),
      },
      { proc, logFd, log, argv: handle.argv, startTime: handle.startTime },
    );
    this.log.info({ daemonPid: handle.pid, argv: handle.argv }, `${this.name} adopted`);
    this.adopt(daemon, { started: true }, onQuit);
  }

  /** The headroom warning of the daemon's process, as its options say (undefined: off). */
  protected headroom(): Headroom | undefined {
    const { fdWarnRatio, fdCheckIntervalMs } = this.options;
    if (fdWarnRatio === 0) return undefined;
    return { ratio: fdWarnRatio, intervalMs: fdCheckIntervalMs, fix: FD_FIX[this.name] };
  }

  /** The daemon's sockets, by name, with their identity (for its handle). */
  protected abstract socketRecords(): Record<string, SocketRecord>;
  /** The socket a VMM connects to (vhost-user). Throws the options' error when they are invalid. */
  protected abstract vhostUserSocketPath(): string;

  abstract mount(opt: MountOption): Promise<void>;
  abstract umount(mountpoint: string): Promise<void>;

  /**
   * Validate, create what the daemon needs, spawn it (then {@link adopt} it at once) and
   * resolve to its pid once it is ready, setting `run.started` in the same step (no await in
   * between: an end reported after that point goes to onQuit). Whatever fails must undo what
   * came before.
   */
  protected abstract launch(run: Run, onQuit?: (exit: DaemonExit) => void): Promise<number>;
  /** Remove what launch created for the process that just ended. */
  protected abstract cleanup(): void;
  /** How stop() stops the process. */
  protected abstract stopOptions(): StopOptions;
  /** Tags of the `start` span. */
  protected abstract spanAttributes(): Record<string, string>;

  /** Make a freshly spawned process ours; its end is reported once, to onQuit only if `run` started. */
  protected adopt(proc: DaemonProcess, run: Run, onQuit?: (exit: DaemonExit) => void): void {
    this.proc = proc;
    // A callback, not a reaction on `ended`: a running daemon keeps no promise. report() never throws.
    proc.onEnded((end) => this.report(proc, end, run.started, onQuit));
  }

  /** Never throws: it runs on a promise nobody awaits, where a throw would be an unhandled rejection. */
  private report(proc: DaemonProcess, end: ProcessEnd, started: boolean, onQuit?: (exit: DaemonExit) => void): void {
    const exit: DaemonExit = { code: end.code, signal: end.signal, requested: end.requested, known: end.known };
    const level = end.requested ? 'info' : 'warn';
    if (this.log.enabled(level)) this.log[level]({ ...exit, groupLeftovers: end.groupLeftovers }, `${this.name} quits`);
    // A start that did not resolve reports its end as its failure ('start-failed'), not here.
    if (started) this.notify({ type: 'exited', exit, dialect: daemonDialect(this) });
    if (this.proc === proc) {
      try {
        this.cleanup();
      } catch (err) {
        this.log.warn({ err }, `cleaning up after ${this.name} failed`);
      }
      this.proc = undefined;
    }
    try {
      if (started) onQuit?.(exit);
    } catch (err) {
      // The caller's bug, not ours: surface it as an uncaught exception, as an event listener's would be.
      process.nextTick(() => {
        throw err;
      });
    }
  }
}
