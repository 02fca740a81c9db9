/**
 * virtiofsd behind the VirtiofsDaemon contract, in both dialects: the legacy C daemon of
 * QEMU <= 7.2 and the Rust virtiofsd. We listen on the vhost-user socket ourselves and hand it
 * over as fd 3 (`--fd=3`), as Kata does, so the VMM can connect the moment start() resolves.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { Cgroup, requireCgroupOptions } from './cgroup.js';
import { Daemon, describeExit, readAdoptOptions, type Run } from './daemon.js';
import { DaemonProcess, type StopOptions } from './daemon-process.js';
import { raceDeadline, TIMED_OUT } from './deadline.js';
import { DaemonStartError, InvalidOptionError, NotSupportedError, SystemError } from './errors.js';
import { requireLogger } from './logger.js';
import { checkLifetime, parseHandle, type HandleTrust, type Lifetime, type SocketRecord } from './handle.js';
import { chownToParent, closeFd, keepSocketFile, listenUnix, unlinkSocket, type ListeningSocket } from './native.js';
import { readOptions, requireBoolean, requireEnv, requireOneOf, requireTimeout } from './options.js';
import { requireSignalName } from './signals.js';
import type { DaemonExit, MountOption } from './types.js';
import type { ExtraArgsPolicy } from './extra-args.js';
import { requireFdWarnOptions, type FdWarnOptions } from './process-stats.js';
import { askRustRelease, askVirtiofsd, type VirtiofsdFacts } from './virtiofsd-probe.js';
import { needsRelease, type VirtiofsdRelease } from './virtiofsd-releases.js';
import {
  VIRTIOFSD_OPTIONS,
  buildVirtiofsdArgs,
  logsAboveInfo,
  normalizeCacheMode,
  type CacheMode,
  type Dialect,
  type VirtiofsdTypedOptions,
} from './virtiofsd-args.js';
import {
  checkDirectory,
  checkSocketPath,
  requireArgs,
  requireSocketPath,
  requireString,
  resolveBinary,
} from './validate.js';

export { buildVirtiofsdArgs, type CacheMode, type Dialect, type VirtiofsdArgsInput } from './virtiofsd-args.js';

const DIALECTS: readonly ('auto' | Dialect)[] = ['auto', 'rust', 'legacy'];

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

/**
 * What a {@link Virtiofsd} runs with. Every option is read once, by the constructor, and
 * checked there; a wrong one makes start() reject with an {@link InvalidOptionError} naming it,
 * before anything is created. Timeouts are whole milliseconds from 1 to 2**31-1. The typed
 * daemon options ({@link VirtiofsdTypedOptions}) are checked against the dialect at each start.
 */
