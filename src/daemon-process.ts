/**
 * The one daemon-process layer both daemons stand on: spawn with an fd map in a process group
 * of its own, output pipes read line by line on the event loop, the exit observed by pidfd,
 * stop with escalation, and the wait until nothing of the group is left.
 */
import { fstatSync } from 'node:fs';
import net from 'node:net';
import type { Logger } from 'pino';
import { VirtiofsDaemonError, type ExitStatus } from './errors.js';
import { processIdentity, type DaemonHandle, type Lifetime } from './handle.js';
import { LineScanner, parseDaemonLine } from './lines.js';
import { closeFd, lockFd, makePipe, signalName, spawn, type Child, type ForeignExit, type OpenProcess } from './native.js';

/**
 * Capacity of a surviving daemon's output pipe: what it can log while no manager reads it. 1 MiB
 * is the default /proc/sys/fs/pipe-max-size; beyond what the pipe holds, lines are dropped (the
 * daemon's end is non-blocking), never the daemon blocked.
 */
export const LOG_PIPE_BYTES = 1024 * 1024;

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
type Watched = Pick<Child, 'pid' | 'signal' | 'groupAlive' | 'ref' | 'unref'>;

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
  /** Receives one record per output line, at the level the daemon gave it. */
  logger: Logger;
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
  /** See {@link Lifetime}. Default `'manager'`. */
  lifetime?: Lifetime;
}

/** How a daemon process ended, and whether we asked it to. */
export interface ProcessEnd extends ExitStatus {
  /** True when the exit followed our {@link DaemonProcess.stop}. */
  requested: boolean;
  /** True when processes of its group were still alive when the deadline passed. */
  groupLeftovers: boolean;
  /** False when the status is unknown (an adopted daemon on a kernel that does not tell): code and signal are null. */
  known: boolean;
}

export interface StopOptions {
  /** The first signal, sent to the whole process group. Default `SIGKILL`. */
  signal?: NodeJS.Signals;
  /** When `signal` is not SIGKILL: how long to wait before SIGKILL. Default 5000 ms. */
  timeoutMs?: number;
  /** How long to wait for the exit after SIGKILL before giving up with an error. Default 10000 ms. */
  killTimeoutMs?: number;
}

/** A timer that keeps the event loop alive only while `ref` says so. */
export function sleep(ms: number, ref = true): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (!ref) timer.unref();
  });
}

/** A running daemon in a process group of its own. */
export class DaemonProcess {
  /** Resolves once the daemon is reaped, its group is empty (bounded) and its output is read. */
  readonly ended: Promise<ProcessEnd>;
  readonly argv: string[];

  private readonly child: Watched;
  private readonly tail: string[] = [];
  private known = true;
  private readonly attached: AttachedProcess | undefined;
  /** Where the read end of the output pipe is parked in the daemon (lifetime 'survive'). */
  private parkedLog: DaemonHandle['log'] = null;
  private readonly tailLines: number;
  private exit: ExitStatus | null = null;
  private stopRequested = false;
  private stopping: Promise<ProcessEnd> | undefined;
  private refed = true;
  private readonly exitSeen: Promise<void>;

