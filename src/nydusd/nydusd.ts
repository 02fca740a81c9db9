/**
 * nydusd (lazy image pulling) behind the VirtiofsDaemon contract: started in virtiofs mode, it
 * serves the guest over vhost-user and mounts each container's RAFS image through its HTTP API.
 * Unlike virtiofsd it cannot take an inherited socket: it binds `--sock` and `--apisock` itself.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { Cgroup, cgroupPlacementError, requireCgroupOptions } from '../process/cgroup.js';
import { Daemon, describeExit, readAdoptOptions, type Run } from '../process/daemon.js';
import { DaemonProcess, type StopOptions } from '../process/daemon-process.js';
import { raceDeadline, sleep, TIMED_OUT } from '../common/deadline.js';
import { DaemonStartError, InvalidOptionError, SystemError, VirtiofsDaemonError } from '../common/errors.js';
import { requireLogger } from '../common/logger.js';
import { checkLifetime, parseHandle, type HandleTrust, type Lifetime, type SocketRecord } from '../process/handle.js';
import { removeStaleSocket, unlinkSocket } from '../process/native.js';
import { NydusClient, type NydusFsMetrics } from './nydus-client.js';
import { requireFdWarnOptions, type FdWarnOptions } from '../process/process-stats.js';
import {
  rejectUnknownOptions,
  readOptions,
  requireBoolean,
  requireEnv,
  requireOneOf,
  requireOptionsObject,
  requireTimeout,
} from '../common/options.js';
import type { DaemonExit, MountOption } from '../common/types.js';
import { checkDirectory, checkSocketPath, resolveBinary } from '../process/file-checks.js';
import { requireArgs, requireSocketPath, requireString } from '../common/validate.js';
import type { ExtraArgsPolicy } from '../common/extra-args.js';
import {
  buildNydusdArgs,
  detectNydusdVersion,
  nydusdCliFor,
  requireNydusdVersion,
  type NydusdLogLevel,
  type NydusdVersion,
} from './nydusd-args.js';

export { buildNydusdArgs } from './nydusd-args.js';

/** Where nydusd is usually installed, tried in this order. */
export const WELL_KNOWN_NYDUSD_PATHS = [
  '/usr/bin/nydusd',
  '/usr/local/bin/nydusd',
  '/opt/kata/libexec/nydusd',
  '/opt/kata/bin/nydusd',
  '/usr/libexec/nydusd',
];

/** Where the shared directory appears in the guest (passthrough_fs). */
export const SHARED_MOUNTPOINT = '/containers';

/**
 * A container's RAFS image layer: `/rafs/<id>/lowerdir`, `<id>` of word characters, `.` and `-`,
 * but not only dots: nydusd resolves `.` and `..` as path steps (`/rafs/../lowerdir` is `/lowerdir`).
 */
const RAFS_MOUNTPOINT = /^\/rafs\/(?!\.+\/)[\w.-]+\/lowerdir$/;

/**
 * What a {@link Nydusd} runs with. Every option is read once, by the constructor, and checked
 * there; a wrong one makes start() reject with an {@link InvalidOptionError} naming it, before
 * anything is created. Timeouts are whole milliseconds from 1 to 2**31-1.
 */
