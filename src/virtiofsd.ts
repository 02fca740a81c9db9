/**
 * virtiofsd behind the VirtiofsDaemon contract, in both dialects: the legacy C daemon of
 * QEMU <= 7.2 and the Rust virtiofsd. We listen on the vhost-user socket ourselves and hand it
 * over as fd 3 (`--fd=3`), as Kata does, so the VMM can connect the moment start() resolves.
 */
import { existsSync, promises as fs } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { Daemon, describeExit, type Run } from './daemon.js';
import { DaemonProcess, captureOutput, type StopOptions } from './daemon-process.js';
import { DaemonStartError, InvalidOptionError, NotSupportedError, SystemError } from './errors.js';
import { chownToParent, closeFd, keepSocketFile, listenUnix, unlinkSocket, type ListeningSocket } from './native.js';
import { checkLifetime, parseHandle, type Lifetime, type SocketRecord } from './handle.js';
import type { DaemonExit, MountOption } from './types.js';
import type { ExtraArgsPolicy } from './extra-args.js';
import { buildVirtiofsdArgs, logsAboveInfo, normalizeCacheMode, type CacheMode, type Dialect, type VirtiofsdTypedOptions } from './virtiofsd-args.js';
import {
  checkDirectory,
    checkSocketPath,
  requireArgs,
  requireString,
  resolveBinary,
} from './validate.js';

export { buildVirtiofsdArgs, type CacheMode, type Dialect, type VirtiofsdArgsInput } from './virtiofsd-args.js';

/** Where distributions and Kata install virtiofsd, tried in this order. */
export const WELL_KNOWN_VIRTIOFSD_PATHS = [
  '/usr/libexec/virtiofsd', // Debian 13 `virtiofsd`, Fedora
  '/usr/lib/qemu/virtiofsd', // Debian 12 `qemu-system-common` (legacy C)
  '/opt/kata/libexec/virtiofsd', // Kata static tarball
  '/usr/local/libexec/virtiofsd',
  '/usr/bin/virtiofsd',
];

/** What both dialects print on stderr once they wait for the VMM. */
export const READY_MARKER = 'Waiting for vhost-user socket connection';

export interface VirtiofsdOptions extends VirtiofsdTypedOptions {
  /** The virtiofsd binary. Default: $VIRTIOFSD, then {@link WELL_KNOWN_VIRTIOFSD_PATHS}. */
  path?: string;
  /** Where the VMM will connect. We create the socket here (at most 107 bytes). */
  socketPath: string;
  /** The directory shared with the guest. */
  sourcePath: string;
  /**
   * Guest cache policy. `metadata` exists in the Rust daemon only; `none` is another name for
   * `never` and `''` for `auto` (as in Kata's configuration).
   * @default 'auto'
   */
  cache?: CacheMode | 'none' | '';
  /** Appended to the command line, after the typed options, as `extraArgsPolicy` allows. @default [] */
  extraArgs?: string[];
  /**
   * How far to trust `extraArgs`: `verbatim`, `known` (only what the detected dialect documents)
   * or `safe` (also nothing that widens the guest's reach or loosens confinement). See {@link ExtraArgsPolicy}.
   * @default 'verbatim'
   */
  extraArgsPolicy?: ExtraArgsPolicy;
  /** Which command line to speak. Default `auto`: asks the binary (`--version`, once per binary). */
  dialect?: 'auto' | Dialect;
  /** Log to syslog (`--syslog`) instead of stderr. Needs /dev/log. Default false. */
  syslog?: boolean;
  /** Debug logging in the daemon. Default false. */
  debug?: boolean;
  /** Where the daemon's stderr lines and our own records go. Children carry `{ subsystem: 'virtiofsd' }`. */
  logger?: Logger;
  /** How long start() waits for the daemon to be ready. Default 10000 ms. */
  startTimeoutMs?: number;
  /** The first signal stop() sends to the daemon's process group. Default `SIGKILL`, as Kata. */
  stopSignal?: NodeJS.Signals;
  /** With a `stopSignal` other than SIGKILL: how long before SIGKILL follows. Default 5000 ms. */
  stopTimeoutMs?: number;
  /** The daemon's environment. Default: ours. */
  env?: NodeJS.ProcessEnv;
  /**
   * What ends the daemon besides stop().
   * - `'manager'`: it dies with its manager, even a SIGKILLed one: the kernel sends it SIGKILL
   *   (`PR_SET_PDEATHSIG`) when the **thread** that started it exits - the JS thread of the
   *   main environment or of the worker_thread that called start(), the same environment whose
   *   teardown already kills it - and its sandbox children follow through their own death signal.
   * - `'survive'`: it outlives its manager (crash, SIGKILL, `process.exit()`, environment
   *   teardown) and keeps serving; a later manager takes it over with {@link Virtiofsd.adopt}
   *   from its {@link Virtiofsd.handle}. Its output goes to a 1 MiB pipe that it holds open
   *   itself: lines logged while no manager reads wait there, lines beyond what the pipe holds
   *   are dropped, and the daemon never blocks or dies for want of a reader.
   * @default 'manager'
   */
  lifetime?: Lifetime;
}

