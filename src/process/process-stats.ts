/**
 * What a daemon's processes hold, read from /proc for every daemon of this thread in one batch,
 * and the fd-headroom warning that rides on each reading.
 *
 * A daemon's processes are its cgroup's (`cgroup.procs`) when it has one, else its process
 * group's (both virtiofsd dialects fork a sandbox child into the group; a descendant that left
 * the group is not counted, as stop() does not wait for it). The calls of one tick are answered
 * together: one walk of /proc finds the members of every group asked for, one addon call reads
 * the facts of every member ({@link processFacts}), so `Promise.all(daemons.map((d) => d.stats()))`
 * for 1,000 daemons costs one pass, not 1,000 (figures: bench/stats.js).
 *
 * The headroom warning: each reading compares every process's open fds with its RLIMIT_NOFILE
 * soft limit (a per-process limit: the serving process is the one that fills up); when the
 * fullest crosses `ratio` a warning is logged once, re-armed when it falls back below. Readings
 * come from every stats() call (metrics scrapes included) and from one shared, unref'd timer
 * per thread that samples every watched daemon whose `intervalMs` is due, in one batch.
 */
import { constants as osConstants } from 'node:os';
import type { Cgroup, CgroupStats } from './cgroup.js';
import { describeValue } from '../common/describe.js';
import { InvalidOptionError, SystemError } from '../common/errors.js';
import type { Log } from '../common/logger.js';
import { groupMembers, processFacts, type ProcessFacts } from './native.js';

/** What a daemon's processes hold now, and its cgroup's accounting when it has one. */
export interface DaemonStats extends Partial<CgroupStats> {
  /**
   * Open file descriptors of all its processes (the daemon and its sandbox children), from each
   * /proc/PID/fd without following any entry: on Linux >= 6.2 the kernel's count of the fd
   * table (the directory's size: one stat, where listing 19,000 entries costs ~15 ms), which
   * also holds a slot an accept() in progress has reserved; before 6.2, its entries counted.
   */
  openFds: number;
  /**
   * RLIMIT_NOFILE soft limit (prlimit, the value /proc/PID/limits shows, which is read where
   * prlimit is not allowed) of the process that holds the most fds (both
   * virtiofsd dialects set it before they fork, so their processes share it); Infinity when
   * unlimited, 0 when no process is left.
   */
  fdLimit: number;
  /** Resident memory of its processes, summed (pages shared between them count once per process, as in ps). */
  rssBytes: number;
  /** Threads of its processes. */
  threads: number;
  /** User + system CPU time of its live processes, in microseconds (/proc/PID/stat). */
  cpuTimeUsec: number;
  /** How many processes were counted. */
  processes: number;
}

/** The fd-headroom warning's options, on both daemons (see the module comment). */
export interface FdWarnOptions {
  /**
   * Log a warning once when a process of the daemon holds this fraction of its RLIMIT_NOFILE
   * soft limit or more (`virtiofsd is near its open-file limit: …`), and a note when it falls
   * back below (which re-arms the warning). A number in (0, 1]; 0 turns the warning off.
   * @default 0.8
   */
  fdWarnRatio?: number;
  /**
   * How often the thread's one shared, unref'd timer reads the daemon for that warning, in ms;
   * 0: only stats() calls (and metrics scrapes) read it.
   * @default 10000
   */
  fdCheckIntervalMs?: number;
}

/** {@link FdWarnOptions} read once: the values, with the defaults applied. */
export function requireFdWarnOptions(
  ratio: unknown,
  intervalMs: unknown,
): { fdWarnRatio: number; fdCheckIntervalMs: number } {
  if (ratio !== undefined && (typeof ratio !== 'number' || !(ratio >= 0 && ratio <= 1))) {
    throw new InvalidOptionError(
      'fdWarnRatio',
      `${describeValue(ratio)} is not a fraction of the fd limit; use a number from 0 (off) to 1, e.g. 0.8`,
    );
  }
  const ms = intervalMs;
  if (ms !== undefined && (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 0 || ms > 2 ** 31 - 1)) {
    throw new InvalidOptionError(
      'fdCheckIntervalMs',
      `${describeValue(ms)} is not an interval; use a whole number of milliseconds from 1 to ${2 ** 31 - 1}, ` +
        'or 0 to read the daemon only when stats() is called',
    );
  }
  return { fdWarnRatio: ratio ?? 0.8, fdCheckIntervalMs: ms ?? 10000 };
}