export interface NydusdOptions extends FdWarnOptions {
  /**
   * The nydusd binary.
   * @default $NYDUSD, then the first executable of {@link WELL_KNOWN_NYDUSD_PATHS}
   */
  path?: string;
  /** The vhost-user socket; nydusd binds it itself (at most 107 bytes). */
  sockPath: string;
  /** nydusd's HTTP API socket (at most 107 bytes). */
  apiSockPath: string;
  /** Host directory shared with the guest at `/containers` (passthrough_fs). */
  sourcePath: string;
  /** Appended to the command line, as `extraArgsPolicy` allows. @default [] */
  extraArgs?: string[];
  /**
   * How far to trust `extraArgs`: `verbatim`, `known` (only what the detected nydusd documents)
   * or `safe` (also nothing that widens the guest's reach or makes nydusd read or write host files).
   * @default 'verbatim'
   */
  extraArgsPolicy?: ExtraArgsPolicy;
  /** `--log-level debug` instead of `info`. @default false */
  debug?: boolean;
  /** nydusd's `--log-level`. @default 'info' ('debug' with debug) */
  logLevel?: NydusdLogLevel;
  /**
   * Refused with a clear error: nydusd has no worker-thread option in virtio-fs mode. Prefetch
   * threads are `fs_prefetch.threads_count` in the RAFS configuration passed to `mount`.
   */
  threads?: never;
  /** nydusd's version (e.g. `2.2.3`), which decides its command line. @default asked from the binary (`--version`, once per binary) */
  version?: string;
  /**
   * Where nydusd's output lines and our records go (a pino logger). Children carry
   * `{ subsystem: 'nydusd' }`. A logger that throws loses the record, never the daemon.
   * @default a pino logger on stderr, created only when needed
   */
  logger?: Logger;
  /**
   * Overall deadline for the API to answer `RUNNING` and the share to be mounted, in ms.
   * @default 10000
   */
  startTimeoutMs?: number;
  /**
   * Timeout of each readiness probe (`GET /api/v1/daemon`), in ms.
   * @default 1000
   */
  probeTimeoutMs?: number;
  /**
   * Timeout of each mount/umount request, in ms.
   * @default 30000 (Kata's)
   */
  apiTimeoutMs?: number;
  /**
   * stop() sends SIGTERM, then SIGKILL after this long, in ms.
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
   * {@link Nydusd.stats} reads it; the handle records it. The root of the hierarchy, anything
   * outside it and a directory without `cgroup.events` are refused. Checked at each start,
   * before anything is spawned; every refusal is an `InvalidOptionError` for `cgroup`.
   * @default none (the daemon stays in ours)
   */
  cgroup?: string;
  /**
   * - `false`: `cgroup` is the operator's, and must exist. Each start creates a fresh child
   *   `<cgroup>/nydusd-<8 random hex>` and runs the daemon there; it is removed after the stop.
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
   * What ends the daemon besides stop(): `'manager'` or `'survive'`, exactly as for virtiofsd
   * (see `VirtiofsdOptions.lifetime`): the death signal is tied to the **thread** that called
   * start(); a surviving nydusd is taken over with {@link Nydusd.adopt}.
   * @default 'manager'
   */
  lifetime?: Lifetime;
}

/** What {@link Nydusd.adopt} takes besides the handle. */
export interface NydusdAdoptOptions extends FdWarnOptions {
  /**
   * Where nydusd's output lines (first those logged while it had no manager) and our records go.
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
   * Timeout of each mount/umount request, in ms.
   * @default 30000
   */
  apiTimeoutMs?: number;
  /**
   * stop() sends SIGTERM, then SIGKILL after this long, in ms.
   * @default 5000
   */
  stopTimeoutMs?: number;
}

/** {@link NydusdOptions} read once, checked, with every default applied. */
export interface ResolvedNydusdOptions {
  /** undefined: $NYDUSD or a well-known path, looked up at each start. */
  path: string | undefined;
  /** As given: a non-empty string of at most 107 bytes. Its directory is checked at each start. */
  sockPath: string;
  /** As given, as `sockPath`; never the same file. */
  apiSockPath: string;
  /** As given: a non-empty string without NUL. That it is a directory is checked at each start. */
  sourcePath: string;
  /** A copy of `extraArgs`, taken once; `[]` when not given. Checked against `extraArgsPolicy` at each start. */
  extraArgs: string[];
  /** `'verbatim'` when not given. */
  extraArgsPolicy: ExtraArgsPolicy;
  /** false when not given. */
  debug: boolean;
  /** As given; buildNydusdArgs checks it (its default depends on debug). */
  logLevel: NydusdLogLevel | undefined;
  /** As given: buildNydusdArgs refuses any value, naming why. */
  threads: unknown;
  /** As given; checked at start, before the spawn. */
  version: string | undefined;
  /** The caller's pino logger; undefined: the package's default one (pino on stderr, one per process). */
  logger: Logger | undefined;
  /** In ms; 10000 when not given. */
  startTimeoutMs: number;
  /** In ms; 1000 when not given. */
  probeTimeoutMs: number;
  /** In ms; 30000 when not given. */
  apiTimeoutMs: number;
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
}