export interface VirtiofsdOptions extends VirtiofsdTypedOptions, FdWarnOptions {
  /**
   * The virtiofsd binary.
   * @default $VIRTIOFSD, then the first executable of {@link WELL_KNOWN_VIRTIOFSD_PATHS}
   */
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
  /**
   * Which command line to speak; `auto` asks the binary (`--version`, once per binary).
   * @default 'auto'
   */
  dialect?: 'auto' | Dialect;
  /**
   * Log to syslog (`--syslog`) instead of stderr. Needs /dev/log.
   * @default false
   */
  syslog?: boolean;
  /**
   * Debug logging in the daemon.
   * @default false
   */
  debug?: boolean;
  /**
   * Where the daemon's stderr lines and our own records go (a pino logger). Children carry
   * `{ subsystem: 'virtiofsd' }`. A logger that throws loses the record, never the daemon.
   * @default a pino logger on stderr, created only when needed
   */
  logger?: Logger;
  /**
   * How long start() waits for the daemon to be ready, in ms.
   * @default 10000
   */
  startTimeoutMs?: number;
  /**
   * The first signal stop() sends to the daemon's process group: a name Node knows (`'SIGTERM'`).
   * @default 'SIGKILL' (as Kata)
   */
  stopSignal?: NodeJS.Signals;
  /**
   * With a `stopSignal` other than SIGKILL: how long before SIGKILL follows, in ms.
   * @default 5000
   */
  stopTimeoutMs?: number;
  /**
   * The daemon's environment: `NAME: value` strings (undefined values are left out).
   * @default ours (the C library's `environ`)
   */
  env?: NodeJS.ProcessEnv;
  /**
   * Where the daemon's own cgroup v2 directory is: absolute, or relative to where cgroup v2 is
   * mounted (read from /proc/self/mountinfo); `..` is resolved first. The daemon always runs in
   * a cgroup made for that one start with an exclusive mkdir (see `cgroupCreate`), so no other
   * daemon or process can share it: it runs its first instruction there; stop() kills
   * everything in it (`cgroup.kill`, or each member by pidfd where there is none), descendants
   * that left the process group included, waits until it is empty and removes it;
   * {@link Daemon.stats} reads it; the handle records it. The root of the hierarchy, anything
   * outside it and a directory without `cgroup.events` are refused. Checked at each start,
   * before anything is spawned; every refusal is an `InvalidOptionError` for `cgroup`.
   * @default none (the daemon stays in ours)
   */
  cgroup?: string;
  /**
   * - `false`: `cgroup` is the operator's, and must exist. Each start creates a fresh child
   *   `<cgroup>/virtiofsd-<8 random hex>` and runs the daemon there; it is removed after the stop.
   *   The limits set on `cgroup` apply to it, controllers enabled in its `cgroup.subtree_control`
   *   are fine, and managers given the same `cgroup` each get their own child: one's stop never
   *   touches another's daemon. Needs the right to create directories in `cgroup` (root, or a
   *   cgroup delegated to this user).
   * - `true`: `cgroup` itself is created for this start (missing parents too), and removed with
   *   the parents created for it after the stop. A `cgroup` that exists already is refused: it
   *   is another daemon's, or a crashed run left it behind (remove it with rmdir, or use `false`).
   * @default false
   */
  cgroupCreate?: boolean;
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

const POLICIES: readonly ExtraArgsPolicy[] = ['verbatim', 'known', 'safe'];

/** {@link VirtiofsdOptions} read once, checked, with every default applied. */
export interface ResolvedVirtiofsdOptions {
  /** undefined: $VIRTIOFSD or a well-known path, looked up at each start (they may appear later). */
  path: string | undefined;
  socketPath: string;
  sourcePath: string;
  cache: CacheMode;
  extraArgs: string[];
  extraArgsPolicy: ExtraArgsPolicy;
  dialect: 'auto' | Dialect;
  syslog: boolean;
  debug: boolean;
  logger: Logger | undefined;
  startTimeoutMs: number;
  stopSignal: NodeJS.Signals;
  stopTimeoutMs: number;
  env: Record<string, string> | undefined;
  /** undefined: no cgroup of its own. */
  cgroup: string | undefined;
  cgroupCreate: boolean;
  lifetime: Lifetime;
  fdWarnRatio: number;
  fdCheckIntervalMs: number;
  /** The typed daemon options as given (read once); buildVirtiofsdArgs checks them against the dialect. */
  typed: VirtiofsdTypedOptions;
}

const VIRTIOFSD_OPTION_KEYS = [
  'path',
  'socketPath',
  'sourcePath',
  'cache',
  'extraArgs',
  'dialect',
  'syslog',
  'debug',
  'logger',
  'startTimeoutMs',
  'stopSignal',
  'stopTimeoutMs',
  'env',
  'extraArgsPolicy',
  'cgroup',
  'cgroupCreate',
  'lifetime',
  'fdWarnRatio',
  'fdCheckIntervalMs',
] as const;
const TYPED_OPTION_KEYS = Object.keys(VIRTIOFSD_OPTIONS) as (keyof VirtiofsdTypedOptions)[];

/**
 * Read every option of `options` once, check its type and range, and apply the defaults of
 * {@link VirtiofsdOptions} (this is the one place they are applied). Synchronous: what needs
 * the file system (the binary, the directories) is checked by start(). Throws an
 * {@link InvalidOptionError} naming the first option at fault.
 */
export function resolveVirtiofsdOptions(options: object): ResolvedVirtiofsdOptions {
  const o = readOptions(options, VIRTIOFSD_OPTION_KEYS);
  const typed = readOptions(options, TYPED_OPTION_KEYS);
  for (const key of TYPED_OPTION_KEYS) if (typed[key] === undefined) delete typed[key];
  return {
    logger: requireLogger('logger', o.logger),
    path: o.path === undefined ? undefined : requireString('path', o.path),
    socketPath: requireSocketPath('socketPath', o.socketPath),
    sourcePath: requireString('sourcePath', o.sourcePath),
    cache: normalizeCacheMode(o.cache),
    extraArgs: requireArgs('extraArgs', o.extraArgs),
    extraArgsPolicy: requireOneOf(
      'extraArgsPolicy',
      o.extraArgsPolicy,
      POLICIES,
      'verbatim',
      'an extra-arguments policy',
    ),
    dialect: requireOneOf('dialect', o.dialect, DIALECTS, 'auto', 'a dialect'),
    syslog: requireBoolean('syslog', o.syslog, false),
    debug: requireBoolean('debug', o.debug, false),
    startTimeoutMs: requireTimeout('startTimeoutMs', o.startTimeoutMs, 10000),
    stopSignal: o.stopSignal === undefined ? 'SIGKILL' : requireSignalName('stopSignal', o.stopSignal),
    stopTimeoutMs: requireTimeout('stopTimeoutMs', o.stopTimeoutMs, 5000),
    env: requireEnv('env', o.env),
    ...requireCgroupOptions(o.cgroup, o.cgroupCreate),
    lifetime: checkLifetime(o.lifetime),
    ...requireFdWarnOptions(o.fdWarnRatio, o.fdCheckIntervalMs),
    typed: typed as VirtiofsdTypedOptions,
  };
}

/** What {@link Virtiofsd.adopt} takes besides the handle. */
export interface VirtiofsdAdoptOptions extends FdWarnOptions {
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
   * How far to trust the handle ({@link HandleTrust}): `'sealed'` takes only a handle that a
   * manager of this user wrote on this boot, unchanged; `'caller'` takes one the caller vouches
   * for (a format-1 handle of virtiofs-daemon 0.1 from a root-only file, say). Either way the
   * process must run as us and hold the output pipe and sockets the handle names.
   * @default 'sealed'
   */
  trust?: HandleTrust;
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

const READY = (): 'ready' => 'ready';
const EXITED = (): 'exited' => 'exited';

const DIALECT_HINT = "set dialect: 'rust' or 'legacy'";
const INSTALL_HINT =
  'Install virtiofsd (Debian 13: apt install virtiofsd; Debian 12: apt install qemu-system-common) or pass path';

/**
 * Which virtiofsd `binary` is, from its `--version` (`virtiofsd version <qemu>` is the legacy C
 * daemon, `virtiofsd <semver>` the Rust one). Asked once per binary path, size and mtime,
 * together with the rest of {@link probeVirtiofsd}.
 */
export async function detectDialect(binary: string): Promise<Dialect> {
  return (await askVirtiofsd(binary, 'dialect', DIALECT_HINT)).dialect;
}

/**
 * What the installed virtiofsd says about itself, as start() asks it: its dialect and version
 * (`--version`) and the features of `--print-capabilities` (see {@link VirtiofsdFacts}). For
 * apps that show or check what the host has before they start anything. `path` defaults to
 * what start() would run ($VIRTIOFSD, then {@link WELL_KNOWN_VIRTIOFSD_PATHS}). Asked once per
 * binary path, size and mtime; rejects with an {@link InvalidOptionError} for `path` when there
 * is no such program or its `--version` names no virtiofsd.
 */
export async function probeVirtiofsd(path?: string): Promise<VirtiofsdFacts> {
  const binary = resolveBinary(
    'path',
    path === undefined ? undefined : requireString('path', path),
    'VIRTIOFSD',
    WELL_KNOWN_VIRTIOFSD_PATHS,
    INSTALL_HINT,
  );
  return askVirtiofsd(binary, 'path', 'is it virtiofsd? (expected "virtiofsd version <qemu>" or "virtiofsd <semver>")');
}

export class Virtiofsd extends Daemon<ResolvedVirtiofsdOptions> {
  private socket: ListeningSocket | undefined;

