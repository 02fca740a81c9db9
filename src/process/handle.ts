/**
 * The handle of a running daemon: a small JSON-serialisable record that outlives its manager,
 * from which a later manager can adopt the daemon ({@link adoptProcess}). It names the process
 * by what a recycled pid cannot fake together - pid, start time, boot id and executable - and
 * holds what `stop` and `mount` need later. Never a secret, never an fd number of ours.
 *
 * Identity fields prove *which* process a handle names, never that it is *ours*: anyone can read
 * them off /proc. So a handle is sealed: an HMAC over every other field, keyed by a secret of
 * this user's runtime directory that lives as long as the boot (see runtime-dir.ts). A handle
 * that someone else wrote or changed does not carry a valid seal.
 */
import crypto from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { CgroupRecord } from './cgroup.js';
import { describeValue } from '../common/describe.js';
import { InvalidOptionError } from '../common/errors.js';
import { sealKey } from './runtime-dir.js';

/**
 * The format of {@link DaemonHandle}. 2 added `uid` and `seal`; a format-1 handle (written by
 * virtiofs-daemon 0.1) is accepted only when the caller vouches for it (`trust: 'caller'`).
 */
export const HANDLE_FORMAT = 2;

/**
 * How far `adopt()` trusts a handle:
 * - `'sealed'` (default): only a handle sealed by a manager of this user on this boot, i.e. one
 *   that `handle()` returned here or in another process of this user, unchanged.
 * - `'caller'`: the caller vouches that the handle comes from a place only it can write (a
 *   format-1 handle of virtiofs-daemon 0.1, kept in a root-only file, say); the seal is not
 *   required. The process is still proven to be the daemon (uid, output pipe, sockets).
 */
export type HandleTrust = 'sealed' | 'caller';

/** Which daemon a handle (or an instance: `daemon.kind`) is, and so which class's `adopt()` takes it. */
export type DaemonKind = 'virtiofsd' | 'nydusd';

/**
 * `'manager'` (default): the daemon dies with the manager that started it (see docs/lifetime.md).
 * `'survive'`: it outlives its manager and can be adopted from its {@link DaemonHandle}.
 */
export type Lifetime = 'manager' | 'survive';

/** The `lifetime` option checked: `'manager'` when not given. */
export function checkLifetime(value: unknown): Lifetime {
  if (value === undefined) return 'manager';
  if (value === 'manager' || value === 'survive') return value;
  throw new InvalidOptionError(
    'lifetime',
    `${describeValue(value)} is not a lifetime; use 'manager' (the default) or 'survive'`,
  );
}

/** A socket file, by path and by identity (device and inode as decimal strings: JSON has no bigint). */
export interface SocketRecord {
  /** The socket file's absolute path. */
  path: string;
  /** `st_dev` of the file, in decimal. */
  dev: string;
  /**
   * `st_ino` of the file, in decimal. With `dev` it names the file the daemon listens on: a file
   * at `path` with another identity is someone else's, and is never removed or trusted.
   */
  ino: string;
}

/**
 * A record of a running daemon, as {@link Virtiofsd.handle} and {@link Nydusd.handle} return it:
 * plain JSON data (store it with `JSON.stringify`) from which {@link Virtiofsd.adopt} or
 * {@link Nydusd.adopt} takes the daemon over later - in this process, or in another one after a
 * restart. It names the process by what a recycled pid cannot fake together (pid, start time,
 * boot id, executable) and is sealed (see {@link DaemonHandle.seal}): pass it back unchanged.
 * It holds no secret and none of our fds; keep it where only you can write all the same (a file
 * in {@link runtimeDir}), since it says which process to signal.
 */
export interface DaemonHandle {
  /** {@link HANDLE_FORMAT}. */
  format: number;
  /** The uid the daemon runs as (its real and effective uid); only that user may adopt it. */
  uid: number;
  /** Which daemon it is: only that class's `adopt()` takes the handle. */
  kind: DaemonKind;
  /** The daemon's pid (the process the manager spawned, which leads its process group). */
  pid: number;
  /** Its process group (the daemon leads it: pgid = pid). */
  pgid: number;
  /** Field 22 of `/proc/<pid>/stat`, in decimal: clock ticks after boot at which the process started. */
  startTime: string;
  /** /proc/sys/kernel/random/boot_id of the boot it runs in: pids and start times mean nothing in another. */
  bootId: string;
  /** Device and inode of its executable (`/proc/<pid>/exe`), which a replaced process would not share. */
  exe: {
    /** `st_dev` of the executable, in decimal. */
    dev: string;
    /** `st_ino` of the executable, in decimal. */
    ino: string;
  };
  /** The command line it was started with. */
  argv: string[];
  /** The `lifetime` it was started with; the adopter keeps it, and records it in its own handle. */
  lifetime: Lifetime;
  /** The shared directory it serves (absolute). */
  sourcePath: string;
  /** Its sockets: virtiofsd `socket`; nydusd `sock` and `api` (the HTTP API that mount/umount use). */
  sockets: Record<string, SocketRecord>;
  /**
   * The read end of its output pipe, parked in the daemon itself (lifetime 'survive'): its fd
   * number there and the pipe's inode. Null when the daemon's output has no pipe to take over.
   */
  log: {
    /** The number of the parked read end in the daemon's fd table (above 2). */
    fd: number;
    /** `st_ino` of the pipe, in decimal: the adopter takes that fd only while it is still this pipe. */
    pipeIno: string;
  } | null;
  /** Its own cgroup (the `cgroup` option), which stop() empties and, when created for it, removes; else null. */
  cgroup: CgroupRecord | null;
  /**
   * HMAC-SHA256 (base64url) of every other field, keyed by this user's per-boot seal key: proof
   * that a manager of this user wrote the handle and nobody changed it since. `''` in a format-1
   * handle.
   */
  seal: string;
}