const NYDUSD_OPTION_KEYS = [
  'path',
  'sockPath',
  'apiSockPath',
  'sourcePath',
  'extraArgs',
  'debug',
  'logger',
  'startTimeoutMs',
  'probeTimeoutMs',
  'apiTimeoutMs',
  'stopTimeoutMs',
  'env',
  'extraArgsPolicy',
  'logLevel',
  'threads',
  'version',
  'cgroup',
  'cgroupCreate',
  'lifetime',
  'fdWarnRatio',
  'fdCheckIntervalMs',
] as const;
const POLICIES: readonly ExtraArgsPolicy[] = ['verbatim', 'known', 'safe'];

/** nydusd's own flags, camel-cased, that callers try as options: what to use instead. */
const NYDUSD_HINTS: Readonly<Record<string, string>> = {
  sock: 'sockPath',
  apisock: 'apiSockPath',
  apiSock: 'apiSockPath',
  sharedDir: 'sourcePath',
  threadNum: 'threads',
};

/**
 * Read every option of `options` once, check its type and range, and apply the defaults of
 * {@link NydusdOptions} (this is the one place they are applied). Synchronous: what needs the
 * file system is checked by start(). Throws an {@link InvalidOptionError} naming the first
 * option at fault.
 */
export function resolveNydusdOptions(options: object): ResolvedNydusdOptions {
  rejectUnknownOptions('new Nydusd()', options, NYDUSD_OPTION_KEYS, { hints: NYDUSD_HINTS });
  const o = readOptions(options, NYDUSD_OPTION_KEYS);
  const resolved: ResolvedNydusdOptions = {
    logger: requireLogger('logger', o.logger),
    path: o.path === undefined ? undefined : requireString('path', o.path),
    sockPath: requireSocketPath('sockPath', o.sockPath),
    apiSockPath: requireSocketPath('apiSockPath', o.apiSockPath),
    sourcePath: requireString('sourcePath', o.sourcePath),
    extraArgs: requireArgs('extraArgs', o.extraArgs),
    extraArgsPolicy: requireOneOf(
      'extraArgsPolicy',
      o.extraArgsPolicy,
      POLICIES,
      'verbatim',
      'an extra-arguments policy',
    ),
    logLevel: o.logLevel as NydusdLogLevel | undefined,
    threads: o.threads,
    version: o.version as string | undefined,
    debug: requireBoolean('debug', o.debug, false),
    startTimeoutMs: requireTimeout('startTimeoutMs', o.startTimeoutMs, 10000),
    probeTimeoutMs: requireTimeout('probeTimeoutMs', o.probeTimeoutMs, 1000),
    apiTimeoutMs: requireTimeout('apiTimeoutMs', o.apiTimeoutMs, 30000),
    stopTimeoutMs: requireTimeout('stopTimeoutMs', o.stopTimeoutMs, 5000),
    env: requireEnv('env', o.env),
    ...requireCgroupOptions(o.cgroup, o.cgroupCreate),
    lifetime: checkLifetime(o.lifetime),
    ...requireFdWarnOptions(o.fdWarnRatio, o.fdCheckIntervalMs),
  };
  if (path.resolve(resolved.sockPath) === path.resolve(resolved.apiSockPath)) {
    throw new InvalidOptionError(
      'apiSockPath',
      `names the same file as sockPath ('${resolved.sockPath}'); give the API its own socket`,
    );
  }
  return resolved;
}

