/**
 * The one daemon-process layer both daemons stand on: spawn with an fd map in a process group
 * of its own, output pipes read line by line on the event loop, the exit observed by pidfd,
 * stop with escalation, and the wait until nothing of the group is left.
 */
import { fstatSync, statSync } from 'node:fs';
import net from 'node:net';
import { MAX_TIMER_MS, raceDeadline, sleep, TIMED_OUT } from '../common/deadline.js';
import { describeValue } from '../common/describe.js';
import { InvalidOptionError, VirtiofsDaemonError } from '../common/errors.js';
import type { DaemonExit, ExitStatus } from '../common/types.js';
import { Cgroup } from './cgroup.js';
import { processIdentity, processUids, type DaemonHandle, type Lifetime } from './handle.js';
import { LineScanner, parseDaemonLine, type LineInfo } from './lines.js';
import { safeLog, type Log, type LogMethods } from '../common/logger.js';
import { lockDaemon, unlockDaemon } from './runtime-dir.js';
import {
  closeFd,
  liveGroups,
  makePipe,
  readPipe,
  spawn,
  type Child,
  type ForeignExit,
  type OpenProcess,
  type PipeReader,
} from './native.js';
import { signalName } from '../common/signals.js';
import { sampleDaemon, watchHeadroom, type DaemonStats, type HeadroomWatch } from './process-stats.js';

/**
 * Capacity of a surviving daemon's output pipe: what it can log while no manager reads it. 1 MiB
 * is the default /proc/sys/fs/pipe-max-size; beyond what the pipe holds, lines are dropped (the
 * daemon's end is non-blocking), never the daemon blocked.
 */
export const LOG_PIPE_BYTES = 1024 * 1024;

/** The lifetime of a daemon that dies with its manager: the kernel SIGKILLs it when our thread ends. */
const DIE_WITH_MANAGER = { deathSignal: 'SIGKILL' } as const;

/** How much of each line the tail keeps (see DaemonProcess.line). */
const TAIL_LINE_CHARS = 1024;

/** How long an adopted daemon's exit may wait for its status to be published (its reap by init). */
const EXIT_STATUS_WAIT_MS = 5000;

/** A daemon process adopted by pid instead of spawned (see adopt.ts). */
export interface AttachedProcess {
  proc: OpenProcess;
  /** Our copy of its output pipe's read end, or null. Ours to close from now on. */
  logFd: number | null;
  /** Where that pipe is parked in the daemon (from the handle), for the next handle. */
  log: DaemonHandle['log'];
  /** Its command line, from the handle. */
  argv: string[];
  /** Its start time, from the handle: tells its zombie from a later process with its pid. */
  startTime: string;
}

/** What both a spawned child and an adopted process offer the layer above. */
type Watched = Pick<Child, 'pid' | 'signal' | 'ref' | 'unref'>;

export interface DaemonProcessOptions {
  /** The daemon's name, for log records and errors (e.g. `virtiofsd`). */
  name: string;
  /** Path of the program. */
  file: string;
  /** Arguments after argv[0]. */
  args: string[];
  /** The daemon's environment. Default: ours. */
  env?: NodeJS.ProcessEnv;
  /** Our fds to hand on: entry i becomes the daemon's fd 3+i. The caller keeps (and closes) its own. */
  extraFds?: number[];
  /** Read stdout into the log too (nydusd logs there); otherwise stdout is /dev/null. */
  captureStdout?: boolean;
  /**
   * Receives one record per output line, at the level the daemon gave it. Wrapped with
   * {@link safeLog}: a logger that throws never disturbs the process or its output pipes.
   */
  logger: LogMethods;
  /** Called with every output line, after it is logged (readiness markers). */
  onLine?: (line: string) => void;
  /** Output lines are cut beyond this many bytes, with a marker. Default 16 KiB. */
  maxLineBytes?: number;
  /** How many of the last output lines to keep for error messages. Default 20. */
  tailLines?: number;
  /**
   * After the exit, how long to keep reading output that a process outside the group still
   * holds open before we close our end. Default 500 ms.
   */
  drainTimeoutMs?: number;
  /** After the exit, how long to wait for the rest of the process group to go. Default 5000 ms. */
  groupTimeoutMs?: number;
  /**
   * The daemon's own cgroup (see {@link Cgroup.prepare}). The daemon starts in it; SIGKILL goes
   * through `cgroup.kill`, which no descendant escapes (setsid() and setpgid() included); "gone"
   * means the cgroup is empty; the cgroup is removed at the end if it was created for the daemon.
   */
  cgroup?: Cgroup;
  /** See {@link Lifetime}. Default `'manager'`. */
  lifetime?: Lifetime;
  /** The fd-headroom warning (see process-stats.ts); none when absent. */
  headroom?: Headroom | undefined;
}

