/**
 * A daemon's own cgroup v2 directory: found, checked and (when asked) created before anything is
 * spawned; the spawn places the daemon in it from its first instruction (see native.ts); stop
 * empties it with `cgroup.kill` and learns that it is empty from `cgroup.events`; `stats()` reads
 * what it accounts.
 *
 * Where cgroup v2 is mounted is read from /proc/self/mountinfo, never assumed: systemd hosts
 * mount it alone at /sys/fs/cgroup, hybrid hosts at /sys/fs/cgroup/unified beside the v1
 * controllers (there, v2 has placement, `cgroup.kill` and `cpu.stat`, but memory and pids stay v1).
 */
import { constants, closeSync, openSync, promises as fsp, watch } from 'node:fs';
import fs from 'node:fs';
import path from 'node:path';
import { raceDeadline, sleep, TIMED_OUT } from './deadline.js';
import { describeError } from './describe.js';
import { InvalidOptionError, VirtiofsDaemonError } from './errors.js';
import { killCgroupMembers } from './native.js';
import { requireBoolean } from './options.js';
import { requireString } from './validate.js';

/** statfs f_type of cgroup2 (linux/magic.h). */
const CGROUP2_SUPER_MAGIC = 0x63677270;

let mountCache: string | null | undefined;

/**
 * The mount point of the cgroup v2 hierarchy in this mount namespace, from /proc/self/mountinfo
 * (the first `cgroup2` entry), or null when none is mounted. Read once.
 */
export function cgroup2Mount(): string | null {
  if (mountCache !== undefined) return mountCache;
  mountCache = null;
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    // "id parent major:minor root mountpoint options [optional...] - fstype source superopts"
    const sep = line.indexOf(' - ');
    if (sep < 0 || line.slice(sep + 3).split(' ')[0] !== 'cgroup2') continue;
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    mountCache = line.split(' ')[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    break;
  }
  return mountCache;
}

/**
 * The `cgroup` and `cgroupCreate` options of both daemons, read once by their resolve functions:
 * `cgroup` a non-empty string without NUL (what it names is checked at each start, by
 * {@link Cgroup.prepare}), `cgroupCreate` a boolean that needs `cgroup`.
 */
export function requireCgroupOptions(
  cgroup: unknown,
  cgroupCreate: unknown,
): { cgroup: string | undefined; cgroupCreate: boolean } {
  const dir = cgroup === undefined ? undefined : requireString('cgroup', cgroup);
  const create = requireBoolean('cgroupCreate', cgroupCreate, false);
  if (create && dir === undefined) {
    throw new InvalidOptionError(
      'cgroupCreate',
      "is true, but no cgroup is given to create; pass cgroup: 'a/path' too, or leave cgroupCreate out",
    );
  }
  return { cgroup: dir, cgroupCreate: create };
}

/** What a daemon's cgroup accounts (v2 interface files; absent fields: controller not enabled there). */
export interface CgroupStats {
  /** CPU time of every process that ran in the cgroup, in microseconds (`cpu.stat` usage_usec). */
  cpuUsageUsec: number;
  /** Memory charged to the cgroup, in bytes (`memory.current`), where the memory controller is enabled. */
  memoryCurrent?: number;
  /** Processes and threads in the cgroup (`pids.current`), where the pids controller is enabled. */
  pidsCurrent?: number;
}

/** A {@link Cgroup} as a daemon handle records it (JSON). */
export interface CgroupRecord {
  /** Absolute path of the cgroup directory. */
  path: string;
  /** The topmost directory created for the daemon (removed with it), or null. */
  createdTop: string | null;
}

/** The cgroup of one daemon. */
export class Cgroup {
  private constructor(
    /** Absolute path of the cgroup directory. */
    readonly path: string,
    /** The topmost directory we created for it (removed, with what is below it, at the end), or null. */
    private readonly createdTop: string | null,
  ) {}