/** The fields a seal covers, in one fixed order (JSON keeps insertion order). */
function sealedText(h: Omit<DaemonHandle, 'seal'>): string {
  const sockets = Object.keys(h.sockets)
    .sort()
    .map((name) => [name, h.sockets[name].path, h.sockets[name].dev, h.sockets[name].ino]);
  return JSON.stringify([
    h.format,
    h.kind,
    h.uid,
    h.pid,
    h.pgid,
    h.startTime,
    h.bootId,
    [h.exe.dev, h.exe.ino],
    h.argv,
    h.lifetime,
    h.sourcePath,
    sockets,
    h.log && [h.log.fd, h.log.pipeIno],
    h.cgroup && [h.cgroup.path, h.cgroup.createdTop],
  ]);
}

/** The seal of a handle's fields (see {@link DaemonHandle.seal}). */
export function sealOf(h: Omit<DaemonHandle, 'seal'>): string {
  return crypto.createHmac('sha256', sealKey()).update(sealedText(h)).digest('base64url');
}

/** True when `h` carries the seal its fields call for, compared in constant time. */
export function sealMatches(h: DaemonHandle): boolean {
  const want = Buffer.from(sealOf(h));
  const got = Buffer.from(h.seal);
  return got.length === want.length && crypto.timingSafeEqual(got, want);
}

/** What /proc says about a process: enough to tell it from whatever gets its pid later. */
export interface ProcessIdentity {
  state: string;
  pgid: number;
  startTime: string;
  /** Field 52: the wait status of a zombie (needs ptrace access to read, else 0). */
  exitCode: number;
  exe: { dev: string; ino: string } | null;
}

/**
 * The real, effective, saved and filesystem uids of process `pid` (`/proc/<pid>/status`), or null
 * when there is no such process.
 */
export function processUids(pid: number): number[] | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const line = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$/m.exec(text);
  return line ? line.slice(1).map(Number) : null;
}

/** /proc/sys/kernel/random/boot_id. */
export function bootId(): string {
  return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
}

/** The identity of process `pid` now, or null when there is no such process. */
export function processIdentity(pid: number): ProcessIdentity | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name may hold anything, parentheses included: split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  let exe: ProcessIdentity['exe'] = null;
  try {
    const st = statSync(`/proc/${pid}/exe`, { bigint: true });
    exe = { dev: String(st.dev), ino: String(st.ino) };
  } catch {
    // A zombie has no executable any more.
  }
  return {
    state: fields[0],
    pgid: Number(fields[2]),
    startTime: fields[19],
    exitCode: Number(fields[49] ?? 0),
    exe,
  };
}

const KINDS: readonly DaemonKind[] = ['virtiofsd', 'nydusd'];
const DECIMAL = /^\d+$/;

/**
 * `value` checked to be a handle of `kind`, as `handle()` returned it or as parsed back from
 * its JSON. Anything else - corrupted, hand-edited, another format - is an
 * {@link InvalidOptionError} for option `handle` naming the field at fault.
 * (Long, on purpose: one flat check per field, in the record's order, read top to bottom.)
 */