  /**
   * Reads and checks `options` once ({@link resolveVirtiofsdOptions}). Throws only when
   * `options` is not an object; a wrong option makes start() reject instead.
   */
  constructor(options: VirtiofsdOptions) {
    super('virtiofsd', options, resolveVirtiofsdOptions);
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
    const { onQuit, trust, passed } = readAdoptOptions('Virtiofsd.adopt', options, [
      'logger',
      'stopSignal',
      'stopTimeoutMs',
      'fdWarnRatio',
      'fdCheckIntervalMs',
    ]);
    const h = parseHandle(handle, 'virtiofsd', trust);
    const socket = h.sockets.socket;
    const daemon = new Virtiofsd({
      socketPath: socket.path,
      sourcePath: h.sourcePath,
      ...passed,
      lifetime: h.lifetime,
    } as VirtiofsdOptions);
    void daemon.options; // an invalid logger or stop option throws here, before anything is opened
    daemon.socket = { fd: -1, path: socket.path, dev: BigInt(socket.dev), ino: BigInt(socket.ino) };
    // The handle keeps the argv: the Rust daemon is the one given --shared-dir.
    daemon.setDialect(h.argv.some((a) => a.startsWith('--shared-dir')) ? 'rust' : 'legacy');
    daemon.attach(h, trust, onQuit);
    return daemon;
  }

