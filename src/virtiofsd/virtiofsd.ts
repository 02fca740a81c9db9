/**
 * virtiofsd behind the VirtiofsDaemon contract, in both dialects: the legacy C daemon of
 * QEMU <= 7.2 and the Rust virtiofsd. We listen on the vhost-user socket ourselves and hand it
 * over as fd 3 (`--fd=3`), as Kata does, so the VMM can connect the moment start() resolves.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { Cgroup, cgroupPlacementError, requireCgroupOptions } from '../process/cgroup.js';
import { Daemon, describeExit, readAdoptOptions, type Run } from '../process/daemon.js';
import { DaemonProcess, type StopOptions } from '../process/daemon-process.js';
import { TIMED_OUT } from '../common/deadline.js';
import { DaemonStartError, InvalidOptionError, NotSupportedError, SystemError } from '../common/errors.js';
import { requireLogger } from '../common/logger.js';
import { checkLifetime, parseHandle, type HandleTrust, type Lifetime, type SocketRecord } from '../process/handle.js';
import { closeFd, keepSocketFile, listenUnix, unlinkSocket, type ListeningSocket } from '../process/native.js';
import {
  checkIdmapHelpers,
  idmapOptionOf,
  planIdmap,
  readIdmapHost,
  requireIdmap,
  type Idmap,
  type IdmapHost,
  type IdmapOption,
} from './idmap.js';
import {
  readDefinedOptions,
  readOptions,
  rejectUnknownOptions,
  requireBoolean,
  requireEnv,
  requireOneOf,
  requireTimeout,
} from '../common/options.js';
import { runtimeDir } from '../process/runtime-dir.js';
import { findVirtiofsd, legacyNeedsRoot } from './virtiofsd-binary.js';
import { requireSignalName } from '../common/signals.js';
import type { DaemonExit, MountOption } from '../common/types.js';
import type { ExtraArgsPolicy } from '../common/extra-args.js';
import { requireFdWarnOptions, type FdWarnOptions } from '../process/process-stats.js';
import { askRustRelease, askVirtiofsd, type VirtiofsdFacts } from './virtiofsd-probe.js';
import { needsRelease, type VirtiofsdRelease } from '../common/virtiofsd-releases.js';
import {
  VIRTIOFSD_OPTIONS,
  buildVirtiofsdArgs,
  logsAboveInfo,
  normalizeCacheMode,
  type CacheMode,
  type Dialect,
  type VirtiofsdTypedOptions,
} from './virtiofsd-args.js';
import { checkDirectory, checkSocketPath } from '../process/file-checks.js';
import { requireArgs, requireSocketPath, requireString } from '../common/validate.js';

export { buildVirtiofsdArgs, type CacheMode, type Dialect, type VirtiofsdArgsInput } from './virtiofsd-args.js';

const DIALECTS: readonly ('auto' | Dialect)[] = ['auto', 'rust', 'legacy'];

/**
 * Where distributions and Kata install virtiofsd, tried in this order after QEMU's vhost-user
 * descriptors (see {@link findVirtiofsd}).
 */
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
   * The virtiofsd binary. As any user but root, the legacy C virtiofsd (QEMU ≤ 7.2) is refused
   * before anything runs (`ERR_INVALID_OPTION` for `path`, saying how to get the Rust one): it
   * works only as root.
   * @default $VIRTIOFSD, then the first virtiofsd that QEMU's vhost-user descriptors of type
   * `fs` name (/usr/share/qemu/vhost-user, /etc/qemu/vhost-user, $XDG_CONFIG_HOME/qemu/vhost-user),
   * then the first executable of {@link WELL_KNOWN_VIRTIOFSD_PATHS}; the Rust virtiofsd before
   * the legacy one, which only root gets, and only when it is all there is
   */
  path?: string;
  /**
   * Where the VMM will connect. We create the socket here (at most 107 bytes); its directory
   * must exist. Its owner: as root, the directory's owner and group (Kata's rule: the user who
   * runs QEMU owns the directory); as any other user, the user's own (a user cannot give a file
   * away; only when the directory is the user's own and its group one of the user's groups does
   * the socket take that group, as root's rule would have it).
   * @default `<runtime directory>/virtiofsd-<8 random hex>.sock`, chosen once per instance: the
   * runtime directory is `$XDG_RUNTIME_DIR/virtiofs-daemon/` for a user whose XDG_RUNTIME_DIR is
   * a private directory of theirs, else `/run/user/<uid>/virtiofs-daemon/` when that is,
   * else `/tmp/virtiofs-daemon-<uid>/`; `/run/virtiofs-daemon/` for root. Made 0700 and checked
   * (see {@link runtimeDir}); read it back from {@link Virtiofsd.socketPath} or pass
   * `daemon.qemuArgs()` to QEMU.
   */
  socketPath?: string;
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
   * `legacy` as any user but root is refused before anything runs: that daemon needs root.
   * @default 'auto'
   */
  dialect?: 'auto' | Dialect;
  /**
   * Map guest uids/gids to host ones (the Rust virtiofsd; the legacy one refuses it by name).
   * The library picks how: as an unprivileged user, the user namespace of virtiofsd's namespace
   * sandbox (`--uid-map`/`--gid-map`, virtiofsd ≥ 1.6; a `sandbox` other than `namespace` is
   * refused); as root, virtiofsd's own translation (`--translate-uid`/`--translate-gid`,
   * virtiofsd ≥ 1.13, else refused naming the version) with every unmapped guest id forbidden
   * and every unmapped host id shown as the overflow id 65534, as the user namespace does. It is
   * the operator's option: allowed under every `extraArgsPolicy`, and no extra argument may add
   * to it. Checked before anything runs: ids and counts, no overlap, ranges a user may map
   * (/etc/subuid, /etc/subgid), `newuidmap`/`newgidmap` on the daemon's PATH when needed.
   * - `{ guestUser: 1000 }` (optionally `guestGroup`): **the guest's user 1000 owns my files** -
   *   the daemon's user is guest uid 1000 (its group guest gid `guestGroup`, default the same
   *   number), both ways, and guest root writes as that user too. Named for what a desktop app
   *   wants: the one guest account (a distribution's first user is 1000) reads and writes the
   *   user's files as its own. It maps nothing but the user's own ids, which the kernel lets any
   *   user do, so it needs no /etc/subuid range and no setuid helper. Other guest users can
   *   create nothing (EINVAL; as root, EIO), and other host users' files show as 65534.
   * - `'auto'`: guest 0 is the daemon's user, guest 1 and up the user's first /etc/subuid
   *   (/etc/subgid) range, as libvirt's session mode does: every guest user can write, each
   *   as its own subordinate id. Needs that range and `newuidmap`/`newgidmap` (package `uidmap`).
   * - `{ uid: [{ guest, host, count }, …], gid: [ … ] }`: exactly these ranges (both lists required);
   *   an unprivileged user may name its own id and its /etc/subuid (/etc/subgid) ranges.
   * @default none: as a user, the daemon's user namespace maps the user's own uid and gid to
   * themselves and nothing else; as root, ids pass unchanged
   */
  idmap?: IdmapOption;
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
   * {@link Virtiofsd.stats} reads it; the handle records it. The root of the hierarchy, anything
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
  /** undefined: $VIRTIOFSD, a descriptor or a well-known path, looked up at each start (they may appear later). */
  path: string | undefined;
  /** undefined: the default in the runtime directory ({@link Virtiofsd.socketPath}). */
  socketPath: string | undefined;
  /** As given: a non-empty string without NUL. That it is a directory is checked at each start. */
  sourcePath: string;
  /** The cache mode, its other names resolved (`none` is `never`, `''` is `auto`); `'auto'` when not given. */
  cache: CacheMode;
  /**
   * A copy of `extraArgs`, taken once (a later change to the caller's array does not reach the
   * daemon); `[]` when not given. Checked against `extraArgsPolicy` at each start, once the
   * dialect is known.
   */
  extraArgs: string[];
  /** `'verbatim'` when not given. */
  extraArgsPolicy: ExtraArgsPolicy;
  /** `'auto'` (the binary is asked at each start, once per binary) when not given. */
  dialect: 'auto' | Dialect;
  /** false when not given. */
  syslog: boolean;
  /** false when not given. */
  debug: boolean;
  /** The caller's pino logger; undefined: the package's default one (pino on stderr, one per process). */
  logger: Logger | undefined;
  /** In ms; 10000 when not given. */
  startTimeoutMs: number;
  /** `'SIGKILL'` when not given. */
  stopSignal: NodeJS.Signals;
  /** In ms; 5000 when not given. */
  stopTimeoutMs: number;
  /** A copy of `env` without its undefined values; undefined: the daemon gets our environment. */
  env: Record<string, string> | undefined;
  /** undefined: no cgroup of its own. */
  cgroup: string | undefined;
  /** false when not given; true only with a `cgroup`. */
  cgroupCreate: boolean;
  /** `'manager'` when not given. */
  lifetime: Lifetime;
  /** 0.8 when not given; 0: no warning. */
  fdWarnRatio: number;
  /** In ms; 10000 when not given; 0: only stats() reads the daemon. */
  fdCheckIntervalMs: number;
  /** The typed daemon options as given (read once); buildVirtiofsdArgs checks them against the dialect. */
  typed: VirtiofsdTypedOptions;
  /** The id map, checked; what depends on the host is checked at each start. */
  idmap: Idmap | undefined;
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
  'idmap',
] as const;
const TYPED_OPTION_KEYS = Object.keys(VIRTIOFSD_OPTIONS) as (keyof VirtiofsdTypedOptions)[];