/**
 * One nydusd in virtio-fs mode: it serves a guest over a vhost-user socket, shares `sourcePath`
 * at `/containers` (passthrough_fs, mounted through its API before start() resolves), and
 * mounts each container's RAFS image layer when asked ({@link Nydusd.mount}), pulling its data
 * lazily. Unlike virtiofsd it binds its sockets itself (`sockPath`, `apiSockPath`): a stale
 * socket file of a crashed run is removed first, and both files go when the daemon ends.
 * nydusd 1.x and 2.0 (one flat command line, as Kata 2.4 pinned) and 2.1 and later (the
 * `virtiofs` subcommand) are told apart by the version the binary reports.
 *
 * The constructor only reads and checks the options: nothing runs and nothing is created until
 * start(). One daemon at a time per instance; an instance whose daemon has ended can be started
 * again.
 */
export class Nydusd extends Daemon<ResolvedNydusdOptions> {
  private client: NydusClient | undefined;
  /** The sockets of an adopted nydusd, by identity: cleanup removes them only if they are still those. */
  private adoptedSockets: SocketRecord[] | undefined;

  /**
   * Reads and checks `options` once ({@link resolveNydusdOptions}). Throws only when `options`
   * is not an object; a wrong option makes start() reject instead.
   */
  constructor(options: NydusdOptions) {
    super('nydusd', options, resolveNydusdOptions);
  }

  /**
   * Take over a running nydusd from its handle, as {@link Virtiofsd.adopt} does for virtiofsd:
   * opened by pidfd and proven ours before anything else, and rejecting as that does
   * (`ERR_INVALID_OPTION`, `ERR_DAEMON_GONE`, `ERR_HANDLE_UNPROVEN`, `ERR_DAEMON_NOT_PERMITTED`,
   * `ERR_DAEMON_ADOPTED`). mount() and umount() go to the API socket named in the handle, and
   * only while the process listening there is this nydusd.
   */
  static adopt(handle: unknown, options: NydusdAdoptOptions = {}): Promise<Nydusd> {
    // A throw in the executor rejects: every failure arrives as a rejection.
    return new Promise((resolve) => resolve(Nydusd.adoptNow(handle, options)));
  }

  private static adoptNow(handle: unknown, options: NydusdAdoptOptions): Nydusd {
    const { onQuit, trust, passed } = readAdoptOptions('Nydusd.adopt', options, [
      'logger',
      'apiTimeoutMs',
      'stopTimeoutMs',
      'fdWarnRatio',
      'fdCheckIntervalMs',
    ]);
    const h = parseHandle(handle, 'nydusd', trust);
    const { sock, api } = h.sockets as { sock: SocketRecord; api: SocketRecord };
    const daemon = new Nydusd({
      sockPath: sock.path,
      apiSockPath: api.path,
      sourcePath: h.sourcePath,
      ...passed,
      lifetime: h.lifetime,
    } as NydusdOptions);
    const resolved = daemon.options; // an invalid logger or timeout throws here, before anything is opened
    daemon.adoptedSockets = [sock, api];
    // The handle keeps the argv: nydusd 2.1+ is run with the virtiofs subcommand.
    daemon.setDialect(h.argv[1] === 'virtiofs' ? 'virtiofs' : 'flat');
    daemon.attach(h, trust, onQuit);
    daemon.client = new NydusClient(api.path, { timeoutMs: resolved.apiTimeoutMs, peerPid: h.pid });
    return daemon;
  }

  /** nydusd binds its sockets itself: their identity is what the files are now. */
  protected socketRecords(): Record<string, SocketRecord> {
    const record = (p: string): SocketRecord => {
      const st = statSync(p, { bigint: true });
      return { path: path.resolve(p), dev: String(st.dev), ino: String(st.ino) };
    };
    return { sock: record(this.options.sockPath), api: record(this.options.apiSockPath) };
  }

