/**
 * The manager's private runtime directory, one per user, and what lives in it: the seal key that
 * proves a handle was written by a manager of this user on this boot, and the adoption lock that
 * keeps two managers off one daemon. Only processes of this uid (or root) can open anything in
 * it, so nobody less privileged can forge a seal or take a lock.
 *
 * Where: root → `/run/virtiofs-daemon/`; any other user → `$XDG_RUNTIME_DIR/virtiofs-daemon/`
 * when XDG_RUNTIME_DIR is an absolute path to a directory owned by us with mode 0700, else
 * `/run/user/<uid>/virtiofs-daemon/` when that parent is ours and 0700, else
 * `/tmp/virtiofs-daemon-<uid>/`. Created with mode 0700 and checked like tmux's /tmp/tmux-UID:
 * not a symlink, owned by our euid, mode exactly 0700, in a parent chain only root or we could
 * change. One that fails is refused ({@link UntrustedFileError}), never repaired behind your back.
 *
 * What is cached: per environment (the main thread and each worker_thread load this module, and
 * the addon, once each), the directory's path, the key, and the lock file's fd.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { SystemError, UntrustedFileError, VirtiofsDaemonError } from '../common/errors.js';
import { requirePid } from '../common/validate.js';
import { bootId } from './handle.js';
import { byteLockedElsewhere, lockByte, unlockByte } from './native.js';
import { makePrivateDir, openLockFile, readTrustedFile, writeTrustedFile, removeTrustedFile } from './trusted-file.js';

/** The seal key: this many random bytes. */
const KEY_BYTES = 32;
const KEY_FILE = 'seal.key';
const LOCK_FILE = 'adoption.lock';
/** The byte of the lock file that serializes the making of a key. No process has pid 0, so no daemon's lock is on it. */
const KEY_LOCK_BYTE = 0;
/** How long {@link sealKey} waits for another process making the key before it gives up. */
const KEY_LOCK_WAIT_MS = 5000;

let dir: string | undefined;
let key: Buffer | undefined;
let lockFd: number | undefined;

/**
 * The runtime directory of this process's user (see the module comment for which one), made
 * and checked on the first call of this environment; later calls return the same path. Throws
 * {@link UntrustedFileError} when the directory (or its parent chain) is not private to us -
 * it names the owner and mode found - and a {@link SystemError} when it cannot be made.
 */
export function runtimeDir(): string {
  if (dir) return dir;
  const chosen = chooseDir();
  makePrivateDir(chosen, {
    what: 'runtime directory',
    fix: 'Remove it (virtiofs-daemon keeps its keys and locks there, so one it did not make may have been planted) and try again',
  });
  dir = chosen;
  return dir;
}

/** The runtime directory for our euid, by the order of the module comment. Nothing is created. */
function chooseDir(): string {
  const euid = process.geteuid!();
  if (euid === 0) return '/run/virtiofs-daemon';
  const xdg = process.env.XDG_RUNTIME_DIR;
  for (const parent of [xdg, `/run/user/${euid}`]) {
    if (parent && path.isAbsolute(parent) && isPrivateDir(parent)) return path.join(parent, 'virtiofs-daemon');
  }
  return `/tmp/virtiofs-daemon-${euid}`;
}

/** Whether `parent` is a directory of ours with mode 0700 in a trusted chain (never created). */
function isPrivateDir(parent: string): boolean {
  try {
    makePrivateDir(parent, { create: false });
    return true;
  } catch (err) {
    if (err instanceof UntrustedFileError || err instanceof SystemError) return false;
    throw err;
  }
}

/**
 * This user's seal key on this boot: 32 random bytes (a copy, yours to keep). Kept in
 * `seal.key` of the runtime directory (mode 0600), prefixed by the boot id: a key from another
 * boot, or a file that is not a key, is replaced. Created exclusively - a new file linked into
 * place (`linkat`), never over another - and made by one process at a time (a lock on byte 0 of
 * `adoption.lock`), so every manager of this user on this boot gets the same key. Throws what
 * {@link runtimeDir} throws, {@link UntrustedFileError} for a `seal.key` that is not a
 * trusted file, and `ERR_SEAL_KEY_BUSY` when another process has been making the key for 5 s.
 */
export function sealKey(): Buffer {
  if (!key) {
    const file = path.join(runtimeDir(), KEY_FILE);
    const boot = bootId();
    key = readKey(file, boot) ?? withKeyLock(() => readKey(file, boot) ?? makeKey(file, boot));
  }
  return Buffer.from(key);
}