  /**
   * Resolve `cgroup` (absolute, or relative to the cgroup v2 mount), create it when `create` and
   * missing, and check that a daemon can live there: a cgroup v2 directory we may write, that no
   * process is in yet (stop() kills everything in it), with no controllers enabled for children
   * (a process may only join a leaf). Every failure is an {@link InvalidOptionError} for `cgroup`,
   * and leaves nothing created behind.
   */
  static prepare(cgroup: string, create: boolean): Cgroup {
    const mount = cgroup2Mount();
    let dir = cgroup;
    if (!path.isAbsolute(cgroup)) {
      if (!mount) {
        throw new InvalidOptionError('cgroup', `'${cgroup}' is relative, and no cgroup v2 hierarchy is mounted here`);
      }
      dir = path.join(mount, cgroup);
    }
    dir = path.normalize(dir);
    let createdTop: string | null = null;
    if (!fs.existsSync(dir)) {
      if (!create) {
        throw new InvalidOptionError('cgroup', `'${dir}' does not exist; create it or pass cgroupCreate: true`);
      }
      if (!onCgroup2(path.dirname(dir)) && !(mount && isInside(dir, mount))) {
        throw new InvalidOptionError('cgroup', notV2(dir, mount));
      }
      try {
        createdTop = fs.mkdirSync(dir, { recursive: true }) ?? null;
      } catch (err) {
        throw new InvalidOptionError('cgroup', `cannot create '${dir}': ${describeError(err)}`, { cause: err });
      }
    }
    const group = new Cgroup(dir, createdTop);
    try {
      group.check(mount);
    } catch (err) {
      group.removeNow();
      throw err;
    }
    return group;
  }

  private check(mount: string | null): void {
    const dir = this.path;
    if (!fs.statSync(dir).isDirectory()) throw new InvalidOptionError('cgroup', `'${dir}' is not a directory`);
    if (!onCgroup2(dir)) throw new InvalidOptionError('cgroup', notV2(dir, mount));
    try {
      fs.accessSync(path.join(dir, 'cgroup.procs'), constants.W_OK);
    } catch (err) {
      throw new InvalidOptionError(
        'cgroup',
        `'${dir}/cgroup.procs' is not writable by us, so no process can be placed there; ` +
          'delegate the cgroup to this user (chown it) or run as root',
        { cause: err },
      );
    }
    const controllers = this.read('cgroup.subtree_control').trim();
    if (controllers && dir !== mount) {
      throw new InvalidOptionError(
        'cgroup',
        `'${dir}' enables controllers for its children (${controllers}), and cgroup v2 lets processes live ` +
          'only in leaves; give the daemon a child cgroup of it',
      );
    }
    if (this.populated()) {
      throw new InvalidOptionError(
        'cgroup',
        `'${dir}' already holds processes, and stop() kills everything in the daemon's cgroup; give each daemon ` +
          'a cgroup of its own (e.g. a child of this one)',
      );
    }
  }

  /** An fd of the directory, for the spawn (CLONE_INTO_CGROUP). The caller closes it. */
  openFd(): number {
    return openSync(this.path, constants.O_RDONLY | constants.O_DIRECTORY);
  }

  /** Close an fd from {@link openFd}. */
  static closeFd(fd: number): void {
    closeSync(fd);
  }

  private read(file: string): string {
    return fs.readFileSync(path.join(this.path, file), 'utf8');
  }

  /** True while a process (zombies excepted) is in the cgroup or below it (`cgroup.events`). */
  populated(): boolean {
    let events: string;
    try {
      events = this.read('cgroup.events');
    } catch (err) {
      // Removed under us (by an operator): a cgroup with a process in it cannot be removed.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    return /^populated 1$/m.test(events);
  }

  /**
   * SIGKILL every process in the cgroup, those that left the daemon's process group or session
   * included: `cgroup.kill` (Linux 5.14), else each member of `cgroup.procs` by pidfd
   * ({@link killCgroupMembers}: never by a pid number that may have been reused).
   */
  kill(): void {
    try {
      fs.writeFileSync(path.join(this.path, 'cgroup.kill'), '1');
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const fd = this.openFd();
    try {
      killCgroupMembers(fd);
    } finally {
      Cgroup.closeFd(fd);
    }
  }

  /**
   * Resolve true once no process is left in the cgroup, false after `timeoutMs`. Waits on
   * `cgroup.events` through inotify (one descriptor for every watch of this thread), not by polling.
   * `ref: false` lets the event loop end meanwhile.
   */
  async waitEmpty(timeoutMs: number, ref = true): Promise<boolean> {
    if (!this.populated()) return true;
    const watcher = watch(path.join(this.path, 'cgroup.events'), { persistent: ref });
    try {
      const emptied = new Promise<boolean>((resolve) => {
        const check = (): void => {
          if (!this.populated()) resolve(true);
        };
        watcher.on('change', check);
        // The watch itself failed (the directory went away): no more events, so the file's answer now is final.
        watcher.on('error', () => resolve(!this.populated()));
        // It may have emptied between the first read and the watch.
        check();
      });
      const empty = await raceDeadline(emptied, timeoutMs, { ref });
      return empty !== TIMED_OUT && empty;
    } finally {
      watcher.close();
    }
  }

  /** What the cgroup accounts now. */
  async stats(): Promise<CgroupStats> {
    const [cpu, memory, pids] = await Promise.all(
      ['cpu.stat', 'memory.current', 'pids.current'].map((f) =>
        fsp.readFile(path.join(this.path, f), 'utf8').catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') return undefined;
          throw err;
        }),
      ),
    );
    const usage = /^usage_usec (\d+)$/m.exec(cpu ?? '');
    if (!usage) {
      throw new VirtiofsDaemonError('ERR_CGROUP_STATS', `'${this.path}/cpu.stat' has no usage_usec line`);
    }
    const out: CgroupStats = { cpuUsageUsec: Number(usage[1]) };
    if (memory !== undefined) out.memoryCurrent = Number(memory.trim());
    if (pids !== undefined) out.pidsCurrent = Number(pids.trim());
    return out;
  }