/** The fd-headroom warning of one daemon process. */
export interface Headroom {
  /** The fraction of RLIMIT_NOFILE that warns, in (0, 1]. */
  ratio: number;
  /** How often the shared timer reads it, in ms; 0: only stats() does. */
  intervalMs: number;
  /** What the warning tells the operator to do. */
  fix: string;
}

/** How a daemon process ended ({@link DaemonExit}), and whether anything of it outlived it. */
export interface ProcessEnd extends DaemonExit {
  /** True when processes of its group (or cgroup) were still alive when the deadline passed. */
  groupLeftovers: boolean;
}

export interface StopOptions {
  /** The first signal, sent to the whole process group. Default `SIGKILL`. */
  signal?: NodeJS.Signals;
  /** When `signal` is not SIGKILL: how long to wait before SIGKILL. Default 5000 ms. */
  timeoutMs?: number;
  /** How long to wait for the exit after SIGKILL before giving up with an error. Default 10000 ms. */
  killTimeoutMs?: number;
}

/** Cgroups of running daemons, killed if this process exits under them (see {@link watchCgroup}). */
const liveCgroups = new Set<Cgroup>();

/**
 * Kill the daemon's cgroup if this process exits while it runs. The addon kills each child's
 * process group then (see native.ts), which a descendant that left the group escapes; its
 * cgroup it cannot leave. Created directories stay: they empty only after the kill.
 */
function watchCgroup(cgroup: Cgroup): () => void {
  if (liveCgroups.size === 0 && !exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const c of liveCgroups) {
        try {
          c.kill();
        } catch {
          // Exiting: nothing left to report to.
        }
      }
    });
  }
  liveCgroups.add(cgroup);
  return () => liveCgroups.delete(cgroup);
}
let exitHook = false;

interface GroupWait {
  pgid: number;
  deadline: number;
  ref: boolean;
  resolve: (empty: boolean) => void;
}

const groupWaits = new Set<GroupWait>();
/** The check of newcomers: in this turn of the loop, once their leaders are reaped (setImmediate). */
let groupImmediate: NodeJS.Immediate | undefined;
/** The next check while groups are still alive, backing off from 2 ms to 100 ms. */
let groupTimer: NodeJS.Timeout | undefined;
let groupDelay = 2;
let refedWaits = 0;

/**
 * Resolve true once no process of group `pgid` is alive, false after `timeoutMs`. Every wait of
 * this thread shares one check per tick ({@link liveGroups}: at most one walk of /proc for all of
 * them), so a thousand daemons stopping at once do not walk /proc a thousand times per tick.
 *
 * A newcomer is checked in the same turn of the event loop (setImmediate, the check phase): the
 * wait starts from the exit callback, where the leader is still our zombie, and the addon reaps
 * it as soon as the callback returns, so by then its group is usually gone and `kill(-pgid, 0)`
 * says so without a walk. A timer, even of 0 ms, would cost the stop a whole millisecond.
 */
function waitGroupEmpty(pgid: number, timeoutMs: number, ref: boolean): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    groupWaits.add({ pgid, deadline: Date.now() + timeoutMs, ref, resolve });
    if (ref) refedWaits++;
    groupDelay = 2;
    if (!groupImmediate) {
      clearTimeout(groupTimer);
      groupTimer = undefined;
      groupImmediate = setImmediate(checkGroups);
      if (refedWaits === 0) groupImmediate.unref();
    } else if (ref) {
      groupImmediate.ref();
    }
  });
}

function checkGroups(): void {
  groupImmediate = undefined;
  groupTimer = undefined;
  const waits = [...groupWaits];
  let alive: boolean[];
  try {
    alive = liveGroups(waits.map((w) => w.pgid));
  } catch {
    alive = waits.map(() => false); // no /proc to read: nothing more we can learn
  }
  const now = Date.now();
  waits.forEach((w, i) => {
    if (alive[i] && now <= w.deadline) return;
    groupWaits.delete(w);
    if (w.ref) refedWaits--;
    w.resolve(!alive[i]);
  });
  if (groupWaits.size === 0) return;
  groupTimer = setTimeout(checkGroups, groupDelay);
  if (refedWaits === 0) groupTimer.unref();
  groupDelay = Math.min(groupDelay * 2, 100);
}