  /**
   * What the file system decides before the spawn: the binary, its version and the argv; stale
   * sockets from a crashed run go (a live one, or anything that is not a socket, stays).
   */
  private async plan(): Promise<{ binary: string; version: NydusdVersion; args: string[] }> {
    const o = this.options;
    const { sockPath, apiSockPath, sourcePath } = o;
    const binary = resolveBinary(
      'path',
      o.path,
      'NYDUSD',
      WELL_KNOWN_NYDUSD_PATHS,
      'Install nydusd (github.com/dragonflyoss/nydus releases) or pass path',
    );
    checkDirectory('sourcePath', sourcePath);
    checkSocketPath('sockPath', sockPath);
    checkSocketPath('apiSockPath', apiSockPath);
    const version = o.version === undefined ? await detectNydusdVersion(binary) : requireNydusdVersion(o.version);
    const args = buildNydusdArgs({
      sockPath,
      apiSockPath,
      debug: o.debug,
      logLevel: o.logLevel,
      extraArgs: o.extraArgs,
      extraArgsPolicy: o.extraArgsPolicy,
      cli: nydusdCliFor(version),
      ...(o.threads === undefined ? {} : { threads: o.threads as never }),
    });
    for (const [option, p] of [
      ['sockPath', sockPath],
      ['apiSockPath', apiSockPath],
    ] as const) {
      try {
        removeStaleSocket(p);
      } catch (err) {
        throw SystemError.forOption(option, err);
      }
    }
    return { binary, version, args };
  }

  /** The plan, then cgroup and process, then RUNNING and the shared directory mounted; a failure stops nydusd. */
  protected async launch(run: Run, onQuit?: (exit: DaemonExit) => void): Promise<number> {
    const o = this.options;
    const { apiSockPath, lifetime } = o;
    const { binary, version, args } = await this.plan();
    this.setDialect(nydusdCliFor(version));

    const cgroup = o.cgroup === undefined ? undefined : Cgroup.prepare(o.cgroup, o.cgroupCreate, 'nydusd');
    let proc: DaemonProcess;
    try {
      proc = new DaemonProcess({
        name: 'nydusd',
        file: binary,
        args,
        env: o.env,
        captureStdout: true,
        cgroup,
        logger: this.log,
        lifetime,
        headroom: this.headroom(),
      });
    } catch (err) {
      void cgroup?.remove();
      throw SystemError.isCgroupPlacement(err) ? cgroupPlacementError(err, cgroup!.path) : err;
    }
    // Taken now: DaemonProcess.pid reads 0 once the exit is seen (see Virtiofsd.launch).
    const pid = proc.pid;
    // Every request goes to this nydusd only: its API socket's directory may be someone else's.
    const client = new NydusClient(apiSockPath, { timeoutMs: o.apiTimeoutMs, peerPid: pid });
    // Ours from here on, before anything else can fail: a failure below stops it.
    this.client = client;
    this.adopt(proc, run, onQuit);
    this.log.info({ daemonPid: proc.pid, version: version.text, argv: proc.argv }, 'nydusd started');

    await this.waitMounted(proc, pid, client);
    proc.startOver();
    run.started = true;
    return pid;
  }

  /**
   * Wait, within the start deadline, until the API answers RUNNING and the shared directory is
   * mounted. Any failure stops nydusd (with its sockets) and rejects with a DaemonStartError.
   */
  private async waitMounted(proc: DaemonProcess, pid: number, client: NydusClient): Promise<void> {
    const { apiSockPath, sourcePath, startTimeoutMs: timeoutMs } = this.options;
    const deadline = Date.now() + timeoutMs;
    try {
      await this.waitRunning(proc, pid, apiSockPath, deadline, timeoutMs);
      const mounted = await raceDeadline(
        Promise.race([
          client.mount(SHARED_MOUNTPOINT, { fs_type: 'passthrough_fs', source: sourcePath, config: '' }),
          proc.ended.then(() => {
            throw this.exitedError(proc, 'while the shared directory was being mounted');
          }),
        ]),
        deadline - Date.now(),
      );
      if (mounted === TIMED_OUT) {
        throw new DaemonStartError(
          'ERR_DAEMON_START_TIMEOUT',
          `nydusd did not mount '${sourcePath}' at ${SHARED_MOUNTPOINT} within the ${timeoutMs} ms start deadline; it was stopped`,
          { lastLines: proc.lastLines(), argv: proc.argv },
        );
      }
    } catch (err) {
      // Kata's Go runtime leaves nydusd running here; we take it down with its sockets.
      if (!proc.exitStatus) await this.stop().catch(() => {});
      if (err instanceof DaemonStartError) throw err;
      throw new DaemonStartError(
        'ERR_DAEMON_START',
        `nydusd could not mount '${sourcePath}' at ${SHARED_MOUNTPOINT}: ${(err as Error).message}; it was stopped`,
        { lastLines: proc.lastLines(), argv: proc.argv },
        { cause: err },
      );
    }
  }