/** The key in `file` when it is one of boot `boot`; null when there is none, or another boot's, or garbage. */
function readKey(file: string, boot: string): Buffer | null {
  const data = readTrustedFile(file, { what: 'seal key', maxBytes: 4096 });
  const prefix = Buffer.from(`${boot}\n`);
  if (!data || data.length !== prefix.length + KEY_BYTES || !data.subarray(0, prefix.length).equals(prefix)) {
    return null;
  }
  return Buffer.from(data.subarray(prefix.length));
}

/** Replace what is in `file` by a new key for boot `boot`. Only under the key lock. */
function makeKey(file: string, boot: string): Buffer {
  removeTrustedFile(file, { what: 'seal key' });
  const fresh = randomBytes(KEY_BYTES);
  const content = Buffer.concat([Buffer.from(`${boot}\n`), fresh]);
  if (writeTrustedFile(file, content, { what: 'seal key', mode: 0o600, exclusive: true })) return fresh;
  // Someone else published one first (a process that does not take the lock): theirs is the key.
  const theirs = readKey(file, boot);
  if (!theirs) {
    throw new VirtiofsDaemonError('ERR_SEAL_KEY_BUSY', `seal key: '${file}' changes under us; try again`);
  }
  return theirs;
}

/** Run `fn` while holding the key lock (byte 0 of the lock file), waiting at most 5 s for it. */
function withKeyLock<T>(fn: () => T): T {
  const fd = lockFile();
  const deadline = Date.now() + KEY_LOCK_WAIT_MS;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  while (!lockByte(fd, KEY_LOCK_BYTE)) {
    if (Date.now() > deadline) {
      throw new VirtiofsDaemonError(
        'ERR_SEAL_KEY_BUSY',
        `seal key: another process of uid ${process.geteuid!()} has held byte ${KEY_LOCK_BYTE} of ` +
          `'${path.join(runtimeDir(), LOCK_FILE)}' for ${KEY_LOCK_WAIT_MS / 1000} s while making the key ` +
          `(stopped?). Resume or end it (fuser -v ${path.join(runtimeDir(), LOCK_FILE)}), then try again`,
      );
    }
    // A few ms: the holder only writes 69 bytes and renames them.
    Atomics.wait(nap, 0, 0, 5);
  }
  try {
    return fn();
  } finally {
    unlockByte(fd, KEY_LOCK_BYTE);
  }
}

/** This environment's fd of `adoption.lock`, opened on first use (the addon closes it at teardown). */
function lockFile(): number {
  lockFd ??= openLockFile(path.join(runtimeDir(), LOCK_FILE), { what: 'adoption lock' });
  return lockFd;
}

/** The pids whose adoption lock this environment holds: an OFD lock does not exclude its own holder. */
const held = new Set<number>();

/**
 * Take the adoption lock of daemon `pid`: an exclusive open-file-description lock
 * (`F_OFD_SETLK`) on byte `pid` of `adoption.lock` in the runtime directory, without waiting.
 * True when this environment holds it now; false when it is held already - by this environment
 * (the daemon is started or adopted here), another process, or another worker_thread of this
 * one (each environment opens the file once, and locks of different opens exclude each other).
 * Only processes of our uid (or root)
 * can open the file, so only they can hold or block a lock. The lock goes with
 * {@link unlockDaemon}, with this environment (a worker that ends or is terminated), or with
 * the process, however it dies. Throws InvalidOptionError for a `pid` that is not a pid, and
 * what {@link runtimeDir} throws.
 */
export function lockDaemon(pid: number): boolean {
  if (held.has(requirePid('pid', pid)) || !lockByte(lockFile(), pid)) return false;
  held.add(pid);
  return true;
}

/** Release this environment's adoption lock of daemon `pid` (nothing happens when it holds none). */
export function unlockDaemon(pid: number): void {
  if (!held.delete(requirePid('pid', pid))) return;
  unlockByte(lockFile(), pid);
}

/**
 * Whether a manager holds the adoption lock of daemon `pid` - this environment, another process,
 * or another environment of this one (`F_OFD_GETLK`): for `status`, which must not take it.
 */
export function daemonLockHeld(pid: number): boolean {
  return held.has(requirePid('pid', pid)) || byteLockedElsewhere(lockFile(), pid);
}