/** What {@link DaemonProcess.waitForLine} resolves to. */
export type LineWait = 'ready' | 'exited' | typeof TIMED_OUT;

/**
 * A running daemon in a process group of its own.
 *
 * What it keeps while the daemon runs, for a host with a thousand of them: its fields, one
 * {@link OutputStream} per pipe (a LineScanner and the native reader), the native Child, and
 * the bound callbacks the addon holds. No promise is pending while it runs: `ended`, the exit
 * wait of a stop and the wait for a ready line are made when someone asks for them, and the
 * end is worked out (group, cgroup, drain) from the exit callback on.
 */
export class DaemonProcess {
  readonly argv: string[];

  private readonly name: string;
  private readonly child: Watched;
  private readonly cgroup: Cgroup | undefined;
  private readonly onLine: ((line: string) => void) | undefined;
  private readonly groupTimeoutMs: number;
  private readonly drainTimeoutMs: number;
  /** The last output lines while the start is on; null once it is over (see startOver). */
  private tail: string[] | null = [];
  private readonly tailLines: number;
  private known = true;
  private readonly attached: AttachedProcess | undefined;
  /** Where the read end of the output pipe is parked in the daemon (lifetime 'survive'). */
  private parkedLog: DaemonHandle['log'] = null;
  private exit: ExitStatus | null = null;
  private stopRequested = false;
  /** SIGKILL went to the whole group (and cgroup) already. */
  private groupKilled = false;
  private stopping: Promise<ProcessEnd> | undefined;
  private refed = true;
  private readonly log: Log;
  private readonly streams: OutputStream[];
  /** Called once the cgroup no longer needs watching (this process exiting would kill it). */
  private unwatchCgroup: (() => void) | undefined;
  /** The end, once worked out; `ended` and the end callback get it. */
  private end: ProcessEnd | undefined;
  private endPromise: Promise<ProcessEnd> | undefined;
  private endResolve: ((end: ProcessEnd) => void) | undefined;
  private endCallback: ((end: ProcessEnd) => void) | undefined;
  /** The exit waits of a stop, made only while one waits (see exitedWithin). */
  private exitWaiters: (() => void)[] | undefined;
  /** The lines from the ready line on, logged at the next turn (see line()); null when none are held. */
  private heldLines: { line: string; info: LineInfo }[] | null = null;
  /** The wait for a ready line (waitForLine): the marker, and how to settle the wait. */
  private lineMarker: string | undefined;
  private lineSettle: ((outcome: LineWait) => void) | undefined;
  /** The fd-headroom warning's state, carried from reading to reading. */
  private readonly headroom: HeadroomWatch | undefined;
  /** Stops the shared timer's readings of this daemon for its headroom warning. */
  private unwatchHeadroom: (() => void) | undefined;

  /**
   * Spawn the daemon, or with `attached`, take over one that a handle named (see adopt.ts).
   * Throws synchronously (a {@link SystemError} with `syscall: 'spawn'`) when the program
   * cannot be executed; nothing is left behind then.
   */
  constructor(options: DaemonProcessOptions, attached?: AttachedProcess) {
    this.name = options.name;
    this.cgroup = options.cgroup;
    this.onLine = options.onLine;
    this.groupTimeoutMs = options.groupTimeoutMs ?? 5000;
    this.drainTimeoutMs = options.drainTimeoutMs ?? 500;
    this.tailLines = options.tailLines ?? 20;
    this.log = safeLog(options.logger);
    this.argv = attached ? attached.argv : [options.file, ...options.args];
    this.attached = attached;
    // A surviving daemon's cgroup must outlive us too; any other dies with this process.
    if (options.cgroup && options.lifetime !== 'survive' && !attached) this.unwatchCgroup = watchCgroup(options.cgroup);

    let streamFds: number[];
    if (attached) {
      this.child = attached.proc;
      attached.proc.watch(() => {
        // At once: its parent (init) may reap it any moment and hand the pid to a new daemon.
        unlockDaemon(attached.proc.pid);
        void this.attachedExit(attached).then((exit) => this.exited(exit, exit.known));
      });
      streamFds = attached.logFd === null ? [] : [attached.logFd];
    } else {
      const spawned = this.spawnDaemon(options, this.spawnedExit.bind(this));
      this.child = spawned.child;
      streamFds = spawned.streamFds;
      this.takeAdoptionLock(spawned.child.pid);
    }
    const maxLineBytes = options.maxLineBytes;
    this.streams = streamFds.map((fd) => new OutputStream(this, fd, maxLineBytes));
    const h = options.headroom;
    if (h) {
      this.headroom = { ratio: h.ratio, above: false, name: options.name, log: this.log, fix: h.fix };
      if (h.intervalMs > 0) this.unwatchHeadroom = watchHeadroom(this.target(), this.headroom, h.intervalMs);
    }
  }

