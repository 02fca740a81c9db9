/**
 * A stand-in for unit tests of code that drives a VirtiofsDaemon (what Kata's `virtiofsdMock`
 * is): no process, no socket. It records every call and lets the test make the daemon quit.
 */
import { DaemonRunningError, InvalidOptionError, NotSupportedError } from './common/errors.js';
import type { DaemonExit, MountOption, VirtiofsDaemon } from './common/types.js';
import { describeValue } from './common/describe.js';

/** The pid the mock reports, as Kata's mock does: no real process has it. */
export const MOCK_PID = 9999999;

/** What `new MockVirtiofsDaemon()` takes. */
export interface MockVirtiofsDaemonOptions {
  /**
   * Which daemon the mock stands for. A `virtiofsd` mock refuses mount/umount with
   * `ERR_NOT_SUPPORTED`, as `Virtiofsd` does (and as Kata's `virtiofsdMock` returns
   * `errUnimplemented`); a `nydusd` mock records them, as `Nydusd` would perform them. The
   * default is Kata's: its mock stands for virtiofsd, so code tested against it must not
   * depend on mount working.
   * @default 'virtiofsd'
   */
  kind?: 'virtiofsd' | 'nydusd';
}

/**
 * A {@link VirtiofsDaemon} with no process and no socket behind it, for unit tests of code that
 * drives one (what Kata's `virtiofsdMock` is). It records every call in {@link calls}, answers as
 * the real daemons would (a second start() rejects with `ERR_DAEMON_RUNNING`; a virtiofsd
 * mock's mount() with `ERR_NOT_SUPPORTED`), and {@link quit} makes the "daemon" end as if it had
 * exited by itself, so that the test can check what its onQuit does. Every method resolves at
 * once. Throws an {@link InvalidOptionError} for a `kind` that is neither daemon.
 */
export class MockVirtiofsDaemon implements VirtiofsDaemon {
  /** The daemon this mock stands for. */
  readonly kind: 'virtiofsd' | 'nydusd';
  /** Every call, in order: `['start']`, `['mount', opt]`, `['umount', mountpoint]`, `['stop']`. */
  readonly calls: [string, ...unknown[]][] = [];
  /** Mounts made through mount() and not yet undone. */
  readonly mounts = new Map<string, MountOption>();
  private onQuit: ((exit: DaemonExit) => void) | undefined;
  private running = false;

  constructor(options: MockVirtiofsDaemonOptions = {}) {
    const kind = options.kind ?? 'virtiofsd';
    if (kind !== 'virtiofsd' && kind !== 'nydusd') {
      throw new InvalidOptionError('kind', `${describeValue(kind)} is not virtiofsd or nydusd`);
    }
    this.kind = kind;
  }

  /** {@link MOCK_PID} from start() until stop() or quit(), 0 otherwise. */
  get pid(): number {
    return this.running ? MOCK_PID : 0;
  }

  /* eslint-disable @typescript-eslint/require-await -- async like the real daemons': a throw is a rejection */
  /**
   * Record `['start']` and resolve to {@link MOCK_PID}, keeping `onQuit` for {@link quit} or
   * {@link stop}. Rejects with {@link DaemonRunningError} (`ERR_DAEMON_RUNNING`, recorded all the
   * same) while the mock "runs".
   */
  async start(onQuit?: (exit: DaemonExit) => void): Promise<number> {
    this.calls.push(['start']);
    if (this.running) throw new DaemonRunningError('MockVirtiofsDaemon', MOCK_PID);
    this.running = true;
    this.onQuit = onQuit;
    return MOCK_PID;
  }

  /**
   * Record `['stop']`; when the mock "runs", end it as our stop() of a virtiofsd would, calling
   * onQuit with `{ code: null, signal: 'SIGKILL', requested: true, known: true }`. Otherwise a
   * no-op, as the real stop() is.
   */
  async stop(): Promise<void> {
    this.calls.push(['stop']);
    if (this.running) this.quit({ code: null, signal: 'SIGKILL', requested: true, known: true });
  }

  /**
   * Record `['mount', opt]`. A `nydusd` mock adds `opt` to {@link mounts} (keyed by its
   * mountpoint, unchecked); a `virtiofsd` mock rejects with {@link NotSupportedError}
   * (`ERR_NOT_SUPPORTED`), as {@link Virtiofsd.mount} does. Whether the mock "runs" is not checked.
   */
  async mount(opt: MountOption): Promise<void> {
    this.calls.push(['mount', opt]);
    if (this.kind === 'virtiofsd')
      throw new NotSupportedError('virtiofsd does not mount filesystems on request; mount() is for nydusd');
    this.mounts.set(opt.mountpoint, opt);
  }

  /**
   * Record `['umount', mountpoint]`. A `nydusd` mock removes `mountpoint` from {@link mounts}
   * (nothing there is not an error); a `virtiofsd` mock rejects with {@link NotSupportedError}.
   */
  async umount(mountpoint: string): Promise<void> {
    this.calls.push(['umount', mountpoint]);
    if (this.kind === 'virtiofsd')
      throw new NotSupportedError('virtiofsd does not unmount filesystems on request; umount() is for nydusd');
    this.mounts.delete(mountpoint);
  }
  /* eslint-enable @typescript-eslint/require-await */

  /** Make the "daemon" quit as if it exited by itself (or pass `requested: true`): onQuit fires once. */
  quit(exit: DaemonExit = { code: 0, signal: null, requested: false, known: true }): void {
    if (!this.running) return;
    this.running = false;
    const onQuit = this.onQuit;
    this.onQuit = undefined;
    onQuit?.(exit);
  }
}