  protected vhostUserSocketPath(): string {
    return this.options.socketPath;
  }

  protected socketRecords(): Record<string, SocketRecord> {
    const s = this.socket!;
    return { socket: { path: resolve(s.path), dev: String(s.dev), ino: String(s.ino) } };
  }

  /**
   * What the file system decides before anything is created: the binary, its dialect, the
   * argv, and whether the daemon will be quiet (no ready line to wait for). Creates nothing.
   */
  private async plan(): Promise<{ binary: string; dialect: Dialect; args: string[]; quiet: boolean }> {
    const o = this.options;
    const { socketPath, sourcePath, extraArgs } = o;
    // Without a stderr there is no ready marker to wait for, whichever way syslog was asked for.
    // (Under extraArgsPolicy 'known' and 'safe' an extra --syslog is refused below, by the argv builder, naming it.)
    const syslog = o.syslog || (extraArgs.includes('--syslog') && o.extraArgsPolicy === 'verbatim');
    if (syslog && !existsSync('/dev/log')) {
      throw new InvalidOptionError(
        'syslog',
        'no /dev/log here, so the daemon would lose every log line (the legacy one dies with SIGSYS at the first ' +
          'connection). Run a syslog daemon (or systemd-journald) or leave syslog off to log through us',
      );
    }
    const binary = resolveBinary('path', o.path, 'VIRTIOFSD', WELL_KNOWN_VIRTIOFSD_PATHS, INSTALL_HINT);
    checkDirectory('sourcePath', sourcePath);
    checkSocketPath('socketPath', socketPath);
    const facts = o.dialect === 'auto' ? await askVirtiofsd(binary, 'dialect', DIALECT_HINT) : undefined;
    const dialect = facts?.dialect ?? o.dialect;
    const build = (release?: VirtiofsdRelease): string[] =>
      buildVirtiofsdArgs({
        ...o.typed,
        dialect: dialect as Dialect,
        sourcePath,
        cache: o.cache,
        syslog: o.syslog,
        debug: o.debug,
        extraArgs,
        extraArgsPolicy: o.extraArgsPolicy,
        release: release && { ...release, binary },
      });
    let args = build(facts);
    // A dialect given by the caller skips the probe, unless an argument needs a release newer than the first.
    if (!facts && dialect === 'rust' && needsRelease(args)) args = build(await askRustRelease(binary));
    // Logged to syslog or above info, the daemon never says it waits.
    return {
      binary,
      dialect: dialect as Dialect,
      args,
      quiet: syslog || logsAboveInfo({ logLevel: o.typed.logLevel, extraArgs }),
    };
  }

