/**
 * The contract every daemon implements: Kata's `VirtiofsDaemon` (Start(onQuit) → pid, Stop,
 * Mount, Umount), with the exit status that Kata's callers never got.
 */

/** How a process ended: the one shape every exit report builds on. */
export interface ExitStatus {
  /** Exit code, or null when a signal ended it. */
  code: number | null;
  /** Name of the signal that ended it, or null when it exited. */
  signal: NodeJS.Signals | null;
}

/** How the daemon ended. */
export interface DaemonExit extends ExitStatus {
  /** True when the exit followed our own `stop()`; false when the daemon quit by itself or was killed by someone else. */
  requested: boolean;
  /**
   * False when the exit status could not be learnt: an adopted daemon (not our child) on a kernel
   * that does not publish it to pidfd holders (Linux < 6.15), or a status reaped by someone
   * else. `code` and `signal` are both null then - never a made-up code.
   */
  known: boolean;
}

/** A filesystem to attach to a running daemon (nydusd: a RAFS image layer). */
export interface MountOption {
  /** Where the filesystem comes from (nydusd RAFS: the bootstrap file). */
  source: string;
  /** Where the guest sees it (nydusd: `/rafs/<id>/lowerdir`). */
  mountpoint: string;
  /** Daemon-specific configuration (nydusd: the RAFS config as JSON text). */
  config: string;
  /** nydusd: files and directories of the image to prefetch (absolute paths in the image). @default none */
  prefetchFiles?: string[];
}

/**
 * The contract every daemon of this package implements - {@link Virtiofsd}, {@link Nydusd} and
 * the test stand-in {@link MockVirtiofsDaemon} - after Kata's `VirtiofsDaemon` interface
 * (`Start(ctx, onQuit) (pid, error)`, `Stop`, `Mount`, `Umount`), with the exit status that
 * Kata's callers never got. Code written against it runs against any of the three.
 */
export interface VirtiofsDaemon {
  /**
   * Start the daemon and resolve to its pid once it is ready to serve. `onQuit` is called
   * exactly once when the daemon started by this call exits, after it is reaped (not when
   * `start` itself rejects: the rejection reports that exit).
   */
  start(onQuit?: (exit: DaemonExit) => void): Promise<number>;
  /**
   * Stop the daemon and remove what `start` created. Resolves once the daemon is reaped and no
   * process of its group is left. A no-op when it is not running; concurrent calls share one stop.
   */
  stop(): Promise<void>;
  /** Attach a filesystem (nydusd); virtiofsd rejects with `ERR_NOT_SUPPORTED`. */
  mount(opt: MountOption): Promise<void>;
  /** Detach the filesystem at `mountpoint` (nydusd); virtiofsd rejects with `ERR_NOT_SUPPORTED`. */
  umount(mountpoint: string): Promise<void>;
  /** The daemon's pid while it runs, 0 otherwise. */
  readonly pid: number;
}