  /** Poll `GET /api/v1/daemon` until `RUNNING`, each probe bounded, the whole bounded, the exit fatal. */
  private async waitRunning(
    proc: DaemonProcess,
    pid: number,
    apiSockPath: string,
    deadline: number,
    timeoutMs: number,
  ): Promise<void> {
    const probeTimeoutMs = this.options.probeTimeoutMs;
    let last = 'no answer yet';
    // A probe started before the deadline may run past it by up to probeTimeoutMs.
    for (let delay = 10; Date.now() < deadline; delay = Math.min(delay * 2, 200)) {
      // `pid`, not proc.pid, which reads 0 once the exit is seen.
      const probe = new NydusClient(apiSockPath, { timeoutMs: probeTimeoutMs, peerPid: pid });
      const answer = await Promise.race([
        probe.daemonInfo().then(
          (info) => info.state,
          (err: Error) => err,
        ),
        proc.ended.then(() => null),
      ]);
      probe.close();
      if (answer === null) throw this.exitedError(proc, 'before its API answered RUNNING');
      if (answer === 'RUNNING') return;
      last = answer instanceof Error ? answer.message : `state ${answer}`;
      await sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
    }
    throw new DaemonStartError(
      'ERR_DAEMON_START_TIMEOUT',
      `nydusd's API did not answer RUNNING within ${timeoutMs} ms (last: ${last}); it was stopped`,
      { lastLines: proc.lastLines(), argv: proc.argv },
    );
  }

  private exitedError(proc: DaemonProcess, when: string): DaemonStartError {
    const exit = proc.exitStatus!;
    return new DaemonStartError('ERR_DAEMON_EXITED', `nydusd exited (${describeExit(exit)}) ${when}. Its last lines:`, {
      exit,
      lastLines: proc.lastLines(),
      argv: proc.argv,
    });
  }

  /** Both sockets go (if nobody else listens there now): nydusd never removes its vhost-user one. */
  protected cleanup(): void {
    for (const s of this.adoptedSockets ?? []) {
      try {
        unlinkSocket({ path: s.path, dev: BigInt(s.dev), ino: BigInt(s.ino) });
      } catch (err) {
        this.log.warn({ err, socket: s.path }, 'socket left in place');
      }
    }
    for (const p of this.adoptedSockets ? [] : [this.options.sockPath, this.options.apiSockPath]) {
      try {
        removeStaleSocket(p);
      } catch (err) {
        this.log.warn({ err, socket: p }, 'socket left in place');
      }
    }
    this.client?.close();
    this.client = undefined;
  }

  protected vhostUserSocketPath(): string {
    return this.options.sockPath;
  }

  protected stopOptions(): StopOptions {
    return { signal: 'SIGTERM', timeoutMs: this.options.stopTimeoutMs };
  }

  protected spanAttributes(): Record<string, string> {
    return {
      sockPath: this.options.sockPath,
      apiSockPath: this.options.apiSockPath,
      sourcePath: this.options.sourcePath,
    };
  }

