/**
 * nydusd (lazy image pulling) behind the VirtiofsDaemon contract: started in virtiofs mode, it
 * serves the guest over vhost-user and mounts each container's RAFS image through its HTTP API.
 * Unlike virtiofsd it cannot take an inherited socket: it binds `--sock` and `--apisock` itself.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import { Daemon, describeExit, type Run } from './daemon.js';
import { DaemonProcess, sleep, type StopOptions } from './daemon-process.js';
import {
  DaemonStartError,
  InvalidOptionError,
  SystemError,
  VirtiofsDaemonError,
} from './errors.js';
import { statSync } from 'node:fs';
import { checkLifetime, parseHandle, type Lifetime, type SocketRecord } from './handle.js';
import { removeStaleSocket, unlinkSocket } from './native.js';
import { NydusClient } from './nydus-client.js';
import type { DaemonExit, MountOption } from './types.js';
import { checkDirectory, checkSocketPath, requireArgs, requireString, resolveBinary } from './validate.js';
import type { ExtraArgsPolicy } from './extra-args.js';
import { buildNydusdArgs, detectNydusdVersion, nydusdCliFor, requireNydusdVersion, type NydusdLogLevel } from './nydusd-args.js';

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

export interface NydusdOptions {
  /** The nydusd binary. Default: $NYDUSD, then {@link WELL_KNOWN_NYDUSD_PATHS}. */
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
  /** Where nydusd's output lines and our records go. Children carry `{ subsystem: 'nydusd' }`. */
  logger?: Logger;
  /** Overall deadline for the API to answer `RUNNING` and the share to be mounted. Default 10000 ms. */
  startTimeoutMs?: number;
  /** Timeout of each readiness probe (`GET /api/v1/daemon`). Default 1000 ms. */
  probeTimeoutMs?: number;
  /** Timeout of each mount/umount request. Default 30000 ms (Kata's). */
  apiTimeoutMs?: number;
  /** stop() sends SIGTERM, then SIGKILL after this long. Default 5000 ms. */
  stopTimeoutMs?: number;
  /** The daemon's environment. Default: ours. */
  env?: NodeJS.ProcessEnv;
  /**
   * What ends the daemon besides stop(): `'manager'` or `'survive'`, exactly as for virtiofsd
   * (see `VirtiofsdOptions.lifetime`): the death signal is tied to the **thread** that called
   * start(); a surviving nydusd is taken over with {@link Nydusd.adopt}.
   * @default 'manager'
   */
  lifetime?: Lifetime;
}

/** What {@link Nydusd.adopt} takes besides the handle. */
export interface NydusdAdoptOptions {
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

export class Nydusd extends Daemon {
  private client: NydusClient | undefined;

  /** The sockets of an adopted nydusd, by identity: cleanup removes them only if they are still those. */
  private adoptedSockets: SocketRecord[] | undefined;

  constructor(private readonly options: NydusdOptions) {
    super('nydusd', options.logger);
  }

  /**
   * Take over a running nydusd from its handle, as {@link Virtiofsd.adopt} does for virtiofsd:
   * verified by pidfd before anything else, `ERR_INVALID_OPTION` / `ERR_DAEMON_GONE` /
   * `ERR_DAEMON_ADOPTED` otherwise. mount()/umount() go to the API socket named in the handle.
   */
  static adopt(handle: unknown, options: NydusdAdoptOptions = {}): Promise<Nydusd> {
    // A throw in the executor rejects: every failure arrives as a rejection.
    return new Promise((resolve) => resolve(Nydusd.adoptNow(handle, options)));
  }

  private static adoptNow(handle: unknown, options: NydusdAdoptOptions): Nydusd {
    const h = parseHandle(handle, 'nydusd');
    const { sock, api } = h.sockets as { sock: SocketRecord; api: SocketRecord };
    const daemon = new Nydusd({
      sockPath: sock.path,
      apiSockPath: api.path,
      sourcePath: h.sourcePath,
      logger: options.logger,
      apiTimeoutMs: options.apiTimeoutMs,
      stopTimeoutMs: options.stopTimeoutMs,
      lifetime: h.lifetime,
    });
    daemon.adoptedSockets = [sock, api];
    daemon.attach(h, options.onQuit);
    daemon.client = new NydusClient(api.path, { timeoutMs: options.apiTimeoutMs ?? 30000 });
    return daemon;
  }

  protected sourcePath(): string {
    return this.options.sourcePath;
  }

  protected lifetime(): Lifetime {
    return this.options.lifetime ?? 'manager';
  }

  /** nydusd binds its sockets itself: their identity is what the files are now. */
  protected socketRecords(): Record<string, SocketRecord> {
    const record = (p: string): SocketRecord => {
      const st = statSync(p, { bigint: true });
      return { path: path.resolve(p), dev: String(st.dev), ino: String(st.ino) };
    };
    return { sock: record(this.options.sockPath), api: record(this.options.apiSockPath) };
  }