  /**
   * Spawn the daemon. Throws synchronously (a {@link SystemError} with `syscall: 'spawn'`) when
   * the program cannot be executed; nothing is left behind then.
   */
  constructor(
    private readonly options: DaemonProcessOptions,
    attached?: AttachedProcess,
  ) {
    this.tailLines = options.tailLines ?? 20;
    this.argv = attached ? attached.argv : [options.file, ...options.args];
    this.attached = attached;
    let exitSeen!: () => void;
    this.exitSeen = new Promise<void>((resolve) => (exitSeen = resolve));

    if (attached) {
      this.child = attached.proc;
      attached.proc.watch(() => {
        void this.attachedExit(attached).then((exit) => {
          this.exit = { code: exit.code, signal: exit.signal };
          this.known = exit.known;
          // Through the pidfd: it reaches the group only while the kernel still knows it.
          attached.proc.signal('SIGKILL', { group: true });
          exitSeen();
        });
      });
      const fds = attached.logFd === null ? [] : [attached.logFd];
      this.ended = this.finish(fds.map((fd) => this.readLines(fd)));
      return;
    }

    const onExit = (exit: { code: number | null; signal: NodeJS.Signals | null }) => {
      this.exit = { code: exit.code, signal: exit.signal };
      // Both null: someone else in this process reaped our child, and its status is lost.
      this.known = exit.code !== null || exit.signal !== null;
      // The daemon is still a zombie here, so its group id cannot have been reused: this
      // reaches exactly its descendants (both virtiofsd dialects fork a sandbox child).
      this.child.signal('SIGKILL', { group: true });
      exitSeen();
    };
    const extraFds = options.extraFds ?? [];
    let child: Child;
    let streamFds: number[];
    if (options.lifetime === 'survive') {
      // One pipe for stdout and stderr. A copy of its read end is parked in the daemon itself
      // (after extraFds), so that writing never meets EPIPE/SIGPIPE while no manager reads, and
      // the next manager takes it back with pidfd_getfd.
      const pipe = makePipe(LOG_PIPE_BYTES, { writeNonblocking: true });
      try {
        child = spawn({
          file: options.file,
          argv: this.argv,
          env: options.env,
          fds: ['null', options.captureStdout ? pipe.write : 'null', pipe.write, ...extraFds, pipe.read],
          newProcessGroup: true,
          onExit,
          lifetime: { detach: true },
        });
      } catch (err) {
        closeFd(pipe.read);
        throw err;
      } finally {
        closeFd(pipe.write);
      }
      this.parkedLog = { fd: 3 + extraFds.length, pipeIno: String(fstatSync(pipe.read, { bigint: true }).ino) };
      streamFds = [pipe.read];
    } else {
      child = spawn({
        file: options.file,
        argv: this.argv,
        env: options.env,
        fds: ['null', options.captureStdout ? 'pipe' : 'null', 'pipe', ...extraFds],
        newProcessGroup: true,
        onExit,
        lifetime: { deathSignal: 'SIGKILL' },
      });
      streamFds = child.pipes.filter((fd): fd is number => fd !== null);
    }
    this.child = child;
    // The adoption lock: while we hold the daemon, no other manager can adopt it.
    lockFd(child.pidfd);
    this.ended = this.finish(streamFds.map((fd) => this.readLines(fd)));
  }

