/**
 * nydusd (lazy image pulling) behind the VirtiofsDaemon contract: started in virtiofs mode, it
 * serves the guest over vhost-user and mounts each container's RAFS image through its HTTP API.
 * Unlike virtiofsd it cannot take an inherited socket: it binds `--sock` and `--apisock` itself.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import { Cgroup } from './cgroup.js';
import { Daemon, describeExit, type Run } from './daemon.js';
import { DaemonProcess, sleep, type StopOptions } from './daemon-process.js';
import {
  DaemonStartError,
  InvalidOptionError,
  SystemError,
  VirtiofsDaemonError,
} from './errors.js';
import { removeStaleSocket } from './native.js';
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
   * The daemon's own cgroup v2 directory: absolute, or relative to where cgroup v2 is mounted
   * (read from /proc/self/mountinfo). The daemon runs its first instruction in it; stop() kills
   * everything in it (`cgroup.kill`), descendants that left the process group included, and
   * waits until it is empty; {@link Daemon.stats} reads it. It must be a leaf that holds no
   * process yet: one cgroup per daemon. Default: none (the daemon stays in ours).
   */
  cgroup?: string;
  /**
   * Create `cgroup` (and missing parents) when it does not exist, and remove what was created
   * once the daemon has stopped. A directory that existed is never removed.
   * @default false
   */
  cgroupCreate?: boolean;
}

export class Nydusd extends Daemon {
  private client: NydusClient | undefined;

  constructor(private readonly options: NydusdOptions) {
    super('nydusd', options.logger);
  }

  protected async launch(run: Run, onQuit?: (exit: DaemonExit) => void): Promise<number> {
    const o = this.options;
    const sockPath = requireString('sockPath', o.sockPath);
    const apiSockPath = requireString('apiSockPath', o.apiSockPath);
    const sourcePath = requireString('sourcePath', o.sourcePath);
    const extraArgs = requireArgs('extraArgs', o.extraArgs);
    if (path.resolve(sockPath) === path.resolve(apiSockPath)) {
      throw new InvalidOptionError('apiSockPath', `names the same file as sockPath ('${sockPath}'); give the API its own socket`);
    }
    const binary = resolveBinary('path', o.path, 'NYDUSD', WELL_KNOWN_NYDUSD_PATHS, 'Install nydusd (github.com/dragonflyoss/nydus releases) or pass path');
    checkDirectory('sourcePath', sourcePath);
    checkSocketPath('sockPath', sockPath);
    checkSocketPath('apiSockPath', apiSockPath);
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

    const cgroup = o.cgroup === undefined ? undefined : Cgroup.prepare(requireString('cgroup', o.cgroup), o.cgroupCreate === true);
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
      });
    } catch (err) {
      void cgroup?.remove();
      throw SystemError.isCgroupPlacement(err) ? SystemError.forOption('cgroup', err) : err;
    }
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
    proc.startOver();
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
    for (const p of [this.options.sockPath, this.options.apiSockPath]) {
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
