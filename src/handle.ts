/**
 * The handle of a running daemon: a small JSON-serialisable record that outlives its manager,
 * from which a later manager can adopt the daemon ({@link adoptProcess}). It names the process
 * by what a recycled pid cannot fake together - pid, start time, boot id and executable - and
 * holds what `stop` and `mount` need later. Never a secret, never an fd number of ours.
 */
import { readFileSync, statSync } from 'node:fs';
import type { CgroupRecord } from './cgroup.js';
import { describeValue } from './describe.js';
import { InvalidOptionError } from './errors.js';

/** The format of {@link DaemonHandle}; a handle of another format is refused. */
export const HANDLE_FORMAT = 1;

export type DaemonKind = 'virtiofsd' | 'nydusd';

/**
 * `'manager'` (default): the daemon dies with the manager that started it (see the README).
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
  path: string;
  dev: string;
  ino: string;
}

export interface DaemonHandle {
  /** {@link HANDLE_FORMAT}. */
  format: number;
  kind: DaemonKind;
  pid: number;
  /** Its process group (the daemon leads it: pgid = pid). */
  pgid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks after boot at which the process started. */
  startTime: string;
  /** /proc/sys/kernel/random/boot_id of the boot it runs in: pids and start times mean nothing in another. */
  bootId: string;
  /** Device and inode of its executable (/proc/<pid>/exe), which a replaced process would not share. */
  exe: { dev: string; ino: string };
  /** The command line it was started with. */
  argv: string[];
  lifetime: Lifetime;
  /** The shared directory it serves (absolute). */
  sourcePath: string;
  /** Its sockets: virtiofsd `socket`; nydusd `sock` and `api` (the HTTP API that mount/umount use). */
  sockets: Record<string, SocketRecord>;
  /**
   * The read end of its output pipe, parked in the daemon itself (lifetime 'survive'): its fd
   * number there and the pipe's inode. Null when the daemon's output has no pipe to take over.
   */
  log: { fd: number; pipeIno: string } | null;
  /** Its own cgroup (the `cgroup` option), which stop() empties and, when created for it, removes; else null. */
  cgroup: CgroupRecord | null;
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
export function parseHandle(value: unknown, kind: DaemonKind): DaemonHandle {
  const bad = (field: string, what: string): never => {
    throw new InvalidOptionError(
      'handle',
      `${field} ${what}; pass the record that daemon.handle() returned (or its JSON parsed back), unchanged`,
    );
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad('the handle', 'is not an object');
  const h = value as Record<string, unknown>;
  if (h.format !== HANDLE_FORMAT) bad('format', `is ${describeValue(h.format)}, not ${HANDLE_FORMAT}`);
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
  return { ...(h as unknown as DaemonHandle), cgroup: (cgroup ?? null) as CgroupRecord | null };
}