/** What {@link Virtiofsd.adopt} takes besides the handle. */
export interface VirtiofsdAdoptOptions {
  /**
   * Where the daemon's output lines (first those logged while it had no manager) and our records go.
   * @default a pino logger on stderr
   */
  logger?: Logger;
  /**
   * Called once when the adopted daemon exits (`known: false` where the kernel cannot tell its status).
   * @default none
   */
  onQuit?: (exit: DaemonExit) => void;
  /**
   * The first signal stop() sends to the daemon's process group.
   * @default 'SIGKILL'
   */
  stopSignal?: NodeJS.Signals;
  /**
   * With a `stopSignal` other than SIGKILL: how long before SIGKILL follows, in ms.
   * @default 5000
   */
  stopTimeoutMs?: number;
}

const dialectCache = new Map<string, Dialect>();

/**
 * Which virtiofsd `binary` is, from its `--version` (`virtiofsd version <qemu>` is the legacy C
 * daemon, `virtiofsd <semver>` the Rust one). Asked once per binary path, size and mtime.
 */
export async function detectDialect(binary: string): Promise<Dialect> {
  const st = await fs.stat(binary);
  const key = `${binary}\0${st.size}\0${st.mtimeMs}`;
  const known = dialectCache.get(key);
  if (known) return known;
  const out = await captureOutput(binary, ['--version']);
  const text = `${out.stdout}\n${out.stderr}`;
  let dialect: Dialect | undefined;
  if (/^virtiofsd version /m.test(text)) dialect = 'legacy';
  else if (/^virtiofsd v?\d+\.\d+/m.test(text)) dialect = 'rust';
  if (!dialect) {
    throw new InvalidOptionError(
      'dialect',
      `cannot tell which virtiofsd '${binary}' is from its --version output ${JSON.stringify(text.trim().slice(0, 200))}; ` +
        "set dialect: 'rust' or 'legacy'",
    );
  }
  dialectCache.set(key, dialect);
  return dialect;
}

export class Virtiofsd extends Daemon {
  private socket: ListeningSocket | undefined;

  constructor(private readonly options: VirtiofsdOptions) {
    super('virtiofsd', options.logger);
  }