  /**
   * nydusd's own counters of each RAFS filesystem it serves: `GET /api/v1/daemon` lists its
   * mounts, then `GET /api/v1/metrics?id=<mountpoint>` is asked for each RAFS one (the shared
   * passthrough directory has none). A filesystem nydusd keeps no counters for is left out.
   * Each request is bounded by `timeoutMs` (default: `apiTimeoutMs`). Rejects with
   * `ERR_DAEMON_NOT_RUNNING` when nydusd is not running, or the request's {@link NydusApiError}.
   */
  async fsMetrics({ timeoutMs }: { timeoutMs?: number } = {}): Promise<
    {
      /** The RAFS mountpoint (`/rafs/<id>/lowerdir`), as it was mounted. */
      mountpoint: string;
      /** nydusd's counters of that filesystem. */
      metrics: NydusFsMetrics;
    }[]
  > {
    this.api(); // running, or ERR_DAEMON_NOT_RUNNING
    const client = new NydusClient(this.options.apiSockPath, {
      timeoutMs: requireTimeout('timeoutMs', timeoutMs, this.options.apiTimeoutMs),
    });
    try {
      const info = await client.daemonInfo();
      const rafs = Object.values(info.backend_collection ?? {}).filter((b) => b.backend_type === 'Rafs');
      const out: { mountpoint: string; metrics: NydusFsMetrics }[] = [];
      for (const { mountpoint } of rafs) {
        const metrics = await client.fsMetrics(mountpoint);
        if (metrics) out.push({ mountpoint, metrics });
      }
      return out;
    } finally {
      client.close();
    }
  }

  /**
   * Mount a container's RAFS image layer at `opt.mountpoint`, which must be `/rafs/<id>/lowerdir`
   * (`<id>` of letters, digits, `_`, `.` and `-`, not only dots): `source` is the layer's RAFS
   * bootstrap, `config` the RAFS configuration as JSON text (registry credentials included, so
   * it goes only to this nydusd's own API socket), `prefetchFiles` the image paths to prefetch.
   * Resolves once nydusd has mounted it. Rejects with an {@link InvalidOptionError} for a bad
   * mountpoint or field, or an unknown one, before anything is sent; `ERR_DAEMON_NOT_RUNNING`
   * when nydusd is not running (or still starting); otherwise the request's
   * {@link NydusApiError}, each request bounded by `apiTimeoutMs`.
   */
  async mount(opt: MountOption): Promise<void> {
    // Read once: what is checked is what is sent.
    const given = requireOptionsObject('mount', opt, 'opt');
    const keys = ['mountpoint', 'source', 'config', 'prefetchFiles'];
    rejectUnknownOptions('nydusd.mount()', given, keys, { hints: { prefetch_files: 'prefetchFiles' } });
    const o = readOptions(given, keys);
    const mountpoint = this.checkMountpoint(o.mountpoint);
    const source = requireString('source', o.source);
    if (typeof o.config !== 'string')
      throw new InvalidOptionError('config', 'must be the RAFS configuration as JSON text');
    const prefetch = o.prefetchFiles === undefined ? {} : { prefetch_files: o.prefetchFiles as string[] };
    await this.api().mount(mountpoint, { fs_type: 'rafs', source, config: o.config, ...prefetch });
  }

  /**
   * Unmount the RAFS image layer at `mountpoint` (`/rafs/<id>/lowerdir`, checked as mount()
   * checks it). Rejects as mount() does.
   */
  async umount(mountpoint: string): Promise<void> {
    // The mountpoint first: a bad one is the caller's error whether or not nydusd runs.
    const m = this.checkMountpoint(mountpoint);
    await this.api().umount(m);
  }

  private checkMountpoint(mountpoint: unknown): string {
    const m = requireString('mountpoint', mountpoint);
    if (!RAFS_MOUNTPOINT.test(m)) {
      throw new InvalidOptionError(
        'mountpoint',
        `'${m}' is not a RAFS mountpoint; use /rafs/<id>/lowerdir with <id> made of letters, digits, '_', '.' and '-' (not only dots)`,
      );
    }
    return m;
  }

  private api(): NydusClient {
    if (!this.client || this.isStarting) {
      throw new VirtiofsDaemonError(
        'ERR_DAEMON_NOT_RUNNING',
        'nydusd is not running; start() it and wait for it first',
      );
    }
    return this.client;
  }
}