/** What a daemon is, for a reading. */
export interface SampleTarget {
  /** Its process group (the leader's pid). */
  pgid: number;
  /** Its own cgroup, when it has one. */
  cgroup?: Cgroup | undefined;
}

/** Where each daemon stands against its fd limit, carried from reading to reading. */
export interface HeadroomWatch {
  /** The fraction of the limit that warns, in (0, 1]. */
  ratio: number;
  /** Whether the last reading was at or above it (the warning is logged on the way up only). */
  above: boolean;
  /** The daemon's name (`virtiofsd`), for the record. */
  name: string;
  /** Where the warning goes. */
  log: Log;
  /** What to raise, for the record's last words. */
  fix: string;
}

interface Pending {
  target: SampleTarget;
  watch: HeadroomWatch | undefined;
  resolve: (stats: DaemonStats) => void;
  reject: (err: unknown) => void;
}

let pending: Pending[] = [];

/**
 * What the daemon `target` holds now. Calls made in the same tick are read together (see the
 * module comment). Rejects with a {@link SystemError} when /proc cannot be read for one of its
 * processes (EACCES: the daemon runs as another user), or with the cgroup's read error.
 */
export function sampleDaemon(target: SampleTarget, watch?: HeadroomWatch): Promise<DaemonStats> {
  return new Promise<DaemonStats>((resolve, reject) => {
    if (pending.length === 0) queueMicrotask(flush);
    pending.push({ target, watch, resolve, reject });
  });
}

/** One batch: members of every group (one /proc walk) and of every cgroup, then one facts call. */
function flush(): void {
  const batch = pending;
  pending = [];
  let members: number[][];
  let facts: Map<number, ProcessFacts>;
  try {
    const pgids = batch.filter((p) => !p.target.cgroup).map((p) => p.target.pgid);
    const byGroup = groupMembers(pgids);
    let g = 0;
    members = batch.map((p) => (p.target.cgroup ? p.target.cgroup.members() : byGroup[g++]));
    const all = [...new Set(members.flat())];
    facts = new Map(processFacts(all).map((f) => [f.pid, f]));
  } catch (err) {
    for (const p of batch) p.reject(err);
    return;
  }
  batch.forEach((p, i) => {
    try {
      const stats = aggregate(p.target, members[i], facts);
      if (p.watch) checkHeadroom(p.target, p.watch, stats, members[i], facts);
      p.resolve(stats);
    } catch (err) {
      p.reject(err);
    }
  });
}

function aggregate(target: SampleTarget, pids: number[], facts: Map<number, ProcessFacts>): DaemonStats {
  const out: DaemonStats = { openFds: 0, fdLimit: 0, rssBytes: 0, threads: 0, cpuTimeUsec: 0, processes: 0 };
  let most = -1;
  for (const pid of pids) {
    const f = facts.get(pid)!;
    if (f.error === 'ENOENT' || f.error === 'ESRCH') continue; // gone since the walk
    if (f.error !== 0) {
      throw new SystemError(
        {
          code: f.error,
          errno: -(osConstants.errno[f.error as keyof typeof osConstants.errno] ?? 0),
          syscall: 'open',
          path: `/proc/${pid}`,
        },
        `cannot read /proc/${pid} (${f.error}), a process of the daemon: it runs as another user; ` +
          'read its stats as root or as that user',
      );
    }
    // A pid of a group that another process took between the walk and the read is not ours;
    // a zombie holds nothing (the leader is one between its exit and its reap).
    if ((!target.cgroup && f.pgid !== target.pgid) || f.state === 'Z' || f.state === 'X') continue;
    out.openFds += f.fds;
    out.rssBytes += f.rssBytes;
    out.threads += f.threads;
    out.cpuTimeUsec += f.cpuUsec;
    out.processes++;
    if (f.fds > most) {
      most = f.fds;
      out.fdLimit = f.fdLimit;
    }
  }
  if (target.cgroup) Object.assign(out, target.cgroup.readStats());
  return out;
}