  /** What a reading of this daemon's processes looks at: its group, or its cgroup. */
  private target(): { pgid: number; cgroup: Cgroup | undefined } {
    return { pgid: this.child.pid, cgroup: this.cgroup };
  }

  /** The exit callback of a child we spawned. Both null: someone else in this process reaped it, and its status is lost. */
  private spawnedExit(exit: ExitStatus): void {
    // While it is our zombie its pid cannot be reused: the lock goes before the pid can.
    unlockDaemon(this.child.pid);
    this.exited(exit, exit.code !== null || exit.signal !== null);
  }

  private exited(exit: ExitStatus, known: boolean): void {
    this.exit = { code: exit.code, signal: exit.signal };
    this.known = known;
    // Our child is still a zombie here (an adopted daemon is held by our pidfd), so its group
    // id cannot have been reused: this reaches exactly its descendants (both virtiofsd
    // dialects fork a sandbox child). Not again after a stop's SIGKILL: every member had it
    // then (a SIGKILLed process forks no more), and the cgroup's kill reached the rest.
    try {
      if (!this.groupKilled) this.killAll();
    } finally {
      this.unwatchCgroup?.();
      this.unwatchCgroup = undefined;
      this.unwatchHeadroom?.();
      this.unwatchHeadroom = undefined;
      const waiters = this.exitWaiters;
      this.exitWaiters = undefined;
      if (waiters) for (const seen of waiters) seen();
      void this.finish();
    }
  }

  /**
   * Resolves once the daemon is reaped, its group is empty (bounded) and its output is read.
   * Never rejects. Made when first asked for: a running daemon keeps no pending promise.
   */
  get ended(): Promise<ProcessEnd> {
    if (!this.endPromise) {
      const end = this.end;
      this.endPromise = end ? Promise.resolve(end) : new Promise((resolve) => (this.endResolve = resolve));
    }
    return this.endPromise;
  }

  /**
   * Have `fn` called once with the end, right before `ended` resolves (for the daemon's owner,
   * which reports it). One callback; it must not throw.
   */
  onEnded(fn: (end: ProcessEnd) => void): void {
    const end = this.end;
    if (end) queueMicrotask(() => fn(end));
    else this.endCallback = fn;
  }

  /**
   * During the start: resolves `'ready'` at the first output line that holds `marker`,
   * `'exited'` once the daemon has ended first (see {@link ended}), {@link TIMED_OUT} after
   * `timeoutMs`. One wait at a time; nothing of it is kept once it has settled.
   */
  waitForLine(marker: string, timeoutMs: number): Promise<LineWait> {
    if (this.end) return Promise.resolve('exited');
    return new Promise<LineWait>((resolve) => {
      const timer = setTimeout(() => settle(TIMED_OUT), timeoutMs > 0 ? Math.min(timeoutMs, MAX_TIMER_MS) : 0);
      const settle = (outcome: LineWait): void => {
        clearTimeout(timer);
        this.lineMarker = undefined;
        this.lineSettle = undefined;
        resolve(outcome);
      };
      this.lineMarker = marker;
      this.lineSettle = settle;
    });
  }

  /**
   * One output line of the daemon: logged at the level it gave it, kept for the start's errors,
   * matched. The line that ends a start's wait is logged right after the start has resolved
   * (at the loop's next turn, with the lines that follow it, in order): with a synchronous log
   * destination its record would otherwise stand between the daemon's ready line and every
   * start's resolution.
   */
  line(line: string, info: LineInfo): void {
    const tail = this.tail;
    if (tail !== null && this.tailLines > 0) {
      // The tail only explains a failed start in an error message: 1 KiB per line says why,
      // and keeps 20 lines of a daemon that logs 16 KiB lines from costing 320 KiB each.
      tail.push(line.length > TAIL_LINE_CHARS ? `${line.slice(0, TAIL_LINE_CHARS)}…` : line);
      if (tail.length > this.tailLines) tail.shift();
    }
    const held = this.heldLines;
    if (held !== null) {
      held.push({ line, info });
    } else if (this.lineMarker !== undefined && line.includes(this.lineMarker)) {
      this.heldLines = [{ line, info }];
      this.lineSettle!('ready');
      setImmediate(() => this.logHeldLines());
    } else {
      this.logLine(line, info);
    }
    this.onLine?.(line);
  }