  /** The plan, then cgroup, socket and process; then the wait. Whatever fails undoes what came before. */
  protected async launch(run: Run, onQuit?: (exit: DaemonExit) => void): Promise<number> {
    const o = this.options;
    const { socketPath, lifetime } = o;
    const { binary, dialect, args, quiet } = await this.plan();
    this.setDialect(dialect);

    const cgroup = o.cgroup === undefined ? undefined : Cgroup.prepare(o.cgroup, o.cgroupCreate, 'virtiofsd');
    let socket: ListeningSocket;
    try {
      socket = listenUnix(socketPath);
    } catch (err) {
      void cgroup?.remove();
      throw SystemError.forOption('socketPath', err);
    }
    let pid: number;
    try {
      const owner = chownToParent(socket);
      let ready!: () => void;
      const marker = new Promise<void>((resolve) => (ready = resolve));
      const proc = new DaemonProcess({
        name: 'virtiofsd',
        file: binary,
        args,
        env: o.env,
        extraFds: [socket.fd],
        cgroup,
        logger: this.log,
        lifetime,
        onLine: (line) => line.includes(READY_MARKER) && ready(),
        headroom: this.headroom(),
      });
      // Taken now: DaemonProcess.pid reads 0 once the exit is seen, and a daemon may die right after
      // its ready line (then start() still resolves to its pid, and onQuit reports the end).
      pid = proc.pid;
      // Ours from here on, before anything else can fail: a failure below stops it.
      this.socket = socket;
      // A surviving daemon keeps serving the file after our environment is gone.
      if (lifetime === 'survive') keepSocketFile(socket);
      this.adopt(proc, run, onQuit);
      this.log.info({ daemonPid: proc.pid, dialect, argv: proc.argv, socket: socketPath, owner }, 'virtiofsd started');
      // A quiet daemon never says it waits: the socket is ours, so the VMM can connect now.
      await this.waitReady(proc, quiet ? Promise.resolve() : marker);
      proc.startOver();
    } catch (err) {
      if (this.proc) throw err;
      unlinkSocket(socket);
      void cgroup?.remove();
      throw SystemError.isCgroupPlacement(err) ? SystemError.forOption('cgroup', err) : err;
    } finally {
      // The daemon holds its own copy now (or never will): ours would keep the socket alive.
      closeFd(socket.fd);
    }
    run.started = true;
    return pid;
  }

  private async waitReady(proc: DaemonProcess, marker: Promise<void>): Promise<void> {
    const timeoutMs = this.options.startTimeoutMs;
    const outcome = await raceDeadline(
      // Module-level callbacks: a closure here would keep this frame alive as long as the
      // daemon runs, through the reaction left on `ended`.
      Promise.race([marker.then(READY), proc.ended.then(EXITED)]),
      timeoutMs,
    );
    if (outcome === 'ready') return;
    if (outcome === TIMED_OUT) {
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
    return { signal: this.options.stopSignal, timeoutMs: this.options.stopTimeoutMs };
  }

  protected spanAttributes(): Record<string, string> {
    return { socketPath: this.options.socketPath, sourcePath: this.options.sourcePath };
  }

  mount(_opt: MountOption): Promise<void> {
    return Promise.reject(
      new NotSupportedError('virtiofsd does not mount filesystems on request; mount() is for nydusd'),
    );
  }

  umount(_mountpoint: string): Promise<void> {
    return Promise.reject(
      new NotSupportedError('virtiofsd does not unmount filesystems on request; umount() is for nydusd'),
    );
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