  protected async launch(run: Run, onQuit?: (exit: DaemonExit) => void): Promise<number> {
    const o = this.options;
    const sockPath = requireString('sockPath', o.sockPath);
    const apiSockPath = requireString('apiSockPath', o.apiSockPath);
    const sourcePath = requireString('sourcePath', o.sourcePath);
    const extraArgs = requireArgs('extraArgs', o.extraArgs);
    const lifetime = checkLifetime(o.lifetime);
    if (path.resolve(sockPath) === path.resolve(apiSockPath)) {
      throw new InvalidOptionError('apiSockPath', `names the same file as sockPath ('${sockPath}'); give the API its own socket`);
    }
    const binary = await resolveBinary('path', o.path, 'NYDUSD', WELL_KNOWN_NYDUSD_PATHS, 'Install nydusd (github.com/dragonflyoss/nydus releases) or pass path');
    await checkDirectory('sourcePath', sourcePath);
    await checkSocketPath('sockPath', sockPath);
    await checkSocketPath('apiSockPath', apiSockPath);
    const version = o.version === undefined ? await detectNydusdVersion(binary) : requireNydusdVersion(o.version);
    const args = buildNydusdArgs({ ...o, sockPath, apiSockPath, extraArgs, cli: nydusdCliFor(version) });
    // Stale sockets from a crashed run go; a live one, or anything that is not a socket, stays.
    for (const [option, p] of [['sockPath', sockPath], ['apiSockPath', apiSockPath]] as const) {
      try {
        removeStaleSocket(p);
      } catch (err) {
        throw SystemError.forOption(option, err);
      }
    }

    const proc = new DaemonProcess({
      name: 'nydusd',
      file: binary,
      args,
      env: o.env,
      captureStdout: true,
      logger: this.log,
      lifetime,
    });
    this.log.info({ daemonPid: proc.pid, version: version.text, argv: proc.argv }, 'nydusd started');
    const client = new NydusClient(apiSockPath, { timeoutMs: o.apiTimeoutMs ?? 30000 });
    this.client = client;
    this.adopt(proc, run, onQuit);

    const timeoutMs = o.startTimeoutMs ?? 10000;
    const deadline = Date.now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    try {
      await this.waitRunning(proc, apiSockPath, deadline, timeoutMs);
      await Promise.race([
        client.mount(SHARED_MOUNTPOINT, { fs_type: 'passthrough_fs', source: sourcePath, config: '' }),
        proc.ended.then(() => {
          throw this.exitedError(proc, 'while the shared directory was being mounted');
        }),
        new Promise((_, reject) => {
          timer = setTimeout(() => {
            reject(
              new DaemonStartError(
                'ERR_DAEMON_START_TIMEOUT',
                `nydusd did not mount '${sourcePath}' at ${SHARED_MOUNTPOINT} within the ${timeoutMs} ms start deadline; it was stopped`,
                { lastLines: proc.lastLines(), argv: proc.argv },
              ),
            );
          }, Math.max(0, deadline - Date.now()));
        }),
      ]);
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
    } finally {
      clearTimeout(timer);
    }
    run.started = true;
    return proc.pid;
  }

  /** Poll `GET /api/v1/daemon` until `RUNNING`, each probe bounded, the whole bounded, the exit fatal. */
  private async waitRunning(proc: DaemonProcess, apiSockPath: string, deadline: number, timeoutMs: number): Promise<void> {
    const probeTimeoutMs = this.options.probeTimeoutMs ?? 1000;
    let last = 'no answer yet';
    // A probe started before the deadline may run past it by up to probeTimeoutMs.
    for (let delay = 10; Date.now() < deadline; delay = Math.min(delay * 2, 200)) {
      const probe = new NydusClient(apiSockPath, { timeoutMs: probeTimeoutMs });
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

  protected stopOptions(): StopOptions {
    return { signal: 'SIGTERM', timeoutMs: this.options.stopTimeoutMs ?? 5000 };
  }

  protected spanAttributes(): Record<string, string> {
    return { sockPath: this.options.sockPath, apiSockPath: this.options.apiSockPath, sourcePath: this.options.sourcePath };
  }

  /** Mount a container's RAFS image layer at `/rafs/<id>/lowerdir`. */
  async mount(opt: MountOption): Promise<void> {
    const mountpoint = this.checkMountpoint(opt?.mountpoint);
    const source = requireString('source', opt.source);
    if (typeof opt.config !== 'string') throw new InvalidOptionError('config', 'must be the RAFS configuration as JSON text');
    const prefetch = opt.prefetchFiles === undefined ? {} : { prefetch_files: opt.prefetchFiles };
    await this.api().mount(mountpoint, { fs_type: 'rafs', source, config: opt.config, ...prefetch });
  }

  /** Unmount the RAFS image layer at `/rafs/<id>/lowerdir`. */
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
      throw new VirtiofsDaemonError('ERR_DAEMON_NOT_RUNNING', 'nydusd is not running; start() it and wait for it first');
    }
    return this.client;
  }
}
