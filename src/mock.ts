/**
 * A stand-in for unit tests of code that drives a VirtiofsDaemon (what Kata's `virtiofsdMock`
 * is): no process, no socket. It records every call and lets the test make the daemon quit.
 */
import { DaemonRunningError } from './errors.js';
import type { DaemonExit, MountOption, VirtiofsDaemon } from './types.js';

/** The pid the mock reports, as Kata's mock does: no real process has it. */
export const MOCK_PID = 9999999;

export class MockVirtiofsDaemon implements VirtiofsDaemon {
  /** Every call, in order: `['start']`, `['mount', opt]`, `['umount', mountpoint]`, `['stop']`. */
  readonly calls: [string, ...unknown[]][] = [];
  /** Mounts made through mount() and not yet undone. */
  readonly mounts = new Map<string, MountOption>();
  private onQuit: ((exit: DaemonExit) => void) | undefined;
  private running = false;

  get pid(): number {
    return this.running ? MOCK_PID : 0;
  }

  async start(onQuit?: (exit: DaemonExit) => void): Promise<number> {
    this.calls.push(['start']);
    if (this.running) throw new DaemonRunningError('MockVirtiofsDaemon', MOCK_PID);
    this.running = true;
    this.onQuit = onQuit;
    return MOCK_PID;
  }

  async stop(): Promise<void> {
    this.calls.push(['stop']);
    if (this.running) this.quit({ code: null, signal: 'SIGKILL', requested: true, known: true });
  }

  async mount(opt: MountOption): Promise<void> {
    this.calls.push(['mount', opt]);
    this.mounts.set(opt.mountpoint, opt);
  }

  async umount(mountpoint: string): Promise<void> {
    this.calls.push(['umount', mountpoint]);
    this.mounts.delete(mountpoint);
  }

  /** Make the "daemon" quit as if it exited by itself (or pass `requested: true`): onQuit fires once. */
  quit(exit: DaemonExit = { code: 0, signal: null, requested: false, known: true }): void {
    if (!this.running) return;
    this.running = false;
    const onQuit = this.onQuit;
    this.onQuit = undefined;
    onQuit?.(exit);
  }
}