  /**
   * Remove what {@link prepare} created, deepest first; a directory we found is left alone.
   * An emptied cgroup can refuse rmdir (EBUSY) for a moment while its last tasks are released,
   * so that is retried for up to a second. Resolves false when something could not be removed.
   */
  async remove(): Promise<boolean> {
    for (let attempt = 0; attempt < 100; attempt++) {
      const code = this.removeNow();
      if (code !== 'EBUSY') return code === null;
      await sleep(10);
    }
    return false;
  }

  /** One attempt at {@link remove}: null, or the error code of the rmdir that failed. */
  private removeNow(): string | null {
    if (!this.createdTop) return null;
    for (let dir = this.path; ; dir = path.dirname(dir)) {
      try {
        fs.rmdirSync(dir);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
        if (code !== 'ENOENT') return code;
      }
      if (dir === this.createdTop || dir === path.dirname(dir)) return null;
    }
  }

  /** What a daemon handle keeps of this cgroup, so that a later manager can {@link resume} it. */
  record(): CgroupRecord {
    return { path: this.path, createdTop: this.createdTop };
  }

  /**
   * The cgroup of an adopted daemon, from its handle: a cgroup v2 directory below the hierarchy's
   * root that holds `pid` and nothing but `pid` and its descendants, as {@link prepare} made it.
   * Anything else is an {@link InvalidOptionError} for `handle.cgroup`: a hand-edited handle must
   * not make stop() kill the processes of a shared cgroup, or remove one that is not the daemon's.
   */
  static resume(record: CgroupRecord, pid: number): Cgroup {
    const { path: dir, createdTop } = record;
    const bad = (why: string): never => {
      throw new InvalidOptionError('handle.cgroup', `'${dir}' ${why}; the handle is not this daemon's`);
    };
    if (!onCgroup2(dir)) bad('is not a cgroup v2 directory');
    const mount = cgroup2Mount();
    if (createdTop !== null && (!mount || !isInside(createdTop, mount)))
      bad(`has a created top '${createdTop}' outside the v2 hierarchy`);
    if (createdTop !== null && dir !== createdTop && !isInside(dir, createdTop)) bad(`is not inside '${createdTop}'`);
    if (!mount || !isInside(dir, mount)) bad('is not below the root of the cgroup v2 hierarchy');
    let members: number[] = [];
    try {
      members = fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      // unreadable: not a cgroup we can use
    }
    if (!members.includes(pid)) bad(`does not hold process ${pid}`);
    const stranger = members.find((member) => !descendsFrom(member, pid));
    if (stranger !== undefined) bad(`also holds process ${stranger}, which is not process ${pid} or its descendant`);
    return new Cgroup(dir, createdTop);
  }

  /** True when {@link prepare} created the directory. */
  get created(): boolean {
    return this.createdTop !== null;
  }
}

/** True when `pid` is `ancestor` or descends from it (its parent chain in /proc reaches it). */
function descendsFrom(pid: number, ancestor: number): boolean {
  for (let p = pid, hops = 0; p > 1 && hops < 64; hops++) {
    if (p === ancestor) return true;
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      p = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      return false; // gone meanwhile: it cannot be vouched for
    }
  }
  return false;
}

function onCgroup2(dir: string): boolean {
  try {
    return fs.statfsSync(dir).type === CGROUP2_SUPER_MAGIC;
  } catch {
    return false;
  }
}

function isInside(dir: string, root: string): boolean {
  const rel = path.relative(root, dir);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

function notV2(dir: string, mount: string | null): string {
  return (
    `'${dir}' is not a cgroup v2 directory; ` +
    (mount
      ? `cgroup v2 is mounted at '${mount}' here: use a directory below it`
      : 'no cgroup v2 hierarchy is mounted here')
  );
}