  private logLine(line: string, info: LineInfo): void {
    const { level, msg } = parseDaemonLine(line);
    if (info.truncated) this.log[level]({ truncated: info.discardedBytes }, msg);
    else this.log[level](msg);
  }

  /** Log the lines held back from the ready line on (see line()), in order; none are held after. */
  private logHeldLines(): void {
    const held = this.heldLines;
    this.heldLines = null;
    if (held === null) return;
    for (const h of held) this.logLine(h.line, h.info);
  }

  /**
   * The adoption lock (runtime-dir.ts): while we hold the daemon, no other manager of this user can
   * adopt it. Never throws: the daemon runs already. Held by someone else only when an adopter
   * of a former process with this pid has not seen its exit yet; then we run without it.
   */
  private takeAdoptionLock(pid: number): void {
    try {
      if (!lockDaemon(pid)) {
        this.log.debug({ daemonPid: pid }, 'adoption lock of this pid still held by a former adopter');
      }
    } catch (err) {
      this.log.warn({ err, daemonPid: pid }, 'cannot take the adoption lock; another manager could adopt this daemon');
    }
  }

  /**
   * Spawn the program in its own process group (and cgroup), with the output pipes the lifetime
   * needs: ours alone for `'manager'`, whose child also gets the death signal; for `'survive'`
   * one pipe whose read end is also parked in the daemon. Returns the child and our read ends.
   */
  private spawnDaemon(
    options: DaemonProcessOptions,
    onExit: (exit: ExitStatus) => void,
  ): { child: Child; streamFds: number[] } {
    const extraFds = options.extraFds ?? [];
    const cgroupFd = options.cgroup?.openFd();
    const { file, env } = options;
    const argv = this.argv;
    try {
      if (options.lifetime !== 'survive') {
        const capture = options.captureStdout === true;
        const child = spawn({
          file,
          argv,
          env,
          newProcessGroup: true,
          cgroupFd,
          onExit,
          fds: ['null', capture ? 'pipe' : 'null', 'pipe', ...extraFds],
          lifetime: DIE_WITH_MANAGER,
        });
        const pipes = child.pipes;
        return { child, streamFds: capture ? [pipes[1]!, pipes[2]!] : [pipes[2]!] };
      }
      // One pipe for stdout and stderr. A copy of its read end is parked in the daemon itself
      // (after extraFds), so that writing never meets EPIPE/SIGPIPE while no manager reads, and
      // the next manager takes it back with pidfd_getfd.
      const pipe = makePipe(LOG_PIPE_BYTES, { writeNonblocking: true });
      let child: Child;
      try {
        child = spawn({
          file,
          argv,
          env,
          newProcessGroup: true,
          cgroupFd,
          onExit,
          fds: ['null', options.captureStdout ? pipe.write : 'null', pipe.write, ...extraFds, pipe.read],
          lifetime: { detach: true },
        });
      } catch (err) {
        closeFd(pipe.read);
        throw err;
      } finally {
        closeFd(pipe.write);
      }
      this.parkedLog = { fd: 3 + extraFds.length, pipeIno: String(fstatSync(pipe.read, { bigint: true }).ino) };
      return { child, streamFds: [pipe.read] };
    } finally {
      if (cgroupFd !== undefined) Cgroup.closeFd(cgroupFd);
    }
  }

  /**
   * The fields of a {@link DaemonHandle} that describe the process. Throws
   * `ERR_DAEMON_NOT_RUNNING` once it has exited.
   */
  identity(): Pick<DaemonHandle, 'uid' | 'pid' | 'pgid' | 'startTime' | 'exe' | 'argv' | 'log' | 'cgroup'> {
    const pid = this.pid;
    const id = pid ? processIdentity(pid) : null;
    const uids = pid ? processUids(pid) : null;
    if (!id || !id.exe || !uids || id.state === 'Z' || id.state === 'X') {
      throw new VirtiofsDaemonError('ERR_DAEMON_NOT_RUNNING', `${this.name} is not running; it has no handle`);
    }
    const log = this.attached ? this.attached.log : this.parkedLog;
    const cgroup = this.cgroup?.record() ?? null;
    // The effective uid: what the kernel checks when the daemon acts, and what adopt() requires.
    return { uid: uids[1], pid, pgid: pid, startTime: id.startTime, exe: id.exe, argv: this.argv, log, cgroup };
  }