/** The warning on the way up across `ratio`, a note on the way back down. */
function checkHeadroom(
  target: SampleTarget,
  watch: HeadroomWatch,
  stats: DaemonStats,
  pids: number[],
  facts: Map<number, ProcessFacts>,
): void {
  // The fullest process against its own limit: RLIMIT_NOFILE is per process.
  let worst: ProcessFacts | undefined;
  for (const pid of pids) {
    const f = facts.get(pid)!;
    if (f.error !== 0 || !(f.fdLimit > 0) || f.fdLimit === Infinity) continue;
    if (!worst || f.fds / f.fdLimit > worst.fds / worst.fdLimit) worst = f;
  }
  const above = worst !== undefined && worst.fds >= watch.ratio * worst.fdLimit;
  if (above === watch.above) return;
  watch.above = above;
  const percent = (f: ProcessFacts): number => Math.round((100 * f.fds) / f.fdLimit);
  if (above) {
    const w = worst!;
    watch.log.warn(
      { daemonPid: target.pgid, pid: w.pid, openFds: w.fds, fdLimit: w.fdLimit, ratio: watch.ratio },
      `${watch.name} is near its open-file limit: ${w.fds} of ${w.fdLimit} fds (${percent(w)}%) in pid ${w.pid}, ` +
        `at or above the warning ratio ${watch.ratio}; ${watch.fix}`,
    );
  } else {
    watch.log.info(
      { daemonPid: target.pgid, openFds: stats.openFds, fdLimit: stats.fdLimit, ratio: watch.ratio },
      `${watch.name} is back below its open-file warning ratio ${watch.ratio}` +
        (worst ? `: ${worst.fds} of ${worst.fdLimit} fds in pid ${worst.pid}` : ''),
    );
  }
}

/** A daemon sampled by the shared timer. */
interface Watched {
  target: SampleTarget;
  watch: HeadroomWatch;
  intervalMs: number;
  due: number;
}

const watched = new Set<Watched>();
let timer: NodeJS.Timeout | undefined;
let timerAt = Infinity;

/**
 * Sample `target` every `intervalMs` for its headroom warning, on the thread's one unref'd
 * timer; returns the function that stops it. Daemons due within a quarter of their interval of
 * each other are read in the same batch, so a boot storm's daemons fall into step.
 */
export function watchHeadroom(target: SampleTarget, watch: HeadroomWatch, intervalMs: number): () => void {
  const w: Watched = { target, watch, intervalMs, due: Date.now() + intervalMs };
  watched.add(w);
  // Only this one can move the next reading earlier: no scan of every watch (a storm of N starts
  // would make that N²/2 steps); tick() scans once per reading instead.
  if (!timer || w.due < timerAt) {
    clearTimeout(timer);
    timerAt = w.due;
    timer = setTimeout(tick, intervalMs);
    timer.unref();
  }
  // The timer stays when the last watch goes: it is unref'd and fires once for nothing at most,
  // where clearing it would cost a clearTimeout and a setTimeout per start/stop of one daemon.
  return () => void watched.delete(w);
}

function schedule(): void {
  let next = Infinity;
  for (const w of watched) next = Math.min(next, w.due);
  if (next === Infinity || (timer && next >= timerAt)) return;
  clearTimeout(timer);
  timerAt = next;
  timer = setTimeout(tick, Math.max(0, next - Date.now()));
  timer.unref();
}

function tick(): void {
  timer = undefined;
  timerAt = Infinity;
  const now = Date.now();
  for (const w of watched) {
    if (w.due > now + w.intervalMs / 4) continue;
    w.due = now + w.intervalMs;
    // A failed reading (the daemon exited meanwhile) only skips this round.
    sampleDaemon(w.target, w.watch).catch(() => {});
  }
  schedule();
}