/** Names of virtiofsd's own flags, camel-cased, that callers try as options: what to use instead. */
const VIRTIOFSD_HINTS: Readonly<Record<string, string>> = {
  uidMap: 'idmap',
  gidMap: 'idmap',
  translateUid: 'idmap',
  translateGid: 'idmap',
  sharedDir: 'sourcePath',
  shared_dir: 'sourcePath',
  fd: 'socketPath',
};

/** Names that are not ours, with what to do instead. */
const VIRTIOFSD_REFUSED: Readonly<Record<string, string>> = {
  socketGroup:
    'is not an option of new Virtiofsd(); the nearest is socketPath: the socket takes the owner and group of its ' +
    "directory (as root; a user's socket stays the user's), so give the group through socketPath's directory",
};

/**
 * Read every option of `options` once, check its type and range, and apply the defaults of
 * {@link VirtiofsdOptions} (this is the one place they are applied). Synchronous: what needs
 * the file system (the binary, the directories) is checked by start(). Throws an
 * {@link InvalidOptionError} naming the first option at fault.
 */
export function resolveVirtiofsdOptions(options: object): ResolvedVirtiofsdOptions {
  rejectUnknownOptions('new Virtiofsd()', options, [...VIRTIOFSD_OPTION_KEYS, ...TYPED_OPTION_KEYS], {
    hints: VIRTIOFSD_HINTS,
    refuse: VIRTIOFSD_REFUSED,
  });
  const o = readOptions(options, VIRTIOFSD_OPTION_KEYS);
  // Only the options set: an object of all of them with the unset ones deleted would be a hash
  // table (~0.8 KB), kept as long as the daemon is.
  const typed = readDefinedOptions(options, TYPED_OPTION_KEYS);
  return {
    logger: requireLogger('logger', o.logger),
    path: o.path === undefined ? undefined : requireString('path', o.path),
    socketPath: o.socketPath === undefined ? undefined : requireSocketPath('socketPath', o.socketPath),
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
    idmap: requireIdmap(o.idmap),
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

/** What to say when a binary's --version names no virtiofsd: as a user, the legacy daemon prints nothing at all. */
function dialectHint(euid: number): string {
  return euid === 0
    ? "set dialect: 'rust' or 'legacy'"
    : `set dialect: 'rust' if it is the Rust virtiofsd; the legacy C virtiofsd prints nothing at all as uid ${euid} ` +
        '(it runs only as root)';
}

/**
 * Which virtiofsd `binary` is, from its `--version` (`virtiofsd version <qemu>` is the legacy C
 * daemon, `virtiofsd <semver>` the Rust one). Asked once per binary path, size and mtime,
 * together with the rest of {@link probeVirtiofsd}.
 */
export async function detectDialect(binary: string): Promise<Dialect> {
  return (await askVirtiofsd(binary, 'dialect', dialectHint(process.geteuid?.() ?? 0))).dialect;
}

/**
 * What the installed virtiofsd says about itself, as start() asks it: its dialect and version
 * (`--version`) and the features of `--print-capabilities` (see {@link VirtiofsdFacts}). For
 * apps that show or check what the host has before they start anything. `path` defaults to
 * what start() would run ($VIRTIOFSD, then QEMU's vhost-user descriptors, then
 * {@link WELL_KNOWN_VIRTIOFSD_PATHS}; see {@link findVirtiofsd}). Asked once per
 * binary path, size and mtime; rejects with an {@link InvalidOptionError} for `path` when there
 * is no such program or its `--version` names no virtiofsd.
 */
export async function probeVirtiofsd(path?: string): Promise<VirtiofsdFacts> {
  const euid = process.geteuid?.() ?? 0;
  const { binary } = findVirtiofsd(
    path === undefined ? undefined : requireString('path', path),
    WELL_KNOWN_VIRTIOFSD_PATHS,
    euid,
  );
  return askVirtiofsd(binary, 'path', 'is it virtiofsd? (expected "virtiofsd version <qemu>" or "virtiofsd <semver>")');
}

/**
 * One virtiofsd: the host side of a virtio-fs share, serving `sourcePath` to one VM over a
 * vhost-user socket. Either dialect - the Rust virtiofsd, or the legacy C one of QEMU ≤ 7.2,
 * which runs only as root - told apart by asking the binary. The library creates the socket,
 * listens on it and hands it to the daemon as fd 3 (as Kata does), so the VMM can connect as
 * soon as start() resolves; the socket file goes when the daemon ends.
 *
 * The constructor only reads and checks the options: nothing runs and nothing is created until
 * start(). One daemon at a time per instance; an instance whose daemon has ended can be started
 * again.
 *
 * ```ts
 * const daemon = new Virtiofsd({ sourcePath: '/srv/share' });
 * await daemon.start((exit) => console.warn('virtiofsd ended', exit));
 * const qemu = spawn('qemu-system-x86_64', [...daemon.qemuArgs({ tag: 'share', memory: '2G' }), ...vmArgs]);
 * // ...
 * await daemon.stop();
 * ```
 */
export class Virtiofsd extends Daemon<ResolvedVirtiofsdOptions> {
  /** Our socket file while the daemon runs: what cleanup removes and the handle records. */
  private socket: Pick<ListeningSocket, 'path' | 'dev' | 'ino'> | undefined;
  /** The default socket's file name, chosen once per instance (its directory at first use). */
  /** The default socket (no socketPath given): its name is chosen at first use, once per instance. */
  private defaultSocket: string | undefined;

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
   * handle, so a pid that now names another process is never signalled; and it must prove to be
   * a daemon this library started for us (the handle's seal, its uid, its output pipe, its
   * socket) before anything is signalled, unlinked or sent. Rejects with
   * {@link InvalidOptionError} (`ERR_INVALID_OPTION`: not a handle, or a bad option),
   * {@link DaemonGoneError} (`ERR_DAEMON_GONE`: exited, pid reused, another boot),
   * {@link HandleProofError} (`ERR_HANDLE_UNPROVEN`: a seal that does not match, a process that
   * does not hold what the handle names), {@link DaemonNotPermittedError}
   * (`ERR_DAEMON_NOT_PERMITTED`: it runs as another user) or {@link DaemonAdoptedError}
   * (`ERR_DAEMON_ADOPTED`: another live manager holds it).
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
    daemon.socket = { path: socket.path, dev: BigInt(socket.dev), ino: BigInt(socket.ino) };
    // The handle keeps the argv: the Rust daemon is the one given --shared-dir.
    daemon.setDialect(h.argv.some((a) => a.startsWith('--shared-dir')) ? 'rust' : 'legacy');
    daemon.attach(h, trust, onQuit);
    return daemon;
  }

  /**
   * Where the VMM connects: the `socketPath` option, or the default in the runtime directory
   * (made on first use; see {@link VirtiofsdOptions.socketPath}). Throws the options' error when
   * they are invalid, and what {@link runtimeDir} throws when the runtime directory cannot be made.
   */
  get socketPath(): string {
    const given = this.options.socketPath;
    if (given !== undefined) return given;
    // Drawn here, not in the constructor: a getrandom per instance that names its own socket buys nothing.
    this.defaultSocket ??= join(runtimeDir(), `virtiofsd-${randomBytes(4).toString('hex')}.sock`);
    return this.defaultSocket;
  }

  protected vhostUserSocketPath(): string {
    return this.socketPath;
  }

  protected socketRecords(): Record<string, SocketRecord> {
    const s = this.socket!;
    return { socket: { path: resolve(s.path), dev: String(s.dev), ino: String(s.ino) } };
  }

  /**
   * What the file system decides before anything is created: the binary, its dialect, the
   * argv, and whether the daemon will be quiet (no ready line to wait for). Creates nothing.
   * `euid`: who we are, read once per start.
   */
  private async plan(euid: number): Promise<{ binary: string; dialect: Dialect; args: string[]; quiet: boolean }> {
    const o = this.options;
    const { sourcePath, extraArgs } = o;
    const socketPath = this.socketPath;
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
    const found = findVirtiofsd(o.path, WELL_KNOWN_VIRTIOFSD_PATHS, euid);
    const binary = found.binary;
    // The legacy daemon needs root: refused from who we are, before it (or its --version) runs.
    if (euid !== 0 && found.legacy) {
      throw legacyNeedsRoot(found.from === '$VIRTIOFSD' ? '$VIRTIOFSD' : 'path', binary, euid);
    }
    if (euid !== 0 && o.dialect === 'legacy') throw legacyNeedsRoot('dialect', binary, euid);
    checkDirectory('sourcePath', sourcePath);
    checkSocketPath('socketPath', socketPath);
    const facts = o.dialect === 'auto' ? await askVirtiofsd(binary, 'dialect', dialectHint(euid)) : undefined;
    const dialect = facts?.dialect ?? o.dialect;
    // idmap as root is virtiofsd's own --translate-*, which its release must have: ask it.
    let release: VirtiofsdRelease | undefined = facts;
    if (!release && o.idmap && dialect === 'rust' && euid === 0) release = await askRustRelease(binary);
    let idmapHost: IdmapHost | undefined;
    if (o.idmap && dialect === 'rust') {
      idmapHost = readIdmapHost(euid === 0 ? (release?.version ?? null) : null);
      // What the argv builder does not look at: the helpers on the daemon's PATH.
      checkIdmapHelpers(planIdmap(o.idmap, idmapHost, { ...o.typed, binary }), (o.env ?? process.env).PATH);
    }
    const build = (known?: VirtiofsdRelease): string[] =>
      buildVirtiofsdArgs({
        ...o.typed,
        dialect: dialect as Dialect,
        sourcePath,
        cache: o.cache,
        syslog: o.syslog,
        debug: o.debug,
        extraArgs,
        extraArgsPolicy: o.extraArgsPolicy,
        release: known && { ...known, binary },
        idmap: o.idmap && idmapOptionOf(o.idmap),
        idmapHost,
      });
    let args = build(release);
    // A dialect given by the caller skips the probe, unless an argument needs a release newer than the first.
    if (!release && dialect === 'rust' && needsRelease(args)) args = build(await askRustRelease(binary));
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
    const { lifetime } = o;
    const socketPath = this.socketPath;
    const euid = process.geteuid!();
    const { binary, dialect, args, quiet } = await this.plan(euid);
    this.setDialect(dialect);

    const cgroup = o.cgroup === undefined ? undefined : Cgroup.prepare(o.cgroup, o.cgroupCreate, 'virtiofsd');
    let socket: ListeningSocket;
    try {
      socket = listenSocket(socketPath, euid);
    } catch (err) {
      void cgroup?.remove();
      // A failed chown is the socket's directory's matter, not the path's: reported as it is.
      throw (err as SystemError).syscall === 'fchownat' ? err : SystemError.forOption('socketPath', err);
    }
    const { path, dev, ino } = socket;
    const owner = socket.owner ?? null;
    let pid: number;
    try {
      let proc: DaemonProcess;
      try {
        proc = new DaemonProcess({
          name: 'virtiofsd',
          file: binary,
          args,
          env: o.env,
          extraFds: [socket.fd],
          cgroup,
          logger: this.log,
          lifetime,
          headroom: this.headroom(),
        });
      } finally {
        // The daemon holds its own copy now (or never will): ours would keep the socket alive.
        closeFd(socket.fd);
      }
      // Taken now: DaemonProcess.pid reads 0 once the exit is seen, and a daemon may die right after
      // its ready line (then start() still resolves to its pid, and onQuit reports the end).
      pid = proc.pid;
      // Ours from here on, before anything else can fail: a failure below stops it.
      this.socket = { path, dev, ino };
      // A surviving daemon keeps serving the file after our environment is gone.
      if (lifetime === 'survive') keepSocketFile(socket);
      this.adopt(proc, run, onQuit);
      if (this.log.enabled('info')) {
        this.log.info({ daemonPid: pid, dialect, argv: proc.argv, socket: socketPath, owner }, 'virtiofsd started');
      }
      // A quiet daemon never says it waits: the socket is ours, so the VMM can connect now.
      if (!quiet) await this.waitReady(proc);
      proc.startOver();
    } catch (err) {
      if (this.proc) throw err;
      unlinkSocket(socket);
      void cgroup?.remove();
      throw SystemError.isCgroupPlacement(err) ? cgroupPlacementError(err, cgroup!.path) : err;
    }
    run.started = true;
    return pid;
  }

  private async waitReady(proc: DaemonProcess): Promise<void> {
    const timeoutMs = this.options.startTimeoutMs;
    const outcome = await proc.waitForLine(READY_MARKER, timeoutMs);
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
      `virtiofsd exited (${describeExit(end)}) before it was ready.${sandboxHint(lastLines)}${idmapHint(lastLines)} Its last lines:`,
      { exit: { code: end.code, signal: end.signal }, lastLines, argv: proc.argv },
    );
  }

  protected cleanup(): void {
    if (this.socket && unlinkSocket(this.socket) && this.log.enabled('debug')) {
      this.log.debug({ socket: this.socket.path }, 'socket removed');
    }
    this.socket = undefined;
  }

  protected stopOptions(): StopOptions {
    return { signal: this.options.stopSignal, timeoutMs: this.options.stopTimeoutMs };
  }

  protected spanAttributes(): Record<string, string> {
    return { socketPath: this.socketPath, sourcePath: this.options.sourcePath };
  }

  /**
   * Rejects with {@link NotSupportedError} (`ERR_NOT_SUPPORTED`): virtiofsd serves the one
   * directory it was started with. Filesystems mounted on request are nydusd's ({@link Nydusd.mount}).
   */
  mount(_opt: MountOption): Promise<void> {
    return Promise.reject(
      new NotSupportedError('virtiofsd does not mount filesystems on request; mount() is for nydusd'),
    );
  }

  /** Rejects with {@link NotSupportedError} (`ERR_NOT_SUPPORTED`), as {@link Virtiofsd.mount} does. */
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

/**
 * virtiofsd could not write its user namespace's id maps: the helper is missing or refused the
 * ranges (virtiofsd 1.13: `write to uid map failed: failed to execute newuidmap: No such file or
 * directory`; older releases reported the missing helper as "Permission denied"; `newuidmap: uid
 * range [1-65537) -> [200000-265536) not allowed`). Said here for mappings given in extraArgs:
 * the typed idmap is checked before the start.
 */
const ID_MAP_FAILED = /couldn't setup id mappings|write to [ug]id map failed/;

function idmapHint(lastLines: string[]): string {
  if (!lastLines.some((l) => ID_MAP_FAILED.test(l))) return '';
  return (
    " It could not map ids in its user namespace: maps beyond the user's own uid and gid go through newuidmap " +
    "and newgidmap (install the uidmap package: apt install uidmap), which allow only the user's ranges in " +
    '/etc/subuid and /etc/subgid. The typed idmap option checks both before the start.'
  );
}

/**
 * Listen at `socketPath` and give the socket to its directory's owner where we can, in the same
 * call (listenUnix with `chownTo: 'parent'`: one walk to the directory): root always (Kata's
 * rule: whoever owns the directory runs the VMM); a user only when the directory is its own and
 * its group one of the user's groups (a user cannot give a file away: chown to anyone else fails
 * with EPERM). Otherwise the socket stays ours, which is what a VMM run by the same user needs.
 * The socket's `owner` is the owner given, absent when it was left as it was bound. `euid`: who we are.
 */
function listenSocket(socketPath: string, euid: number): ListeningSocket {
  if (euid !== 0) {
    let dir;
    try {
      dir = statSync(dirname(socketPath));
    } catch {
      return listenUnix(socketPath);
    }
    const groups = new Set([process.getegid!(), ...process.getgroups!()]);
    if (dir.uid !== euid || !groups.has(dir.gid)) return listenUnix(socketPath);
  }
  try {
    return listenUnix(socketPath, { chownTo: 'parent' });
  } catch (err) {
    // The directory changed hands between the look and the chown (the failed call removed its
    // socket): as a user, listen again and leave the socket ours.
    const e = err as SystemError;
    if (euid !== 0 && e.syscall === 'fchownat' && (e.code === 'EPERM' || e.code === 'EACCES')) {
      return listenUnix(socketPath);
    }
    throw err;
  }
}