  /**
   * The status of an adopted daemon that has exited. The kernel publishes it to pidfd holders
   * once its parent (init, by now) has reaped it; until then a zombie's /proc stat holds it,
   * which root may read. Neither within the deadline: unknown, never invented.
   */
  private async attachedExit(attached: AttachedProcess): Promise<ForeignExit> {
    const deadline = Date.now() + EXIT_STATUS_WAIT_MS;
    for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
      const info = attached.proc.exitInfo();
      if (info) return info;
      const id = processIdentity(attached.proc.pid);
      if (id && id.startTime === attached.startTime && id.state === 'Z' && process.geteuid?.() === 0) {
        const status = id.exitCode;
        const signo = status & 0x7f;
        return signo
          ? { known: true, code: null, signal: signalName(signo), coreDumped: (status & 0x80) !== 0 }
          : { known: true, code: (status >> 8) & 0xff, signal: null, coreDumped: false };
      }
      if (Date.now() > deadline) return { known: false, code: null, signal: null, coreDumped: false };
      await sleep(delay, this.refed);
    }
  }

  /** The daemon's pid; 0 once it has exited and been reaped. */
  get pid(): number {
    return this.exit ? 0 : this.child.pid;
  }

  /** The exit status once the daemon has exited, else null. */
  get exitStatus(): ExitStatus | null {
    return this.exit;
  }

  /** What the daemon's processes (and its cgroup, if it has one) hold now (see process-stats.ts). */
  stats(): Promise<DaemonStats> {
    return sampleDaemon(this.target(), this.headroom);
  }

  /** SIGKILL for the daemon's group, and for its whole cgroup when it has one. */
  private killAll(): void {
    try {
      this.child.signal('SIGKILL', { group: true });
      this.groupKilled = true;
    } finally {
      // Even when the group could not be signalled: what is in the cgroup goes all the same.
      try {
        this.cgroup?.kill();
      } catch (err) {
        this.log.warn({ err, cgroup: this.cgroup?.path }, 'cgroup.kill failed');
      }
    }
  }

  /** The last output lines, oldest first (until {@link startOver}). */
  lastLines(): string[] {
    return this.tail ? [...this.tail] : [];
  }

  /**
   * The start is over: stop keeping the last lines. They serve start errors only; a running
   * daemon's lines are in the log, and a host with hundreds of daemons would otherwise hold
   * `tailLines` strings for each (~2 KB a daemon).
   */
  startOver(): void {
    this.tail = null;
  }

  /** Keep the event loop alive while the daemon runs (the default), or not. */
  ref(): void {
    this.refed = true;
    this.child.ref();
    for (const s of this.streams) s.ref();
  }
  unref(): void {
    this.refed = false;
    this.child.unref();
    for (const s of this.streams) s.unref();
  }

  /**
   * Stop the daemon: `signal` to its whole group, SIGKILL after `timeoutMs` (at once when
   * `signal` cannot be sent), resolved once it is reaped and its group is empty. Concurrent
   * calls share one stop; a stop that failed is not kept, so the next call tries again. A daemon
   * that has already exited is not an error.
   */
  stop(options: StopOptions = {}): Promise<ProcessEnd> {
    const stopping = (this.stopping ??= this.escalate(options).catch((err: unknown) => {
      if (this.stopping === stopping) this.stopping = undefined;
      throw err;
    }));
    return stopping;
  }

  private async escalate({
    signal = 'SIGKILL',
    timeoutMs = 5000,
    killTimeoutMs = 10000,
  }: StopOptions): Promise<ProcessEnd> {
    if (!this.exit) {
      this.stopRequested = true;
      const polite = signal !== 'SIGKILL' && this.trySignal(signal);
      if (!polite || !(await this.exitedWithin(timeoutMs))) {
        if (polite) this.log.warn({ signal, timeoutMs }, `${this.name} ignored ${signal}; sending SIGKILL`);
        this.killAll();
      }
      if (!(await this.exitedWithin(killTimeoutMs))) {
        throw new VirtiofsDaemonError(
          'ERR_DAEMON_STOP_TIMEOUT',
          `${this.name} (pid ${this.child.pid}) did not exit within ${killTimeoutMs} ms of SIGKILL; ` +
            'it is most likely stuck in the kernel (uninterruptible sleep, e.g. a hung mount)',
        );
      }
    }
    return this.ended;
  }

  /** Send the polite stop signal; false (logged) when it cannot be sent, so that SIGKILL follows at once. */
  private trySignal(signal: NodeJS.Signals): boolean {
    try {
      this.child.signal(signal, { group: true });
      return true;
    } catch (err) {
      this.log.warn({ err, signal }, `cannot send ${String(signal)} to ${this.name}; sending SIGKILL`);
      return false;
    }
  }

  /**
   * Whether the exit is seen within `ms`: one promise and one timer, made only now (a stop), each
   * settled by whichever comes first; the timer goes with the exit.
   */
  private exitedWithin(ms: number): Promise<boolean> {
    if (this.exit) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const waiters = (this.exitWaiters ??= []);
      const seen = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(
        () => {
          waiters.splice(waiters.indexOf(seen), 1);
          resolve(false);
        },
        ms > 0 ? Math.min(ms, MAX_TIMER_MS) : 0,
      );
      waiters.push(seen);
    });
  }

  /**
   * From the exit on: wait (bounded) until nothing of the group or cgroup is left and the pipes
   * are read to the end, then hand the end to the owner's callback and to `ended`.
   */
  private async finish(): Promise<void> {
    const { cgroup, groupTimeoutMs } = this;
    // Descendants that outlive the daemon got SIGKILL at the exit; wait until they are gone.
    // Until the end is reported the daemon is not over: keep the loop alive as its watch did.
    const empty = cgroup
      ? await cgroup.waitEmpty(groupTimeoutMs, this.refed)
      : await waitGroupEmpty(this.child.pid, groupTimeoutMs, this.refed);
    const groupLeftovers = !empty;
    // The daemon's last lines before our report of its end.
    this.logHeldLines();
    if (!empty) {
      const what = cgroup ? `cgroup '${cgroup.path}'` : 'group';
      this.log.warn(`processes of ${this.name}'s ${what} outlived it by ${groupTimeoutMs} ms`);
    } else if (cgroup?.created && !(await cgroup.remove())) {
      this.log.warn({ cgroup: cgroup.path }, `could not remove ${this.name}'s cgroup`);
    }

    // The pipes reach EOF once every writer is gone; one that escaped the group (setsid) must
    // not hold the exit report forever.
    const open = this.streams.filter((s) => !s.done);
    if (open.length > 0) {
      const drained = Promise.all(open.map((s) => s.drained()));
      if ((await raceDeadline(drained, this.drainTimeoutMs, { ref: this.refed })) === TIMED_OUT) {
        for (const s of open) s.destroy();
        await drained;
      }
    }
    this.attached?.proc.release();
    const end: ProcessEnd = { ...this.exit!, requested: this.stopRequested, groupLeftovers, known: this.known };
    this.end = end;
    // A start still waiting for its ready line hears of the end as it did through `ended`.
    this.lineSettle?.('exited');
    const callback = this.endCallback;
    this.endCallback = undefined;
    try {
      callback?.(end);
    } finally {
      this.endResolve?.(end);
      this.endResolve = undefined;
    }
  }
}