export function parseHandle(value: unknown, kind: DaemonKind, trust: HandleTrust = 'sealed'): DaemonHandle {
  const bad = (field: string, what: string): never => {
    throw new InvalidOptionError(
      'handle',
      `${field} ${what}; pass the record that daemon.handle() returned (or its JSON parsed back), unchanged`,
    );
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad('the handle', 'is not an object');
  const h = value as Record<string, unknown>;
  const legacy = h.format === 1 && trust === 'caller';
  if (h.format !== HANDLE_FORMAT && !legacy) {
    const caller = h.format === 1 ? " (a format-1 handle of virtiofs-daemon 0.1 is taken with trust: 'caller')" : '';
    bad('format', `is ${describeValue(h.format)}, not ${HANDLE_FORMAT}${caller}`);
  }
  if (!KINDS.includes(h.kind as DaemonKind)) bad('kind', `is ${describeValue(h.kind)}, not virtiofsd or nydusd`);
  if (h.kind !== kind) bad('kind', `is '${String(h.kind)}': adopt it with the ${String(h.kind)} class, not ${kind}`);
  const pid = (field: string) => {
    const v = h[field];
    if (!Number.isSafeInteger(v) || (v as number) < 2 || (v as number) > 4194304)
      bad(field, `is ${describeValue(v)}, not a pid`);
  };
  pid('pid');
  pid('pgid');
  if (h.pgid !== h.pid)
    bad('pgid', `is ${String(h.pgid)}, but the daemon leads its own group (pgid = pid ${String(h.pid)})`);
  const decimal = (field: string, v: unknown) => {
    if (typeof v !== 'string' || !DECIMAL.test(v)) bad(field, `is ${describeValue(v)}, not a decimal string`);
  };
  decimal('startTime', h.startTime);
  if (typeof h.bootId !== 'string' || !/^[0-9a-f-]{36}$/.test(h.bootId))
    bad('bootId', `is ${describeValue(h.bootId)}, not a boot id`);
  const exe = h.exe as Record<string, unknown> | null;
  if (typeof exe !== 'object' || exe === null) bad('exe', 'is missing');
  decimal('exe.dev', exe!.dev);
  decimal('exe.ino', exe!.ino);
  if (!Array.isArray(h.argv) || h.argv.length === 0 || !h.argv.every((a) => typeof a === 'string')) {
    bad('argv', 'is not a non-empty array of strings');
  }
  if (h.lifetime !== 'manager' && h.lifetime !== 'survive')
    bad('lifetime', `is ${describeValue(h.lifetime)}, not manager or survive`);
  if (typeof h.sourcePath !== 'string' || !h.sourcePath.startsWith('/') || h.sourcePath.includes('\0')) {
    bad('sourcePath', `is ${describeValue(h.sourcePath)}, not an absolute path`);
  }
  const sockets = h.sockets as Record<string, unknown>;
  if (typeof sockets !== 'object' || sockets === null) bad('sockets', 'is missing');
  const wanted = kind === 'virtiofsd' ? ['socket'] : ['sock', 'api'];
  for (const name of wanted) {
    const s = sockets[name] as Record<string, unknown> | undefined;
    if (typeof s !== 'object' || s === null) bad(`sockets.${name}`, 'is missing');
    if (typeof s!.path !== 'string' || !s!.path.startsWith('/') || s!.path.includes('\0')) {
      bad(`sockets.${name}.path`, `is ${describeValue(s!.path)}, not an absolute path`);
    }
    decimal(`sockets.${name}.dev`, s!.dev);
    decimal(`sockets.${name}.ino`, s!.ino);
  }
  const log = h.log as Record<string, unknown> | null;
  if (log !== null) {
    if (typeof log !== 'object' || !Number.isSafeInteger(log.fd) || (log.fd as number) < 3)
      bad('log.fd', 'is not an fd number above 2');
    decimal('log.pipeIno', log.pipeIno);
  }
  const cgroup = h.cgroup as Record<string, unknown> | null | undefined;
  if (cgroup !== null && cgroup !== undefined) {
    const absolute = (v: unknown) => typeof v === 'string' && v.startsWith('/') && !v.includes('\0');
    if (typeof cgroup !== 'object' || !absolute(cgroup.path)) bad('cgroup.path', 'is not an absolute path');
    if (cgroup.createdTop !== null && !absolute(cgroup.createdTop))
      bad('cgroup.createdTop', 'is neither null nor an absolute path');
  }
  if (!legacy) {
    if (!Number.isSafeInteger(h.uid) || (h.uid as number) < 0 || (h.uid as number) > 0xfffffffe)
      bad('uid', `is ${describeValue(h.uid)}, not a uid`);
    if (typeof h.seal !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(h.seal))
      bad('seal', `is ${describeValue(h.seal)}, not a seal`);
  }
  // Copied field by field: what was checked is what is used, and nothing else rides along.
  const sock = (name: string): SocketRecord => {
    const s = (sockets as Record<string, SocketRecord>)[name];
    return { path: s.path, dev: s.dev, ino: s.ino };
  };
  return {
    format: h.format as number,
    kind,
    uid: legacy ? -1 : (h.uid as number),
    pid: h.pid as number,
    pgid: h.pgid as number,
    startTime: h.startTime as string,
    bootId: h.bootId as string,
    exe: { dev: exe!.dev as string, ino: exe!.ino as string },
    argv: [...(h.argv as string[])],
    lifetime: h.lifetime as Lifetime,
    sourcePath: h.sourcePath as string,
    sockets: Object.fromEntries(wanted.map((name) => [name, sock(name)])),
    log: log === null ? null : { fd: log.fd as number, pipeIno: log.pipeIno as string },
    cgroup:
      cgroup === null || cgroup === undefined
        ? null
        : { path: cgroup.path as string, createdTop: (cgroup.createdTop ?? null) as string | null },
    seal: legacy ? '' : (h.seal as string),
  };
}
