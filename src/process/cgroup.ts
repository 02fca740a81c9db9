/**
 * A daemon's own cgroup v2 directory: made for each start with an exclusive mkdir (so it can be
 * no one else's) and checked before anything is spawned; the spawn places the daemon in it from
 * its first instruction (see native.ts); stop empties it with `cgroup.kill` (or member by member
 * through pidfds where there is none), learns that it is empty from `cgroup.events`, and
 * removes it; `stats()` reads what it accounts.
 *
 * Where cgroup v2 is mounted is read from /proc/self/mountinfo, never assumed: systemd hosts
 * mount it alone at /sys/fs/cgroup, hybrid hosts at /sys/fs/cgroup/unified beside the v1
 * controllers (there, v2 has placement, `cgroup.kill` and `cpu.stat`, but memory and pids stay v1).
 */
import { randomBytes } from 'node:crypto';
import { constants, closeSync, openSync, watch, writeSync } from 'node:fs';
import fs from 'node:fs';
import path from 'node:path';
import { raceDeadline, sleep, TIMED_OUT } from '../common/deadline.js';
import { describeError } from '../common/describe.js';
import { InvalidOptionError, SystemError, VirtiofsDaemonError } from '../common/errors.js';
import { killCgroupMembers } from './native.js';
import { requireBoolean } from '../common/options.js';
import { requireString } from '../common/validate.js';

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