/**
 * One output pipe of a daemon, read on the event loop (never through the thread pool) and cut
 * into lines, each handed to {@link DaemonProcess.line}. A LineScanner itself, so that a
 * running daemon keeps one object per pipe and no closure but the reader's callback.
 */
class OutputStream extends LineScanner {
  /** True once the pipe has reached its end (or was destroyed) and the last line went out. */
  done = false;
  private readonly reader: PipeReader;
  /** During the drain at the end: resolves when `done` becomes true. */
  private settle: (() => void) | undefined;

  constructor(
    readonly proc: DaemonProcess,
    fd: number,
    maxLineBytes: number | undefined,
  ) {
    super({ maxLineBytes, onLine: deliverLine });
    this.reader = readPipe(fd, this.chunk.bind(this));
  }

  private chunk(chunk: Buffer | null): void {
    if (chunk) this.push(chunk);
    else this.finishStream();
  }

  private finishStream(): void {
    if (this.done) return;
    this.done = true;
    this.end();
    this.settle?.();
  }

  /** Resolves once the pipe is read to its end. */
  drained(): Promise<void> {
    if (this.done) return Promise.resolve();
    return new Promise((resolve) => (this.settle = resolve));
  }

  /** Stop reading now (a writer outside the group holds the pipe open). */
  destroy(): void {
    this.reader.close();
    this.finishStream();
  }