  /**
   * Take over a running virtiofsd from its handle (as `handle()` returned it, or parsed back
   * from its JSON), in this process or another: the result behaves as a started daemon (`pid`,
   * `stop()`, onQuit once) and its output continues through `logger`, lines logged while it
   * had no manager first. The process is opened by pidfd first and only then compared with the
   * handle, so a pid that now names another process is never signalled. Rejects with
   * `ERR_INVALID_OPTION` (not a handle), `ERR_DAEMON_GONE` (exited, pid reused, another boot)
   * or `ERR_DAEMON_ADOPTED` (another live manager holds it).
   */
  static adopt(handle: unknown, options: VirtiofsdAdoptOptions = {}): Promise<Virtiofsd> {
    // A throw in the executor rejects: every failure arrives as a rejection.
    return new Promise((resolve) => resolve(Virtiofsd.adoptNow(handle, options)));
  }

  private static adoptNow(handle: unknown, options: VirtiofsdAdoptOptions): Virtiofsd {
    const h = parseHandle(handle, 'virtiofsd');
    const socket = h.sockets.socket;
    const daemon = new Virtiofsd({
      socketPath: socket.path,
      sourcePath: h.sourcePath,
      logger: options.logger,
      stopSignal: options.stopSignal,
      stopTimeoutMs: options.stopTimeoutMs,
      lifetime: h.lifetime,
    });
    daemon.socket = { fd: -1, path: socket.path, dev: BigInt(socket.dev), ino: BigInt(socket.ino) };
    daemon.attach(h, options.onQuit);
    return daemon;
  }

  protected sourcePath(): string {
    return this.options.sourcePath;
  }

  protected lifetime(): Lifetime {
    return this.options.lifetime ?? 'manager';
  }

  protected socketRecords(): Record<string, SocketRecord> {
    const s = this.socket!;
    return { socket: { path: resolve(s.path), dev: String(s.dev), ino: String(s.ino) } };
  }

  /** Validation, then socket, then process; whatever fails undoes what came before. */
  protected async launch(run: Run, onQuit?: (exit: DaemonExit) => void): Promise<number> {
    const o = this.options;
    const socketPath = requireString('socketPath', o.socketPath);
    const sourcePath = requireString('sourcePath', o.sourcePath);
    const extraArgs = requireArgs('extraArgs', o.extraArgs);
    const lifetime = checkLifetime(o.lifetime);
    normalizeCacheMode(o.cache);
    if (o.dialect !== undefined && !['auto', 'rust', 'legacy'].includes(o.dialect)) {
      throw new InvalidOptionError('dialect', `'${String(o.dialect)}' is not a dialect; use auto, rust or legacy`);
    }
    // Without a stderr there is no ready marker to wait for, whichever way syslog was asked for.
    // (Under extraArgsPolicy 'safe' an extra --syslog is refused below, by the argv builder, naming it.)
    const syslog = o.syslog === true || (extraArgs.includes('--syslog') && o.extraArgsPolicy !== 'safe');
    if (syslog && !existsSync('/dev/log')) {
      throw new InvalidOptionError(
        'syslog',
        'no /dev/log here, so the daemon would lose every log line (the legacy one dies with SIGSYS at the first ' +
          'connection). Run a syslog daemon (or systemd-journald) or leave syslog off to log through us',
      );
    }
    const binary = await resolveBinary(
      'path',
      o.path,
      'VIRTIOFSD',
      WELL_KNOWN_VIRTIOFSD_PATHS,
      'Install virtiofsd (Debian 13: apt install virtiofsd; Debian 12: apt install qemu-system-common) or pass path',
    );
    await checkDirectory('sourcePath', sourcePath);
    await checkSocketPath('socketPath', socketPath);
    const dialect = !o.dialect || o.dialect === 'auto' ? await detectDialect(binary) : o.dialect;
    const args = buildVirtiofsdArgs({ ...o, dialect, sourcePath, syslog: o.syslog === true, debug: o.debug === true, extraArgs });

    let socket: ListeningSocket;
    try {
      socket = listenUnix(socketPath);
    } catch (err) {
      throw SystemError.forOption('socketPath', err);
    }
    let proc: DaemonProcess;
    try {
      const owner = chownToParent(socket);
      let ready!: () => void;
      const marker = new Promise<void>((resolve) => (ready = resolve));
      proc = new DaemonProcess({
        name: 'virtiofsd',
        file: binary,
        args,
        env: o.env,
        extraFds: [socket.fd],
        logger: this.log,
        lifetime,
        onLine: (line) => line.includes(READY_MARKER) && ready(),
      });
      this.log.info({ daemonPid: proc.pid, dialect, argv: proc.argv, socket: socketPath, owner }, 'virtiofsd started');
      this.socket = socket;
      // A surviving daemon keeps serving the file after our environment is gone.
      if (lifetime === 'survive') keepSocketFile(socket);
      this.adopt(proc, run, onQuit);
      // Logged to syslog or above info, the daemon never says it waits: the socket is ours, so the VMM can connect now.
      await this.waitReady(proc, syslog || logsAboveInfo({ logLevel: o.logLevel, extraArgs }) ? Promise.resolve() : marker);
    } catch (err) {
      if (!this.proc) unlinkSocket(socket);
      throw err;
    } finally {
      // The daemon holds its own copy now (or never will): ours would keep the socket alive.
      closeFd(socket.fd);
    }
    run.started = true;
    return proc.pid;
  }