/**
 * A daemon's own cgroup (the `cgroup` option) as its handle records it: where it is, and what
 * the stop of an adopted daemon removes.
 */
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
   * The cgroup one start of a daemon runs in, made for that start with an exclusive mkdir, so
   * that no other daemon can ever be in it (stop() kills everything in it):
   * - `create`: `cgroup` itself (resolved against the cgroup v2 mount, `..` included), with
   *   missing parents; a `cgroup` that exists already is refused (another daemon has it, or a
   *   crashed run left it).
   * - else `cgroup` is the operator's (it must exist): a fresh child `<cgroup>/<kind>-<8 hex>`.
   * The root of the v2 hierarchy, anything outside it and a directory without `cgroup.events`
   * (which every non-root cgroup has) are refused. Every failure is an
   * {@link InvalidOptionError} for `cgroup` that names the path and the fix, and leaves nothing
   * created behind.
   */
  static prepare(cgroup: string, create: boolean, kind: string): Cgroup {
    const mount = cgroup2Mount();
    if (!mount) {
      throw new InvalidOptionError('cgroup', `'${cgroup}' cannot be used: no cgroup v2 hierarchy is mounted here`);
    }
    // Absolute stays absolute; relative is below the mount. `..` is resolved here, not by the
    // kernel: what we check must be what we use.
    const dir = path.resolve(mount, cgroup);
    if (dir === mount) throw new InvalidOptionError('cgroup', rootRefused(cgroup, mount));
    if (!isInside(dir, mount)) throw new InvalidOptionError('cgroup', notV2(dir, mount));
    return create ? Cgroup.claim(dir, mount) : Cgroup.leafOf(dir, mount, kind);
  }

  /** `dir` itself, made with an exclusive mkdir (missing parents first). */
  private static claim(dir: string, mount: string): Cgroup {
    const parent = path.dirname(dir);
    if (!onCgroup2(nearestExisting(parent))) throw new InvalidOptionError('cgroup', notV2(dir, mount));
    let createdTop: string | null;
    try {
      createdTop = fs.mkdirSync(parent, { recursive: true }) ?? null;
    } catch (err) {
      throw new InvalidOptionError(
        'cgroup',
        `cannot create '${parent}': ${describeError(err)}${delegationFix(err, nearestExisting(parent))}`,
        { cause: err },
      );
    }
    try {
      fs.mkdirSync(dir);
    } catch (err) {
      if (createdTop) removeUpTo(parent, createdTop);
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new InvalidOptionError(
          'cgroup',
          `'${dir}' exists already, and cgroupCreate: true claims a cgroup by creating it: another daemon has ` +
            'it, or a crashed run left it behind. Remove it (rmdir, once it holds no process), or drop ' +
            'cgroupCreate to run each start in a fresh child cgroup of it',
          { cause: err },
        );
      }
      throw new InvalidOptionError(
        'cgroup',
        `cannot create '${dir}': ${describeError(err)}${delegationFix(err, parent)}`,
        {
          cause: err,
        },
      );
    }
    return Cgroup.checked(new Cgroup(dir, createdTop ?? dir), mount);
  }

  /** A fresh child of the operator's cgroup `dir`, made with an exclusive mkdir. */
  private static leafOf(dir: string, mount: string, kind: string): Cgroup {
    let st: fs.Stats;
    try {
      st = fs.statSync(dir);
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      throw new InvalidOptionError(
        'cgroup',
        missing
          ? `'${dir}' does not exist; create it or pass cgroupCreate: true`
          : `cannot read '${dir}': ${describeError(err)}`,
        { cause: err },
      );
    }
    if (!st.isDirectory()) throw new InvalidOptionError('cgroup', `'${dir}' is not a directory`);
    if (!onCgroup2(dir)) throw new InvalidOptionError('cgroup', notV2(dir, mount));
    if (!fs.existsSync(path.join(dir, 'cgroup.events'))) {
      throw new InvalidOptionError('cgroup', rootRefused(dir, mount));
    }
    for (let attempt = 0; ; attempt++) {
      const leaf = path.join(dir, `${kind}-${randomBytes(4).toString('hex')}`);
      try {
        fs.mkdirSync(leaf);
        return Cgroup.checked(new Cgroup(leaf, leaf), mount);
      } catch (err) {
        if (err instanceof InvalidOptionError) throw err;
        const code = (err as NodeJS.ErrnoException).code;
        // 32 random bits: a name taken by another start is unlikely, twice in a row more so.
        if (code === 'EEXIST' && attempt < 8) continue;
        const fix =
          code === 'EACCES' || code === 'EPERM'
            ? '; each start runs the daemon in a fresh child cgroup of it, so this user must be able to create ' +
              `directories there${delegationFix(err, dir) || ' (delegate the cgroup: chown it)'}`
            : '';
        throw new InvalidOptionError('cgroup', `cannot create a cgroup in '${dir}': ${describeError(err)}${fix}`, {
          cause: err,
        });
      }
    }
  }

  /**
   * Check what was just created for a daemon: a cgroup v2 directory below the root that we may
   * place a process in. A failure removes it again.
   */
  private static checked(group: Cgroup, mount: string): Cgroup {
    try {
      const dir = group.path;
      if (!onCgroup2(dir)) throw new InvalidOptionError('cgroup', notV2(dir, mount));
      if (!fs.existsSync(path.join(dir, 'cgroup.events'))) {
        throw new InvalidOptionError('cgroup', rootRefused(dir, mount));
      }
      try {
        fs.accessSync(path.join(dir, 'cgroup.procs'), constants.W_OK);
      } catch (err) {
        throw new InvalidOptionError(
          'cgroup',
          `'${dir}/cgroup.procs' is not writable by us, so no process can be placed there` +
            (delegationFix(err, dir) || '; delegate the cgroup to this user (chown it) or run as root'),
          { cause: err },
        );
      }
      return group;
    } catch (err) {
      group.removeNow();
      throw err;
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
    let fd: number;
    try {
      // O_WRONLY alone: with O_CREAT (what writeFileSync adds), cgroupfs answers a missing
      // cgroup.kill with EACCES, and the ENOENT that means "no cgroup.kill here" is lost.
      fd = openSync(path.join(this.path, 'cgroup.kill'), constants.O_WRONLY);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.killMembers();
      return;
    }
    try {
      writeSync(fd, '1');
    } finally {
      closeSync(fd);
    }
  }

  /** The kill without cgroup.kill: each member by pidfd. */
  private killMembers(): void {
    let fd: number;
    try {
      fd = this.openFd();
    } catch (err) {
      // Removed meanwhile: a cgroup that holds a process cannot be removed, so nothing is left.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
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

  /**
   * What the cgroup accounts now. Read synchronously, as /proc is for the same sample: a few
   * small kernel-generated files, cheaper than a thread-pool round trip each when a thousand
   * daemons are sampled at once.
   */
  readStats(): CgroupStats {
    const read = (f: string): string | undefined => {
      try {
        return fs.readFileSync(path.join(this.path, f), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    };
    const usage = /^usage_usec (\d+)$/m.exec(read('cpu.stat') ?? '');
    if (!usage) {
      throw new VirtiofsDaemonError('ERR_CGROUP_STATS', `'${this.path}/cpu.stat' has no usage_usec line`);
    }
    const out: CgroupStats = { cpuUsageUsec: Number(usage[1]) };
    const memory = read('memory.current');
    const pids = read('pids.current');
    if (memory !== undefined) out.memoryCurrent = Number(memory.trim());
    if (pids !== undefined) out.pidsCurrent = Number(pids.trim());
    return out;
  }

  /** The pids of `cgroup.procs` (every process in the cgroup; zombies are not listed). [] once it is gone. */
  members(): number[] {
    let text: string;
    try {
      text = fs.readFileSync(path.join(this.path, 'cgroup.procs'), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return text.split('\n').filter(Boolean).map(Number);
  }

  /**
   * Remove what {@link prepare} created, deepest first; a directory we found is left alone. An
   * emptied cgroup can refuse rmdir (EBUSY) for a moment while its last tasks are released, so
   * that is retried for up to a second. A created parent that still holds another daemon's
   * cgroup stays (its last user does not know it was ours). Resolves false when the daemon's
   * own cgroup could not be removed.
   */
  async remove(): Promise<boolean> {
    if (!this.createdTop) return true;
    for (let attempt = 0; attempt < 100; attempt++) {
      const code = rmdirCode(this.path);
      if (code === 'EBUSY') {
        await sleep(10);
        continue;
      }
      if (code !== null) return false;
      removeUpTo(path.dirname(this.path), this.createdTop);
      return true;
    }
    return false;
  }

  /** {@link remove} at once, for a cgroup that never held a process. */
  private removeNow(): void {
    if (this.createdTop && rmdirCode(this.path) === null) removeUpTo(path.dirname(this.path), this.createdTop);
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
    const { createdTop } = record;
    const dir = path.resolve(record.path);
    const bad = (why: string): never => {
      throw new InvalidOptionError('handle.cgroup', `'${record.path}' ${why}; the handle is not this daemon's`);
    };
    if (!onCgroup2(dir)) bad('is not a cgroup v2 directory');
    const mount = cgroup2Mount();
    if (!mount || !isInside(dir, mount)) bad('is not below the root of the cgroup v2 hierarchy');
    if (!fs.existsSync(path.join(dir, 'cgroup.events'))) bad('has no cgroup.events (the root of a hierarchy)');
    if (createdTop !== null && (!mount || !isInside(path.resolve(createdTop), mount)))
      bad(`has a created top '${createdTop}' outside the v2 hierarchy`);
    if (createdTop !== null && dir !== path.resolve(createdTop) && !isInside(dir, path.resolve(createdTop)))
      bad(`is not inside '${createdTop}'`);
    let members: number[] = [];
    try {
      members = fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      // unreadable: not a cgroup we can use
    }
    if (!members.includes(pid)) bad(`does not hold process ${pid}`);
    const stranger = members.find((member) => !descendsFrom(member, pid));
    if (stranger !== undefined) bad(`also holds process ${stranger}, which is not process ${pid} or its descendant`);
    return new Cgroup(dir, createdTop === null ? null : path.resolve(createdTop));
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

/** rmdir `dir`: null when it is gone (or was already), else the error code. */
function rmdirCode(dir: string): string | null {
  try {
    fs.rmdirSync(dir);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    return code === 'ENOENT' ? null : code;
  }
}

/**
 * Remove the created parents from `dir` up to `top`, deepest first, stopping at the first that
 * cannot go: it holds a cgroup of another start (EBUSY), which keeps it alive.
 */
function removeUpTo(dir: string, top: string): void {
  for (let d = dir; d === top || isInside(d, top); d = path.dirname(d)) {
    if (rmdirCode(d) !== null) return;
  }
}

/** `dir`, or its nearest ancestor that exists. */
function nearestExisting(dir: string): string {
  let d = dir;
  while (!fs.existsSync(d) && d !== path.dirname(d)) d = path.dirname(d);
  return d;
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

function rootRefused(cgroup: string, mount: string): string {
  return (
    `'${cgroup}' is the root of the cgroup v2 hierarchy (${mount}), which holds every process of the host: ` +
    "stop() would kill them all. Name a cgroup below it, e.g. cgroup: 'vfd/vm-1' with cgroupCreate: true"
  );
}

function notV2(dir: string, mount: string | null): string {
  return (
    `'${dir}' is not a cgroup v2 directory; ` +
    (mount
      ? `cgroup v2 is mounted at '${mount}' here: use a directory below it`
      : 'no cgroup v2 hierarchy is mounted here')
  );
}

/** Our own cgroup v2 directory, absolute (the `0::` line of /proc/self/cgroup below the v2 mount), or null. */
export function ownCgroup(): string | null {
  const mount = cgroup2Mount();
  if (!mount) return null;
  try {
    const line = fs
      .readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    return line ? path.join(mount, line.slice(3)) : null;
  } catch {
    return null;
  }
}

const DELEGATE =
  'systemd-run --user --scope -p Delegate=yes <your app> (systemd delegates that scope to you; a Delegate=yes ' +
  'user service works the same)';

/**
 * How a user gets a cgroup of its own, for a permission error (`err`) on `dir`: nothing for
 * root, or for errors that are not about permission.
 */
function delegationFix(err: unknown, dir: string): string {
  const euid = process.geteuid?.() ?? 0;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (euid === 0 || (code !== 'EACCES' && code !== 'EPERM')) return '';
  let owner = '';
  try {
    owner = ` (owned by uid ${fs.statSync(dir).uid})`;
  } catch {
    // gone: say nothing of its owner
  }
  const mine = ownCgroup();
  return (
    `: '${dir}'${owner} is not delegated to uid ${euid}. A user may only use a cgroup subtree delegated to it, ` +
    `and must run inside it itself: start the app with ${DELEGATE}, then name a cgroup below the app's own` +
    `${mine ? ` ('${mine}')` : ' (see /proc/self/cgroup)'}, e.g. cgroup: '${mine ? path.join(mine, 'vfd') : '<own>/vfd'}' ` +
    'with cgroupCreate: true; or have root delegate a directory (chown it and its cgroup.procs, cgroup.threads and ' +
    'cgroup.subtree_control to you)'
  );
}

/** The nearest directory that holds both `a` and `b` (absolute, normalised). */
function commonAncestor(a: string, b: string): string {
  const x = a.split('/');
  const y = b.split('/');
  let i = 0;
  while (i < x.length && i < y.length && x[i] === y[i]) i++;
  return x.slice(0, i).join('/') || '/';
}

/**
 * The error of a spawn that could not place the daemon in its cgroup `target` (clone3 with
 * CLONE_INTO_CGROUP, or a write to cgroup.procs; see {@link SystemError.isCgroupPlacement}).
 * A permission error as a user is the cgroup v2 common-ancestor rule (cgroup-v2.rst, "Delegation
 * Containment"): moving a process - or starting one - into a cgroup needs write access to the
 * cgroup.procs of the nearest common ancestor of the mover's own cgroup and the target, so a
 * delegated subtree is usable only by a manager that runs inside it. That becomes an
 * {@link InvalidOptionError} for `cgroup` saying so and how to run inside; anything else stays
 * the {@link SystemError}, attributed to `cgroup`.
 */
export function cgroupPlacementError(err: unknown, target: string): unknown {
  const euid = process.geteuid?.() ?? 0;
  const code = err instanceof SystemError ? err.code : undefined;
  const mine = ownCgroup();
  if (euid === 0 || (code !== 'EACCES' && code !== 'EPERM') || !mine) return SystemError.forOption('cgroup', err);
  const ancestor = commonAncestor(mine, target);
  let owner = '';
  try {
    owner = `, whose cgroup.procs is owned by uid ${fs.statSync(path.join(ancestor, 'cgroup.procs')).uid}`;
  } catch {
    // unreadable: say nothing of its owner
  }
  return new InvalidOptionError(
    'cgroup',
    `cannot start the daemon in '${target}' (${code} from ${(err as SystemError).syscall}): cgroup v2 lets a process ` +
      "start or move a process only between cgroups whose nearest common ancestor's cgroup.procs it may write, and " +
      `this process runs in '${mine}', so that ancestor is '${ancestor}'${owner}. The cgroup is delegated to uid ` +
      `${euid} but the manager runs outside it: start the app inside the delegated subtree (${DELEGATE}) and name a ` +
      "cgroup below the app's own, or run as root",
    { cause: err },
  );
}