  ref(): void {
    this.reader.ref();
  }

  unref(): void {
    this.reader.unref();
  }
}

/** The scanner's line callback: LineScanner calls it as its own method, so `this` is the stream. */
function deliverLine(this: OutputStream, line: string, info: LineInfo): void {
  this.proc.line(line, info);
}

/**
 * What `ask` learns from `binary`, asked once per path, size and mtime (`cache` is the
 * caller's): concurrent starts of one binary share one probe, a failed probe is asked again.
 */
export function askBinary<T>(binary: string, cache: Map<string, Promise<T>>, ask: () => Promise<T>): Promise<T> {
  // Directly, not through the thread pool: this runs on every start (see validate.ts statOr).
  const st = statSync(binary);
  const key = `${binary}\0${st.size}\0${st.mtimeMs}`;
  let answer = cache.get(key);
  if (answer === undefined) {
    answer = ask();
    cache.set(key, answer);
    void answer.catch(() => cache.get(key) === answer && cache.delete(key));
  }
  return answer;
}

/**
 * What `binary --version` says, read by `parse` (undefined: not the program we expect), asked once
 * per path, size and mtime (see {@link askBinary}). An answer `parse` cannot read is an
 * {@link InvalidOptionError} for `option` that quotes the output and ends with `hint`.
 */
export function askVersion<T>(
  binary: string,
  cache: Map<string, Promise<T>>,
  parse: (text: string) => T | undefined,
  { what, option, hint }: { what: string; option: string; hint: string },
): Promise<T> {
  return askBinary(binary, cache, async () => {
    const out = await captureOutput(binary, ['--version']);
    const text = `${out.stdout}\n${out.stderr}`;
    const answer = parse(text);
    if (answer === undefined) {
      const output = describeValue(text.trim().slice(0, 200));
      throw new InvalidOptionError(
        option,
        `cannot tell which ${what} '${binary}' is from its --version output ${output}; ${hint}`,
      );
    }
    return answer;
  });
}

/**
 * Run a program to completion and collect its stdout and stderr (at most `maxBytes` each),
 * e.g. `virtiofsd --version`. Rejects when it outlives `timeoutMs` (it is killed then).
 */
export async function captureOutput(
  file: string,
  args: string[],
  { timeoutMs = 5000, maxBytes = 64 * 1024 } = {},
): Promise<ExitStatus & { stdout: string; stderr: string }> {
  const out: Buffer[][] = [[], []];
  let exited!: (e: ExitStatus) => void;
  const exit = new Promise<ExitStatus>((resolve) => (exited = resolve));
  const child = spawn({
    file,
    argv: [file, ...args],
    fds: ['null', 'pipe', 'pipe'],
    newProcessGroup: true,
    onExit: (e) => {
      child.signal('SIGKILL', { group: true });
      exited({ code: e.code, signal: e.signal });
    },
  });
  const sockets = [1, 2].map((i) => new net.Socket({ fd: child.pipes[i]!, readable: true, writable: false }));
  const reads = sockets.map(
    (s, k) =>
      new Promise<void>((resolve) => {
        let size = 0;
        s.on('data', (b: Buffer) => {
          if (size < maxBytes) out[k].push(b.subarray(0, maxBytes - size));
          size += b.length;
        });
        // A read error (EIO, a reset) only cuts the capture short, and the exit status is the
        // answer; without a listener the 'error' event would be an uncaught exception instead.
        s.on('error', () => {});
        s.on('close', () => resolve());
      }),
  );
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.signal('SIGKILL', { group: true });
  }, timeoutMs);
  const status = await exit;
  clearTimeout(timer);
  await raceDeadline(Promise.all(reads), 500);
  for (const s of sockets) s.destroy();
  if (timedOut) {
    throw new VirtiofsDaemonError(
      'ERR_COMMAND_TIMEOUT',
      `${file} ${args.join(' ')} did not finish within ${timeoutMs} ms`,
    );
  }
  return { ...status, stdout: Buffer.concat(out[0]).toString(), stderr: Buffer.concat(out[1]).toString() };
}