  private async waitReady(proc: DaemonProcess, marker: Promise<void>): Promise<void> {
    const timeoutMs = this.options.startTimeoutMs ?? 10000;
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      marker.then(() => 'ready' as const),
      proc.ended.then(() => 'exited' as const),
      new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (outcome === 'ready') return;
    if (outcome === 'timeout') {
      await this.stop();
      throw new DaemonStartError(
        'ERR_DAEMON_START_TIMEOUT',
        `virtiofsd did not report "${READY_MARKER}" within ${timeoutMs} ms; it was stopped`,
        { lastLines: proc.lastLines(), argv: proc.argv },
      );
    }
    const end = await proc.ended;
    const lastLines = proc.lastLines();
    throw new DaemonStartError(
      'ERR_DAEMON_EXITED',
      `virtiofsd exited (${describeExit(end)}) before it was ready.${sandboxHint(lastLines)} Its last lines:`,
      { exit: { code: end.code, signal: end.signal }, lastLines, argv: proc.argv },
    );
  }

  protected cleanup(): void {
    if (this.socket && unlinkSocket(this.socket)) this.log.debug({ socket: this.socket.path }, 'socket removed');
    this.socket = undefined;
  }

  protected stopOptions(): StopOptions {
    return { signal: this.options.stopSignal ?? 'SIGKILL', timeoutMs: this.options.stopTimeoutMs };
  }

  protected spanAttributes(): Record<string, string> {
    return { socketPath: this.options.socketPath, sourcePath: this.options.sourcePath };
  }

  mount(_opt: MountOption): Promise<void> {
    return Promise.reject(new NotSupportedError('virtiofsd does not mount filesystems on request; mount() is for nydusd'));
  }

  umount(_mountpoint: string): Promise<void> {
    return Promise.reject(new NotSupportedError('virtiofsd does not unmount filesystems on request; umount() is for nydusd'));
  }
}

/**
 * The Rust virtiofsd's default sandbox (namespace) pivots into the shared directory and fails with
 * EINVAL where `/` is not a mount point (containers, chroots): say the way out. virtiofsd 1.13
 * prints it as `Error entering sandbox: CleanMount(Os { code: 22, kind: InvalidInput, ... })`.
 */
const CLEAN_MOUNT_EINVAL = /CleanMount\((EINVAL|Os \{ code: 22\b)/;

function sandboxHint(lastLines: string[]): string {
  if (!lastLines.some((l) => CLEAN_MOUNT_EINVAL.test(l))) return '';
  return (
    " Its namespace sandbox needs '/' to be a mount point, which it is not here (a container or chroot?):" +
    " pass extraArgs: ['--sandbox=chroot'] (CLI: -- --sandbox=chroot)."
  );
}