  /**
   * The fields of a {@link DaemonHandle} that describe the process. Throws
   * `ERR_DAEMON_NOT_RUNNING` once it has exited.
   */
  identity(): Pick<DaemonHandle, 'pid' | 'pgid' | 'startTime' | 'exe' | 'argv' | 'log'> {
    const pid = this.pid;
    const id = pid ? processIdentity(pid) : null;
    if (!id || !id.exe || id.state === 'Z' || id.state === 'X') {
      throw new VirtiofsDaemonError('ERR_DAEMON_NOT_RUNNING', `${this.options.name} is not running; it has no handle`);
    }
    const log = this.attached ? this.attached.log : this.parkedLog;
    return { pid, pgid: pid, startTime: id.startTime, exe: id.exe, argv: this.argv, log };
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

  /** The last output lines, oldest first. */
  lastLines(): string[] {
    return [...this.tail];
  }

  /** Keep the event loop alive while the daemon runs (the default), or not. */
  ref(): void {
    this.refed = true;
    this.child.ref();
  }
  unref(): void {
    this.refed = false;
    this.child.unref();
  }

  /**
   * Stop the daemon: `signal` to its whole group, SIGKILL after `timeoutMs`, resolved once it
   * is reaped and its group is empty. Idempotent: every call shares one stop. A daemon that has
   * already exited is not an error.
   */
  stop(options: StopOptions = {}): Promise<ProcessEnd> {
    this.stopping ??= this.escalate(options);
    return this.stopping;
  }

  private async escalate({ signal = 'SIGKILL', timeoutMs = 5000, killTimeoutMs = 10000 }: StopOptions): Promise<ProcessEnd> {
    if (!this.exit) {
      this.stopRequested = true;
      this.child.signal(signal, { group: true });
      if (signal !== 'SIGKILL' && !(await this.exitedWithin(timeoutMs))) {
        this.options.logger.warn({ signal, timeoutMs }, `${this.options.name} ignored ${signal}; sending SIGKILL`);
        this.child.signal('SIGKILL', { group: true });
      }
      if (!(await this.exitedWithin(killTimeoutMs))) {
        throw new VirtiofsDaemonError(
          'ERR_DAEMON_STOP_TIMEOUT',
          `${this.options.name} (pid ${this.child.pid}) did not exit within ${killTimeoutMs} ms of SIGKILL; ` +
            'it is most likely stuck in the kernel (uninterruptible sleep, e.g. a hung mount)',
        );
      }
    }
    return this.ended;
  }

  private exitedWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      this.exitSeen.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
    ]).finally(() => clearTimeout(timer));
  }

  /** Read one output pipe on the event loop (never through the thread pool), line by line. */
  private readLines(fd: number): { done: Promise<void>; destroy: () => void } {
    const { logger, name, onLine } = this.options;
    const scanner = new LineScanner({
      maxLineBytes: this.options.maxLineBytes,
      onLine: (line, info) => {
        const { level, msg } = parseDaemonLine(line);
        logger[level](info.truncated ? { truncated: info.discardedBytes } : {}, msg);
        this.tail.push(line.length > 1024 ? `${line.slice(0, 1024)}…` : line);
        if (this.tail.length > this.tailLines) this.tail.shift();
        onLine?.(line);
      },
    });
    const stream = new net.Socket({ fd, readable: true, writable: false });
    const done = new Promise<void>((resolve) => {
      stream.on('data', (chunk: Buffer) => scanner.push(chunk));
      stream.on('error', (err) => logger.warn({ err }, `reading ${name}'s output failed`));
      stream.on('close', () => {
        scanner.end();
        resolve();
      });
    });
    return { done, destroy: () => stream.destroy() };
  }

  private async finish(streams: { done: Promise<void>; destroy: () => void }[]): Promise<ProcessEnd> {
    await this.exitSeen;
    const groupTimeoutMs = this.options.groupTimeoutMs ?? 5000;
    const drainTimeoutMs = this.options.drainTimeoutMs ?? 500;

    // Descendants that outlive the daemon got SIGKILL at the exit; wait until they are gone.
    let groupLeftovers = false;
    const deadline = Date.now() + groupTimeoutMs;
    for (let delay = 2; this.child.groupAlive(); delay = Math.min(delay * 2, 100)) {
      if (Date.now() > deadline) {
        groupLeftovers = true;
        this.options.logger.warn(`processes of ${this.options.name}'s group outlived it by ${groupTimeoutMs} ms`);
        break;
      }
      // Until `ended` resolves the daemon is not over: keep the loop alive as its watch did.
      await sleep(delay, this.refed);
    }

    // The pipes reach EOF once every writer is gone; one that escaped the group (setsid) must
    // not hold the exit report forever.
    const drained = Promise.all(streams.map((s) => s.done));
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      drained.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), drainTimeoutMs);
        if (!this.refed) timer.unref();
      }),
    ]);
    clearTimeout(timer);
    if (late) {
      for (const s of streams) s.destroy();
      await drained;
    }
    this.attached?.proc.release();
    return { ...this.exit!, requested: this.stopRequested, groupLeftovers, known: this.known };
  }
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
          if (size < maxBytes) out[k]!.push(b.subarray(0, maxBytes - size));
          size += b.length;
        });
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
  await Promise.race([Promise.all(reads), sleep(500)]);
  for (const s of sockets) s.destroy();
  if (timedOut) {
    throw new VirtiofsDaemonError('ERR_COMMAND_TIMEOUT', `${file} ${args.join(' ')} did not finish within ${timeoutMs} ms`);
  }
  return { ...status, stdout: Buffer.concat(out[0]!).toString(), stderr: Buffer.concat(out[1]!).toString() };
}
